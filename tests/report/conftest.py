"""Study databases for the report tests, built once per session (about 5 s): the simulated
two-arm study with the hand-made results of tests/report/fixtures.py, and its single-arm cut."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.report.fixtures import EFFECTS_W2, build_single_arm, build_two_arm, write_results


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report_studies")
    bare = build_two_arm(root / "two")  # raw, staging, analysis, qc - no results tables
    two = root / "two_results.duckdb"
    two.write_bytes(bare.read_bytes())
    with duckdb.connect(str(two)) as con:
        write_results(con)
    one = build_single_arm(root / "one")
    with duckdb.connect(str(one)) as con:
        write_results(con, arms=("KET",), drop=tuple(p for p in EFFECTS_W2 if p.startswith("PCL5")))
    return {"bare": bare, "two": two, "one": one}


@pytest.fixture
def two_arm(built, tmp_path) -> Path:
    """A private copy of the two-arm study with results (tests may change it)."""
    db = tmp_path / "two.duckdb"
    db.write_bytes(built["two"].read_bytes())
    return db


@pytest.fixture
def bare(built, tmp_path) -> Path:
    db = tmp_path / "bare.duckdb"
    db.write_bytes(built["bare"].read_bytes())
    return db
