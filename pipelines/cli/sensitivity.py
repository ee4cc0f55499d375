"""``trialpipe sensitivity STUDY_DIR``: (re)run the estimands and missing-data sensitivity analyses of
a study already in the published warehouse, replacing that study's rows of results.estimands,
results.sensitivity and results.tipping_point (other studies' rows are kept)."""

from __future__ import annotations

import uuid
from pathlib import Path

import click

from pipelines.cli.options import study_dir_argument, warehouse_option
from pipelines.core.errors import InputFileError


def _replace_rows(con, table: str, frame, study_id: str) -> None:
    from pipelines.core import warehouse

    if warehouse.table_exists(con, table):
        con.execute(f"delete from {table} where study_id = ?", [study_id])
        have = set(warehouse.column_names(con, table))
        if set(frame.columns) <= have:
            warehouse.write_frame(con, table, frame, mode="append", documented=True)
            return
        rest = con.execute(f"select * from {table}").pl()
        import polars as pl

        frame = pl.concat([rest, frame], how="diagonal_relaxed")
    warehouse.write_frame(con, table, frame, documented=True)


@click.command(name="sensitivity", context_settings={"help_option_names": ["-h", "--help"]})
@study_dir_argument
@warehouse_option("Published warehouse file [default: $TRIALPIPE_WAREHOUSE, else warehouse/trialpipe.duckdb in the project].",
                  name="warehouse_path")
def sensitivity(study_dir: Path, warehouse_path: Path | None) -> None:
    """Estimands of STUDY_DIR's manifest (or the default one) against its published ADSL/ADQS:
    MAR, J2R, CR and CIR imputation analyses and the tipping point."""
    from rich.console import Console

    from pipelines.core import warehouse
    from pipelines.core.study_run import StudyRun
    from pipelines.stats.estimands import run_estimands

    err = Console(stderr=True, highlight=False)
    study = StudyRun.from_folder(study_dir, warehouse=warehouse_path)
    manifest, path = study.manifest, study.warehouse
    if not path.exists():
        raise InputFileError("warehouse not found; run `trialpipe run` for the study first", file=str(path))
    run_id = f"sensitivity-{uuid.uuid4()}"
    with warehouse.connect(path) as con:
        n = (
            con.execute(
                "select count(*) from analysis.adqs where study_id = ?", [manifest.study_id]
            ).fetchone()[0]
            if warehouse.table_exists(con, "analysis.adqs")
            else 0
        )
        if not n:
            raise InputFileError(
                f"study {manifest.study_id} has no analysis.adqs rows in the warehouse",
                file=str(path),
                hint="run `trialpipe run STUDY_DIR` first",
            )
        with err.status("estimands") as status:
            out = run_estimands(con, manifest, run_id, progress=lambda m: status.update(m))
        for table, frame in out.tables().items():
            _replace_rows(con, table, frame, manifest.study_id)
    for note in out.notes:
        err.print(f"[yellow]note:[/] {note}")
    for r in out.estimands.iter_rows(named=True):
        err.print(f"[bold]{r['estimand_id']}[/]: {r['description']}")
        s = out.sensitivity.filter(
            (out.sensitivity["estimand_id"] == r["estimand_id"])
            & (out.sensitivity["avisit"] == r["avisit"])
            & (out.sensitivity["delta"] == 0)
        )
        for x in s.iter_rows(named=True):
            err.print(
                f"  {x['strategy']:5s} {x['estimate']:8.2f} (SE {x['std_error']:.2f}, "
                f"95% CI {x['conf_low']:.2f} to {x['conf_high']:.2f}), p = {x['p_value']:.3f}"
            )
    click.echo(
        f"trialpipe sensitivity: {len(out.estimands)} estimand(s), {out.sensitivity.height} sensitivity rows and "
        f"{out.tipping_point.height} tipping-point rows for {manifest.study_id} written to {path}."
    )
