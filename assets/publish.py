"""Publish: the study's tables replace its rows in the warehouse analysts open (atomic swap)."""


from datetime import UTC, datetime

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from pipelines.orchestration.partitions import studies_partitions
from pipelines.core.provenance import code_version
from pipelines.core.publish import publish
from pipelines.orchestration.resources import TrialpipeResource


def publish_asset(upstream: list[AssetKey]):
    @asset(
        key=AssetKey(["publish", "warehouse"]),
        group_name="publish",
        description="The published DuckDB warehouse: this study's tables swapped in atomically after every blocking check passed",
        deps=upstream,
        partitions_def=studies_partitions,
        kinds={"duckdb"},
    )
    def published_warehouse(context: AssetExecutionContext, trialpipe: TrialpipeResource) -> MaterializeResult:
        study = trialpipe.study(context.partition_key)
        run = context.run
        with study.connect(run.run_id) as con:
            hashes = dict(con.execute("select _source_file, _source_sha256 from qc.source_files").fetchall())
        stats = context.instance.get_run_stats(run.run_id)
        started = datetime.fromtimestamp(stats.start_time, UTC) if stats and stats.start_time else None
        row = {
            "study_id": study.study_id,
            "run_id": run.run_id,
            "started_at": started,
            "finished_at": datetime.now(UTC),
            "code_version": code_version(),
            "input_sha256s": hashes,
            "status": "success",
        }
        result = publish(study.working_db, study.warehouse_path, study.study_id, row)
        context.log.info(f"published {study.study_id} to {study.warehouse_path} ({result['rows']} rows)")
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(study.warehouse_path)),
                "tables": result["tables"],
                "rows": result["rows"],
                "seconds": result["seconds"],
                "size_mb": round(study.warehouse_path.stat().st_size / 1e6, 2),
            }
        )

    return published_warehouse
