"""Where things are: the project's SQL and suites, and the default local state."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"


def dagster_home() -> Path:
    """DAGSTER_HOME if set, else ``.dagster_home`` inside the project (ignored by git)."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        # SQLite storage under this folder; a run queue of 2 with one run per study at a time.
        # written whole and renamed, so a second process starting now never reads half a file
        tmp = cfg.with_name(f".dagster.yaml.{os.getpid()}")
        tmp.write_text((PROJECT_ROOT / "docs" / "dagster" / "dagster.local.yaml").read_text())
        os.replace(tmp, cfg)
    return home


def default_warehouse() -> Path:
    """The one default warehouse: $TRIALPIPE_WAREHOUSE, else ``<project>/warehouse/trialpipe.duckdb``.

    The same file for ``trialpipe run`` (from any current directory) and for runs launched from the
    UI, the sensor or the schedule; ``trialpipe run --warehouse`` registers another one per study."""
    return Path(os.environ.get("TRIALPIPE_WAREHOUSE") or PROJECT_ROOT / "warehouse" / "trialpipe.duckdb").resolve()


REPORTS_URL_PREFIX = "/trialpipe/reports/"


def report_url(study_id: str, validation: bool = False) -> str:
    """Where ``trialpipe ui`` serves a study's report: a path on the UI's own origin."""
    return f"{REPORTS_URL_PREFIX}{study_id}{'.validation' if validation else ''}.html"


def figure_url(study_id: str, name: str) -> str:
    """Where ``trialpipe ui`` serves a results figure (``<report_dir>/<study_id>.<name>.svg``)."""
    return f"{REPORTS_URL_PREFIX}{study_id}.{name}.svg"
