"""One Dagster asset per SQL model (``sql/<layer>/<name>.sql`` -> asset ``<layer>/<name>``), one step per layer.

Dependencies are read from the tables the SQL selects from; the description is the first line of
the file's header comment. Each materialization records the row count, the column schema, a
preview and the build time.
"""


import dagster as dg

from pipelines.core import rules, sql, validation, warehouse
from pipelines.orchestration.partitions import study_asset_spec, study_assets
from pipelines.orchestration.resources import TrialpipeResource

# Tables written by Python assets rather than SQL models, and the asset that writes them.
PRODUCED_BY = {
    "ref": dg.AssetKey(["ref", "study"]),
    "qc.source_files": dg.AssetKey(["qc", "source_files"]),
}


def model_description(model: str) -> str:
    text = sql.model_path(model).read_text(encoding="utf-8")
    first = text.splitlines()[0].lstrip("- ").strip()
    return first.split(":", 1)[1].strip() if ":" in first else first


def model_deps(model: str) -> list[dg.AssetKey]:
    deps: set[dg.AssetKey] = set()
    for name in sql.model_inputs(model):
        schema = name.split(".")[0]
        deps.add(PRODUCED_BY.get(name) or PRODUCED_BY.get(schema) or dg.AssetKey(name.split(".")))
    return sorted(deps, key=lambda k: k.to_user_string())


def table_metadata(con, table: str, extra: dict | None = None, *, rows: int | None | bool = True) -> dict:
    """Row count (``rows``: counted here when True, or as given), columns and a preview of a built
    table. ``rows=None``: an intermediate view, neither counted nor previewed (both run its joins:
    at 50,000 subjects staging.accepted_ratings' preview alone took 4.5 s)."""
    docs = (warehouse.documentation(table) or ("", {}))[1]  # what document() wrote as COMMENTs
    cols = [(c, t, docs.get(c)) for _, c, t in warehouse.column_types(con, table)]
    meta = {
        **({} if rows is None else {"dagster/row_count": warehouse.count(con, table) if rows is True else rows}),
        "dagster/table_name": table,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=c, type=t, description=d) for c, t, d in cols]
        ),
        **({} if rows is None else {"preview": dg.MetadataValue.md(warehouse.preview_markdown(con, table))}),
    }
    meta.update(extra or {})
    return meta


def summary_metadata(con, model: str, study_id: str) -> dict:
    """A table a person reads rather than a preview, for the safety models (TEAE by SOC/PT, peak
    post-infusion vital-sign changes)."""
    if model == "analysis.adae":
        from pipelines.stats.safety import teae_markdown

        return {"teae_by_soc_pt": dg.MetadataValue.md(teae_markdown(con, study_id))}
    if model == "analysis.advs":
        from pipelines.stats.safety import peaks_markdown

        return {"peak_changes": dg.MetadataValue.md(peaks_markdown(con, study_id))}
    return {}


def documented_schema(table: str) -> dict:
    """Definition metadata: the table's columns with their descriptions from sql/<layer>/_schema.yml,
    so the UI shows what each column means before (and after) the first run."""
    doc = warehouse.table_docs().get(table)
    if not doc or not doc.get("columns"):
        return {}
    return {"dagster/column_schema": dg.TableSchema(columns=[
        dg.TableColumn(name=c, type="", description=" ".join(str(d).split())) for c, d in doc["columns"].items()])}


def layer_asset(
    name: str, group: str, models: list[str], extra_deps: tuple[dg.AssetKey, ...] = (), checks: dict | None = None
):
    """One Dagster step for all SQL models of a layer: each model stays its own asset (lineage, metadata,
    preview in the UI), and the checks on those assets run in the same step, right after their table.

    One step instead of one per model and per check: a Dagster step costs a fixed overhead (events
    to the instance, step start/finish) that for a Feder-size study was larger than the SQL itself.
    A blocking check that fails stops the tables downstream of its asset in this step and fails the
    step (so every later asset is skipped and nothing is published); tables not downstream of it are
    still built and their checks still run, so one run reports every failure it can.
    """
    checks = checks or {}
    keys = {m: dg.AssetKey(m.split(".")) for m in models}
    inputs = {m: sql.model_inputs(m) for m in models}
    specs = [
        study_asset_spec(
            keys[m],
            group="qc" if m.startswith("qc.") else group,  # qc.* tables are one group
            description=model_description(m),
            deps=sorted({*model_deps(m), *extra_deps}, key=lambda k: k.to_user_string()),
            kinds={"duckdb", "sql"},
            metadata=documented_schema(m),
            skippable=True,
        )
        for m in models
    ]
    check_specs = [
        dg.AssetCheckSpec(check, asset=key, blocking=True, description=desc)
        for check, (key, desc) in checks.items()
        if key in keys.values()
    ]
    order = [m for m in sql.ordered_models() if m in keys]
    order += [m for m in models if m not in order]

    @study_assets(name=name, specs=specs, check_specs=check_specs, can_subset=True)
    def _layer(context: dg.AssetExecutionContext, trialpipe: TrialpipeResource):
        study, run_id = trialpipe.for_run(context)
        selected = context.selected_asset_keys
        selected_checks = {k.name for k in context.selected_asset_check_keys}
        blocked: set[str] = set()  # models not built because something upstream failed a check
        with study.connect(run_id) as con:
            for model in order:
                key = keys[model]
                if key not in selected:
                    continue
                if inputs[model] & blocked:
                    blocked.add(model)
                    context.log.warning(f"{model} not built: an upstream blocking check failed")
                    continue
                stats = sql.run_model(con, model)
                extra = {"seconds": stats["seconds"], **summary_metadata(con, model, study.study_id)}
                yield dg.MaterializeResult(asset_key=key, metadata=table_metadata(con, model, extra, rows=stats["rows"]))
                for check, (check_key, _desc) in checks.items():
                    if check_key != key or check not in selected_checks:
                        continue
                    result = run_check(check, key, con, study, run_id)
                    if not result.passed:
                        blocked.add(model)
                    yield result

    return _layer


def run_check(name: str, key: dg.AssetKey, con, study, run_id: str) -> dg.AssetCheckResult:
    """Evaluate one registered rule on the study's working database and record its outcome."""
    outcome = rules.evaluate(name, con, study.manifest)
    validation.record(con, outcome, study.study_id, run_id)
    failed = [e for e in outcome.expectations if not e.success]
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=outcome.success,
        description=outcome.summary,
        metadata={
            "expectations": dg.MetadataValue.md(outcome.markdown()),
            "evaluated": len(outcome.expectations),
            "failed": len(failed),
            "table": outcome.table,
        },
    )
