"""The one adapter: validation rules (GX suites and SQL rules) as blocking Dagster asset checks.

A failing check stops every asset downstream of the one it checks; its metadata lists each
expectation with its rule in words and the number of unexpected rows; every outcome is also
written to ``qc.validation_results``.
"""

import warnings

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, MetadataValue, asset_check

from dagster._utils.warnings import PreviewWarning

from pipelines.core import validation
from pipelines.orchestration.partitions import studies_partitions
from pipelines.orchestration.resources import TrialpipeResource

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


def _evaluate(name: str, con, manifest) -> validation.CheckOutcome:
    if name.startswith("gx_"):
        return validation.run_suite(con, name[3:], validation.suite_parameters(con, manifest))
    return validation.run_sql_check(con, name, manifest)


def make_check(name: str, asset_key: AssetKey, description: str):
    # Partitioned checks (one result per study) are a Dagster "preview" feature in 1.13; they are
    # what makes a check's result belong to its study in the UI, so we use them knowingly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=PreviewWarning)
        return _make_check(name, asset_key, description)


def _make_check(name: str, asset_key: AssetKey, description: str):
    @asset_check(
        asset=asset_key,
        name=name,
        blocking=True,
        description=description,
        partitions_def=studies_partitions,
    )
    def _check(context: AssetCheckExecutionContext, trialpipe: TrialpipeResource) -> AssetCheckResult:
        study = trialpipe.study(context.partition_key)
        run_id = context.run.run_id
        with study.connect(run_id) as con:
            outcome = _evaluate(name, con, study.manifest)
            validation.record(con, outcome, study.study_id, run_id)
        failed = [e for e in outcome.expectations if not e.success]
        return AssetCheckResult(
            passed=outcome.success,
            description=outcome.summary,
            metadata={
                "expectations": MetadataValue.md(outcome.markdown()),
                "evaluated": len(outcome.expectations),
                "failed": len(failed),
                "table": outcome.table,
            },
        )

    return _check


def validation_checks(extra: dict[str, tuple[AssetKey, str]] | None = None) -> list:
    return [make_check(n, k, d) for n, (k, d) in {**CHECKS, **(extra or {})}.items()]
