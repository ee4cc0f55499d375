"""Jobs. Every job runs its steps in one process, one after the other: a study's steps share one
working DuckDB file, and DuckDB allows one writer per file. Studies run in parallel as separate
runs (each with its own working file); only the final publish is serialised."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor


STUDY_JOB = "study_job"
VALIDATE_JOB = "validate_job"
CSR_JOB = "csr_job"

# The CSR package (numbered RTF/HTML outputs, XPT + Define-XML) is a deliverable made on request,
# not part of every nightly or CLI run: rendering it costs more than the whole analysis of a
# Feder-size study. `trialpipe demo` and `trialpipe tlf` make it; the UI can launch csr_job.
CSR_ASSETS = AssetSelection.assets(["report", "tlf_package"], ["report", "submission_datasets"])

study_job = define_asset_job(
    STUDY_JOB,
    selection=AssetSelection.all() - CSR_ASSETS,
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

csr_job = define_asset_job(
    CSR_JOB,
    selection=CSR_ASSETS,
    executor_def=in_process_executor,
    description="The CSR package of one study already run: numbered tables and figures (RTF, HTML), ADaM XPT and Define-XML.",
)
