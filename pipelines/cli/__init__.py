"""The ``trialpipe`` command line.

Commands are imported lazily (``LazyGroup``) so ``trialpipe --help`` does not pay for Dagster,
DuckDB or Great Expectations. Every command ends with one plain closing line; a
:class:`~pipelines.core.errors.TrialpipeError` is printed without a traceback and exits with status 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from pipelines.core.process import collect_less

# name -> "module:attribute" of a click.Command; imported only when the command runs.
COMMANDS: dict[str, str] = {
    "simulate": "pipelines.cli.simulate:simulate",
    "run": "pipelines.cli.commands:run",
    "demo": "pipelines.cli.commands:demo",
    "validate": "pipelines.cli.commands:validate",
    "mmrm": "pipelines.cli.mmrm:mmrm",
    "ui": "pipelines.cli.ui:ui",
    "impute": "pipelines.cli.impute:impute",
    "sensitivity": "pipelines.cli.sensitivity:sensitivity",
    "tlf": "pipelines.cli.tlf:tlf",
}

SHORT_HELP = {
    "simulate": "Write a simulated, Feder-2021-calibrated study folder.",
    "run": "Materialize the whole pipeline for a study folder through Dagster.",
    "demo": "Simulate a Feder-sized trial and run the whole pipeline on it.",
    "validate": "Ingest and validate a study folder only; report what was quarantined.",
    "mmrm": "Fit an MMRM on any CSV (R mmrm formula syntax).",
    "ui": "The Dagster UI on 127.0.0.1, refusing requests from other web pages.",
    "impute": "Reference-based / MAR imputation analysis of any CSV (the rbmi workflow).",
    "sensitivity": "(Re)run the estimand and missing-data sensitivity analyses of a published study.",
    "tlf": "Write the CSR tables and figures (RTF, HTML), ADaM XPT files and Define-XML.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        if ctx.resilient_parsing or "--help" in sys.argv and name not in sys.argv:
            # `trialpipe --help` lists commands without importing them.
            return click.Command(name, short_help=SHORT_HELP.get(name))
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trialpipe")
def cli() -> None:
    """trialpipe: psychiatric clinical-trial data from raw exports to MMRM results."""


# commands that execute a Dagster run: Ctrl-C / SIGTERM cancel the run (see orchestration.runner)
RUN_COMMANDS = {"run", "validate", "demo"}


def main(argv: list[str] | None = None) -> None:
    # ``argv is None``: this is the `trialpipe` process itself (tests call main(argv) in their own)
    entry = argv is None
    if entry:
        collect_less()  # the collector's thresholds for a process that runs studies (core/process.py)
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in RUN_COMMANDS:
        from pipelines.core.signals import install_signal_proxy

        install_signal_proxy()  # before polars/DuckDB start their threads
    from pipelines.core.errors import TrialpipeError

    code: object = 0
    try:
        try:
            cli.main(args=argv, prog_name="trialpipe", standalone_mode=False)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)
        except click.exceptions.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except TrialpipeError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)
    except SystemExit as exc:
        if not entry:
            raise
        code = exc.code
    if entry:
        _exit(code)


def _exit(code: object) -> None:
    """End the process without tearing down every object one by one.

    After a study run the interpreter holds Dagster, Great Expectations, statsmodels, matplotlib
    and the run's data, about a million objects; freeing them at exit took 1.6 s of a 16 s
    Feder-size `trialpipe run`. Everything a normal exit does that matters still happens, in its
    order: other (non-daemon) threads are waited for, the atexit handlers run (logging, Dagster's
    and DuckDB's cleanups), the output is flushed; then the process ends with the same status."""
    import atexit
    import os
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1, as Python does
        print(code, file=sys.stderr)
        status = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(status)


if __name__ == "__main__":
    main()
