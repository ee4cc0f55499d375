"""The Great Expectations helper process gives the outcome the run's own process gives, and the run
never depends on it: a dead or failing helper means the suite is validated in the run's process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from pipelines.core import helper, validation, warehouse
from pipelines.core.build import build_study
from pipelines.core.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "data" / "bad_inputs" / "utf8_bom"
SUITES = sorted(p.stem for p in (ROOT / "expectations").glob("*.json"))
# broken on purpose, so failures, counts and examples are compared too (tests/validation/test_suites.py)
TAMPER = [
    "update analysis.adqs set chg = chg + 1 where chg is not null and usubjid = 'S1'",
    "update staging.item_values set value = 5 where item = 1 and row_id in "
    "(select row_id from staging.assessment_rows where usubjid = 'S1')",
    "insert into staging.item_values select * from staging.item_values limit 1",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gxworker")
    build_study(CASE, folder / "clean.duckdb")
    shutil.copy(folder / "clean.duckdb", folder / "broken.duckdb")
    with warehouse.connect(folder / "broken.duckdb") as con:
        for sql in TAMPER:
            con.execute(sql)
    return folder


def _outcomes(db: Path, chunk_rows: int = validation.CHUNK_ROWS) -> list[dict]:
    with warehouse.connect(db) as con:
        params = validation.suite_parameters(con, load_manifest(CASE))
        return [asdict(validation.run_suite(con, s, params, chunk_rows=chunk_rows)) for s in SUITES]


def _calls(w, monkeypatch) -> list[str]:
    seen: list[str] = []
    real = type(w).validate

    def counted(self, name, part, frame, params):
        out = real(self, name, part, frame, params)
        seen.append(f"{name}/{part}" if out is not None else f"{name}/{part}: failed")
        return out

    monkeypatch.setattr(type(w), "validate", counted)
    return seen


def test_the_helper_gives_the_outcome_of_this_process(built, worker, monkeypatch):
    calls = _calls(worker, monkeypatch)
    cases = [("clean.duckdb", validation.CHUNK_ROWS), ("broken.duckdb", validation.CHUNK_ROWS),
             ("broken.duckdb", 20)]  # the last in batches of 20 rows: partial results added up
    by_worker = [_outcomes(built / db, chunk_rows=n) for db, n in cases]
    assert not any("failed" in c for c in calls), calls
    assert calls[:8] == [  # 4 suites whole, 2 in two parts (GX's order of suites: the files')
        "adae/all", "adqs/schema", "adqs/rows", "adsl/all", "adtte/all", "item_responses/schema",
        "item_responses/rows", "subjects/all"], calls
    assert calls.count("item_responses/rows") > 3 and calls.count("adqs/rows") > 3, calls  # the batches
    helper.stop()
    local = [_outcomes(built / db, chunk_rows=n) for db, n in cases]
    for (db, n), mine, theirs in zip(cases, by_worker, local, strict=True):
        assert json.dumps(mine, default=str) == json.dumps(theirs, default=str), (db, n)
    # the comparison covers failures, with their counts and examples
    failed = [e for o in local[1] for e in o["expectations"] if not e["success"]]
    assert len(failed) >= 3 and all(e["unexpected_count"] for e in failed)


def test_a_dead_helper_means_validating_here(built, worker, monkeypatch):
    expected = _outcomes(built / "broken.duckdb")  # the helper alive (it answers every call)
    worker.proc.kill()
    worker.proc.wait()
    calls = _calls(worker, monkeypatch)
    assert json.dumps(_outcomes(built / "broken.duckdb"), default=str) == json.dumps(expected, default=str)
    assert calls[0].endswith(": failed") and helper.current() is None  # tried once, then not again
    assert len(calls) == 1


def test_an_error_in_the_helper_is_raised_here_and_large_frames_stay_here(built, worker, monkeypatch):
    import polars as pl

    # the helper answers with the error; the run's process validates itself and raises it there
    assert worker.validate("no_such_suite", "all", pl.DataFrame({"a": [1]}), {}) is None
    assert helper.current() is worker  # still usable
    with warehouse.connect(built / "clean.duckdb") as con, pytest.raises(FileNotFoundError):
        validation.run_suite(con, "no_such_suite", {})

    sent: list[tuple[str, int]] = []
    real = type(worker).validate
    monkeypatch.setattr(type(worker), "validate", lambda self, name, part, frame, params: (
        sent.append((f"{name}/{part}", frame.height)), real(self, name, part, frame, params))[1])
    monkeypatch.setattr(helper, "MAX_ROWS", 0)
    _outcomes(built / "clean.duckdb")
    # only frames without rows went (the schema parts, and this study's empty safety tables)
    assert {"adqs/schema", "item_responses/schema"} <= {c for c, _ in sent} and all(n == 0 for _, n in sent), sent
    assert not {"subjects/all", "adqs/rows", "item_responses/rows", "adsl/all"} & {c for c, _ in sent}, sent


def _in_fresh_python(built, tmp_path, setting: str, setup: str, report: str) -> dict:
    """Every suite validated on the broken study in a fresh interpreter (``TRIALPIPE_GX_WORKER`` =
    ``setting``): ``setup`` runs first, ``report`` after, printing one JSON line from ``out`` (the
    outcomes); that line."""
    shutil.copy(built / "broken.duckdb", tmp_path / "w.duckdb")
    code = (
        "import sys, json\n"
        "from pipelines.core import gx, helper, validation, warehouse\n"
        "from pipelines.core.manifest import load_manifest\n"
        + setup
        + f"with warehouse.connect({str(tmp_path / 'w.duckdb')!r}) as con:\n"
        f"    p = validation.suite_parameters(con, load_manifest({str(CASE)!r}))\n"
        f"    out = [validation.run_suite(con, s, p) for s in {SUITES!r}]\n"
        + report
    )
    env = {**os.environ, helper.ENV: setting, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_run_process_never_imports_gx(built, tmp_path):
    """In a fresh interpreter with the helper: every suite validated, and great_expectations (and
    the scipy.stats it brings) never imported there."""
    out = _in_fresh_python(
        built, tmp_path, "1",
        "assert helper.start() is not None\n",
        "print(json.dumps({'gx': 'great_expectations' in sys.modules, 'n': sum(len(o.expectations) for o in out),\n"
        "                  'failed': sum(not o.success for o in out)}))\n",
    )
    assert out["gx"] is False and out["n"] == 55 and out["failed"] >= 2, out


def test_the_helper_defers_what_gx_imports_for_nothing(built, tmp_path):
    """The helper's deferral of scipy.stats and altair (0.9 s of its GX import): every suite runs in
    an interpreter set up like the helper without executing either (a GX that starts using them
    still works: they load on first use, and the outcome test above would see a difference)."""
    out = _in_fresh_python(
        built, tmp_path, "0",
        "helper.defer_imports(helper.DEFERRED)\n"
        "gx.import_gx()\n",
        "seen = {'stats_py': 'scipy.stats._stats_py' in sys.modules, 'vegalite': 'altair.vegalite' in sys.modules,\n"
        "        'lazy': type(sys.modules['scipy.stats']).__name__, 'n': sum(len(o.expectations) for o in out)}\n"
        "import scipy.stats\n"  # a use (even this statement reads its __spec__) loads it
        "seen.update(norm=float(scipy.stats.norm.cdf(0.0)), after='scipy.stats._stats_py' in sys.modules)\n"
        "print(json.dumps(seen))\n",
    )
    assert out["n"] == 55 and not out["stats_py"] and not out["vegalite"] and out["lazy"] == "_LazyModule", out
    assert out["norm"] == 0.5 and out["after"], out  # first use loads it


def test_the_helper_is_not_started_when_switched_off_or_on_a_busy_machine(monkeypatch):
    monkeypatch.setenv(helper.ENV, "0")
    assert helper.start() is None
    monkeypatch.delenv(helper.ENV)
    monkeypatch.setattr(helper, "_runnable", lambda: float(os.cpu_count() or 1))  # every core busy
    assert helper.start() is None
    monkeypatch.setattr(helper, "_runnable", lambda: 1.0)  # only this process
    assert (helper.start() is not None) == ((os.cpu_count() or 1) >= 2)
    helper.stop()


def test_the_helper_is_for_small_studies(monkeypatch, tmp_path):
    monkeypatch.delenv(helper.ENV, raising=False)
    monkeypatch.setattr(helper, "_runnable", lambda: 0.0)  # every core free
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "items.csv").write_bytes(b"x" * 600_000)
    assert helper.start(tmp_path) is not None  # 0.6 MB
    helper.stop()
    (tmp_path / "more.csv").write_bytes(b"x" * 600_000)
    assert helper.start(tmp_path) is None  # 1.2 MB: the run's process will import GX for its item rows anyway
    monkeypatch.setenv(helper.ENV, "1")
    assert helper.start(tmp_path) is not None  # unless asked for
    helper.stop()


def test_what_the_helper_prints_does_not_reach_its_answers(built, worker, monkeypatch):
    """A library printing in the helper (to Python's stdout or straight to file descriptor 1) must
    not corrupt the answers: a print is slipped into the helper through the suite parameters'
    unpickling, which runs there."""
    class Loud:
        def __reduce__(self):
            return (exec, ("import os, sys; print('from python'); sys.stdout.flush(); os.write(1, b'from C\\n')",))

    with warehouse.connect(built / "clean.duckdb") as con:
        params = validation.suite_parameters(con, load_manifest(CASE))
        frame = validation._frame(con, "select * from staging.subjects")
    results = worker.validate("subjects", "all", frame, {**params, "noise": Loud()})
    assert results is not None and helper.current() is worker  # answered, and still in step
    assert worker.validate("subjects", "all", frame, params) is not None
