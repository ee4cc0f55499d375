"""Durability of response: Kaplan-Meier per arm of time to loss of response among primary-visit
responders (analysis.adtte LOSSRESP), with median, Brookmeyer-Crowley CI and the log-rank test."""

import dagster as dg
import polars as pl

from assets.results import results_specs
from assets.sql_models import table_metadata
from pipelines.core import warehouse
from pipelines.orchestration.partitions import study_assets
from pipelines.orchestration.resources import TrialpipeResource

TABLES = {
    "durability": "Time to loss of response among primary-visit responders: KM median and 95% CI per arm, log-rank test",
    "durability_curve": "Kaplan-Meier steps per arm: time, numbers at risk, events, censored, survival and 95% CI",
}
SPECS = results_specs(TABLES, inputs=("adtte",))


def summary_markdown(summary: pl.DataFrame) -> str:
    from pipelines.report.metadata import md_table

    def num(x, fmt="{:.1f}"):
        return "NE" if x is None else fmt.format(x)

    rows = []
    for r in summary.iter_rows(named=True):
        if r["trtp"] == "COMPARISON":
            test = f"log-rank chi-square {num(r['statistic'], '{:.2f}')}, p = {num(r['p_value'], '{:.4f}')}"
            rows.append([r["arm_label"], str(r["n_subjects"]), str(r["n_events"]), test if r["statistic"] is not None else (r["note"] or ""), ""])
        else:
            rows.append([r["arm_label"], str(r["n_subjects"]), str(r["n_events"]), num(r["median"]),
                         f"{num(r['conf_low'])} - {num(r['conf_high'])}"])
    return md_table(["arm", "responders", "losses", "median days", "95% CI"], rows)


def km_svg(curves: pl.DataFrame, summary: pl.DataFrame) -> str | None:
    """The Kaplan-Meier curves as an SVG data URI (None without curves)."""
    from pipelines.report.figures import kaplan_meier, svg_data_uri

    if curves.height == 0:
        return None
    arms = []
    for r in summary.filter(pl.col("trtp") != "COMPARISON").iter_rows(named=True):
        steps = curves.filter(pl.col("trtp") == r["trtp"]).sort("time").to_dicts()
        if steps:
            arms.append({"label": r["arm_label"], "steps": steps, "median": r["median"]})
    return svg_data_uri(kaplan_meier(arms), px_per_inch=80)


@study_assets(name="durability", specs=SPECS)
def durability(context: dg.AssetExecutionContext, trialpipe: TrialpipeResource):
    """Estimate how long response lasts among responders at the primary visit (Kaplan-Meier, log-rank)."""
    from pipelines.report.metadata import md_with_image
    from pipelines.stats.durability import run_durability

    study, run_id = trialpipe.for_run(context)
    with study.connect(run_id) as con:
        summary, curves = run_durability(con, study.manifest, run_id)
        warehouse.write_frame(con, "results.durability", summary)
        warehouse.write_frame(con, "results.durability_curve", curves)
        md = summary_markdown(summary)
        yield dg.MaterializeResult(
            asset_key=dg.AssetKey(["results", "durability"]),
            metadata={**table_metadata(con, "results.durability"),
                      "summary": dg.MetadataValue.md(md_with_image(md, km_svg(curves, summary), "Kaplan-Meier"))},
        )
        yield dg.MaterializeResult(
            asset_key=dg.AssetKey(["results", "durability_curve"]), metadata=table_metadata(con, "results.durability_curve")
        )
