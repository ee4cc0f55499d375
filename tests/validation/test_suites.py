"""The GX suites catch what they say they catch (each broken on purpose, one rule at a time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core import validation, warehouse
from pipelines.core.build import build_study
from pipelines.core.manifest import load_manifest

CASE = Path(__file__).resolve().parents[1] / "data" / "bad_inputs" / "utf8_bom"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    db = tmp_path_factory.mktemp("suites") / "w.duckdb"
    build_study(CASE, db)
    return db


def _failed(db, suite, tamper_sql):
    import shutil

    copy = db.with_name(f"{suite}-{abs(hash(tamper_sql))}.duckdb")
    shutil.copy(db, copy)
    with warehouse.connect(copy) as con:
        if tamper_sql:
            con.execute(tamper_sql)
        out = validation.run_suite(con, suite, validation.suite_parameters(con, load_manifest(CASE)))
    return {e.rule for e in out.expectations if not e.success}


def test_suites_pass_on_a_clean_study(built):
    for suite in ("item_responses", "subjects", "adsl", "adqs"):
        assert _failed(built, suite, "") == set(), suite


@pytest.mark.parametrize(
    ("tamper", "rule"),
    [
        ("update analysis.adqs set chg = chg + 1 where chg is not null and usubjid = 'S1'", "CHG = AVAL - BASE wherever CHG is present"),
        ("update analysis.adqs set ablfl = 'Y' where avisit = 'W2' and usubjid = 'S2'", "at most one baseline record (ABLFL = Y) per subject x parameter (per infusion for BASETYPE PRE-INFUSION)"),
        ("update analysis.adqs set aval = 81 where paramcd = 'PCL5TOT' and usubjid = 'S3' and avisit = 'BL'", "scores are at most their maximum (ref.scores.score_max: CAPS-5/PCL-5 total 80, clusters 20/8/28/24, MADRS 60)"),
        ("update analysis.adqs set base = 0, pchg = 5 where paramcd = 'PCL5B' and usubjid = 'S4' and avisit = 'W2'", "PCHG is missing when BASE is 0"),
        ("update analysis.adqs set dsmdxfl = 'yes' where paramcd = 'PCL5TOT' and usubjid = 'S1' and avisit = 'BL'", "DSMDXFL (DSM-5 diagnosis) is Y, N or missing"),
        # a loss-of-diagnosis flag on a record whose baseline has no diagnosis (this study has no CAPS-5 items 22-25)
        ("update analysis.adqs set crit3fl = 'Y' where paramcd = 'PCL5TOT' and usubjid = 'S1' and avisit = 'W2'",
         "CRIT3FL (loss of diagnosis) is judged only on records whose baseline record has a diagnosis (DSMDXFL = Y)"),
    ],
)
def test_adqs_suite_catches_each_broken_invariant(built, tamper, rule):
    assert rule in _failed(built, "adqs", tamper)


def test_item_responses_suite_catches_out_of_range_and_duplicates(built):
    assert "item values are at most the item's maximum (PCL-5/CAPS-5 4, MADRS 6, HAM-D-17 items 0-2 or 0-4)" in _failed(
        built, "item_responses", "update staging.item_responses set value = 5 where item = 1 and usubjid = 'S1'"
    )
    assert "no duplicate subject x instrument x visit x day x item" in _failed(
        built, "item_responses", "insert into staging.item_responses select * from staging.item_responses limit 1"
    )
