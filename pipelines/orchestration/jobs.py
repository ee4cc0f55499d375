"""Jobs. Every job runs its steps in one process, one after the other: a study's steps share one
working DuckDB file, and DuckDB allows one writer per file. Studies run in parallel as separate
runs (each with its own working file); only the final publish is serialised."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor


STUDY_JOB = "study_job"
VALIDATE_JOB = "validate_job"

study_job = define_asset_job(
    STUDY_JOB,
    selection=AssetSelection.all(),
    executor_def=in_process_executor,
    description="Everything for one study: ingest, validate, score, analyse, report, publish.",
)

validate_job = define_asset_job(
    VALIDATE_JOB,
    # the reference tables, raw and staging layers and their qc tables (not the analysis-level qc table)
    selection=AssetSelection.groups("ref", "raw", "staging", "qc") - AssetSelection.assets(["qc", "total_mismatches"]),
    executor_def=in_process_executor,
    description="Ingestion and validation only (trialpipe validate): raw and staging with their checks.",
)
