"""The validation rules (GX suites and SQL rules) that are blocking Dagster asset checks.

Each becomes an ``AssetCheckSpec`` of the layer step that builds the table it guards
(``assets.sql_models.layer_asset``) and runs right after that table: a failing check stops every
asset downstream of the one it checks; its metadata lists each expectation with its rule in words
and the number of unexpected rows; every outcome is also written to ``qc.validation_results``.
"""

from dagster import AssetKey


# check name -> (asset it guards, description). gx_<suite> checks run expectations/<suite>.json.
CHECKS: dict[str, tuple[AssetKey, str]] = {
    "gx_item_responses": (AssetKey(["staging", "item_responses"]), "GX suite expectations/item_responses.json: ratings are known, in range, whole, unique"),
    "gx_subjects": (AssetKey(["staging", "subjects"]), "GX suite expectations/subjects.json: one row per subject, in a manifest arm, every arm present"),
    "subject_one_arm": (AssetKey(["staging", "subjects"]), "Each subject is in exactly one arm across all sources"),
    "arms_present": (AssetKey(["staging", "subjects"]), "Every arm of the manifest (experimental and control) has randomized subjects"),
    "baseline_coverage": (AssetKey(["staging", "item_responses"]), "Most randomized subjects have a baseline rating (analysis.min_baseline_fraction)"),
    "rows_reconcile": (AssetKey(["qc", "quarantine"]), "Every file's rows are accounted for: read = accepted + quarantined + skipped"),
    "gx_adsl": (AssetKey(["analysis", "adsl"]), "GX suite expectations/adsl.json: one row per randomized subject, manifest arms, Y/N flags"),
    "gx_adae": (AssetKey(["analysis", "adae"]), "GX suite expectations/adae.json: MedDRA terms present, TRTEMFL follows the first dose, a preferred term counted once per subject"),
    "gx_adtte": (AssetKey(["analysis", "adtte"]), "GX suite expectations/adtte.json: one record per responder, AVAL >= 0, CNSR 0/1 with event descriptions"),
    "gx_adqs": (AssetKey(["analysis", "adqs"]), "GX suite expectations/adqs.json: one baseline per subject x parameter, CHG = AVAL - BASE, PCHG rule, score ranges"),
}
