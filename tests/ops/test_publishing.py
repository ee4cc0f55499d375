"""Safe publishing: analysts reading the published warehouse during runs, and runs killed with
SIGKILL at random moments, never see a lock error, a half-written file or lost results."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import query
from tests.ops.helpers import CORPUS, await_event, published

# 4 kills per suite run, half of them inside the publish step (the only step that writes the
# published file); each is a `trialpipe run` of its own, and the suite's longest test at 6 (100 s
# on two busy cores). The ops audit runs 20 or more with TRIALPIPE_KILL_REPEATS=20.
KILL_REPEATS = int(os.environ.get("TRIALPIPE_KILL_REPEATS", "4"))
# the steps of study_job a kill may land in (after the step's start, at a random delay)
STUDY_STEPS = ("ingest", "staging", "analysis", "efficacy", "estimands", "report__study_report")
PUBLISH_STEP = "publish__warehouse"


def _cli(*args: str, log: Path | None = None) -> subprocess.Popen:
    """``trialpipe ARGS`` in its own process group; its output goes to ``log`` (for the failure
    message) or nowhere."""
    out = log.open("w") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", *args],
        stdout=out,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so SIGKILL reaches every child
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def _snapshot(wh: Path, study_id: str) -> list:
    return query(wh, "select usubjid, instrument, visit, item, value from staging.item_responses "
                     "where study_id = ? order by all", [study_id])


@pytest.mark.slow
def test_readers_never_fail_while_runs_publish(tmp_path):
    wh, _ = published(tmp_path)
    reads, failures, stop = [0], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                con = duckdb.connect(str(wh), read_only=True)
                try:
                    con.execute("select count(*) from staging.item_responses").fetchone()
                finally:
                    con.close()
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                failures.append(repr(exc))
            time.sleep(0.05)

    t = threading.Thread(target=reader)
    t.start()
    try:
        cases = ("semicolon_delimiter", "latin1_declared")  # two studies at once
        runs = [_cli("run", str(CORPUS / case), "--warehouse", str(wh), log=tmp_path / f"{case}.log") for case in cases]
        codes = [p.wait(timeout=300) for p in runs]
    finally:
        stop.set()
        t.join()
    # a str message: pytest shortens a dict's repr to a few hundred characters
    assert codes == [0, 0], "\n\n".join(f"--- {case}:\n" + (tmp_path / f"{case}.log").read_text()[-6000:]
                                         for case in cases)
    assert failures == [], failures[:3]
    assert reads[0] > 20
    assert {r[0] for r in query(wh, "select distinct study_id from staging.item_responses")} == {
        "UTF8-BOM", "SEMICOLON-DELIMITER", "LATIN1-OK"
    }


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_published_warehouse_intact(tmp_path):
    """SIGKILL a run at random moments: half of them inside the publish step (the one step that
    writes the published file), the others at a random delay into another step."""
    from pipelines.orchestration.runner import get_instance

    instance = get_instance()
    wh, _ = published(tmp_path)
    before = _snapshot(wh, "UTF8-BOM")
    target = str(CORPUS / "semicolon_delimiter")
    rng = random.Random(20210105)
    tally = {"killed": 0, "finished_before_kill": 0}
    for i in range(KILL_REPEATS):
        step = PUBLISH_STEP if i % 2 == 0 else rng.choice(STUDY_STEPS)
        delay = rng.uniform(0.0, 0.6 if step == PUBLISH_STEP else 1.5)
        proc = _cli("run", target, "--warehouse", str(wh))
        if await_event(instance, proc, step, "STEP_START", timeout=300):
            time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            tally["killed"] += 1
        else:
            tally["finished_before_kill"] += 1
        # the published file opens read-only and still holds the earlier study's results
        assert _snapshot(wh, "UTF8-BOM") == before
        other = query(wh, "select count(*) from staging.subjects where study_id = 'SEMICOLON-DELIMITER'")[0][0]
        assert other in (0, 4)  # never a partial study: all of it or none of it
    print(f"kill tally over {KILL_REPEATS} runs: {tally}")
    assert tally["killed"] >= KILL_REPEATS // 2
    # the next run recovers by itself (stale temporary files, the killed run's working files)
    assert _cli("run", target, "--warehouse", str(wh)).wait() == 0
    assert query(wh, "select count(*) from staging.subjects where study_id = 'SEMICOLON-DELIMITER'") == [(4,)]
    assert not list(wh.parent.glob(".*.tmp"))


def test_republishing_a_study_after_its_tables_gained_or_widened_a_column(tmp_path):
    """A newer code version adds a column to a table (staging.assessment_rows got row_id) or types one
    differently, and the study is published again: its old rows are replaced, the other study's rows
    stay (NULL in the new column), nothing else changes. Deleting the study's rows and then altering
    the table in one transaction made DuckDB refuse the commit, and the run failed."""
    from pipelines.core.publish import publish

    wh = tmp_path / "w.duckdb"

    def work(name: str, sql: str):
        db = tmp_path / f"{name}.duckdb"
        con = duckdb.connect(str(db))
        con.execute("create schema staging")
        con.execute(sql)
        con.close()
        return db

    publish(work("a1", "create table staging.rows as select 'A' as study_id, 1 as x, null::integer as note"), wh, "A")
    publish(work("b1", "create table staging.rows as select 'B' as study_id, 5 as x, null::integer as note"), wh, "B")
    a2 = work("a2", "create table staging.rows as select 'A' as study_id, 2 as x, 'checked' as note, 7 as row_id")
    result = publish(a2, wh, "A")
    assert result["rows"] == 1
    assert query(wh, "select study_id, x, note, row_id from staging.rows order by 1") == [
        ("A", 2, "checked", 7), ("B", 5, None, None)
    ]


def test_publish_widens_a_column_two_studies_type_differently(tmp_path):
    """Study A's table has an all-NULL column (typed INTEGER by DuckDB), study B's has text in it."""
    from pipelines.core.publish import publish

    wh = tmp_path / "w.duckdb"
    for sid, value in (("A", "NULL"), ("B", "'a title'")):
        work = tmp_path / f"{sid}.duckdb"
        con = duckdb.connect(str(work))
        con.execute("create schema ref")
        con.execute(f"create table ref.study as select '{sid}' as study_id, {value} as title")
        con.close()
        publish(work, wh, sid)
    assert query(wh, "select study_id, title from ref.study order by 1") == [("A", None), ("B", "a title")]
