"""Publish a study into the warehouse analysts open: atomically, never in place.

The published file is never opened for writing. A run copies it to a temporary file beside it,
replaces the study's rows there with the rows of the study's working database, checkpoints,
fsyncs and renames the copy over the published file (``os.replace`` is atomic on POSIX). Readers
that hold the old file open keep reading the old snapshot; new readers see the new one; a run
killed at any moment leaves the published file as it was, and its temporary file is removed by
the next publish. Publishes are serialised by an exclusive lock on ``<warehouse>.lock``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines import warehouse


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str]]:
    return [
        (s, t)
        for s, t in con.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = ? order by 1, 2", [catalog]
        ).fetchall()
    ]


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from duckdb_columns() where database_name = ? and schema_name = ? "
        "and table_name = ? order by column_index",
        [catalog, schema, table],
    ).fetchall()


def publish(working_db: Path, warehouse_path: Path, study_id: str, run_row: dict | None = None) -> dict:
    """Replace ``study_id``'s rows in the published warehouse with the working database's."""
    warehouse_path = Path(warehouse_path)
    warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    lock_path = warehouse_path.with_name(warehouse_path.name + ".lock")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in warehouse_path.parent.glob(f".{warehouse_path.name}.*.tmp*"):
            stale.unlink(missing_ok=True)  # left by a killed publish; we hold the lock, so nobody owns it
        tmp = warehouse_path.with_name(f".{warehouse_path.name}.{os.getpid()}.tmp")
        if warehouse_path.exists():
            shutil.copyfile(warehouse_path, tmp)
        con = duckdb.connect(str(tmp))
        try:
            con.execute(f"attach '{working_db}' as work (read_only)")
            main = con.execute("select current_database()").fetchone()[0]
            work_tables = _tables(con, "work")
            # Remove the study everywhere first (tables a newer code version no longer builds too).
            for schema, table in _tables(con, main):
                if any(c == "study_id" for c, _ in _columns(con, main, schema, table)):
                    con.execute(f'delete from "{schema}"."{table}" where study_id = ?', [study_id])
            n_rows = 0
            for schema, table in work_tables:
                con.execute(f'create schema if not exists "{schema}"')
                existing = {c for c, _ in _columns(con, main, schema, table)}
                if not existing:
                    con.execute(f'create table "{schema}"."{table}" as select * from work."{schema}"."{table}" limit 0')
                else:
                    for col, dtype in _columns(con, "work", schema, table):
                        if col not in existing:
                            con.execute(f'alter table "{schema}"."{table}" add column "{col}" {dtype}')
                con.execute(f'insert into "{schema}"."{table}" by name select * from work."{schema}"."{table}"')
                n_rows += int(con.execute(f'select count(*) from work."{schema}"."{table}"').fetchone()[0])
                warehouse.document(con, f"{schema}.{table}")
            if run_row is not None:
                _record_run(con, run_row)
            con.execute("detach work")
            con.execute("checkpoint")
        finally:
            con.close()
        _fsync_file(tmp)
        os.replace(tmp, warehouse_path)
        _fsync_dir(warehouse_path.parent)
    return {"tables": len(work_tables), "rows": n_rows, "seconds": round(time.perf_counter() - started, 3)}


def _record_run(con: duckdb.DuckDBPyConnection, row: dict) -> None:
    warehouse.ensure_schemas(con)
    con.execute(
        "create table if not exists meta.runs (study_id varchar, run_id varchar, started_at timestamptz, "
        "finished_at timestamptz, code_version varchar, input_sha256s varchar, status varchar)"
    )
    con.execute("delete from meta.runs where run_id = ?", [row["run_id"]])
    con.execute(
        "insert into meta.runs values (?, ?, ?, ?, ?, ?, ?)",
        [
            row["study_id"],
            row["run_id"],
            row.get("started_at"),
            row.get("finished_at") or datetime.now(UTC),
            row.get("code_version"),
            json.dumps(row.get("input_sha256s") or {}, sort_keys=True),
            row.get("status", "success"),
        ],
    )
    warehouse.document(con, "meta.runs")
