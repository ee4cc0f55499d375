"""Staging layer: every received row decided (accepted, quarantined, skipped) and the accepted
ratings in one long shape; the rejected rows in qc.quarantine."""

from assets.sql_models import sql_assets

staging_assets = sql_assets("staging", extra_models=("qc.quarantine",))
