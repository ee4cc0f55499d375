"""The local instance's SQLite storage, with one connection per database file for the process.

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine, opens a connection and throws
both away for every read and write of the event log (``NullPool``), and asks SQLite whether a
table exists the same way. A Feder-size ``trialpipe run`` did that about 1,150 times for its 270
events plus the partition and data-version lookups of every asset input, and 409 more times for
``has_table``: about a second of a 20-second run, all of it Dagster's bookkeeping.

``PooledSqliteEventLogStorage`` keeps one engine per database file (the index shard and each run's
shard) for the life of the storage and hands out its pooled connection. Everything else is
Dagster's: the same files, the same schema, the same lock around every connection (Dagster's own
``_db_lock``, so one connection is in use at a time), the same transaction per use. The webserver,
the daemon and other processes open the same files with Dagster's stock classes, as before; SQLite
(WAL mode) coordinates the processes as it always did. ``dispose`` closes the engines.

Only the command line's own runs use it (``runner.get_instance``), and only when DAGSTER_HOME's
dagster.yaml keeps the default SQLite storage; a Postgres or other configured storage is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

DEFAULT_STORAGE = ("dagster._core.storage.sqlite_storage", "DagsterSqliteStorage")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data=None):
        self._engines: dict[str, Engine] = {}
        self._tables: set[str] = set()  # tables seen to exist; migrations only ever add them
        self._partitions: set[tuple[str, str]] = set()  # dynamic partitions seen to exist
        super().__init__(base_dir, inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=1,
                # Dagster's lock serializes the connection's use across the storage's threads
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            self._engines[shard] = engine
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def has_table(self, table_name: str) -> bool:
        if table_name in self._tables:
            return True
        # not under _db_lock: Dagster asks this while it holds a connection (the pool's overflow
        # connection answers then)
        engine = self._engine(INDEX_SHARD_NAME)
        with engine.connect() as conn:
            found = bool(engine.dialect.has_table(conn, table_name))
        if found:
            self._tables.add(table_name)
        return found

    # A run asks whether its study's partition exists once per asset input and output (331 queries
    # in a Feder-size run). A partition that exists stays until it is deleted, and a run only starts
    # after its partition was added; a delete through this storage forgets what was seen.
    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        key = (partitions_def_name, partition_key)
        if key in self._partitions:
            return True
        found = super().has_dynamic_partition(partitions_def_name, partition_key)
        if found:
            self._partitions.add(key)
        return found

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self._partitions.discard((partitions_def_name, partition_key))
        super().delete_dynamic_partition(partitions_def_name, partition_key)

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


class TrialpipeSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage with the pooled event log above (same files, same config)."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage.dispose()
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)


def pooled(ref):
    """``ref`` with the pooled storage, when it uses Dagster's default SQLite storage; else ``ref``."""
    from dagster._serdes import ConfigurableClassData

    data = ref.storage_data
    if data is None or (data.module_name, data.class_name) != DEFAULT_STORAGE:
        return ref
    return ref._replace(storage_data=ConfigurableClassData(__name__, "TrialpipeSqliteStorage", data.config_yaml))
