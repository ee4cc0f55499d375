"""Studies for the TLF tests, built once per session: the simulated two-arm study with the report
fixtures' results (tests/report/fixtures.py), and a copy with the hand-built safety records of
tests/tlf/safety_data.py."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.report.fixtures import build_two_arm, write_results
from tests.tlf.safety_data import add_safety


@pytest.fixture(scope="session")
def tlf_studies(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tlf_studies")
    bare = build_two_arm(root / "two")  # no results tables
    efficacy = root / "efficacy.duckdb"
    efficacy.write_bytes(bare.read_bytes())
    with duckdb.connect(str(efficacy)) as con:
        write_results(con)
    safety = root / "safety.duckdb"
    safety.write_bytes(efficacy.read_bytes())
    with duckdb.connect(str(safety)) as con:
        add_safety(con)
    return {"study_dir": root / "two" / "study", "bare": bare, "efficacy": efficacy, "safety": safety}


@pytest.fixture(scope="session")
def safety_package(tlf_studies, tmp_path_factory):
    """The whole package of the study with safety data (written once)."""
    from pipelines.tlf.package import build_package

    out = tmp_path_factory.mktemp("pkg_safety")
    with duckdb.connect(str(tlf_studies["safety"]), read_only=True) as con:
        pkg = build_package(con, "FEDERSIM-7", out)
    return pkg
