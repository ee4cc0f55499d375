"""The one SQL runner.

Every file ``sql/<layer>/<name>.sql`` is one ``select`` (import CTEs, transform CTEs,
``select * from final``) with a header comment saying what the table is, its grain and its inputs.
The runner wraps it in ``create or replace table <layer>.<name> as ...`` (the table's documentation
from ``sql/_schema.yml`` becomes ``COMMENT ON`` when the study is published). Files hold no DDL.
Values that are not data (the run id) are read in SQL with ``getvariable('run_id')``.

Files are rendered with Jinja first, with two variables: ``instruments``, the ids of the instrument
definitions (``pipelines/instruments/*.yaml``), and ``item_columns``, each instrument's raw item
columns. It is what keeps the SQL generic over instruments:
a new definition gets its raw table unpivoted and scored without a new code path. When a model is
built, ``instruments`` lists only those whose raw table has rows (a study has 3 of the 10 scales,
typically): the statement is the same for them and DuckDB plans a third of it. Steps several
models share are Jinja macros under ``sql/_macros/`` (no layer: nothing there is a table), imported by
name after the model's header, e.g. ``{% from "_macros/rows.sql" import subject_problems %}``.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import duckdb

from pipelines.core import warehouse
from pipelines.core.paths import SQL_DIR


def model_path(model: str) -> Path:
    layer, name = model.split(".")
    return SQL_DIR / layer / f"{name}.sql"


def models(layer: str) -> list[str]:
    return sorted(f"{layer}.{p.stem}" for p in (SQL_DIR / layer).glob("*.sql"))


def _environment():
    """A Jinja environment whose globals are the macros of ``sql/_macros/*.sql``, made again when a
    macro file changes (models are read at every render; a long-lived process must see both alike)."""
    files = sorted((SQL_DIR / "_macros").glob("*.sql"))
    return _environment_for(tuple((p.name, p.stat().st_mtime_ns) for p in files))


@functools.cache
def _environment_for(macro_files: tuple) -> object:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(SQL_DIR), undefined=jinja2.StrictUndefined)
    for name, _ in macro_files:
        module = env.get_template(f"_macros/{name}").module
        env.globals.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    return env


@functools.lru_cache(maxsize=256)
def _template(env, path: str, mtime_ns: int):
    """The compiled model, and whether it loops over ``instruments`` (compiling it was most of a
    render: 0.1 s of a 10,000-subject staging build, which renders every model twice); made again
    when the file or a macro changes."""
    text = Path(path).read_text(encoding="utf-8")
    return env.from_string(text), "in instruments" in text


def _compiled(model: str):
    path = model_path(model)
    return _template(_environment(), str(path), path.stat().st_mtime_ns)


def render(model: str, instruments: list[str] | None = None) -> str:
    """The model's SQL; ``instruments``: the instrument ids its loops run over (default: all, in
    definition order)."""
    from pipelines.ingest.schema import raw_tables
    from pipelines.instruments import load_instruments

    template, _ = _compiled(model)
    defined = load_instruments()
    return template.render(
        instruments=[i for i in defined if instruments is None or i in instruments],
        item_columns={k: [f"item_{n}" for n in i.item_numbers] for k, i in defined.items()},
        raw_columns=raw_tables(),
    )


def instruments_with_rows(con: duckdb.DuckDBPyConnection) -> list[str] | None:
    """Instrument ids whose ``raw.<id>`` table has a row; None (meaning all) when none has, or when
    a raw table is missing (a database built before the raw layer)."""
    from pipelines.instruments import load_instruments

    ids = list(load_instruments())
    tables = {r[0] for r in con.execute(
        "select table_name from duckdb_tables() where database_name = current_database() and schema_name = 'raw'"
    ).fetchall()}
    if not set(ids) <= tables:
        return None
    found = [r[0] for r in con.execute(
        " union all ".join(f"select '{i}' where exists (select 1 from raw.{i})" for i in ids)
    ).fetchall()]
    return found or None


def materialization(model: str) -> str:
    """``table`` unless the header says ``-- materialized: view`` (intermediates too big to be
    worth writing; views live in the study's working database and are not published)."""
    return _header(model, "materialized", "table|view") or "table"


def _header(model: str, key: str, values: str = "[a-z]+") -> str | None:
    """The value of the model's first ``-- <key>: <value>`` header line whose value matches ``values``."""
    for line in model_path(model).read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        m = re.match(rf"--\s*{key}:\s*({values})\b", line)
        if m:
            return m.group(1)
    return None


def publication() -> dict[str, str]:
    """Models whose header says how they are published when that differs from their materialization:
    ``-- published: table`` (a view of the working database published as a table, e.g.
    staging.item_responses) or ``-- published: no`` (a table kept in the working database only, e.g.
    the narrow staging.item_values behind that view)."""
    out = {}
    for layer in ("staging", "qc", "analysis", "results"):
        for model in models(layer):
            how = _header(model, "published")
            if how in ("table", "no"):
                out[model] = how
    return out


def run_model(con: duckdb.DuckDBPyConnection, model: str) -> dict[str, float | int]:
    """Build ``model`` (``layer.name``) from its SQL file; returns row count and seconds."""
    started = time.perf_counter()
    _, loops_over_instruments = _compiled(model)
    sql = render(model, instruments_with_rows(con) if loops_over_instruments else None)
    warehouse.ensure_schemas(con)
    kind = materialization(model)
    schema, name = model.split(".")
    is_view = con.execute(
        "select count(*) from duckdb_views() where schema_name = ? and view_name = ?", [schema, name]
    ).fetchone()[0]
    if is_view and kind == "table":
        con.execute(f"drop view {model}")
    elif not is_view and kind == "view" and warehouse.table_exists(con, model):
        con.execute(f"drop table {model}")
    con.execute(f"create or replace {kind} {model} as\n{sql}")
    # an intermediate view is not counted: counting it computes it (staging.assessment_items unpivots
    # every raw row: ~5 s of a 10,000-subject run for two counts); a published view is counted
    rows = warehouse.count(con, model) if kind == "table" or _header(model, "published") == "table" else None
    return {"rows": rows, "seconds": round(time.perf_counter() - started, 3), "materialized": kind}


_TABLE_REF = re.compile(r"\b(raw|ref|staging|analysis|qc|results)\.([a-z][a-z0-9_]*)\b")


def model_inputs(model: str) -> set[str]:
    """Tables a model selects from (``schema.table``), read from its SQL without comments."""
    code = re.sub(r"--[^\n]*", "", render(model))
    return {f"{s}.{t}" for s, t in _TABLE_REF.findall(code)} - {model}


def ordered_models(layers: tuple[str, ...] = ("staging", "qc", "analysis")) -> list[str]:
    """Every SQL model of the layers, each after the models it reads (topological order).

    A model that reads another SQL model outside the chosen layers (qc.total_mismatches reads
    analysis.scores) is left out when that layer is not chosen."""
    all_models = {m for layer in {"staging", "qc", "analysis", "results"} for m in models(layer)}
    pending = {m: model_inputs(m) & all_models for layer in layers for m in models(layer)}
    while True:
        missing = [m for m, deps in pending.items() if deps - set(pending)]
        if not missing:
            break
        for m in missing:
            del pending[m]
    order: list[str] = []
    while pending:
        ready = sorted(m for m, deps in pending.items() if not (deps & set(pending)))
        if not ready:
            raise RuntimeError(f"SQL models depend on each other in a cycle: {sorted(pending)}")
        order += ready
        for m in ready:
            del pending[m]
    return order
