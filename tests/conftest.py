"""Shared test helpers: a throw-away Dagster home, study folders written from literal text, and the
helper process (pipelines/core/helper.py) started for a test."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import pytest


def pytest_configure(config):
    """Test processes run studies in-process: the same collector thresholds as a `trialpipe` process."""
    from pipelines.core.process import collect_less

    collect_less()


def pytest_collection_modifyitems(config, items):
    """Modules holding a test marked slow first, each module kept whole (its module-scoped
    fixtures are built once) and the order stable otherwise: the xdist workers then finish
    together instead of one starting a minutes-long end-to-end test while the other idles."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` (what `python3 dev.py test` asks for), in the order above, with each case
    of a parametrized test a unit of its own.

    A module goes to one worker, so its module- and session-scoped fixtures (a built study, the UI
    tests' webserver) are built once. But the bad-input corpus is one module of 85 cases (3-7 s
    each on two busy cores): whole, it kept one worker busy for minutes after the other had
    finished. Its cases, and other parametrized cases, are spread instead. xdist would also reorder
    the modules by their number of tests; the slow modules go first instead (above)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndCases(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.endswith("]") else super()._split_scope(nodeid)

    config.option.loadscopereorder = False
    return ModulesAndCases(config, log)


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory, monkeypatch):
    """Every test gets its own DAGSTER_HOME and default warehouse, never the developer's."""
    home = tmp_path_factory.mktemp("dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TRIALPIPE_WAREHOUSE", str(home / "warehouse" / "trialpipe.duckdb"))
    monkeypatch.setenv("TRIALPIPE_STUDIES_ROOT", str(home / "studies"))


@pytest.fixture
def worker(monkeypatch):
    """The helper process, started for this test (its GX import takes a few seconds of CPU)."""
    from pipelines.core import helper

    monkeypatch.setenv(helper.ENV, "1")
    w = helper.start()
    assert w is not None
    yield w
    helper.stop()


def write_study(root: Path, manifest: str, files: dict[str, str | bytes]) -> Path:
    """A study folder with ``study.yaml`` (dedented) and the given files (text or bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "study.yaml").write_text(textwrap.dedent(manifest), encoding="utf-8")
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


ARMS_VISITS = """\
arms:
  - {id: KET, label: Ketamine, role: experimental, codes: ["1"]}
  - {id: MID, label: Midazolam, role: control, codes: ["0"]}
visits:
  - {id: BL, day: 0, baseline: true, codes: [baseline_arm_1, baseline, "1"]}
  - {id: W1, day: 7, codes: [week_1_arm_1, week 1, "2"]}
  - {id: W2, day: 14, primary: true, codes: [week_2_arm_1, week 2, "3"]}
"""
