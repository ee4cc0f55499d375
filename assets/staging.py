"""Staging layer: every received row decided (accepted, quarantined, skipped) and the accepted
ratings in one long shape; the rejected rows in qc.quarantine. Every staging model waits for the
blocking check that all source files loaded (qc/source_files). One step builds the layer and runs
its blocking checks (GX suites and SQL rules) right after the table each one guards."""

import dagster as dg

from assets.sql_models import layer_asset
from pipelines.core import sql
from pipelines.orchestration.checks import CHECKS

staging_assets = [
    layer_asset(
        "staging",
        "staging",
        [*sql.models("staging"), "qc.quarantine"],
        extra_deps=(dg.AssetKey(["qc", "source_files"]),),
        checks=CHECKS,
    )
]
