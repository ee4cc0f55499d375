"""analysis.adqs: visits, ANL01FL, baseline, change, response and remission on literal scores.

Inputs are item rows whose sums are stated in the comment; expectations are computed by hand.
"""

from __future__ import annotations

import pytest

from tests.analysis.harness import Given, manifest_text, rows

COLS = "avisit, ady, aval, base, chg, pchg, ablfl, anl01fl, dtype, crit1fl, crit2fl"


def items(total: int, n: int, top: int) -> list[int]:
    """n item ratings summing to ``total``: as many ``top`` ratings as fit, then the remainder, then 0."""
    out, left = [], total
    for _ in range(n):
        v = min(top, left)
        out.append(v)
        left -= v
    assert left == 0
    return out


def pcl(total: int) -> list[int]:
    return items(total, 20, 4)


def madrs(total: int) -> list[int]:
    return items(total, 10, 6)


PCL_MISSING = [None] + [2] * 19   # one item missing: the default rule leaves the total missing


def given(analysis: str = "") -> Given:
    return Given(manifest_text(analysis)).subject("S1", "KET").subject("S2", "MID").subject("S3", "MID")


def adqs(con, usubjid: str, paramcd: str = "PCL5TOT") -> list[tuple]:
    return rows(con, f"select {COLS} from analysis.adqs where usubjid = '{usubjid}' and paramcd = '{paramcd}' "
                     "order by avisitn, ady, dtype nulls first")


def test_baseline_visit_change_and_response_at_exactly_30_percent():
    con = (
        given()
        .assessment("S1", "pcl5", "SCR", -7, pcl(50))
        .assessment("S1", "pcl5", "BL", 0, pcl(40))
        .assessment("S1", "pcl5", "W1", 7, pcl(28))
        .assessment("S1", "pcl5", "W2", 14, pcl(29))
        .run("analysis.scores", "analysis.adqs")
    )
    assert adqs(con, "S1") == [
        # screening is pre-baseline: BASE shown, no CHG
        ("SCR", -7, 50.0, 40.0, None, None, None, "Y", None, None, None),
        # the baseline record: CHG/PCHG NULL by our convention (post-baseline only)
        ("BL", 0, 40.0, 40.0, None, None, "Y", "Y", None, None, None),
        # 28 - 40 = -12; 100 x -12 / 40 = -30.0: exactly 30% is a response; 28 < 33 remission
        ("W1", 7, 28.0, 40.0, -12.0, -30.0, None, "Y", None, "Y", "Y"),
        # 29 - 40 = -11; -27.5% is just below 30%: no response; 29 < 33
        ("W2", 14, 29.0, 40.0, -11.0, -27.5, None, "Y", None, "N", "Y"),
    ]
    assert rows(con, "select distinct trtp, trtpn, parcat1, crit1, crit2 from analysis.adqs where paramcd = 'PCL5TOT'") == [
        ("KET", 1, "PCL-5", "PCL5TOT reduction from baseline >= 30%", "PCL5TOT < 33")
    ]


def test_remission_at_the_threshold_strict_for_pcl5_inclusive_for_madrs():
    con = (
        given()
        .assessment("S2", "pcl5", "BL", 0, pcl(50))
        .assessment("S2", "pcl5", "W1", 7, pcl(33))
        .assessment("S2", "pcl5", "W2", 14, pcl(32))
        .assessment("S2", "madrs", "BL", 0, madrs(30))
        .assessment("S2", "madrs", "W1", 7, madrs(10))
        .assessment("S2", "madrs", "W2", 14, madrs(15))
        .assessment("S3", "madrs", "BL", 0, madrs(30))
        .assessment("S3", "madrs", "W1", 7, madrs(16))
        .assessment("S3", "madrs", "W2", 14, madrs(11))
        .run("analysis.scores", "analysis.adqs")
    )
    q = "select avisit, aval, pchg, crit1fl, crit2fl from analysis.adqs where usubjid = '{}' and paramcd = '{}' and avisit <> 'BL' order by avisitn"
    assert rows(con, q.format("S2", "PCL5TOT")) == [
        ("W1", 33.0, -34.0, "Y", "N"),   # 33 < 33 is false; 17/50 = 34% reduction
        ("W2", 32.0, -36.0, "Y", "Y"),
    ]
    assert rows(con, q.format("S2", "MADRSTOT")) == [
        ("W1", 10.0, pytest.approx(-66.666666666), "Y", "Y"),  # 10 <= 10
        ("W2", 15.0, -50.0, "Y", "N"),   # exactly 50%: response; 15 > 10
    ]
    assert rows(con, q.format("S3", "MADRSTOT")) == [
        ("W1", 16.0, pytest.approx(-46.666666666), "N", "N"),  # 14/30 = 46.7% < 50%
        ("W2", 11.0, pytest.approx(-63.333333333), "Y", "N"),  # 11 > 10
    ]
    assert rows(con, "select distinct crit2 from analysis.adqs where paramcd = 'MADRSTOT'") == [("MADRSTOT <= 10",)]


def test_thresholds_from_the_manifest():
    con = (
        given("response: {PCL5TOT: 50}\nremission: {PCL5TOT: {op: '<=', value: 20}}")
        .assessment("S1", "pcl5", "BL", 0, pcl(40))
        .assessment("S1", "pcl5", "W1", 7, pcl(20))   # 50% reduction, 20 <= 20
        .assessment("S1", "pcl5", "W2", 14, pcl(21))  # 47.5%, 21 > 20
        .run("analysis.scores", "analysis.adqs")
    )
    assert rows(con, "select avisit, crit1, crit1fl, crit2, crit2fl from analysis.adqs where paramcd = 'PCL5TOT' and avisit <> 'BL' order by avisitn") == [
        ("W1", "PCL5TOT reduction from baseline >= 50%", "Y", "PCL5TOT <= 20", "Y"),
        ("W2", "PCL5TOT reduction from baseline >= 50%", "N", "PCL5TOT <= 20", "N"),
    ]


def test_zero_baseline_leaves_pchg_and_response_missing():
    con = given().assessment("S1", "pcl5", "BL", 0, pcl(0)).assessment("S1", "pcl5", "W1", 7, pcl(5)).run(
        "analysis.scores", "analysis.adqs")
    assert adqs(con, "S1") == [
        ("BL", 0, 0.0, 0.0, None, None, "Y", "Y", None, None, None),
        # CHG 5 - 0 = 5; PCHG undefined; response not evaluable; remission 5 < 33 is
        ("W1", 7, 5.0, 0.0, 5.0, None, None, "Y", None, None, "Y"),
    ]


def test_subject_without_baseline_stays_with_missing_base():
    con = (
        given()
        .assessment("S1", "pcl5", "W1", 7, pcl(30))              # no baseline visit at all
        .assessment("S2", "pcl5", "BL", 0, PCL_MISSING)          # baseline visit, total missing
        .assessment("S2", "pcl5", "W2", 14, pcl(20))
        .run("analysis.scores", "analysis.adqs")
    )
    assert adqs(con, "S1") == [("W1", 7, 30.0, None, None, None, None, "Y", None, None, None)]
    assert adqs(con, "S2") == [
        ("BL", 0, None, None, None, None, None, "N", None, None, None),   # no value: never ANL01FL
        ("W2", 14, 20.0, None, None, None, None, "Y", None, None, None),
    ]
    assert rows(con, "select count(*) from analysis.adqs where ablfl = 'Y' and usubjid in ('S1', 'S2') and paramcd = 'PCL5TOT'") == [(0,)]


def _repeated(analysis: str):
    return (
        given(analysis)
        .assessment("S1", "pcl5", "BL", -2, pcl(44))
        .assessment("S1", "pcl5", "BL", 0, pcl(40))
        .assessment("S1", "pcl5", "W1", 6, pcl(30))
        .assessment("S1", "pcl5", "W1", 8, pcl(20))
        .assessment("S1", "pcl5", "W2", 14, pcl(25))
        .assessment("S1", "pcl5", "W2", 16, PCL_MISSING)   # later, but without a value
        .run("analysis.scores", "analysis.adqs")
    )


def test_repeated_assessments_last():
    assert adqs(_repeated("repeated_assessments: last"), "S1") == [
        ("BL", -2, 44.0, 40.0, None, None, None, "N", None, None, None),
        ("BL", 0, 40.0, 40.0, None, None, "Y", "Y", None, None, None),
        ("W1", 6, 30.0, 40.0, -10.0, -25.0, None, "N", None, "N", "Y"),
        ("W1", 8, 20.0, 40.0, -20.0, -50.0, None, "Y", None, "Y", "Y"),
        # the day-16 record has no value, so the last record WITH a value (day 14) is analysed
        ("W2", 14, 25.0, 40.0, -15.0, -37.5, None, "Y", None, "Y", "Y"),
        ("W2", 16, None, 40.0, None, None, None, "N", None, None, None),
    ]


def test_repeated_assessments_first():
    assert adqs(_repeated("repeated_assessments: first"), "S1") == [
        ("BL", -2, 44.0, 44.0, None, None, "Y", "Y", None, None, None),
        ("BL", 0, 40.0, 44.0, None, None, None, "N", None, None, None),
        # 30 - 44 = -14; 100 x -14 / 44 = -31.818...
        ("W1", 6, 30.0, 44.0, -14.0, pytest.approx(-31.8181818), None, "Y", None, "Y", "Y"),
        ("W1", 8, 20.0, 44.0, -24.0, pytest.approx(-54.5454545), None, "N", None, "Y", "Y"),
        ("W2", 14, 25.0, 44.0, -19.0, pytest.approx(-43.1818181), None, "Y", None, "Y", "Y"),
        ("W2", 16, None, 44.0, None, None, None, "N", None, None, None),
    ]


def test_repeated_assessments_mean_adds_an_average_record():
    assert adqs(_repeated("repeated_assessments: mean"), "S1") == [
        ("BL", -2, 44.0, 42.0, None, None, None, "N", None, None, None),
        ("BL", 0, 40.0, 42.0, None, None, None, "N", None, None, None),
        # (44 + 40) / 2 = 42, at the later day 0, is both the analysed and the baseline record
        ("BL", 0, 42.0, 42.0, None, None, "Y", "Y", "AVERAGE", None, None),
        ("W1", 6, 30.0, 42.0, -12.0, pytest.approx(-28.5714285), None, "N", None, "N", "Y"),
        ("W1", 8, 20.0, 42.0, -22.0, pytest.approx(-52.3809523), None, "N", None, "Y", "Y"),
        # (30 + 20) / 2 = 25; 25 - 42 = -17; -17 / 42 = -40.48%
        ("W1", 8, 25.0, 42.0, -17.0, pytest.approx(-40.4761904), None, "Y", "AVERAGE", "Y", "Y"),
        # only one record with a value: it is analysed, no average
        ("W2", 14, 25.0, 42.0, -17.0, pytest.approx(-40.4761904), None, "Y", None, "Y", "Y"),
        ("W2", 16, None, 42.0, None, None, None, "N", None, None, None),
    ]


def test_baseline_last_on_or_before_day0():
    con = (
        given("baseline: last_on_or_before_day0")
        .assessment("S1", "pcl5", "SCR", -7, pcl(50))
        .assessment("S1", "pcl5", "BL", 1, pcl(44))       # baseline visit rated after day 0
        .assessment("S1", "pcl5", "W1", 7, pcl(30))
        .assessment("S2", "pcl5", "SCR", -7, pcl(48))
        .assessment("S2", "pcl5", "BL", 0, PCL_MISSING)   # no value on day 0: the screening value is baseline
        .assessment("S2", "pcl5", "W1", 7, pcl(24))
        .run("analysis.scores", "analysis.adqs")
    )
    assert adqs(con, "S1") == [
        ("SCR", -7, 50.0, 50.0, None, None, "Y", "Y", None, None, None),
        # a baseline-visit record is not post-baseline: no CHG
        ("BL", 1, 44.0, 50.0, None, None, None, "Y", None, None, None),
        ("W1", 7, 30.0, 50.0, -20.0, -40.0, None, "Y", None, "Y", "Y"),
    ]
    assert adqs(con, "S2") == [
        ("SCR", -7, 48.0, 48.0, None, None, "Y", "Y", None, None, None),
        ("BL", 0, None, 48.0, None, None, None, "N", None, None, None),
        ("W1", 7, 24.0, 48.0, -24.0, -50.0, None, "Y", None, "Y", "Y"),
    ]


def test_post_dose_day0_rating_is_never_the_baseline():
    """Ketamine trials rate on infusion day: pre-dose at BL (day 0) and 40 min post-dose at D0P
    (day 0, listed after BL). The pre-dose rating is the baseline under both rules; the post-dose
    rating is an analysed post-baseline record with a real change; no record is both."""
    manifest = manifest_text().replace(
        "  - {id: W1, day: 7}", "  - {id: D0P, day: 0}\n  - {id: W1, day: 7}"
    )
    for rule in ("last_on_or_before_day0", "visit"):
        text = manifest + f"analysis:\n  baseline: {rule}\n"
        con = (
            Given(text).subject("S1", "KET").subject("S2", "MID")
            # S1: post-dose flag given; the day-0 tie also prefers the baseline visit
            .assessment("S1", "pcl5", "BL", 0, pcl(50), predose="Y")
            .assessment("S1", "pcl5", "D0P", 0, pcl(30), predose="N")
            .assessment("S1", "pcl5", "W1", 7, pcl(35))
            # S2: no baseline-visit rating; the post-dose day-0 rating must not become the baseline,
            # the screening-like earlier rating is absent too: no baseline at all
            .assessment("S2", "pcl5", "D0P", 0, pcl(20), predose="N")
            .assessment("S2", "pcl5", "W1", 7, pcl(22))
            .run("analysis.scores", "analysis.adqs")
        )
        got = rows(con, "select avisit, aval, base, chg, ablfl, anl01fl from analysis.adqs "
                        "where usubjid = 'S1' and paramcd = 'PCL5TOT' order by avisitn")
        assert got == [
            ("BL", 50.0, 50.0, None, "Y", "Y"),
            ("D0P", 30.0, 50.0, -20.0, None, "Y"),     # 30 - 50 (post-dose, hand computed)
            ("W1", 35.0, 50.0, -15.0, None, "Y"),
        ], rule
        s2 = rows(con, "select avisit, base, chg, ablfl from analysis.adqs "
                       "where usubjid = 'S2' and paramcd = 'PCL5TOT' order by avisitn")
        assert s2 == [("D0P", None, None, None), ("W1", None, None, None)], rule
        # by construction: no record is both the baseline and an analysed post-baseline record
        both = rows(con, "select count(*) from analysis.adqs where ablfl = 'Y' and chg is not null")
        assert both == [(0,)]


def test_day0_tie_without_flags_prefers_the_baseline_visit():
    """No pre-/post-dose information: of two day-0 ratings the baseline visit's is the baseline
    (before: the later visit won the tie, so the post-dose rating became ABLFL with CHG 0)."""
    manifest = manifest_text("baseline: last_on_or_before_day0").replace(
        "  - {id: W1, day: 7}", "  - {id: D0P, day: 0}\n  - {id: W1, day: 7}"
    )
    con = (
        Given(manifest).subject("S1", "KET")
        .assessment("S1", "pcl5", "BL", 0, pcl(50))
        .assessment("S1", "pcl5", "D0P", 0, pcl(30))
        .run("analysis.scores", "analysis.adqs")
    )
    assert rows(con, "select avisit, base, chg, ablfl from analysis.adqs where paramcd = 'PCL5TOT' "
                     "order by avisitn") == [("BL", 50.0, None, "Y"), ("D0P", 50.0, -20.0, None)]


def test_baseline_visit_rule_ignores_screening_and_late_days():
    con = (
        given()
        .assessment("S1", "pcl5", "SCR", -7, pcl(50))
        .assessment("S1", "pcl5", "BL", 1, pcl(44))
        .assessment("S1", "pcl5", "W1", 7, pcl(30))
        .run("analysis.scores", "analysis.adqs")
    )
    assert [r[:7] for r in adqs(con, "S1")] == [
        ("SCR", -7, 50.0, 44.0, None, None, None),
        ("BL", 1, 44.0, 44.0, None, None, "Y"),
        ("W1", 7, 30.0, 44.0, -14.0, pytest.approx(-31.8181818), None),
    ]


def test_one_baseline_record_per_subject_and_parameter_and_clusters_follow_the_same_rules():
    con = (
        given()
        .assessment("S1", "pcl5", "BL", 0, pcl(40))   # pcl(40) = 4,4,4,4,4 | 4,4 | 4,4,4,0... : B 20, C 8, D 12, E 0
        .assessment("S1", "pcl5", "W1", 7, pcl(20))   # 4,4,4,4,4 | 0... : B 20, C 0, D 0, E 0
        .run("analysis.scores", "analysis.adqs")
    )
    assert rows(con, "select paramcd, avisit, aval, base, chg, pchg, ablfl, crit1fl, crit2fl from analysis.adqs "
                     "order by paramn, avisitn") == [
        ("PCL5TOT", "BL", 40.0, 40.0, None, None, "Y", None, None),
        ("PCL5TOT", "W1", 20.0, 40.0, -20.0, -50.0, None, "Y", "Y"),
        ("PCL5B", "BL", 20.0, 20.0, None, None, "Y", None, None),
        ("PCL5B", "W1", 20.0, 20.0, 0.0, 0.0, None, None, None),   # clusters have no response/remission rule
        ("PCL5C", "BL", 8.0, 8.0, None, None, "Y", None, None),
        ("PCL5C", "W1", 0.0, 8.0, -8.0, -100.0, None, None, None),
        ("PCL5D", "BL", 12.0, 12.0, None, None, "Y", None, None),
        ("PCL5D", "W1", 0.0, 12.0, -12.0, -100.0, None, None, None),
        ("PCL5E", "BL", 0.0, 0.0, None, None, "Y", None, None),
        ("PCL5E", "W1", 0.0, 0.0, 0.0, None, None, None, None),      # BASE 0: PCHG missing
    ]
    assert rows(con, "select count(*) from analysis.adqs where crit1 is not null and paramcd <> 'PCL5TOT'") == [(0,)]


def test_prorated_and_reported_records_keep_their_method_and_counts_and_no_dtype():
    """ADaM IG: DTYPE is for records derived in the dataset; proration / reported totals are how an
    observed record's AVAL was obtained (AVALMETH)."""
    con = (
        given("missing_items: {method: prorate, max_missing: 1, scope: scale, rounding: half_up}")
        .assessment("S1", "pcl5", "BL", 0, PCL_MISSING)           # 19 x 2 = 38 -> 38 / 19 x 20 = 40
        .assessment("S1", "madrs", "BL", 0, {}, total=30)         # totals-only
        .run("analysis.scores", "analysis.adqs")
    )
    assert rows(con, "select paramcd, aval, n_items, n_items_missing, avalmeth, dtype from analysis.adqs "
                     "where paramcd in ('PCL5TOT', 'MADRSTOT') order by paramcd") == [
        ("MADRSTOT", 30.0, 10, 10, "REPORTED", None),
        ("PCL5TOT", 40.0, 20, 1, "PRORATED", None),
    ]
