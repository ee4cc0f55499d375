"""Results layer: the efficacy analysis of one study (primary MMRM per parameter with covariance
fallbacks, LS means, treatment effects with Cohen's d and multiplicity, random-effects sensitivity
models, responders) written to the contract's results.* tables, each row carrying run_id."""

import base64

import dagster as dg
import polars as pl

from assets.sql_models import documented_schema, table_metadata
from pipelines.core import warehouse
from pipelines.core.paths import figure_url
from pipelines.orchestration.checks import check_spec
from pipelines.orchestration.partitions import study_asset_spec, study_assets
from pipelines.orchestration.resources import TrialpipeResource

FIGURES = {"treatment_effects": "forest plot", "lsmeans": "mean change from baseline by visit",
           "responders": "responders by arm", "model_fits": "model fits"}
TABLES = {
    "model_fits": "One row per parameter x model: covariance structure used (after fallbacks), convergence, -2LL, AIC",
    "lsmeans": "LS-mean change from baseline per parameter, model, arm and visit, with 95% CI",
    "treatment_effects": "Experimental minus control per parameter, model and visit: estimate, CI, p, adjusted p, Cohen's d",
    "responders": "Response and remission at the primary visit: n/N per arm, risk difference (score CI), Fisher p, logistic OR",
    "missing_items": "Scores lost to missing items per instrument total, arm and visit, with the subjects (and whether a prorated sensitivity ran)",
    "notes": "What the analysis had to say: fallbacks used, models that did not converge, single-arm studies",
}


def results_specs(tables: dict[str, str], inputs: tuple[str, ...] = ("adsl", "adqs")) -> list[dg.AssetSpec]:
    """One asset per ``results.<name>`` table (name -> description), computed in Python from the
    ``analysis.<input>`` tables (ADSL and ADQS unless said)."""
    return [
        study_asset_spec(
            ["results", name],
            group="results",
            description=desc,
            kinds={"duckdb", "python"},
            metadata=documented_schema(f"results.{name}"),
            deps=[dg.AssetKey(["analysis", t]) for t in inputs],
        )
        for name, desc in tables.items()
    ]


SPECS = results_specs(TABLES)


@study_assets(name="efficacy", specs=SPECS, check_specs=[check_spec("primary_model_converged")])
def efficacy(context: dg.AssetExecutionContext, trialpipe: TrialpipeResource):
    """Fit the primary MMRM and the sensitivity models per parameter and tabulate responders."""
    from pipelines.report.data import load_study
    from pipelines.report.metadata import md_with_image, results_metadata
    from pipelines.stats.efficacy import run_efficacy

    study, run_id = trialpipe.for_run(context)
    with study.connect(run_id) as con:
        out = run_efficacy(con, study.manifest, run_id, progress=context.log.info)
        tables = out.tables()
        tables["results.notes"] = pl.DataFrame(
            {"study_id": [study.study_id] * len(out.notes), "run_id": [run_id] * len(out.notes), "note": out.notes},
            schema={"study_id": pl.String, "run_id": pl.String, "note": pl.String},
        )
        for table, frame in tables.items():
            warehouse.write_frame(con, table, frame)
        data = load_study(con, study.study_id)  # once, for every table's summary
        for table in tables:
            meta = table_metadata(con, table)
            if table not in ("results.notes", "results.missing_items"):
                md, image = results_metadata(con, study.study_id, table, data=data)
                meta["summary"] = dg.MetadataValue.md(md_with_image(md, image))
                if image:  # the figure itself, short enough for the UI to show it inline (served by trialpipe ui)
                    name = table.split(".")[1]
                    study.report_dir.mkdir(parents=True, exist_ok=True)
                    svg = base64.b64decode(image.split(",", 1)[1])
                    (study.report_dir / f"{study.study_id}.{name}.svg").write_bytes(svg)
                    meta["plot"] = dg.MetadataValue.md(f"![{FIGURES.get(name, name)}]({figure_url(study.study_id, name)})")
            else:
                meta["notes"] = dg.MetadataValue.md("\n".join(f"* {n}" for n in out.notes) or "_(none)_")
            yield dg.MaterializeResult(asset_key=dg.AssetKey(table.split(".")), metadata=meta)
        primary = study.manifest.analysis.primary_parameter
        fit = out.model_fits.filter((pl.col("paramcd") == primary) & (pl.col("model") == "mmrm"))
        ok = fit.height > 0 and bool(fit["converged"][0])
        yield dg.AssetCheckResult(
            asset_key=dg.AssetKey(["results", "model_fits"]),
            check_name="primary_model_converged",
            passed=ok,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"{primary}: {fit['covariance'][0]} covariance"
                + (f" after {fit['fallback_from'][0]} failed" if fit.height and fit["fallback_from"][0] else "")
                if ok else f"{primary}: the primary MMRM did not converge with any structure"
            ),
        )
