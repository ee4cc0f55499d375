"""DuckDB access: connections, frames in and out, table documentation.

One study is built in its own *working* database file (``<warehouse dir>/.work/<study_id>.duckdb``)
by one run at a time; the published warehouse analysts open is only ever replaced whole (see
``pipelines.core.publish``). So no two writers ever share a DuckDB file.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from pipelines.core import yamlio
from pipelines.core.masking import SQL_MACROS
from pipelines.core.paths import SQL_DIR

SCHEMAS = ("raw", "ref", "staging", "analysis", "results", "qc", "meta")


# DuckDB's memory cap for a working database, from the size of the study's input files: DuckDB
# takes 80% of RAM by default and keeps pages cached up to its cap, and the pipeline shares the
# machine (GX, statsmodels), so it is capped and spills to disk beyond. A study needs about 10 MB
# of cap per MB of CSV in its biggest statements (staging.item_values, analysis.scores), within
# [MEMORY_FLOOR_MB, MEMORY_CEILING_MB]. Measured (benchmarks/end_to_end.py): 1 GB at 50,000
# subjects (58 MB of CSV) spills 0.86 GB building staging.item_responses; 2 GB raised a
# 10,000-subject run's peak RSS from 1.7 to 2.3 GB and analysis.scores still ran out at 50,000;
# a 10,000-subject run took the same time under 0.6 GB as under 1 GB, 0.37 GB less RSS.
# TRIALPIPE_DUCKDB_MEMORY (e.g. '4GB') overrides it.
MEMORY_FLOOR_MB, MEMORY_CEILING_MB, MEMORY_PER_INPUT_MB = 512, 1024, 10


def memory_limit(input_bytes: int | None = None) -> str:
    """The DuckDB ``memory_limit`` for a study whose input files hold ``input_bytes`` (the ceiling
    when unknown)."""
    override = os.environ.get("TRIALPIPE_DUCKDB_MEMORY")
    if override:
        return override
    if input_bytes is None:
        return f"{MEMORY_CEILING_MB}MB"
    mb = MEMORY_FLOOR_MB + MEMORY_PER_INPUT_MB * input_bytes / 1e6
    return f"{round(min(MEMORY_CEILING_MB, mb))}MB"


@contextlib.contextmanager
def connect(
    path: str | Path, *, read_only: bool = False, memory: str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the DuckDB file ``path``; a writer's memory is capped at ``memory`` (see
    :func:`memory_limit`)."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = open_database(path, read_only=read_only)
    try:  # closed however the setup or the body ends (an interrupt may land anywhere)
        con.execute("set enable_progress_bar = false")
        con.execute("set preserve_insertion_order = false")  # tables are sets; lets DuckDB write in parallel
        if not read_only:
            con.execute(f"set memory_limit = '{memory or memory_limit()}'")
        con.execute(SQL_MACROS)  # tp_show / tp_label ...: what a message may repeat from a file
        yield con
    finally:
        con.close()


# How long duckdb.connect may wait on a closing instance of the same file before the collector runs.
REOPEN_COLLECT_AFTER = 1.0


def open_database(path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` that cannot wait forever on garbage.

    DuckDB keeps one instance per file in a process. While anything still holds the last closed
    instance (a result stream, or an object an interrupted step left in a reference cycle with its
    traceback), ``duckdb.connect`` on that file busy-waits for it to go, with the GIL released, and
    nothing in the process runs the collector that would free it: a run cancelled at the wrong
    moment spun there for good. So while connect waits longer than REOPEN_COLLECT_AFTER, a timer
    thread runs the collector (again every few seconds); a normal connect takes milliseconds and
    only starts and cancels the timer."""
    done = threading.Event()

    def collect_while_waiting() -> None:
        wait = REOPEN_COLLECT_AFTER
        while not done.wait(wait):
            gc.collect()
            wait = 5.0

    watcher = threading.Thread(target=collect_while_waiting, name="trialpipe-duckdb-open", daemon=True)
    watcher.start()
    try:
        return duckdb.connect(str(path), read_only=read_only)
    finally:
        done.set()


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    # only the missing ones: every statement is a commit of its own, and this runs per model
    present = {r[0] for r in con.execute(
        "select schema_name from duckdb_schemas() where database_name = current_database()"
    ).fetchall()}
    for s in SCHEMAS:
        if s not in present:
            con.execute(f"create schema if not exists {s}")


_IN_TRANSACTION: set[int] = set()  # connections inside transaction() (DuckDB does not say)


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One commit for the statements inside (DuckDB commits each statement on its own otherwise);
    nested inside another ``transaction(con)`` the statements simply join the outer one."""
    key = id(con)
    if key in _IN_TRANSACTION:
        yield
        return
    con.execute("begin")
    _IN_TRANSACTION.add(key)
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("rollback")
        raise
    else:
        con.execute("commit")
    finally:
        _IN_TRANSACTION.discard(key)


@contextlib.contextmanager
def settings(con: duckdb.DuckDBPyConnection, **values: object) -> Iterator[None]:
    """Run the statements inside with DuckDB settings changed (``threads=1``), then restore them."""
    before = {name: con.execute(f"select current_setting('{name}')").fetchone()[0] for name in values}
    try:
        for name, value in values.items():
            con.execute(f"set {name} = {_quote(str(value))}")
        yield
    finally:
        for name, value in before.items():
            con.execute(f"set {name} = {_quote(str(value))}")


def set_context(con: duckdb.DuckDBPyConnection, **variables: object) -> None:
    """Values SQL models read with getvariable('name'), e.g. study_id and run_id."""
    for name, value in variables.items():
        con.execute(f"set variable {name} = ?", [value])


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    """The Arrow table :func:`write_frame` hands DuckDB (callers may make it ahead, in another thread).

    A column with no values at all has no type in polars (Null); it is written as VARCHAR, so a
    later study whose column has values (a manifest title, say) fits the same table."""
    nulls = [c for c, t in frame.schema.items() if t == pl.Null]
    if nulls:
        frame = frame.with_columns([pl.col(c).cast(pl.String) for c in nulls])
    return frame.to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string: DuckDB ingests it ~2x faster than string_view


def write_frame(
    con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame | pa.Table, *, mode: str = "replace",
    documented: bool = False,
) -> None:
    """Write a polars frame (or the Arrow table :func:`to_arrow` made of one) to ``schema.table``
    (replace or append by column name); ``documented``: apply the table's comments too (a table
    written straight into the published warehouse - see :func:`document`)."""
    arrow = frame if isinstance(frame, pa.Table) else to_arrow(frame)
    con.register("_tp_frame", arrow)
    try:
        if mode == "replace":
            con.execute(f"create or replace table {table} as select * from _tp_frame")
        else:
            con.execute(f"insert into {table} by name select * from _tp_frame")
    finally:
        con.unregister("_tp_frame")
    if documented:
        document(con, table)


def column_names(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns of table or view ``schema.name`` in order ([] when there is none).

    ``pragma table_info`` looks up the one table: the catalog functions (duckdb_columns())
    build a row for every column of every table first, 12-25 ms a query in a 65-table working
    database against about 1 ms, and the report and the models ask this a hundred times a run."""
    return [r[1] for r in column_types(con, table)]


def column_types(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[int, str, str]]:
    """(position, name, type) of each column of ``schema.name`` ([] when there is no such table or view)."""
    try:
        return [(r[0], r[1], r[2]) for r in con.execute(f"pragma table_info({_quote(table)})").fetchall()]
    except duckdb.CatalogException:
        return []


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """A table or a view named ``schema.name``."""
    return bool(column_types(con, table))


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"select count(*) from {table}").fetchone()[0])


def preview_markdown(con: duckdb.DuckDBPyConnection, table: str, limit: int = 5) -> str:
    df = con.execute(f"select * from {table} limit {limit}").pl()
    return frame_markdown(df)


def frame_markdown(df: pl.DataFrame, max_cols: int = 12) -> str:
    if df.width > max_cols:
        df = df.select(df.columns[:max_cols])
    if df.height == 0:
        return "_(no rows)_"
    head = "| " + " | ".join(df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = []
    for r in df.iter_rows():
        cells = []
        for v in r:
            if isinstance(v, float):
                cells.append(f"{v:.4g}")
            else:
                cells.append("" if v is None else str(v).replace("|", "\\|")[:40])
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows])


# -- documentation: COMMENT ON for every table and column ------------------------------------


@functools.cache
def table_docs() -> dict[str, dict]:
    """``sql/<layer>/_schema.yml`` files: table -> {description, columns: {name: description}}.

    Every warehouse table and column is documented there (raw.* are generated from the instrument
    definitions); the docs are applied as COMMENT ON so analysts see them in any SQL client."""
    docs: dict[str, dict] = {}
    for path in sorted(SQL_DIR.glob("*/_schema.yml")):
        with path.open(encoding="utf-8") as fh:
            docs.update(yamlio.safe_load(fh)["tables"])
    return docs


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def documentation(table: str) -> tuple[str, dict[str, str]] | None:
    """The table's description and column descriptions (sql/<layer>/_schema.yml, or generated for
    raw tables); None for a table nobody documented."""
    schema, name = table.split(".")
    if schema == "raw":
        from pipelines.ingest.schema import raw_comments

        return raw_comments(name)
    doc = table_docs().get(table)
    if doc is None:
        return None
    return doc["description"], doc.get("columns", {})


def comments(con: duckdb.DuckDBPyConnection, table: str | None = None) -> dict[tuple, str | None]:
    """The comments the database carries now: (schema, table, column or None for the table itself)
    -> comment; only ``schema.table``'s when given. One catalog query (duckdb_columns() takes ~4 ms
    however narrow the filter, so a caller documenting many tables asks once)."""
    where = "database_name = current_database()"
    params: dict = {}
    if table is not None:
        params = dict(zip(("s", "t"), table.split("."), strict=True))
        where += " and schema_name = $s and {name} = $t"
    rows = con.execute(
        f"select schema_name, table_name, null, comment from duckdb_tables() where {where.format(name='table_name')} "
        f"union all select schema_name, view_name, null, comment from duckdb_views() where {where.format(name='view_name')} "
        f"union all select schema_name, table_name, column_name, comment from duckdb_columns() "
        f"where {where.format(name='table_name')}",
        params,
    ).fetchall()
    return {(s, t, c): comment for s, t, c, comment in rows}


def document(con: duckdb.DuckDBPyConnection, table: str, *, columns: set[str] | None = None,
             is_view: bool | None = None, current: dict[tuple, str | None] | None = None) -> None:
    """Apply the table's documented comments (sql/_schema.yml, or generated for raw tables) where the
    table does not carry them already.

    Only the published warehouse is documented (``pipelines.core.publish`` does it for every table a
    study brings; ``trialpipe sensitivity`` for the tables it writes there): a study's working
    database is the pipeline's own, and each ``COMMENT ON`` costs DuckDB about 0.2 ms - 1,700 of them,
    a quarter of building a small study, were written there and never read. A published table
    keeps its comments from one publish to the next, so only what changed is written.
    ``columns`` (the table's columns), ``is_view`` and ``current`` (:func:`comments` of the database,
    read before), when the caller knows them, save lookups."""
    docs = documentation(table)
    if docs is None:
        return
    desc, cols = docs
    schema, name = table.split(".")
    if is_view is None:
        is_view = columns is None and bool(con.execute(
            "select count(*) from duckdb_views() where database_name = current_database() and schema_name = ? "
            "and view_name = ?", [schema, name]
        ).fetchone()[0])
    current = current if current is not None else comments(con, table)
    have = {c: comment for (s, t, c), comment in current.items() if (s, t) == (schema, name)}
    present = columns if columns is not None else {c for c in have if c is not None}
    wanted = {None: desc.strip()} | {col: str(text).strip() for col, text in cols.items() if col in present}
    statements = [
        f"comment on {'view' if is_view else 'table'} {table} is {_quote(text)}" if col is None
        else f"comment on column {table}.{col} is {_quote(text)}"
        for col, text in wanted.items() if (have.get(col) or "") != text
    ]
    if statements:
        with transaction(con):  # one round trip and one commit for the whole table's documentation
            con.execute(";\n".join(statements))


def undocumented(con: duckdb.DuckDBPyConnection, schema: str) -> list[tuple[str, str | None]]:
    """(table, column) of the tables and views in ``schema`` that their documentation does not
    describe (what publishing could not comment), in order - column None: the table itself has no
    description; [] when everything is documented."""
    out = []
    for table, column in con.execute(
        "select table_name, column_name from duckdb_columns() where database_name = current_database() "
        "and schema_name = ? order by table_name, column_index", [schema]
    ).fetchall():
        docs = documentation(f"{schema}.{table}")
        if docs is None or not docs[0].strip():
            out.append((table, None))
        elif column not in docs[1]:
            out.append((table, column))
    return list(dict.fromkeys(out))
