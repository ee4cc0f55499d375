"""``trialpipe simulate | run | demo | validate``: thin click wrappers over the library."""

from __future__ import annotations

from pathlib import Path

import click


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--per-arm", type=click.IntRange(min=2), default=15, show_default=True, help="Subjects per arm.")
@click.option("--seed", type=int, default=20210105, show_default=True, help="Random seed (same seed, same files).")
@click.option("--format", "formats", default="wide", show_default=True, help="Comma list of wide, nda, sdtm.")
@click.option("--study-id", default=None, help="Study id (default derived from the seed).")
@click.option("--missing-item-rate", type=click.FloatRange(0, 0.5), default=0.0, show_default=True)
def simulate(out_dir: Path, per_arm: int, seed: int, formats: str, study_id: str | None, missing_item_rate: float) -> None:
    """Write a simulated, Feder-2021-calibrated study folder (data files + study.yaml)."""
    from pipelines.simulate.cli import simulate as sim_cmd

    ctx = click.get_current_context()
    ctx.invoke(
        sim_cmd, out_dir=out_dir, per_arm=per_arm, seed=seed, formats=formats, study_id=study_id,
        missing_item_rate=missing_item_rate,
    )


def _run(study_dir: Path, warehouse: Path | None, report_dir: Path | None, job: str):
    from pipelines.runner import run_study

    console = _console()
    console.print(f"[bold]trialpipe[/] {'validating' if job == 'validate_job' else 'running'} {study_dir}")
    return run_study(study_dir, warehouse=warehouse, report_dir=report_dir, job_name=job, console=console), console


def _summary(outcome, console, *, published: bool) -> None:
    import duckdb

    db = outcome.warehouse if published and outcome.warehouse.exists() else outcome.working_db
    if not db.exists():
        return
    con = duckdb.connect(str(db), read_only=True)
    try:
        sid = outcome.study_id
        files = con.execute(
            "select _source_file, status, rows_read, rows_skipped, message from qc.source_files where study_id = ? order by 1",
            [sid],
        ).fetchall()
        q = dict(con.execute(
            "select _source_file, count(*) from qc.quarantine where study_id = ? group by 1", [sid]
        ).fetchall()) if _has(con, "qc", "quarantine") else {}
        for f, status, read, skipped, msg in files:
            line = f"  {f}: {status}"
            if status == "loaded":
                line += f", {read} rows read, {q.get(f, 0)} quarantined" + (f", {skipped} skipped" if skipped else "")
            else:
                line += f" - {msg}"
            console.print(line)
    finally:
        con.close()


def _has(con, schema: str, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?", [schema, table]
    ).fetchone()[0])


@click.command()
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--warehouse", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Published warehouse file [default: ./warehouse/trialpipe.duckdb].")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the HTML report goes [default: reports/ beside the warehouse].")
def run(study_dir: Path, warehouse: Path | None, report_dir: Path | None) -> None:
    """Materialize the whole pipeline for STUDY_DIR through Dagster and publish the warehouse."""
    outcome, console = _run(study_dir, warehouse, report_dir, "study_job")
    _summary(outcome, console, published=outcome.success)
    if not outcome.success:
        click.echo(f"trialpipe run: {outcome.study_id} FAILED (run {outcome.run_id}); the published warehouse was not changed.")
        raise SystemExit(1)
    click.echo(f"trialpipe run: {outcome.study_id} published to {outcome.warehouse} (run {outcome.run_id}).")


@click.command()
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--warehouse", type=click.Path(dir_okay=False, path_type=Path), default=None)
def validate(study_dir: Path, warehouse: Path | None) -> None:
    """Ingest and validate STUDY_DIR only; print what failed, where, and what was quarantined."""
    outcome, console = _run(study_dir, warehouse, None, "validate_job")
    _summary(outcome, console, published=False)
    if not outcome.success:
        click.echo(f"trialpipe validate: {outcome.study_id} has blocking failures (run {outcome.run_id}).")
        raise SystemExit(1)
    click.echo(f"trialpipe validate: {outcome.study_id} passed (run {outcome.run_id}).")


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("demo"), show_default=True)
@click.option("--seed", type=int, default=20210105, show_default=True)
def demo(directory: Path, seed: int) -> None:
    """Simulate a Feder-2021-sized trial into DIR and run the whole pipeline on it."""
    from pipelines.simulate import write_study

    console = _console()
    study_dir = directory / "study"
    write_study(study_dir, per_arm=15, seed=seed, formats=("wide", "nda", "sdtm"))
    console.print(f"simulated a 15 + 15 ketamine vs midazolam trial into {study_dir}")
    warehouse = directory / "warehouse" / "trialpipe.duckdb"
    outcome, console = _run(study_dir, warehouse, None, "study_job")
    _summary(outcome, console, published=outcome.success)
    if not outcome.success:
        click.echo(f"trialpipe demo: FAILED (run {outcome.run_id}).")
        raise SystemExit(1)
    from pipelines.report.headline import print_headline

    print_headline(outcome, console)
    click.echo(
        f"trialpipe demo: warehouse {outcome.warehouse.resolve()}; "
        f"Dagster UI: DAGSTER_HOME={Path(__import__('os').environ['DAGSTER_HOME'])} dagster dev -w workspace.yaml"
    )
