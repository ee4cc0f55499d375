"""Publish a study into the warehouse analysts open: atomically, never in place.

The published file is never opened for writing. A run copies it to a temporary file beside it,
replaces the study's rows there with the rows of the study's working database, checkpoints,
fsyncs and renames the copy over the published file (``os.replace`` is atomic on POSIX). Readers
that hold the old file open keep reading the old snapshot; new readers see the new one; a run
killed at any moment leaves the published file as it was, and its temporary file is removed by
the next publish. Publishes are serialised by an exclusive lock on ``<warehouse>.lock``.

Analysts must open the published file read-only. A session that opens it read-write (the default
of the DuckDB CLI and of R's ``dbConnect``) takes DuckDB's exclusive lock and writes its changes to
``<warehouse>.wal`` first; a publish then refuses, naming that process. If such a session died and
left its WAL behind, the publish first applies the WAL to the old file (so the analyst's scratch
tables are kept) and only then copies and swaps; a WAL is never left to be replayed onto a new file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.core import warehouse
from pipelines.core.errors import WarehouseBusyError
from pipelines.core.faults import explain
from pipelines.core.locking import wait_for_lock


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


def _published(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str]]:
    """What a working database publishes: its tables, less those a model keeps to itself
    (``-- published: no``), plus the views a model publishes as tables (``-- published: table``)."""
    from pipelines.core.sql import publication

    how = publication()
    views = {
        (s, v)
        for s, v in con.execute(
            "select schema_name, view_name from duckdb_views() where database_name = ? and not internal", [catalog]
        ).fetchall()
    }
    tables = [t for t in _tables(con, catalog) if how.get(f"{t[0]}.{t[1]}") != "no"]
    return sorted(tables + [v for v in views if how.get(f"{v[0]}.{v[1]}") == "table"])


def _catalog_columns(con: duckdb.DuckDBPyConnection, *catalogs: str) -> dict[tuple[str, str, str], dict[str, str]]:
    """(catalog, schema, table) -> {column: type} in column order, for every table of ``catalogs``, in one
    query (a filtered duckdb_columns() query per table cost 4-5 ms, three per published table)."""
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    for db, schema, table, col, dtype in con.execute(
        "select database_name, schema_name, table_name, column_name, data_type from duckdb_columns() "
        f"where database_name in ({', '.join('?' for _ in catalogs)}) "
        "order by database_name, schema_name, table_name, column_index",
        list(catalogs),
    ).fetchall():
        out.setdefault((db, schema, table), {})[col] = dtype
    return out


def sql_literal(text: str | Path) -> str:
    """A quoted SQL string literal (for the statements that cannot take a parameter, e.g. ATTACH)."""
    return "'" + str(text).replace("'", "''") + "'"


def _holders(path: Path) -> list[str]:
    """Processes that have ``path`` open, in words (``pid 123 (duckdb /data/w.duckdb)``), from /proc."""
    try:
        target = os.stat(path)
    except OSError:
        return []
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(fd)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                out.append(_describe(int(proc.name)))
                break
    return out


def _describe(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"process {pid}" + (f" ({cmd[:120]})" if cmd else "")



def _writer_pid(message: str) -> int | None:
    m = re.search(r"\(PID (\d+)\)", message)
    return int(m.group(1)) if m else None


def _guard_against_writers(path: Path) -> duckdb.DuckDBPyConnection | None:
    """Open the published file read-only for the whole publish.

    DuckDB gives a read-write connection an exclusive lock, so this fails while a writer (a DuckDB
    CLI, R's dbConnect, a Python session opened without read_only) has the file: we refuse and
    name that process rather than swap a file under it, whose write-ahead log (``<file>.wal``) would
    later be replayed onto the new file. Holding the read-only connection keeps any writer from
    opening the old file until the new one is in place."""
    if not path.exists():
        return None
    try:
        con = warehouse.open_database(path, read_only=True)
    except duckdb.IOException as exc:
        msg = str(exc)
        if "lock" not in msg.lower():
            raise explain(exc, path, "open the published warehouse") from None
        pid = _writer_pid(msg)
        who = _describe(pid) if pid else ", ".join(_holders(path)) or "another process"
        raise WarehouseBusyError(
            f"the published warehouse {path} is open for writing by {who}; close that session (analysts "
            "should open the warehouse read-only) and run again - nothing was published"
        ) from None
    return con


def _checkpoint_stale_wal(path: Path) -> None:
    """A ``<file>.wal`` with no live writer is left by a session that died: fold it into the OLD
    file first (DuckDB replays it on open and checkpoints on close), so it can never be replayed onto
    the file we are about to swap in, and nothing the analyst wrote is lost."""
    wal = path.with_name(path.name + ".wal")
    if not wal.exists():
        return
    deadline = time.monotonic() + 30
    while True:
        try:
            con = warehouse.open_database(path)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise explain(exc, path, "apply the leftover write-ahead log of the published warehouse") from None
            if time.monotonic() > deadline:  # readers keep it open; the WAL stays, we do not swap
                raise WarehouseBusyError(
                    f"the published warehouse {path} has a leftover write-ahead log ({wal.name}) from a session that "
                    f"ended without closing, and {', '.join(_holders(path)) or 'another process'} keeps the file open, "
                    "so it cannot be applied; close the sessions reading it and run again - nothing was published"
                ) from None
            time.sleep(0.5)
    try:
        con.execute("checkpoint")
    finally:
        con.close()
    if wal.exists():
        raise WarehouseBusyError(f"the write-ahead log {wal} could not be applied to {path}; nothing was published")


def _clean(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink(missing_ok=True)


@contextlib.contextmanager
def _swap(warehouse_path: Path, *, on_wait=None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Copy the published file, let the caller change the copy, then swap it in atomically.

    On any failure (an error, a full disk, Ctrl-C) the temporary copy and its WAL are removed and
    the published file stays as it was."""
    path = Path(warehouse_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.with_name(path.name + ".lock").open("a")
    except OSError as exc:
        raise explain(exc, path.parent, "create the warehouse folder or its lock file") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp_wal = tmp.with_name(tmp.name + ".wal")
    guard = con = None
    try:
        wait_for_lock(lock, on_wait=on_wait and (lambda waited: on_wait(f"another publish to {path}", waited)), poll=0.2)
        for stale in path.parent.glob(f".{path.name}.*.tmp*"):
            stale.unlink(missing_ok=True)  # left by a killed publish; we hold the lock, so nobody owns it
        _checkpoint_stale_wal(path)
        guard = _guard_against_writers(path)
        try:
            if path.exists():
                shutil.copyfile(path, tmp)
            con = warehouse.open_database(tmp)
            con.execute("set enable_progress_bar = false")
            yield con
            con.execute("checkpoint")
            con.close()
            con = None
            _fsync_file(tmp)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except (OSError, duckdb.Error) as exc:
            err = explain(exc, path, "write the published warehouse")
            if err is exc:
                raise
            raise err from exc
    finally:
        if con is not None:
            with contextlib.suppress(Exception):
                con.close()
        if guard is not None:
            guard.close()
        _clean(tmp, tmp_wal)
        lock.close()


def publish(working_db: Path, warehouse_path: Path, study_id: str, run_row: dict | None = None, *, on_wait=None) -> dict:
    """Replace ``study_id``'s rows in the published warehouse with the working database's."""
    started = time.perf_counter()
    with _swap(warehouse_path, on_wait=on_wait) as con:
        con.execute(f"attach {sql_literal(working_db)} as work (read_only)")
        main = con.execute("select current_database()").fetchone()[0]
        work_tables = _published(con, "work")
        # one transaction for the whole study (the file is a private copy until the swap): a
        # commit per statement made the ~65 tables' COMMENTs alone take seconds
        with warehouse.transaction(con):
            catalog = _catalog_columns(con, main, "work")
            # 1. Every table the study brings exists with every column it brings. Schema changes come
            # before any row changes: DuckDB cannot commit a transaction that alters a table after
            # deleting from it ("another transaction has altered this table"), which is what
            # re-publishing a study after a code version added a column did.
            for schema, table in work_tables:
                con.execute(f'create schema if not exists "{schema}"')
                existing = catalog.get((main, schema, table), {})
                incoming = catalog[("work", schema, table)]
                if not existing:
                    con.execute(f'create table "{schema}"."{table}" as select * from work."{schema}"."{table}" limit 0')
                    continue
                for col, dtype in incoming.items():
                    if col not in existing:
                        con.execute(f'alter table "{schema}"."{table}" add column "{col}" {dtype}')
                    elif existing[col] != dtype:
                        # the same column typed differently by two studies (or code versions):
                        # widen the published column so both fit; VARCHAR holds anything
                        widened = dtype if existing[col] in ("INTEGER", "NULL") else "VARCHAR"
                        con.execute(f'alter table "{schema}"."{table}" alter column "{col}" type {widened}')
            # 2. Remove the study everywhere (tables a newer code version no longer builds too);
            # meta.runs keeps every run's row.
            for schema, table in _tables(con, main):
                if schema == "meta":
                    continue
                if "study_id" in catalog.get((main, schema, table), {}):
                    con.execute(f'delete from "{schema}"."{table}" where study_id = ?', [study_id])
            # 3. Its rows and the documentation of every table it brings.
            n_rows = 0
            current = warehouse.comments(con)  # the comments the published tables carry already
            for schema, table in work_tables:
                existing = catalog.get((main, schema, table), {})
                incoming = catalog[("work", schema, table)]
                # the insert returns its row count: counting the source again ran a published view
                # (staging.item_responses) a second time, 2.7 M joined ratings at 10,000 subjects
                n_rows += int(con.execute(
                    f'insert into "{schema}"."{table}" by name select * from work."{schema}"."{table}"').fetchone()[0])
                warehouse.document(con, f"{schema}.{table}", columns=set(existing) | set(incoming), current=current)
            if run_row is not None:
                _record_run(con, run_row)
        con.execute("detach work")
    return {"tables": len(work_tables), "rows": n_rows, "seconds": round(time.perf_counter() - started, 3)}


def record_run(warehouse_path: Path, run_row: dict) -> None:
    """Add one meta.runs row (a failed or canceled run) to the published warehouse; nothing else changes."""
    with _swap(warehouse_path) as con:
        _record_run(con, run_row)


RUNS_COLUMNS = {
    "study_id": "varchar", "run_id": "varchar", "started_at": "timestamptz", "finished_at": "timestamptz",
    "code_version": "varchar", "input_sha256s": "varchar", "status": "varchar",
    "study_yaml_sha256": "varchar", "analysis_options": "varchar", "package_versions": "varchar",
}


def _record_run(con: duckdb.DuckDBPyConnection, row: dict) -> None:
    warehouse.ensure_schemas(con)
    con.execute(f"create table if not exists meta.runs ({', '.join(f'{c} {t}' for c, t in RUNS_COLUMNS.items())})")
    for col, dtype in RUNS_COLUMNS.items():  # a warehouse written by an older version gains the new columns
        con.execute(f"alter table meta.runs add column if not exists {col} {dtype}")
    con.execute("delete from meta.runs where run_id = ?", [row["run_id"]])
    values = {
        **{c: row.get(c) for c in RUNS_COLUMNS},
        "finished_at": row.get("finished_at") or datetime.now(UTC),
        "status": row.get("status", "success"),
        "input_sha256s": json.dumps(row.get("input_sha256s") or {}, sort_keys=True),
        "analysis_options": json.dumps(row.get("analysis_options"), sort_keys=True) if row.get("analysis_options") is not None else None,
        "package_versions": json.dumps(row.get("package_versions"), sort_keys=True) if row.get("package_versions") is not None else None,
    }
    con.execute(f"insert into meta.runs by name select {', '.join(f'?::{t} as {c}' for c, t in RUNS_COLUMNS.items())}",
                [values[c] for c in RUNS_COLUMNS])
    warehouse.document(con, "meta.runs")
