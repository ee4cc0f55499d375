"""``trialpipe simulate | run | demo | validate``: thin click wrappers over the library."""

from __future__ import annotations

import os
from pathlib import Path

import click

from pipelines.cli.options import report_dir_option, study_dir_argument, warehouse_option


VALIDATING_JOBS = ("study_job", "validate_job")  # the jobs whose checks run Great Expectations suites


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _run(study_dir: Path, warehouse: Path | None, report_dir: Path | None, job: str):
    from pipelines.core import helper

    # GX imports on another core while this process launches the run (a helper started by `demo`
    # stays for its CSR package run, whose figures it draws)
    mine = job in VALIDATING_JOBS and helper.current() is None
    if mine:
        helper.start(study_dir)
    from pipelines.orchestration.runner import run_study

    console = _console()
    console.print(f"[bold]trialpipe[/] {'validating' if job == 'validate_job' else 'running'} {study_dir}")
    try:
        return run_study(study_dir, warehouse=warehouse, report_dir=report_dir, job_name=job, console=console), console
    finally:
        if mine:
            helper.stop()


def _summary(outcome, console):
    """Per-file counts and blocking failures of this run, from the study's working database."""
    from pipelines.core.warehouse import open_database
    from pipelines.report.validation import print_summary, summarize

    if not outcome.working_db.exists():
        return None
    con = open_database(outcome.working_db, read_only=True)
    try:
        summary = summarize(con, outcome.study_id, outcome.run_id)
    finally:
        con.close()
    print_summary(summary, console)
    return summary


def _canceled(outcome, command: str) -> bool:
    """A run stopped with Ctrl-C / SIGTERM: one plain line, exit status 130."""
    if not outcome.canceled:
        return False
    click.echo(f"{command}: {outcome.study_id} CANCELED (run {outcome.run_id}); nothing was published.")
    raise SystemExit(130)


def _problems(outcome, console) -> None:
    for p in outcome.problems:
        console.print(f"  [yellow]![/] {p}", highlight=False)


def _study_run(study_dir, warehouse, report_dir, command: str, failed: str, *, name_study: bool = True):
    """The study job with its summary and problems printed; None when canceled, exit 1 when it failed."""
    outcome, console = _run(study_dir, warehouse, report_dir, "study_job")
    if _canceled(outcome, command):
        return None, console
    _summary(outcome, console)
    _problems(outcome, console)
    if not outcome.success:
        who = f"{outcome.study_id} " if name_study else ""
        click.echo(f"{command}: {who}{failed.format(run_id=outcome.run_id)}")
        raise SystemExit(1)
    return outcome, console


@click.command()
@study_dir_argument
@warehouse_option("Published warehouse file [default: $TRIALPIPE_WAREHOUSE, else warehouse/trialpipe.duckdb in the project].")
@report_dir_option("Where the HTML report goes [default: reports/ beside the warehouse].")
def run(study_dir: Path, warehouse: Path | None, report_dir: Path | None) -> None:
    """Materialize the whole pipeline for STUDY_DIR through Dagster and publish the warehouse."""
    outcome, console = _study_run(
        study_dir, warehouse, report_dir, "trialpipe run", "FAILED (run {run_id}); the published warehouse was not changed."
    )
    if outcome is None:
        return
    from pipelines.report.headline import print_missing_items

    print_missing_items(outcome, console)
    click.echo(f"trialpipe run: {outcome.study_id} published to {outcome.warehouse} (run {outcome.run_id}).")


@click.command()
@study_dir_argument
@warehouse_option("Warehouse the study publishes to; its working files live beside it.")
@report_dir_option("Where the HTML validation report goes [default: reports/ beside the warehouse].")
def validate(study_dir: Path, warehouse: Path | None, report_dir: Path | None) -> None:
    """Ingest and validate STUDY_DIR only; print what failed, where, and what was quarantined.

    Exits non-zero only when something blocks the study (a file that cannot be used, a failed
    blocking check); quarantined rows alone are reported, not fatal."""
    from pipelines.report.validation import write_html

    outcome, console = _run(study_dir, warehouse, report_dir, "validate_job")
    if _canceled(outcome, "trialpipe validate"):
        return
    summary = _summary(outcome, console)
    report = None
    if summary is not None:
        report = write_html(summary, outcome.report_dir / f"{outcome.study_id}.validation.html")
        console.print(f"  validation report: {report}")
    if not outcome.success:
        click.echo(f"trialpipe validate: {outcome.study_id} has blocking failures (run {outcome.run_id}); report {report}.")
        raise SystemExit(1)
    click.echo(f"trialpipe validate: {outcome.study_id} passed (run {outcome.run_id}); report {report}.")


DEMO_FOLLOW_UP_WEEKS = 8


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"), show_default=True)
@click.option("--seed", type=int, default=20210105, show_default=True)
def demo(directory: Path, seed: int) -> None:
    """Simulate a Feder-2021-sized trial into DIR and run the whole pipeline on it."""
    from pipelines.core import helper

    # before simulating (a Feder-size study): GX imports on another core meanwhile; the helper draws
    # the CSR package's figures later
    helper.start()
    try:
        _demo(directory, seed)
    finally:
        helper.stop()


def _demo(directory: Path, seed: int) -> None:
    from pipelines.simulate import write_study

    console = _console()
    study_dir = directory / "study"
    # safety domains and eight weekly follow-up visits come from random streams of their own: the
    # efficacy data (and results) are the same as without them; follow-up visits are phase follow_up
    write_study(study_dir, per_arm=15, seed=seed, formats=("wide", "nda", "sdtm"), safety=True, follow_up_weeks=DEMO_FOLLOW_UP_WEEKS)
    console.print(
        f"simulated a 15 + 15 ketamine vs midazolam trial with safety data and {DEMO_FOLLOW_UP_WEEKS} weeks of "
        f"follow-up into {study_dir}"
    )
    warehouse = directory / "warehouse" / "trialpipe.duckdb"
    outcome, console = _study_run(study_dir, warehouse, None, "trialpipe demo", "FAILED (run {run_id}).", name_study=False)
    if outcome is None:
        return
    from pipelines.report.headline import print_headline

    print_headline(outcome, console)
    # the CSR package (numbered RTF/HTML outputs, XPT + Define-XML) is its own Dagster job
    console.print("building the CSR package (tables, figures, ADaM XPT, Define-XML) ...")
    csr, _ = _run(study_dir, warehouse, None, "csr_job")
    tlf_index = outcome.report_dir / f"{outcome.study_id}-tlf" / "index.html"
    if not csr.success:
        console.print(f"  [yellow]the CSR package failed (run {csr.run_id}); the analysis above stands[/]")
    report = outcome.report_dir / f"{outcome.study_id}.html"
    click.echo(
        f"trialpipe demo: warehouse {outcome.warehouse.resolve()}; report {report.resolve()}; "
        + (f"CSR package {tlf_index.resolve()}; " if csr.success else "")
        + f"Dagster UI: python3 dev.py ui (DAGSTER_HOME={os.environ['DAGSTER_HOME']})"
    )
