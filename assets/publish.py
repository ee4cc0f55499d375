"""Publish: the study's tables replace its rows in the warehouse analysts open (atomic swap)."""


from datetime import UTC, datetime

import dagster as dg

from pipelines.core.publish import publish
from pipelines.orchestration.partitions import OWNERS, studies_partitions
from pipelines.orchestration.resources import TrialpipeResource


def publish_asset(upstream: list[dg.AssetKey]):
    @dg.asset(
        key=dg.AssetKey(["publish", "warehouse"]),
        group_name="publish",
        description="The published DuckDB warehouse: this study's tables swapped in atomically after every blocking check passed",
        deps=upstream,
        partitions_def=studies_partitions,
        kinds={"duckdb"},
        owners=OWNERS,
    )
    def published_warehouse(context: dg.AssetExecutionContext, trialpipe: TrialpipeResource) -> dg.MaterializeResult:
        study, _ = trialpipe.for_run(context)  # a canceling run does not publish
        run = context.run
        stats = context.instance.get_run_stats(run.run_id)
        started = datetime.fromtimestamp(stats.start_time, UTC) if stats and stats.start_time else None
        row = study.runs_row(run.run_id, "success", started_at=started)

        def waiting(who: str, waited: float) -> None:
            context.log.info(f"waiting for {who} to finish ({waited:.0f} s so far)")

        result = publish(study.working_db, study.warehouse, study.study_id, row, on_wait=waiting)
        context.log.info(f"published {study.study_id} to {study.warehouse} ({result['rows']} rows)")
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(study.warehouse)),
                "tables": result["tables"],
                "rows": result["rows"],
                "seconds": result["seconds"],
                "size_mb": round(study.warehouse.stat().st_size / 1e6, 2),
            }
        )

    return published_warehouse
