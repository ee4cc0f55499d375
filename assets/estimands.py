"""Estimands layer: ICH E9(R1) estimands and their missing-data sensitivity analyses
(reference-based imputation, tipping point) written to results.estimands / sensitivity /
tipping_point, with the table and the tipping-point heat map in the metadata."""

import dagster as dg

from assets.results import results_specs
from assets.sql_models import table_metadata
from pipelines.core import warehouse
from pipelines.orchestration.partitions import study_assets
from pipelines.orchestration.resources import TrialpipeResource

TABLES = {
    "estimands": "One row per estimand: population, variable, intercurrent events and strategies, summary, in words",
    "sensitivity": "Imputation sensitivity analyses per estimand: MAR, J2R, CR, CIR (conditional mean, jackknife SE)",
    "tipping_point": "Treatment effect and p over a grid of shifts of the imputed post-event values of each arm",
    "responder_estimands": "Response under the composite strategy (primary) and observed cases; Firth logistic under separation",
}
SPECS = results_specs(TABLES)


@study_assets(name="estimands", specs=SPECS)
def estimands(context: dg.AssetExecutionContext, trialpipe: TrialpipeResource):
    """Run every estimand's imputation analyses and tipping point (pipelines.stats.estimands)."""
    from pipelines.report.estimands import tipping_svg
    from pipelines.report.metadata import md_with_image
    from pipelines.stats.estimands import run_estimands

    study, run_id = trialpipe.for_run(context)
    with study.connect(run_id) as con:
        out = run_estimands(con, study.manifest, run_id, progress=context.log.info)
        for note in out.notes:
            context.log.warning(note)
        for table, frame in out.tables().items():
            warehouse.write_frame(con, table, frame)
        for table, frame in out.tables().items():
            meta = table_metadata(con, table)
            md = warehouse.frame_markdown(frame.drop("study_id", "run_id", strict=False).head(20))
            if table == "results.tipping_point":
                images = (
                    tipping_svg(con, study.study_id, eid, study.manifest.analysis.alpha)
                    for eid in frame["estimand_id"].unique(maintain_order=True).to_list()
                )
                md = md_with_image(md, next((i for i in images if i), None), alt="tipping point")
            if table == "results.estimands" and frame.height:
                md = (
                    "\n\n".join(
                        f"**{r['estimand_id']}**: {r['description']}" for r in frame.iter_rows(named=True)
                    )
                    + "\n\n"
                    + md
                )
            if out.notes:
                md += "\n\n" + "\n".join(f"* {n}" for n in out.notes)
            meta["summary"] = dg.MetadataValue.md(md)
            yield dg.MaterializeResult(asset_key=dg.AssetKey(table.split(".")), metadata=meta)
