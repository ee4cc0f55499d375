"""Simulated CAPS-5 items 21-25: in the NDA ptsd_dsm501 file, read back by the NDA reader, and the
DSM-5 diagnosis in ADQS equals the rule applied by hand to the file's own ratings."""

from __future__ import annotations

import csv

from pipelines.core.build import build_study
from pipelines.simulate import write_study
from tests.conftest import query

# past-week element names (NDA ptsd_dsm501), in CAPS-5 item order 1-20, then items 22-25
SYMPTOMS = [
    "b1_intrusive_memories_v2", "b2_distressing_dreams_v2", "b3_dissociative_reactions_v2",
    "b4_cued_psychological_dist_v2", "b5_cued_physiological_reac_v2", "c1_avoidance_of_memories_t_v2",
    "c2_avoidance_of_external_r_v2", "d1_inability_to_recall_imp_v2", "d2_exaggerated_negative_be_v2",
    "d3_distorted_congitions_le_v2", "d4_persistent_negative_emo_v2", "d5_diminished_interest_or_v2",
    "d6_detachment_or_estrangem_v2", "d7_persistent_inability_to_v2", "e1_irritable_behavior_and_v2",
    "e2_reckless_or_self_destru_v2", "e3_hypervigilance_v2", "e4_exaggerated_startle_res_v2",
    "e5_problems_with_concentra_v2", "e6_sleep_disturbance_v2",
]
DURATION, G = "caps_criteriafduration", ["capsptsd58", "capsptsd61", "capsptsd66"]
VISIT = {"baseline": "BL", "day 1": "D1", "week 1": "W1", "week 2": "W2"}


def _by_hand(r: dict[str, str]) -> str | None:
    """DSM-5 PTSD (CAPS-5): counts of items >= 2 per cluster B 1-5 >= 1, C 6-7 >= 1, D 8-14 >= 2,
    E 15-20 >= 2; duration = 1; one of the G items >= 2. None when a missing item could decide it."""
    def val(el):
        return None if r[el] == "-9999" else int(r[el])

    sym = [val(e) for e in SYMPTOMS]
    crits = [(sym[0:5], 2, 1), (sym[5:7], 2, 1), (sym[7:14], 2, 2), (sym[14:20], 2, 2),
             ([val(DURATION)], 1, 1), ([val(e) for e in G], 2, 1)]
    met = [sum(v is not None and v >= t for v in vs) >= k for vs, t, k in crits]
    could = [sum(v is None or v >= t for v in vs) >= k for vs, t, k in crits]
    if all(met):
        return "Y"
    if not all(could):
        return "N"
    return None


def test_simulated_nda_items_21_to_25_give_the_hand_computed_diagnosis(tmp_path):
    study = write_study(tmp_path / "s", per_arm=6, seed=7, formats=("nda",), missing_item_rate=0.05)
    lines = (study / "nda" / "ptsd_dsm501.txt").read_text(encoding="utf-8").splitlines()
    rows = list(csv.DictReader([lines[0], *lines[2:]], delimiter="\t"))
    expected = sorted((r["src_subject_id"], VISIT[r["visit"]], _by_hand(r)) for r in rows)
    assert {e[2] for e in expected} >= {"Y", "N"}
    db = tmp_path / "w.duckdb"
    result, _ = build_study(study, db)
    assert all(r.error is None for r in result.reads)
    got = query(db, "select usubjid, avisit, dsmdxfl from analysis.adqs where paramcd = 'CAPS5TOT' order by 1, 2")
    assert sorted(got) == expected
