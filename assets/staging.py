"""Staging layer: every received row decided (accepted, quarantined, skipped) and the accepted
ratings in one long shape; the rejected rows in qc.quarantine. Every staging model waits for the
blocking check that all source files loaded (qc/source_files)."""

from dagster import AssetKey

from assets.sql_models import sql_assets

staging_assets = sql_assets(
    "staging", extra_models=("qc.quarantine",), extra_deps=(AssetKey(["qc", "source_files"]),)
)
