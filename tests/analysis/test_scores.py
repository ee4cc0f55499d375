"""analysis.scores and qc.total_mismatches: given staging rows, expected scores computed by hand.

Each expected number has its arithmetic next to it; nothing is recomputed with the SQL under test.
"""

from __future__ import annotations

import pytest

from tests.analysis.harness import Given, manifest_text, rows

SCORE_COLS = "paramcd, aval, n_items, n_items_missing, dtype"

# PCL-5 items 1-20 = B1-B5, C1-C2, D1-D7, E1-E6
PCL_A = [0, 1, 2, 3, 4, 1, 2, 3, 2, 1, 0, 4, 3, 2, 1, 1, 1, 1, 1, 1]
# B = 0+1+2+3+4 = 10; C = 1+2 = 3; D = 3+2+1+0+4+3+2 = 15; E = 6 x 1 = 6; total = 34


def scores(con, usubjid: str = "S1", where: str = "true") -> list[tuple]:
    return rows(con, f"select {SCORE_COLS} from analysis.scores where usubjid = '{usubjid}' and {where} "
                     "order by instrument_id, paramn")


def test_complete_items_sum_to_totals_and_clusters():
    caps = [2] * 5 + [0, 0] + [1] * 7 + [3] * 6
    con = (
        Given()
        .assessment("S1", "pcl5", "BL", 0, PCL_A)
        .assessment("S1", "caps5", "BL", 0, {**dict(enumerate(caps, start=1)), 29: 1, 30: 4})
        .assessment("S1", "madrs", "BL", 0, [0, 1, 2, 3, 4, 5, 6, 0, 1, 2])
        .run("analysis.scores")
    )
    assert scores(con) == [
        # CAPS-5: B = 5 x 2 = 10; C = 0; D = 7 x 1 = 7; E = 6 x 3 = 18; total = 35; dissociation 29+30 = 1+4 = 5
        ("CAPS5TOT", 35.0, 20, 0, None),
        ("CAPS5B", 10.0, 5, 0, None),
        ("CAPS5C", 0.0, 2, 0, None),
        ("CAPS5D", 7.0, 7, 0, None),
        ("CAPS5E", 18.0, 6, 0, None),
        ("CAPS5DIS", 5.0, 2, 0, None),
        # MADRS: 0+1+2+3+4+5+6+0+1+2 = 24
        ("MADRSTOT", 24.0, 10, 0, None),
        ("PCL5TOT", 34.0, 20, 0, None),
        ("PCL5B", 10.0, 5, 0, None),
        ("PCL5C", 3.0, 2, 0, None),
        ("PCL5D", 15.0, 7, 0, None),
        ("PCL5E", 6.0, 6, 0, None),
    ]


def test_dissociation_only_when_its_items_are_answered():
    caps = [1] * 20
    con = (
        Given()
        .assessment("S1", "caps5", "BL", 0, caps)                          # items 29/30 not received
        .assessment("S2", "caps5", "BL", 0, {**dict(enumerate(caps, 1)), 29: None, 30: None})  # received, empty
        .assessment("S3", "caps5", "BL", 0, {**dict(enumerate(caps, 1)), 29: 3, 30: None})
        .run("analysis.scores")
    )
    assert rows(con, "select usubjid, aval, n_items_missing from analysis.scores where paramcd = 'CAPS5DIS'") == [
        ("S3", None, 1),  # default rule: one of its two items missing -> missing
    ]


def test_default_rule_any_missing_item_makes_the_score_missing():
    pcl = dict(enumerate(PCL_A, start=1))
    pcl[16] = None  # E2 received empty
    long_pcl = dict(enumerate(PCL_A, start=1))
    del long_pcl[7]  # C2 never received (a long file without that row)
    con = Given().assessment("S1", "pcl5", "BL", 0, pcl).assessment("S2", "pcl5", "BL", 0, long_pcl).run("analysis.scores")
    assert scores(con, "S1") == [
        ("PCL5TOT", None, 20, 1, None),
        ("PCL5B", 10.0, 5, 0, None),
        ("PCL5C", 3.0, 2, 0, None),
        ("PCL5D", 15.0, 7, 0, None),
        ("PCL5E", None, 6, 1, None),
    ]
    assert scores(con, "S2") == [
        ("PCL5TOT", None, 20, 1, None),
        ("PCL5B", 10.0, 5, 0, None),
        ("PCL5C", None, 2, 1, None),
        ("PCL5D", 15.0, 7, 0, None),
        ("PCL5E", 6.0, 6, 0, None),
    ]


# Two missing items: B1 (item 1) and E2 (item 16).
PCL_2MISS = {1: None, 2: 1, 3: 1, 4: 2, 5: 2, 6: 1, 7: 2, 8: 1, 9: 1, 10: 1, 11: 1, 12: 1, 13: 1, 14: 2,
             15: 1, 16: None, 17: 2, 18: 2, 19: 1, 20: 1}
# B answered 4 items, sum 1+1+2+2 = 6 -> 6 / 4 x 5 = 7.5
# C = 1+2 = 3 (complete); D = 6 x 1 + 2 = 8 (complete)
# E answered 5 items, sum 1+2+2+1+1 = 7 -> 7 / 5 x 6 = 8.4
# whole scale: 18 answered, sum 6+3+8+7 = 24 -> 24 / 18 x 20 = 26.666...


@pytest.mark.parametrize(
    ("rounding", "tot", "b", "e"),
    [
        ("none", 26.666666666666668, 7.5, 8.4),
        ("half_up", 27.0, 8.0, 8.0),   # 26.67 -> 27; 7.5 -> 8 (half goes up); 8.4 -> 8
        ("floor", 26.0, 7.0, 8.0),
        ("ceil", 27.0, 8.0, 9.0),
    ],
)
def test_prorating_scale_scope_each_rounding(rounding, tot, b, e):
    m = manifest_text(f"missing_items: {{method: prorate, max_missing: 2, scope: scale, rounding: {rounding}}}")
    con = Given(m).assessment("S1", "pcl5", "BL", 0, PCL_2MISS).run("analysis.scores")
    assert scores(con) == [
        ("PCL5TOT", pytest.approx(tot), 20, 2, "PRORATED"),
        ("PCL5B", b, 5, 1, "PRORATED"),
        ("PCL5C", 3.0, 2, 0, None),     # complete: never rounded or marked
        ("PCL5D", 8.0, 7, 0, None),
        ("PCL5E", pytest.approx(e), 6, 1, "PRORATED"),
    ]


def test_prorating_scale_scope_counts_missing_items_over_the_whole_score():
    # max_missing 1: the total has 2 missing (> 1) -> missing; each of B and E has 1 -> prorated
    m = manifest_text("missing_items: {method: prorate, max_missing: 1, scope: scale, rounding: none}")
    con = Given(m).assessment("S1", "pcl5", "BL", 0, PCL_2MISS).run("analysis.scores")
    assert scores(con, where="paramcd in ('PCL5TOT', 'PCL5B', 'PCL5E')") == [
        ("PCL5TOT", None, 20, 2, None),
        ("PCL5B", 7.5, 5, 1, "PRORATED"),
        ("PCL5E", pytest.approx(8.4), 6, 1, "PRORATED"),
    ]


@pytest.mark.parametrize(
    ("rounding", "tot"),
    [
        ("none", 26.9),    # cluster by cluster: 7.5 + 3 + 8 + 8.4 = 26.9 (scale scope gave 26.67)
        ("half_up", 27.0),
        ("floor", 26.0),
        ("ceil", 27.0),
    ],
)
def test_prorating_cluster_scope_prorates_the_total_cluster_by_cluster(rounding, tot):
    m = manifest_text(f"missing_items: {{method: prorate, max_missing: 1, scope: cluster, rounding: {rounding}}}")
    con = Given(m).assessment("S1", "pcl5", "BL", 0, PCL_2MISS).run("analysis.scores")
    assert scores(con, where="paramcd = 'PCL5TOT'") == [("PCL5TOT", pytest.approx(tot), 20, 2, "PRORATED")]


def test_prorating_cluster_scope_too_many_missing_in_one_cluster():
    # B1 and B2 missing: cluster B has 2 missing > max_missing 1 -> B and the total missing; E is fine
    pcl = dict(enumerate(PCL_A, start=1))
    pcl[1] = pcl[2] = None
    m = manifest_text("missing_items: {method: prorate, max_missing: 1, scope: cluster, rounding: half_up}")
    con = Given(m).assessment("S1", "pcl5", "BL", 0, pcl).run("analysis.scores")
    assert scores(con) == [
        ("PCL5TOT", None, 20, 2, None),
        ("PCL5B", None, 5, 2, None),
        ("PCL5C", 3.0, 2, 0, None),
        ("PCL5D", 15.0, 7, 0, None),
        ("PCL5E", 6.0, 6, 0, None),
    ]


def test_madrs_has_no_clusters_so_cluster_scope_prorates_the_scale():
    # 9 answered, sum 2+2+2+2+2+2+2+2+3 = 19 -> 19 / 9 x 10 = 21.11 -> half_up 21
    m = manifest_text("missing_items: {method: prorate, max_missing: 1, scope: cluster, rounding: half_up}")
    con = Given(m).assessment("S1", "madrs", "BL", 0, [2, 2, 2, 2, 2, 2, 2, 2, 3, None]).run("analysis.scores")
    assert scores(con) == [("MADRSTOT", 21.0, 10, 1, "PRORATED")]


def test_reported_total_mismatch_is_a_qc_finding_and_the_item_sum_wins():
    incomplete = dict(enumerate(PCL_A, start=1))
    incomplete[20] = None
    con = (
        Given()
        .assessment("S1", "pcl5", "BL", 0, PCL_A, total=34)        # agrees: no finding
        .assessment("S2", "pcl5", "BL", 0, PCL_A, total=35)        # items sum to 34, source says 35
        .assessment("S3", "pcl5", "BL", 0, incomplete, total=33)   # 19 items: cannot be checked, not used
        .run("analysis.scores", "qc.total_mismatches")
    )
    assert rows(con, "select usubjid, aval, dtype, reported_total, total_check from analysis.scores "
                     "where paramcd = 'PCL5TOT' order by 1") == [
        ("S1", 34.0, None, 34.0, "agrees"),
        ("S2", 34.0, None, 35.0, "differs"),
        ("S3", None, None, 33.0, "items_incomplete"),
    ]
    assert rows(con, "select usubjid, instrument, visit, finding, item_derived, reported_total, difference, "
                     "_source_file, _source_row from qc.total_mismatches order by 1") == [
        ("S2", "PCL-5", "BL", "mismatch", 34.0, 35.0, -1.0, "x.csv", 3),
        ("S3", "PCL-5", "BL", "items_incomplete", None, 33.0, None, "x.csv", 4),
    ]
    assert rows(con, "select message from qc.total_mismatches where usubjid = 'S2'") == [
        ("PCL-5 total reported as 35 but its 20 items sum to 34; the item sum is used",)
    ]


def test_totals_only_source_gives_the_total_parameter():
    con = (
        Given()
        .assessment("S1", "madrs", "BL", 0, {}, total=24)                       # NDA madrstot, no item columns
        .assessment("S2", "caps5", "BL", 0, {}, total=41)                       # CAPS-5 total only
        .assessment("S3", "pcl5", "BL", 0, [None] * 20, total=30)               # item columns present but empty
        .run("analysis.scores", "qc.total_mismatches")
    )
    assert rows(con, f"select usubjid, {SCORE_COLS}, dxcutfl, sxcritfl from analysis.scores order by 1") == [
        ("S1", "MADRSTOT", 24.0, 10, 10, "REPORTED", None, None),
        ("S2", "CAPS5TOT", 41.0, 20, 20, "REPORTED", None, None),
        ("S3", "PCL5TOT", 30.0, 20, 20, "REPORTED", "N", None),   # 30 < 33; no items for the DSM-5 rule
    ]
    assert rows(con, "select count(*) from qc.total_mismatches") == [(0,)]


# DSM-5 rule: >= 1 B, >= 1 C, >= 2 D, >= 2 E items rated >= 2 (ratings of 1 never count)
JUST_MEETS = [2, 1, 1, 1, 1, 2, 1, 2, 2, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1]
JUST_MISSES = [2, 1, 1, 1, 1, 2, 1, 2, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1]   # only one E item >= 2
UNDECIDED = [2, 1, 1, 1, 1, 2, 1, 2, 2, 1, 1, 1, 1, 1, 2, None, 1, 1, 1, 1]  # E2 missing could be the second
DECIDED_NO = [2, 1, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1, 2, None, 1, 1, 1, 1]  # no C symptom: missing E2 cannot help
PCL_33 = [2] * 13 + [1] * 7   # 26 + 7 = 33
PCL_32 = [2] * 12 + [1] * 8   # 24 + 8 = 32


def test_diagnosis_flags_dsm5_rule_and_cutoff():
    con = (
        Given()
        .assessment("S1", "pcl5", "BL", 0, JUST_MEETS)
        .assessment("S2", "pcl5", "BL", 0, JUST_MISSES)
        .assessment("S3", "pcl5", "BL", 0, UNDECIDED)
        .assessment("S4", "pcl5", "BL", 0, DECIDED_NO)
        .assessment("S5", "pcl5", "BL", 0, PCL_33)
        .assessment("S6", "pcl5", "BL", 0, PCL_32)
        .assessment("S7", "caps5", "BL", 0, JUST_MEETS)
        .assessment("S8", "caps5", "BL", 0, JUST_MISSES)
        .run("analysis.scores")
    )
    assert rows(con, "select usubjid, paramcd, aval, sxcritfl, dxcutfl from analysis.scores where is_total order by 1") == [
        ("S1", "PCL5TOT", 26.0, "Y", "N"),  # 6x2 + 14x1 = 26 < 33
        ("S2", "PCL5TOT", 25.0, "N", "N"),
        ("S3", "PCL5TOT", None, None, None),
        ("S4", "PCL5TOT", None, "N", None),
        # PCL_33: B 5 items, C 2, D 6 of 7 rated 2 -> rule met; E 0 items >= 2 -> not met
        ("S5", "PCL5TOT", 33.0, "N", "Y"),  # 33 >= 33
        ("S6", "PCL5TOT", 32.0, "N", "N"),
        ("S7", "CAPS5TOT", 26.0, "Y", None),  # CAPS-5 has no cut-off rule
        ("S8", "CAPS5TOT", 25.0, "N", None),
    ]
    # flags sit on the total's record only
    assert rows(con, "select count(*) from analysis.scores where not is_total and (sxcritfl is not null or dxcutfl is not null)") == [(0,)]


def test_pcl5_cutoff_is_configurable():
    con = Given(manifest_text("pcl5_cutoff: 32")).assessment("S6", "pcl5", "BL", 0, PCL_32).run("analysis.scores")
    assert rows(con, "select dxcutfl from analysis.scores where paramcd = 'PCL5TOT'") == [("Y",)]  # 32 >= 32


def test_an_item_received_twice_with_the_same_value_counts_once():
    con = Given().assessment("S1", "pcl5", "BL", 0, PCL_A).assessment("S1", "pcl5", "BL", 0, {1: 0}).run("analysis.scores")
    assert rows(con, "select aval from analysis.scores where paramcd = 'PCL5TOT'") == [(34.0,)]
