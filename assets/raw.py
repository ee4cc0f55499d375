"""Raw layer: the manifest as reference tables, and every source file as received."""


import json

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from assets.sql_models import table_metadata
from pipelines.core import validation, warehouse
from pipelines.ingest.load import ingest, write_reference
from pipelines.ingest.schema import raw_tables
from pipelines.orchestration.checks import check_spec
from pipelines.orchestration.partitions import OWNERS, studies_partitions
from pipelines.orchestration.resources import TrialpipeResource

RAW_SPECS = [
    AssetSpec(
        ["raw", table],
        group_name="raw",
        description=(
            "Randomization / subject-level rows as received" if table == "randomization" else f"{table} rows as received"
        )
        + " (mapped columns only, values as text, with file lineage)",
        kinds={"duckdb"},
        owners=OWNERS,
        partitions_def=studies_partitions,
        deps=[AssetKey(["ref", "study"])],
    )
    for table in raw_tables()
]
REF_SPEC = AssetSpec(
    ["ref", "study"],
    group_name="ref",
    description="The study manifest and the instrument definitions as reference tables (ref.*)",
    kinds={"duckdb", "yaml"},
    owners=OWNERS,
    partitions_def=studies_partitions,
)
SOURCE_FILES_SPEC = AssetSpec(
    ["qc", "source_files"],
    group_name="qc",
    description="One row per source file: loaded or failed, rows read and loaded, columns not mapped",
    kinds={"duckdb"},
    owners=OWNERS,
    partitions_def=studies_partitions,
    deps=[AssetKey(["ref", "study"])],
)


@multi_asset(
    name="ingest",
    specs=[REF_SPEC, *RAW_SPECS, SOURCE_FILES_SPEC],
    check_specs=[check_spec("all_sources_loaded")],
    partitions_def=studies_partitions,
)
def ingest_study(context: AssetExecutionContext, trialpipe: TrialpipeResource):
    """Read every source file of the study through its manifest into the raw tables."""
    study = trialpipe.study(context.partition_key)
    run_id = context.run.run_id
    with study.connect(run_id) as con:
        write_reference(con, study.manifest)
        yield MaterializeResult(
            asset_key=REF_SPEC.key,
            metadata={
                "study_dir": MetadataValue.path(str(study.study_dir)),
                "arms": ", ".join(f"{a.id} ({a.role})" for a in study.manifest.arms),
                "visits": ", ".join(v.id for v in study.manifest.visits),
                "primary_visit": study.manifest.primary_visit.id,
            },
        )

        def on_file(r):
            if r.error:
                context.log.error(str(r.error))
            else:
                context.log.info(f"{r.file}: {r.rows_read} rows read; {r.rows_loaded}")
                if r.unmapped_columns:
                    context.log.info(f"{r.file}: columns not mapped (not loaded): {', '.join(r.unmapped_columns)}")

        result = ingest(con, study.study_dir, study.manifest, run_id, on_file=on_file)
        for spec in RAW_SPECS:
            table = ".".join(spec.key.path)
            yield MaterializeResult(asset_key=spec.key, metadata=table_metadata(con, table))
        files_md = warehouse.frame_markdown(
            con.execute(
                "select _source_file, status, rows_read, rows_loaded, rows_skipped, message from qc.source_files"
            ).pl(),
        )
        yield MaterializeResult(
            asset_key=SOURCE_FILES_SPEC.key,
            metadata={**table_metadata(con, "qc.source_files"), "files": MetadataValue.md(files_md)},
        )
        failed = result.failed
        outcome = validation.CheckOutcome(
            "all_sources_loaded", "qc.source_files", not failed,
            "; ".join(str(r.error) for r in failed) or "all files loaded",
            [validation.ExpectationOutcome(f"loaded({r.file})", f"{r.file} was found, read and mapped", r.error is None,
                                           None if r.error is None else 1,
                                           {} if r.error is None else {"examples": [str(r.error)]})
             for r in result.reads],
        )
        validation.record(con, outcome, study.study_id, run_id)
        yield AssetCheckResult(
            asset_key=SOURCE_FILES_SPEC.key,
            check_name="all_sources_loaded",
            passed=not failed,
            description="; ".join(str(r.error) for r in failed) or "all files loaded",
            metadata={
                "files": len(result.reads),
                "failed": len(failed),
                "messages": MetadataValue.json({r.file: str(r.error) for r in failed}),
                "rows_by_table": MetadataValue.json(json.loads(json.dumps(result.rows_by_table()))),
            },
        )
