"""The command line's instance: Dagster's SQLite files, one pooled connection per file.

What the UI reads must be what a run wrote: the pooled storage writes the same files with the
same schema, so a stock ``DagsterInstance`` on the same DAGSTER_HOME sees every event, run and
partition. A storage configured in dagster.yaml is never swapped.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    Definitions,
    DynamicPartitionsDefinition,
    asset,
    define_asset_job,
    in_process_executor,
)

from pipelines.orchestration.runner import get_instance
from pipelines.orchestration.storage import PooledSqliteEventLogStorage, TrialpipeSqliteStorage, pooled

PARTS = DynamicPartitionsDefinition(name="studies")


@asset(partitions_def=PARTS)
def upstream() -> int:
    return 1


@asset(partitions_def=PARTS)
def downstream(upstream: int) -> int:
    return upstream + 1


def _run(instance, key: str):
    defs = Definitions(
        assets=[upstream, downstream],
        jobs=[define_asset_job("job", selection=[upstream, downstream])],
        executor=in_process_executor,
    )
    return defs.resolve_job_def("job").execute_in_process(instance=instance, partition_key=key)


def test_cli_instance_uses_pooled_storage_and_stock_dagster_reads_it():
    instance = get_instance(capture_output=False)
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    instance.add_dynamic_partitions("studies", ["S1"])
    result = _run(instance, "S1")
    assert result.success
    n_events = len(instance.all_logs(result.run_id))

    stock = DagsterInstance.get()  # what `dagster dev` / the UI opens from the same DAGSTER_HOME
    assert not isinstance(stock.event_log_storage, PooledSqliteEventLogStorage)
    assert stock.get_run_by_id(result.run_id).is_success
    assert len(stock.all_logs(result.run_id)) == n_events > 10
    assert stock.has_dynamic_partition("studies", "S1")
    latest = stock.get_latest_materialization_event(downstream.key)
    assert latest is not None and latest.run_id == result.run_id

    # a second run in the same process reuses the engines and still records everything
    second = _run(instance, "S1")
    assert second.success
    assert len(stock.all_logs(second.run_id)) == len(instance.all_logs(second.run_id)) > 10
    instance.dispose()
    stock.dispose()


def test_partition_cache_forgets_a_deleted_partition():
    instance = get_instance(capture_output=False)
    instance.add_dynamic_partitions("studies", ["S2"])
    assert instance.has_dynamic_partition("studies", "S2")
    instance.delete_dynamic_partition("studies", "S2")
    assert not instance.has_dynamic_partition("studies", "S2")
    assert not instance.has_dynamic_partition("studies", "never-added")
    instance.dispose()


def test_configured_storage_is_left_alone(tmp_path):
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import ConfigurableClassData

    home = os.environ["DAGSTER_HOME"]
    ref = InstanceRef.from_dir(home)
    assert pooled(ref).storage_data.class_name == TrialpipeSqliteStorage.__name__
    custom = ref._replace(storage_data=ConfigurableClassData("dagster_postgres", "DagsterPostgresStorage", "{}"))
    assert pooled(custom) is custom



def _get_instance_in(home, n: int) -> list:
    """``n`` processes that import trialpipe, say so, and create the command line's instance on
    ``home`` when their stdin closes: returned once every one of them is ready."""
    root = Path(__file__).resolve().parents[2]
    code = ("import sys; from pipelines.orchestration.runner import get_instance; print('ready', flush=True); "
            "sys.stdin.read(); get_instance(capture_output=False).dispose()")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(root)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    for p in procs:
        assert p.stdout.readline() == "ready\n", p.stderr.read()[-2000:]
    return procs


def test_runs_started_together_on_a_new_home_create_its_storage_in_turn(tmp_path):
    """Dagster's schedule storage creates its tables with no guard against a second process doing
    the same ('table job_ticks already exists'); two `trialpipe run`s started at once on a fresh
    DAGSTER_HOME failed that way about one time in three here."""
    home = tmp_path / "home"
    home.mkdir()
    # while another process holds the instance lock, nobody creates the storage
    lock = (home / ".trialpipe-instance.lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    (waiting,) = _get_instance_in(home, 1)
    waiting.stdin.close()
    with pytest.raises(subprocess.TimeoutExpired):
        waiting.wait(timeout=3)
    assert not (home / "schedules").exists()
    lock.close()
    assert waiting.wait(timeout=60) == 0, waiting.stderr.read()[-2000:]

    # three at once on another new home, let go together once all are ready: all succeed
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    procs = _get_instance_in(fresh, 3)
    for p in procs:
        p.stdin.close()
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()[-2000:]
