"""One Dagster asset per SQL model (``sql/<layer>/<name>.sql`` -> asset ``<layer>/<name>``).

Dependencies are read from the tables the SQL selects from; the description is the first line of
the file's header comment. Each materialization records the row count, the column schema, a
preview and the build time.
"""


from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, TableColumn, TableSchema, asset

from pipelines.core import sql, warehouse
from pipelines.orchestration.partitions import studies_partitions
from pipelines.orchestration.resources import TrialpipeResource

# Tables written by Python assets rather than SQL models, and the asset that writes them.
PRODUCED_BY = {
    "ref": AssetKey(["ref", "study"]),
    "qc.source_files": AssetKey(["qc", "source_files"]),
}


def model_description(model: str) -> str:
    text = sql.model_path(model).read_text(encoding="utf-8")
    first = text.splitlines()[0].lstrip("- ").strip()
    return first.split(":", 1)[1].strip() if ":" in first else first


def model_deps(model: str) -> list[AssetKey]:
    deps: set[AssetKey] = set()
    for name in sql.model_inputs(model):
        schema = name.split(".")[0]
        deps.add(PRODUCED_BY.get(name) or PRODUCED_BY.get(schema) or AssetKey(name.split(".")))
    return sorted(deps, key=lambda k: k.to_user_string())


def table_metadata(con, table: str, extra: dict | None = None) -> dict:
    schema, name = table.split(".")
    cols = con.execute(
        "select column_name, data_type, comment from duckdb_columns() where schema_name = ? and table_name = ? order by column_index",
        [schema, name],
    ).fetchall()
    meta = {
        "dagster/row_count": warehouse.count(con, table),
        "dagster/table_name": table,
        "dagster/column_schema": TableSchema(
            columns=[TableColumn(name=c, type=t, description=d) for c, t, d in cols]
        ),
        "preview": MetadataValue.md(warehouse.preview_markdown(con, table)),
    }
    meta.update(extra or {})
    return meta


def summary_metadata(con, model: str, study_id: str) -> dict:
    """A table a person reads rather than a preview, for the safety models (TEAE by SOC/PT, peak
    post-infusion vital-sign changes)."""
    if model == "analysis.adae":
        from pipelines.stats.safety import teae_markdown

        return {"teae_by_soc_pt": MetadataValue.md(teae_markdown(con, study_id))}
    if model == "analysis.advs":
        from pipelines.stats.safety import peaks_markdown

        return {"peak_changes": MetadataValue.md(peaks_markdown(con, study_id))}
    return {}


def sql_asset(model: str, group: str, extra_deps: tuple[AssetKey, ...] = ()):
    layer, name = model.split(".")

    @asset(
        key=AssetKey([layer, name]),
        group_name=group,
        description=model_description(model),
        deps=sorted({*model_deps(model), *extra_deps}, key=lambda k: k.to_user_string()),
        partitions_def=studies_partitions,
        kinds={"duckdb", "sql"},
        code_version=None,
    )
    def _model(context: AssetExecutionContext, trialpipe: TrialpipeResource) -> MaterializeResult:
        study = trialpipe.study(context.partition_key)
        with study.connect(context.run.run_id) as con:
            stats = sql.run_model(con, model)
            extra = {"seconds": stats["seconds"], **summary_metadata(con, model, study.study_id)}
            return MaterializeResult(metadata=table_metadata(con, model, extra))

    _model.__name__ = f"{layer}__{name}"
    return _model


def sql_assets(
    layer: str, group: str | None = None, extra_models: tuple[str, ...] = (), extra_deps: tuple[AssetKey, ...] = ()
) -> list:
    return [sql_asset(m, group or layer, extra_deps) for m in [*sql.models(layer), *extra_models]]
