"""Raw layer: the manifest as reference tables, and every source file as received."""


import json

import dagster as dg

from assets.sql_models import table_metadata
from pipelines.core import validation, warehouse
from pipelines.ingest.load import ingest, write_reference
from pipelines.ingest.schema import raw_tables
from pipelines.orchestration.checks import check_spec
from pipelines.orchestration.partitions import study_asset_spec, study_assets
from pipelines.orchestration.resources import TrialpipeResource

REF_SPEC = study_asset_spec(
    ["ref", "study"],
    group="ref",
    description="The study manifest and the instrument definitions as reference tables (ref.*)",
    kinds={"duckdb", "yaml"},
)
RAW_SPECS = [
    study_asset_spec(
        ["raw", table],
        group="raw",
        description=(
            "Randomization / subject-level rows as received" if table == "randomization" else f"{table} rows as received"
        )
        + " (mapped columns only, values as text, with file lineage)",
        kinds={"duckdb"},
        deps=[REF_SPEC.key],
    )
    for table in raw_tables()
]
SOURCE_FILES_SPEC = study_asset_spec(
    ["qc", "source_files"],
    group="qc",
    description="One row per source file: loaded or failed, rows read and loaded, columns not mapped",
    kinds={"duckdb"},
    deps=[REF_SPEC.key],
)


@study_assets(name="ingest", specs=[REF_SPEC, *RAW_SPECS, SOURCE_FILES_SPEC], check_specs=[check_spec("all_sources_loaded")])
def ingest_study(context: dg.AssetExecutionContext, trialpipe: TrialpipeResource):
    """Read every source file of the study through its manifest into the raw tables."""
    study, run_id = trialpipe.for_run(context)
    with study.connect(run_id) as con:
        write_reference(con, study.manifest)
        yield dg.MaterializeResult(
            asset_key=REF_SPEC.key,
            metadata={
                "study_dir": dg.MetadataValue.path(str(study.study_dir)),
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
            yield dg.MaterializeResult(asset_key=spec.key, metadata=table_metadata(con, table))
        files_md = warehouse.frame_markdown(
            con.execute(
                "select _source_file, status, rows_read, rows_loaded, rows_skipped, message from qc.source_files"
            ).pl(),
        )
        yield dg.MaterializeResult(
            asset_key=SOURCE_FILES_SPEC.key,
            metadata={**table_metadata(con, "qc.source_files"), "files": dg.MetadataValue.md(files_md)},
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
        yield dg.AssetCheckResult(
            asset_key=SOURCE_FILES_SPEC.key,
            check_name="all_sources_loaded",
            passed=not failed,
            description="; ".join(str(r.error) for r in failed) or "all files loaded",
            metadata={
                "files": len(result.reads),
                "failed": len(failed),
                "messages": dg.MetadataValue.json({r.file: str(r.error) for r in failed}),
                "rows_by_table": dg.MetadataValue.json(json.loads(json.dumps(result.rows_by_table()))),
            },
        )
