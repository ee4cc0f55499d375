"""The validation rules (GX suites and SQL rules) that are blocking Dagster asset checks.

Each becomes an ``AssetCheckSpec`` of the layer step that builds the table it guards
(``assets.sql_models.layer_asset``) and runs right after that table: a failing check stops every
asset downstream of the one it checks; its metadata lists each expectation with its rule in words
and the number of unexpected rows; every outcome is also written to ``qc.validation_results``.
"""

from dagster import AssetCheckSpec, AssetKey


from pipelines.core.rules import RULES

# check name -> (asset it guards, description): the registry's rules that run on their own (the ones
# the ingest and efficacy steps evaluate themselves are declared there from the same registry).
CHECKS: dict[str, tuple[AssetKey, str]] = {
    r.name: (AssetKey(r.asset_path), r.description) for r in RULES.values() if r.evaluated_in is None
}


def check_spec(name: str):
    """The Dagster check spec of a registered rule (for the steps that evaluate their own rules)."""
    r = RULES[name]
    return AssetCheckSpec(r.name, asset=AssetKey(r.asset_path), blocking=r.blocking, description=r.description)
