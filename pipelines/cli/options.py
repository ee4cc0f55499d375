"""The argument and options several commands share: the study folder, the warehouse, the report folder."""

from __future__ import annotations

from pathlib import Path

import click

study_dir_argument = click.argument("study_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))


def warehouse_option(help: str, name: str = "warehouse"):
    """``--warehouse PATH`` (a DuckDB file), passed to the command as ``name``."""
    return click.option("--warehouse", name, type=click.Path(dir_okay=False, path_type=Path), default=None, help=help)


def report_dir_option(help: str):
    """``--report-dir DIR``, passed as ``report_dir``."""
    return click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=help)
