"""Dagster metadata helpers: markdown with the expected rows and a small SVG figure."""

from __future__ import annotations

import base64

import duckdb
import polars as pl
import pytest

from pipelines.report.metadata import (
    lsmeans_metadata,
    md_table,
    md_with_image,
    model_fits_metadata,
    responders_metadata,
    results_metadata,
    treatment_effects_metadata,
)
from tests.report.fixtures import STUDY


@pytest.fixture(scope="module")
def con(built):
    c = duckdb.connect(str(built["two"]), read_only=True)
    yield c
    c.close()


def _table_rows(md: str) -> list[list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:]]


def _is_small_svg(uri: str | None, *texts: str) -> bool:
    """An SVG data URI of at most 100 kB whose text (kept as text, not glyph outlines) holds ``texts``."""
    prefix = "data:image/svg+xml;base64,"
    if not uri or not uri.startswith(prefix):
        return False
    raw = base64.b64decode(uri[len(prefix):])
    return raw.startswith(b"<?xml") and b"<svg" in raw and len(raw) <= 100_000 and all(t.encode() in raw for t in texts)


def test_treatment_effects_markdown_and_forest_plot(con):
    md, image = treatment_effects_metadata(con, STUDY)
    rows = _table_rows(md)
    assert len(rows) == 11
    assert rows[0] == ["CAPS-5 total ★", "-11.88", "(-20.01, -3.75)", "0.006", "—", "-1.13", ""]
    assert rows[1] == [
        "CAPS-5 cluster B (Intrusion)",
        "-3.41",
        "(-5.87, -0.95)",
        "0.008",
        "0.034",
        "-0.98",
        "",
    ]
    assert "| \u2003CAPS-5 cluster B (Intrusion) |" in md  # clusters indented under their total
    assert "Ketamine 0.5 mg/kg − Midazolam 0.045 mg/kg in LS-mean change from baseline at Week 2" in md
    assert "Testing hierarchy (serial gatekeeping) at Week 2: level 1: CAPS-5 total; level 2: Cluster B" in md
    assert _is_small_svg(image, "Intrusion")


def test_lsmeans_markdown_and_plot(con):
    md, image = lsmeans_metadata(con, STUDY)
    rows = _table_rows(md)
    assert [r[0] for r in rows] == ["Day 1 (24 h after infusion 1)", "Week 1", "Week 2 (primary)"]
    assert rows[2] == [
        "Week 2 (primary)",
        "-13.92 (3.40)",
        "-2.04 (3.40)",
        "(-20.90, -6.94)",
        "(-9.02, 4.94)",
    ]
    assert _is_small_svg(image, "Week 2")


def test_responders_markdown_and_chart(con):
    md, image = responders_metadata(con, STUDY)
    rows = _table_rows(md)
    assert [r[0] for r in rows] == [
        "CAPS-5 total: response",
        "PCL-5 total: response",
        "PCL-5 total: below the probable-PTSD cut-off",
        "MADRS total: response",
        "MADRS total: remission",
    ]
    assert rows[0][1:] == [
        "10/15 (66.7%) (38.4, 88.2)",
        "3/15 (20.0%) (4.3, 48.1)",
        "46.7 (15.0, 78.3)",
        "0.025",
        "Fisher exact",
    ]
    assert _is_small_svg(image, "Ketamine")


def test_model_fits_markdown(con):
    md, image = model_fits_metadata(con, STUDY)
    rows = _table_rows(md)
    assert len(rows) == 13
    assert rows[2][:4] == ["CAPS-5 cluster C (Avoidance)", "MMRM", "toeph (fallback)", "yes"]
    assert "13 models; 0 not converged; 1 MMRM covariance fallbacks" in md
    assert image is None


def test_frame_given_by_the_asset_replaces_the_table(con):
    frame = pl.DataFrame(
        {
            "study_id": [STUDY],
            "paramcd": ["MADRSTOT"],
            "model": ["mmrm"],
            "covariance": ["cs"],
            "converged": [False],
            "warnings": ["iteration limit"],
        }
    )
    md, _ = model_fits_metadata(con, STUDY, frame)
    assert _table_rows(md) == [
        ["MADRS total", "MMRM", "cs (fallback)", "NO", "—", "—", "— / —", "iteration limit"]
    ]


def test_missing_table_gives_a_sentence(built):
    with duckdb.connect(str(built["bare"]), read_only=True) as c:
        for table in (
            "results.treatment_effects",
            "results.lsmeans",
            "results.responders",
            "results.model_fits",
        ):
            md, image = results_metadata(c, STUDY, table)
            assert image is None
            assert md.startswith("No "), md


def test_md_helpers():
    assert md_table(["a", "b"], [["x|y", "1"]]) == "| a | b |\n|:---|---:|\n| x\\|y | 1 |"
    assert md_with_image("T", None) == "T"
    assert md_with_image("T", "data:image/svg+xml;base64,QUJD") == "T\n\n![plot](data:image/svg+xml;base64,QUJD)"
