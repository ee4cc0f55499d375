"""Shared test helpers: a throw-away Dagster home, and study folders written from literal text."""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import pytest


def pytest_collection_modifyitems(config, items):
    """Modules holding a test marked slow first, each module kept whole (its module-scoped
    fixtures are built once) and the order stable otherwise: the xdist workers then finish
    together instead of one starting a minutes-long end-to-end test while the other idles."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory, monkeypatch):
    """Every test gets its own DAGSTER_HOME and default warehouse, never the developer's."""
    home = tmp_path_factory.mktemp("dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("TRIALPIPE_WAREHOUSE", str(home / "warehouse" / "trialpipe.duckdb"))
    monkeypatch.setenv("TRIALPIPE_STUDIES_ROOT", str(home / "studies"))


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
