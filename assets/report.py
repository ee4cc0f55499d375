"""Report layer: one self-contained HTML report per study (and its validation report)."""

from datetime import UTC, datetime

import dagster as dg

from pipelines.orchestration.partitions import OWNERS, studies_partitions
from pipelines.orchestration.resources import TrialpipeResource


@dg.asset(
    key=dg.AssetKey(["report", "study_report"]),
    group_name="report",
    description="The study report: participant flow, baseline, primary results, forest plot, change over visits, responders, validation, provenance (HTML)",
    deps=[
        dg.AssetKey(["results", n])
        for n in (
            "model_fits", "lsmeans", "treatment_effects", "responders", "missing_items", "notes", "estimands", "sensitivity",
            "tipping_point", "responder_estimands",
        )
    ],
    partitions_def=studies_partitions,
    kinds={"html"},
    owners=OWNERS,
)
def study_report(context: dg.AssetExecutionContext, trialpipe: TrialpipeResource) -> dg.MaterializeResult:
    """Write <report_dir>/<study_id>.html (and <study_id>.validation.html) from the study's tables."""
    from pipelines.core.paths import report_url
    from pipelines.report.headline import headline_lines
    from pipelines.report.study import build_report
    from pipelines.report.validation import summarize, write_html

    study, run_id = trialpipe.for_run(context)
    with study.connect(run_id) as con:
        validation = summarize(con, study.study_id, run_id)
        path = build_report(
            con,
            study.study_id,
            run_id,
            study.report_dir,
            validation=validation,
            provenance={
                "code_version": study.code_version,
                "input_sha256s": dict(study.input_sha256s),
                "finished_at": datetime.now(UTC),
                "covariance": study.manifest.analysis.model.covariance,
            },
        )
        headline = headline_lines(con, study.study_id)
    write_html(validation, study.report_dir / f"{study.study_id}.validation.html")
    return dg.MaterializeResult(
        metadata={
            # served by `trialpipe ui` on the UI's own origin (a file:// link does not open from a web page)
            "report": dg.MetadataValue.url(report_url(study.study_id)),
            "validation_report": dg.MetadataValue.url(report_url(study.study_id, validation=True)),
            "open_report": dg.MetadataValue.md(
                f"[Open the study report]({report_url(study.study_id)}) · "
                f"[validation report]({report_url(study.study_id, validation=True)})"
            ),
            "path": dg.MetadataValue.path(str(path)),
            "size_kb": round(path.stat().st_size / 1024, 1),
            "headline": dg.MetadataValue.md("\n".join(f"* {line}" for line in headline)),
        }
    )
