"""Report layer: one self-contained HTML report per study (and its validation report)."""

from datetime import UTC, datetime

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from pipelines.orchestration.partitions import studies_partitions
from pipelines.orchestration.resources import TrialpipeResource


@asset(
    key=AssetKey(["report", "study_report"]),
    group_name="report",
    description="The study report: participant flow, baseline, primary results, forest plot, change over visits, responders, validation, provenance (HTML)",
    deps=[
        AssetKey(["results", n])
        for n in (
            "model_fits", "lsmeans", "treatment_effects", "responders", "notes", "estimands", "sensitivity",
            "tipping_point", "responder_estimands",
        )
    ],
    partitions_def=studies_partitions,
    kinds={"html"},
)
def study_report(context: AssetExecutionContext, trialpipe: TrialpipeResource) -> MaterializeResult:
    """Write <report_dir>/<study_id>.html (and <study_id>.validation.html) from the study's tables."""
    from pipelines.core.provenance import code_version, study_inputs
    from pipelines.report.headline import headline_lines
    from pipelines.report.study import build_report
    from pipelines.report.validation import summarize, write_html

    study = trialpipe.study(context.partition_key)
    run_id = context.run.run_id
    with study.connect(run_id) as con:
        validation = summarize(con, study.study_id, run_id)
        path = build_report(
            con,
            study.study_id,
            run_id,
            study.report_dir,
            validation=validation,
            provenance={
                "code_version": code_version(),
                "input_sha256s": study_inputs(study.dir)[1],
                "finished_at": datetime.now(UTC),
                "covariance": study.manifest.analysis.model.covariance,
            },
        )
        headline = headline_lines(con, study.study_id)
    vpath = write_html(validation, study.report_dir / f"{study.study_id}.validation.html")
    return MaterializeResult(
        metadata={
            "report": MetadataValue.url(path.resolve().as_uri()),
            "path": MetadataValue.path(str(path)),
            "validation_report": MetadataValue.path(str(vpath)),
            "size_kb": round(path.stat().st_size / 1024, 1),
            "headline": MetadataValue.md("\n".join(f"* {line}" for line in headline)),
        }
    )
