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
        built, "item_responses", "update staging.item_values set value = 5 where item = 1 and row_id in (select row_id from staging.assessment_rows where usubjid = 'S1')"
    )
    assert "no duplicate subject x instrument x visit x day x item" in _failed(
        built, "item_responses", "insert into staging.item_values select * from staging.item_values limit 1"
    )


def _outcome(db, suite, tamper_sql, chunk_rows):
    import shutil

    copy = db.with_name(f"{suite}-chunks-{chunk_rows}.duckdb")
    shutil.copy(db, copy)
    with warehouse.connect(copy) as con:
        con.execute(tamper_sql)
        return validation.run_suite(con, suite, validation.suite_parameters(con, load_manifest(CASE)), chunk_rows=chunk_rows)


@pytest.mark.parametrize(
    ("suite", "tamper"),
    [
        # out of range, not whole, a duplicate of one subject's rating, a missing subject id and visit
        ("item_responses",
         "update staging.item_values set value = 5 where item = 1 and row_id in (select row_id from staging.assessment_rows where usubjid = 'S1');"
         "update staging.item_values set value = 2.5 where item = 2 and row_id in (select row_id from staging.assessment_rows where usubjid = 'S2');"
         "insert into staging.item_values select * from staging.item_values"
         " where row_id = (select min(row_id) from staging.assessment_rows where usubjid = 'S3' and status = 'accepted') limit 1;"
         "update staging.assessment_rows set usubjid = null"
         " where row_id = (select min(row_id) from staging.assessment_rows where usubjid = 'S4' and status = 'accepted');"
         "update staging.assessment_rows set visit = null"
         " where row_id = (select min(row_id) from staging.assessment_rows where usubjid = 'S5' and status = 'accepted')"),
        ("adqs",
         "update analysis.adqs set chg = chg + 1 where chg is not null and usubjid = 'S1';"
         "update analysis.adqs set trtp = 'nope' where usubjid = 'S2'"),
        ("item_responses", "delete from staging.item_values"),
    ],
)
def test_a_suite_validated_in_parts_reports_what_one_batch_reports(built, suite, tamper):
    """A suite with meta.partition_by run in batches of a few rows (split by subject) gives the same
    outcome as on the whole table: counts, percentages, success and the summary; duplicates of one
    subject are found because all of a subject's rows are in one batch."""
    whole = _outcome(built, suite, tamper, chunk_rows=10**9)
    parts = _outcome(built, suite, tamper, chunk_rows=7)
    assert validation.chunk_problems(validation.load_suite_json(suite)) == []
    assert parts.success == whole.success and parts.summary == whole.summary
    for p, w in zip(parts.expectations, whole.expectations, strict=True):
        assert (p.expectation, p.rule, p.success, p.unexpected_count) == (w.expectation, w.rule, w.success, w.unexpected_count)
        assert p.details.get("unexpected_percent") == w.details.get("unexpected_percent")
        assert p.details.get("observed_value") == w.details.get("observed_value")
        # the examples are the first unexpected values met, batch by batch (fewer than five here: all of them)
        assert sorted(map(str, p.details.get("examples", []))) == sorted(map(str, w.details.get("examples", [])))
    if tamper.startswith("delete"):
        assert not whole.success
    else:
        assert not whole.success and sum(1 for e in whole.expectations if not e.success) >= 2


def test_a_suite_that_needs_the_whole_table_is_not_split():
    data = {"meta": {"partition_by": "usubjid"}, "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "item"}},
        {"type": "expect_column_distinct_values_to_contain_set", "kwargs": {"column": "arm", "value_set": ["a"]}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["usubjid", "item"]}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "arm", "value_set": ["a"]}},
    ]}
    problems = validation.chunk_problems(data)
    assert len(problems) == 2 and "partition column usubjid" in problems[0] and "distinct" in problems[1]
    data["meta"]["query"] = "select * from analysis.adqs"  # a query the runner cannot filter per batch
    assert "{rows}" in validation.chunk_problems(data)[0]
