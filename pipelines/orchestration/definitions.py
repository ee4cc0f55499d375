"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs`` from here."""

from __future__ import annotations

from dagster import AssetKey, Definitions, in_process_executor

from assets.analysis import analysis_assets
from assets.durability import durability
from assets.estimands import estimands
from assets.publish import publish_asset
from assets.raw import ingest_study
from assets.report import study_report
from assets.results import efficacy
from assets.staging import staging_assets
from assets.tlf import tlf_assets
from pipelines.orchestration.jobs import csr_job, study_job, validate_job
from pipelines.orchestration.resources import TrialpipeResource
from pipelines.orchestration.schedules import nightly
from pipelines.orchestration.sensors import dead_runs, record_failed_runs, studies_sensor


def _keys(assets_defs) -> list[AssetKey]:
    return [k for a in assets_defs for k in a.keys]


_upstream = [ingest_study, *staging_assets, *analysis_assets, efficacy, estimands, durability, study_report]

# The CSR package reads what the study graph has; it is its own job (csr_job), not part of a study run.
defs = Definitions(
    assets=[*_upstream, publish_asset(_keys(_upstream)), tlf_assets(_keys(_upstream))],
    jobs=[study_job, validate_job, csr_job],
    schedules=[nightly],
    sensors=[studies_sensor, record_failed_runs, dead_runs],
    resources={"trialpipe": TrialpipeResource()},
    executor=in_process_executor,
)
