"""Reopening a DuckDB file while garbage still holds its last instance.

DuckDB keeps one instance per file in a process; ``duckdb.connect`` on a file whose last
connection was closed while something still holds that instance (here a result stream left in a
reference cycle, as an interrupted step leaves objects in cycles with its traceback) busy-waits
for it to go, with the GIL released. Nothing runs the collector, so it waits for good: a run
cancelled at the start of its efficacy step spun in ``duckdb.connect`` until it was killed.
``warehouse.open_database`` (behind ``warehouse.connect``) runs the collector while it waits.
Each case runs in its own interpreter with a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

LEAK = textwrap.dedent(
    """
    import duckdb, sys
    from pipelines.core import warehouse
    path = sys.argv[1]
    con = duckdb.connect(path)
    con.execute("create table t as select * from range(10) r(i)")
    reader = con.execute("select * from t").to_arrow_reader()
    holder = [reader]
    holder.append(holder)  # a cycle: only the collector frees the reader
    del reader, holder
    con.close()
    """
)


def _run(code: str, path, timeout: float) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_duckdb_alone_waits_on_a_leaked_instance(tmp_path):
    """The hazard itself (if DuckDB stops waiting, this fails and open_database's timer can go)."""
    done = _run(LEAK + "duckdb.connect(path)\nprint('reopened')\n", tmp_path / "a.duckdb", timeout=3)
    assert done is None, f"duckdb.connect returned: {done and done.stdout + done.stderr}"


def test_warehouse_connect_reopens_after_the_collector_frees_the_instance(tmp_path):
    code = LEAK + textwrap.dedent(
        """
        with warehouse.connect(path) as con:
            print("rows", con.execute("select count(*) from t").fetchone()[0])
        con = warehouse.open_database(path, read_only=True)
        print("read-only", con.execute("select sum(i) from t").fetchone()[0])
        """
    )
    done = _run(code, tmp_path / "b.duckdb", timeout=60)
    assert done is not None, "warehouse.connect still waited on the leaked instance after 60 s"
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["rows", "10", "read-only", "45"]
