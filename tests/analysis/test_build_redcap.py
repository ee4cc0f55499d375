"""End to end through build_study: a REDCap-style export with partly missing PCL-5 items, read through a
manifest alone, scored under the default and the prorating rule. Totals are computed by hand below."""

from __future__ import annotations

import pytest

from pipelines.core.build import build_study
from tests.conftest import ARMS_VISITS, query, write_study

HEADER = "record_id,redcap_event_name," + ",".join(f"pcl5_{i}" for i in range(1, 21)) + ",pcl5_total"


def row(subject: str, event: str, values: dict[int, str], default: str, total: str = "") -> str:
    cells = [values.get(i, default) for i in range(1, 21)]
    return ",".join([subject, event, *cells, total])


EXPORT = "\n".join([
    HEADER,
    row("201", "baseline_arm_1", {}, "3", "60"),                      # 20 x 3 = 60
    row("201", "week_1_arm_1", {5: "", 18: ""}, "2"),                 # B5, E4 empty; 18 x 2 = 36
    row("201", "week_2_arm_1", {}, "1", "20"),                        # 20
    row("202", "baseline_arm_1", {3: "-99"}, "2", "38"),              # B3 = missing code; 19 x 2 = 38
    row("202", "week_2_arm_1", {20: "2"}, "1", "20"),                 # 19 x 1 + 2 = 21; source says 20
    row("203", "baseline_arm_1", {}, "2", "40"),                      # 40
    row("203", "week_1_arm_1", {1: "", 2: "", 3: ""}, "1"),           # 3 missing; 17 x 1 = 17
    row("203", "week_2_arm_1", {10: ""}, "0"),                        # 1 missing; 0
]) + "\n"

RAND = "id,arm,sex,age\n201,1,F,34\n202,0,M,51\n203,1,F,40\n"


def manifest(analysis: str) -> str:
    return f"""\
study_id: REDCAP2
{ARMS_VISITS}
sources:
  - {{file: rand.csv, kind: randomization, columns: {{subject: id, arm: arm, sex: sex, age: age}}}}
  - file: export.csv
    kind: pcl5
    columns: {{subject: record_id, visit: redcap_event_name}}
    items: "pcl5_{{n}}"
    total: pcl5_total
    missing_codes: ["-99"]
{analysis}
"""


def build(tmp_path, analysis: str = ""):
    study = write_study(tmp_path / "study", manifest(analysis), {"export.csv": EXPORT, "rand.csv": RAND})
    db = tmp_path / "w.duckdb"
    result, _ = build_study(study, db)
    assert [r.error for r in result.reads] == [None, None]
    return db


TOT = ("select usubjid, avisit, aval, base, chg, pchg, ablfl, n_items_missing, avalmeth, crit1fl "
       "from analysis.adqs where paramcd = 'PCL5TOT' order by usubjid, avisitn")


def test_redcap_default_rule_any_missing_item_makes_the_score_missing(tmp_path):
    db = build(tmp_path)
    assert query(db, TOT) == [
        ("201", "BL", 60.0, 60.0, None, None, "Y", 0, "ITEM SUM", None),
        ("201", "W1", None, 60.0, None, None, None, 2, None, None),
        # 20 - 60 = -40; -40 / 60 = -66.67% -> response
        ("201", "W2", 20.0, 60.0, -40.0, pytest.approx(-66.6666667), None, 0, "ITEM SUM", "Y"),
        ("202", "BL", None, None, None, None, None, 1, None, None),   # no baseline value
        ("202", "W2", 21.0, None, None, None, None, 0, "ITEM SUM", None),
        ("203", "BL", 40.0, 40.0, None, None, "Y", 0, "ITEM SUM", None),
        ("203", "W1", None, 40.0, None, None, None, 3, None, None),
        ("203", "W2", None, 40.0, None, None, None, 1, None, None),
    ]
    # 201 week 1 clusters: B (B5 empty) and E (E4 empty) missing; C = 2 x 2 = 4; D = 7 x 2 = 14
    assert query(db, "select paramcd, aval from analysis.adqs where usubjid = '201' and avisit = 'W1' order by paramn") == [
        ("PCL5TOT", None), ("PCL5B", None), ("PCL5C", 4.0), ("PCL5D", 14.0), ("PCL5E", None)
    ]
    assert query(db, "select usubjid, visit, finding, item_derived, reported_total from qc.total_mismatches order by 1, 2") == [
        ("202", "BL", "items_incomplete", None, 38.0),
        ("202", "W2", "mismatch", 21.0, 20.0),
    ]
    # completer parameter: CAPS5TOT (default) has no data here, so PCL5TOT at W2
    assert query(db, "select usubjid, trt01p, randfl, complfl, primary_paramcd, sex, age from analysis.adsl order by 1") == [
        ("201", "KET", "Y", "Y", "PCL5TOT", "F", 34.0),
        ("202", "MID", "Y", "Y", "PCL5TOT", "M", 51.0),
        ("203", "KET", "Y", "N", "PCL5TOT", "F", 40.0),
    ]


def test_redcap_prorating_rule(tmp_path):
    db = build(tmp_path, "analysis:\n  missing_items: {method: prorate, max_missing: 2, scope: scale, rounding: half_up}\n")
    assert query(db, TOT) == [
        ("201", "BL", 60.0, 60.0, None, None, "Y", 0, "ITEM SUM", None),
        # 36 / 18 x 20 = 40; 40 - 60 = -20; -33.3% -> response
        ("201", "W1", 40.0, 60.0, -20.0, pytest.approx(-33.3333333), None, 2, "PRORATED", "Y"),
        ("201", "W2", 20.0, 60.0, -40.0, pytest.approx(-66.6666667), None, 0, "ITEM SUM", "Y"),
        # 38 / 19 x 20 = 40
        ("202", "BL", 40.0, 40.0, None, None, "Y", 1, "PRORATED", None),
        # 21 - 40 = -19; -47.5%
        ("202", "W2", 21.0, 40.0, -19.0, -47.5, None, 0, "ITEM SUM", "Y"),
        ("203", "BL", 40.0, 40.0, None, None, "Y", 0, "ITEM SUM", None),
        ("203", "W1", None, 40.0, None, None, None, 3, None, None),  # 3 missing > 2
        # 0 / 19 x 20 = 0; -100%
        ("203", "W2", 0.0, 40.0, -40.0, -100.0, None, 1, "PRORATED", "Y"),
    ]
    # 201 week 1: B = 4 x 2 = 8 -> 8 / 4 x 5 = 10; E = 5 x 2 = 10 -> 10 / 5 x 6 = 12
    # 203 week 1: B has 3 missing (> 2) -> missing; C = 2, D = 7, E = 6
    assert query(db, "select usubjid, paramcd, aval, avalmeth from analysis.adqs where avisit = 'W1' order by 1, paramn") == [
        ("201", "PCL5TOT", 40.0, "PRORATED"), ("201", "PCL5B", 10.0, "PRORATED"), ("201", "PCL5C", 4.0, "ITEM SUM"),
        ("201", "PCL5D", 14.0, "ITEM SUM"), ("201", "PCL5E", 12.0, "PRORATED"),
        ("203", "PCL5TOT", None, None), ("203", "PCL5B", None, None), ("203", "PCL5C", 2.0, "ITEM SUM"),
        ("203", "PCL5D", 7.0, "ITEM SUM"), ("203", "PCL5E", 6.0, "ITEM SUM"),
    ]
    assert query(db, "select usubjid, visit, finding, item_derived, reported_total from qc.total_mismatches order by 1, 2") == [
        ("202", "BL", "items_incomplete", 40.0, 38.0),
        ("202", "W2", "mismatch", 21.0, 20.0),
    ]
    assert query(db, "select usubjid, complfl, primary_base from analysis.adsl order by 1") == [
        ("201", "Y", 60.0), ("202", "Y", 40.0), ("203", "Y", 40.0)
    ]


def test_baseline_coverage_counts_scoreable_totals_and_names_the_subjects(tmp_path):
    """202's baseline has B3 missing (-99): rated, but no scoreable total under the default rule
    (its reported 38 is not used when items were answered); under proration (<= 2 missing) it is."""
    import duckdb

    from pipelines.core.manifest import load_manifest
    from pipelines.core.validation import check_baseline_coverage

    db = build(tmp_path)
    con = duckdb.connect(str(db), read_only=True)
    study = tmp_path / "study"
    m = load_manifest(study).model_copy(deep=True)
    m.analysis.primary_parameter = "PCL5TOT"
    out = check_baseline_coverage(con, m)
    assert out.summary.startswith("2/3 subjects (67%) have a scoreable baseline PCL-5 total (PCL5TOT)")
    assert "rated but lost to missing items: 202" in out.summary
    assert out.expectations[0].details["lost_to_missing_items"] == ["202"]
    m.analysis.missing_items.method, m.analysis.missing_items.max_missing = "prorate", 2
    assert check_baseline_coverage(con, m).summary.startswith("3/3 subjects (100%)")
