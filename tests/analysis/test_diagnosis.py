"""CAPS-5 DSM-5 PTSD diagnosis (DSMDXFL) and loss of diagnosis (CRIT3FL), hand-checked.

The rule (Weathers et al. 2018, CAPS-5 scoring; items numbered as on the Past Month form): a symptom
counts when its severity is >= 2; B >= 1 of items 1-5, C >= 1 of 6-7, D >= 2 of 8-14, E >= 2 of
15-20; F item 22 (duration > 1 month) = 1; G at least one of items 23-25 (distress, social,
occupational impairment) >= 2. Criterion A is established at screening. Every expected flag below is
read off the ratings by hand, criterion by criterion; nothing is recomputed with the SQL under test.
"""

from __future__ import annotations

import pytest

from tests.analysis.harness import Given, manifest_text, rows

# Items 1-20: exactly the minimum of every symptom criterion and nothing more.
#        B1 B2 B3 B4 B5 C1 C2 D1 D2 D3 D4 D5 D6 D7 E1 E2 E3 E4 E5 E6
MEETS = [2, 1, 1, 1, 1, 2, 1, 2, 2, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1]
# B = 2+1+1+1+1 = 6, C = 3, D = 2+2+5 = 9, E = 2+2+4 = 8, total 26
F_G_MET = {21: 0, 22: 1, 23: 2, 24: 0, 25: 0}


def caps(symptoms: list[int | None], extra: dict[int, int | None] | None = None) -> dict[int, int | None]:
    out: dict[int, int | None] = dict(enumerate(symptoms, start=1))
    out.update(F_G_MET if extra is None else extra)
    return out


def with_item(symptoms: list, n: int, value) -> list:
    out = list(symptoms)
    out[n - 1] = value
    return out


# one criterion fails in turn, everything else exactly as in MEETS / F_G_MET
FAILS_ONE = {
    "B": caps(with_item(MEETS, 1, 1)),                 # B1 2 -> 1: no B item >= 2
    "C": caps(with_item(MEETS, 6, 1)),                 # C1 2 -> 1: no C item >= 2
    "D": caps(with_item(MEETS, 9, 1)),                 # D2 2 -> 1: one D item >= 2, two needed
    "E": caps(with_item(MEETS, 16, 1)),                # E2 2 -> 1: one E item >= 2, two needed
    "F": caps(MEETS, {21: 0, 22: 0, 23: 2, 24: 0, 25: 0}),   # duration not more than 1 month
    "G": caps(MEETS, {21: 0, 22: 1, 23: 1, 24: 1, 25: 1}),   # distress/impairment all below 2
}


def dx(con) -> list[tuple]:
    return rows(con, "select usubjid, dsmdxfl from analysis.scores where paramcd = 'CAPS5TOT' order by usubjid")


def test_all_criteria_met_is_a_diagnosis_and_each_failing_criterion_alone_removes_it():
    g = Given().assessment("S0", "caps5", "BL", 0, caps(MEETS))
    for crit, ratings in FAILS_ONE.items():
        g = g.assessment(f"S{crit}", "caps5", "BL", 0, ratings)
    con = g.run("analysis.scores")
    assert dx(con) == [
        ("S0", "Y"),  # B1, C1, D1+D2, E1+E2 at 2; item 22 = 1; item 23 = 2
        ("SB", "N"),
        ("SC", "N"),
        ("SD", "N"),
        ("SE", "N"),
        ("SF", "N"),
        ("SG", "N"),
    ]


@pytest.mark.parametrize("g_item", [23, 24, 25])
def test_any_one_of_distress_social_or_occupational_impairment_meets_g(g_item):
    extra = {21: 0, 22: 1, 23: 0, 24: 0, 25: 0, g_item: 2}
    con = Given().assessment("S1", "caps5", "BL", 0, caps(MEETS, extra)).run("analysis.scores")
    assert dx(con) == [("S1", "Y")]


def test_items_21_to_25_never_enter_the_total_or_the_clusters():
    # the same items 1-20 with and without maximal F/G ratings: 26 = 6 + 3 + 9 + 8 both times
    con = (
        Given()
        .assessment("S1", "caps5", "BL", 0, caps(MEETS, {21: 1, 22: 1, 23: 4, 24: 4, 25: 4}))
        .assessment("S2", "caps5", "BL", 0, dict(enumerate(MEETS, start=1)))
        .run("analysis.scores")
    )
    got = rows(con, "select usubjid, paramcd, aval, n_items, n_items_missing from analysis.scores order by usubjid, paramn")
    expected = [("CAPS5TOT", 26.0, 20, 0), ("CAPS5B", 6.0, 5, 0), ("CAPS5C", 3.0, 2, 0), ("CAPS5D", 9.0, 7, 0),
                ("CAPS5E", 8.0, 6, 0)]
    assert got == [("S1", *r) for r in expected] + [("S2", *r) for r in expected]
    # a severity-only administration (no item 22-25) has no diagnosis flag, not "no diagnosis"
    assert dx(con) == [("S1", "Y"), ("S2", None)]


def test_missing_items_that_could_decide_leave_the_diagnosis_null_not_absent():
    con = (
        Given()
        # item 22 (duration) received empty, everything else met: F undecided -> NULL
        .assessment("S1", "caps5", "BL", 0, caps(MEETS, {21: 0, 22: None, 23: 2, 24: 0, 25: 0}))
        # G: 23 missing, 24 and 25 below 2 -> a rating of 23 could still meet G -> NULL
        .assessment("S2", "caps5", "BL", 0, caps(MEETS, {21: 0, 22: 1, 23: None, 24: 1, 25: 0}))
        # G already met by 24 = 3 although 23 is missing -> Y
        .assessment("S3", "caps5", "BL", 0, caps(MEETS, {21: 0, 22: 1, 23: None, 24: 3, 25: 0}))
        # E2 missing: E has one item >= 2 and the missing one could be the second -> NULL
        .assessment("S4", "caps5", "BL", 0, caps(with_item(MEETS, 16, None)))
        # B fails (B1 = 1, no B item >= 2) while 22 is missing: no rating of 22 can help -> N
        .assessment("S5", "caps5", "BL", 0, caps(with_item(MEETS, 1, 1), {21: 0, 22: None, 23: 2, 24: 0, 25: 0}))
        # D: D1 missing and D2 = 2, others 1: one more D needed, D1 could be it -> NULL
        .assessment("S6", "caps5", "BL", 0, caps(with_item(MEETS, 8, None)))
        .run("analysis.scores")
    )
    assert dx(con) == [("S1", None), ("S2", None), ("S3", "Y"), ("S4", None), ("S5", "N"), ("S6", None)]


ADQS = "select usubjid, avisit, ablfl, dsmdxfl, crit3fl from analysis.adqs where paramcd = 'CAPS5TOT' order by usubjid, avisitn"
LOST = caps(MEETS, {21: 0, 22: 1, 23: 1, 24: 1, 25: 1})   # G no longer met


def test_loss_of_diagnosis_is_baseline_diagnosis_then_none():
    con = (
        Given(manifest_text())
        .subject("S1", "KET").subject("S2", "MID").subject("S3", "MID").subject("S4", "KET")
        .assessment("S1", "caps5", "BL", 0, caps(MEETS)).assessment("S1", "caps5", "W2", 14, LOST)
        .assessment("S2", "caps5", "BL", 0, caps(MEETS)).assessment("S2", "caps5", "W2", 14, caps(MEETS))
        # no diagnosis at baseline: not evaluable for loss of diagnosis
        .assessment("S3", "caps5", "BL", 0, FAILS_ONE["B"]).assessment("S3", "caps5", "W2", 14, LOST)
        # diagnosis at baseline, undetermined at W2 (duration item missing) -> not evaluable
        .assessment("S4", "caps5", "BL", 0, caps(MEETS))
        .assessment("S4", "caps5", "W2", 14, caps(MEETS, {21: 0, 22: None, 23: 2, 24: 0, 25: 0}))
        .run("analysis.scores", "analysis.adqs")
    )
    assert rows(con, ADQS) == [
        ("S1", "BL", "Y", "Y", None), ("S1", "W2", None, "N", "Y"),
        ("S2", "BL", "Y", "Y", None), ("S2", "W2", None, "Y", "N"),
        ("S3", "BL", "Y", "N", None), ("S3", "W2", None, "N", None),
        ("S4", "BL", "Y", "Y", None), ("S4", "W2", None, None, None),
    ]
    assert rows(con, "select distinct crit3 from analysis.adqs where paramcd = 'CAPS5TOT'") == [
        ("DSM-5 PTSD diagnosis (CAPS-5 criteria B-G) met at baseline, not met at the visit",)
    ]
    # only the total carries the rule
    assert rows(con, "select count(*) from analysis.adqs where paramcd <> 'CAPS5TOT' and (crit3 is not null or dsmdxfl is not null)") == [(0,)]


def test_no_crit3_without_diagnostic_items_or_when_switched_off():
    plain = dict(enumerate(MEETS, start=1))
    con = (
        Given(manifest_text()).subject("S1", "KET")
        .assessment("S1", "caps5", "BL", 0, plain).assessment("S1", "caps5", "W2", 14, plain)
        .run("analysis.scores", "analysis.adqs")
    )
    assert rows(con, "select count(*) from analysis.adqs where crit3 is not null or dsmdxfl is not null") == [(0,)]
    con = (
        Given(manifest_text("loss_of_diagnosis: false")).subject("S1", "KET")
        .assessment("S1", "caps5", "BL", 0, caps(MEETS)).assessment("S1", "caps5", "W2", 14, LOST)
        .run("analysis.scores", "analysis.adqs")
    )
    assert rows(con, ADQS) == [("S1", "BL", "Y", "Y", None), ("S1", "W2", None, "N", None)]
