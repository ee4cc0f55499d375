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

from pipelines.core import warehouse


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


class _Swap:
    """Copy the published file, let the caller change the copy, then swap it in atomically."""

    def __init__(self, warehouse_path: Path):
        self.path = Path(warehouse_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        self._lock = self.lock_path.open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp*"):
            stale.unlink(missing_ok=True)  # left by a killed publish; we hold the lock, so nobody owns it
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        if self.path.exists():
            shutil.copyfile(self.path, self.tmp)
        self.con = duckdb.connect(str(self.tmp))
        self.con.execute("set enable_progress_bar = false")
        return self.con

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.con.execute("checkpoint")
            self.con.close()
            if exc_type is None:
                _fsync_file(self.tmp)
                os.replace(self.tmp, self.path)
                _fsync_dir(self.path.parent)
            else:
                self.tmp.unlink(missing_ok=True)
        finally:
            self._lock.close()


def publish(working_db: Path, warehouse_path: Path, study_id: str, run_row: dict | None = None) -> dict:
    """Replace ``study_id``'s rows in the published warehouse with the working database's."""
    started = time.perf_counter()
    with _Swap(warehouse_path) as con:
        con.execute(f"attach '{working_db}' as work (read_only)")
        main = con.execute("select current_database()").fetchone()[0]
        work_tables = _tables(con, "work")
        # Remove the study everywhere first (tables a newer code version no longer builds too);
        # meta.runs keeps every run's row.
        for schema, table in _tables(con, main):
            if schema == "meta":
                continue
            if any(c == "study_id" for c, _ in _columns(con, main, schema, table)):
                con.execute(f'delete from "{schema}"."{table}" where study_id = ?', [study_id])
        n_rows = 0
        for schema, table in work_tables:
            con.execute(f'create schema if not exists "{schema}"')
            existing = dict(_columns(con, main, schema, table))
            if not existing:
                con.execute(f'create table "{schema}"."{table}" as select * from work."{schema}"."{table}" limit 0')
            else:
                for col, dtype in _columns(con, "work", schema, table):
                    if col not in existing:
                        con.execute(f'alter table "{schema}"."{table}" add column "{col}" {dtype}')
                    elif existing[col] != dtype:
                        # the same column typed differently by two studies (or code versions):
                        # widen the published column so both fit; VARCHAR holds anything
                        widened = dtype if existing[col] in ("INTEGER", "NULL") else "VARCHAR"
                        con.execute(f'alter table "{schema}"."{table}" alter column "{col}" type {widened}')
            con.execute(f'insert into "{schema}"."{table}" by name select * from work."{schema}"."{table}"')
            n_rows += int(con.execute(f'select count(*) from work."{schema}"."{table}"').fetchone()[0])
            warehouse.document(con, f"{schema}.{table}")
        if run_row is not None:
            _record_run(con, run_row)
        con.execute("detach work")
    return {"tables": len(work_tables), "rows": n_rows, "seconds": round(time.perf_counter() - started, 3)}


def record_run(warehouse_path: Path, run_row: dict) -> None:
    """Add one meta.runs row (a failed run) to the published warehouse; nothing else changes."""
    with _Swap(warehouse_path) as con:
        _record_run(con, run_row)


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
