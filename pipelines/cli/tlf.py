"""``trialpipe tlf STUDY_DIR [--warehouse PATH] --out DIR``: the CSR table/listing/figure package."""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.cli.options import study_dir_argument, warehouse_option


@click.command()
@study_dir_argument
@warehouse_option("Published warehouse holding the study [default: where the study was last run to, else "
                  "./warehouse/trialpipe.duckdb].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the RTF, HTML, XPT and define.xml files (created).")
def tlf(study_dir: Path, warehouse: Path | None, out_dir: Path) -> None:
    """Write the numbered tables and figures (RTF and HTML), the ADaM datasets as SAS XPORT v5 and
    their Define-XML for the study in STUDY_DIR, from the published warehouse."""
    from pipelines.core import warehouse as wh
    from pipelines.core.errors import TrialpipeError
    from pipelines.core.study_run import StudyRun
    from pipelines.report.data import has_table
    from pipelines.tlf.package import build_package

    study = StudyRun.as_published(study_dir, warehouse=warehouse)
    study_id, db = study.study_id, study.warehouse
    if not db.exists():
        raise TrialpipeError(
            f"warehouse {db} does not exist", hint=f"run `trialpipe run {study_dir}` first, or pass --warehouse"
        )
    click.echo(f"trialpipe tlf: {study_id} from {db}", err=True)
    with wh.connect(db, read_only=True) as con:
        n = (
            con.execute("select count(*) from analysis.adsl where study_id = ?", [study_id]).fetchone()[0]
            if has_table(con, "analysis.adsl")
            else 0
        )
        if not n:
            raise TrialpipeError(
                f"study {study_id} has no subjects in warehouse {db}",
                hint=f"run `trialpipe run {study_dir}` to build and publish it",
            )
        pkg = build_package(
            con, study_id, out_dir, progress=lambda m: click.echo(f"  {m}", err=True), code_version=study.code_version
        )
    for problem in pkg.problems:
        click.secho(f"  not written: {problem}", fg="yellow", err=True)
    click.echo(
        f"trialpipe tlf: {study_id}: {len(pkg.written)} outputs written ({len(pkg.absent)} without data), "
        f"{len(pkg.datasets)} XPT datasets{' and define.xml' if pkg.define else ''}"
        + (f", {len(pkg.problems)} not written (XPORT v5 rules)" if pkg.problems else "")
        + f"; index {pkg.index}."
    )
    if pkg.problems:
        raise SystemExit(1)
