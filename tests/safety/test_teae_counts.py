"""TEAE counting on a hand-built AE file, through the whole ingest -> staging -> ADAE path.

The expected numbers below are counted by hand from the files written in ``study`` (no pipeline code
computes them): onset before the first infusion is not treatment-emergent, onset on the day of the
first infusion is; a preferred term a subject reports twice counts the subject once (and two
events); a randomized subject who never received an infusion is outside the safety population.
"""

from __future__ import annotations

import pytest

from pipelines.core import warehouse
from pipelines.core.build import build_study
from pipelines.stats.safety import teae_by_soc_pt

STUDY_YAML = """\
study_id: TEAE1
arms:
  - {id: KET, role: experimental}
  - {id: MID, role: control}
visits:
  - {id: BL, day: 0, baseline: true}
  - {id: W2, day: 14, primary: true}
sources:
  - file: randomization.csv
    kind: randomization
  - file: ex.csv
    kind: ex
    layout: long
  - file: ae.csv
    kind: ae
    layout: long
"""
RANDOMIZATION = "subject,arm\nK1,KET\nK2,KET\nM1,MID\nM2,MID\nM3,MID\n"
# study days: day 0 = first infusion of the schedule; M2 starts late (day 3), M3 is never dosed
EX = "USUBJID,EXTRT,EXDOSE,EXDOSU,EXSTDY\nK1,KETAMINE,0.5,mg/kg,0\nK1,KETAMINE,0.5,mg/kg,2\nK2,KETAMINE,0.5,mg/kg,0\n" \
     "M1,MIDAZOLAM,0.045,mg/kg,0\nM1,MIDAZOLAM,0.045,mg/kg,2\nM2,MIDAZOLAM,0.045,mg/kg,3\n"
NS, GI = "Nervous system disorders", "Gastrointestinal disorders"
AE = (
    "USUBJID,AEDECOD,AEBODSYS,AESEV,AEREL,AESTDY\n"
    f"K1,Headache,{NS},MILD,NOT RELATED,-2\n"  # before the first dose: not a TEAE
    f"K1,Headache,{NS},MILD,POSSIBLY RELATED,0\n"  # day of the first dose: TEAE
    f"K1,Headache,{NS},MODERATE,POSSIBLY RELATED,2\n"  # same term again: subject counted once, 2 events
    f"K1,Dizziness,{NS},MILD,PROBABLY RELATED,2\n"
    f"K2,Nausea,{GI},MILD,POSSIBLY RELATED,1\n"
    f"M1,Headache,{NS},MILD,NOT RELATED,5\n"
    f"M2,Headache,{NS},MILD,NOT RELATED,1\n"  # before M2's first dose (day 3): not a TEAE
    f"M2,Somnolence,{NS},MILD,PROBABLY RELATED,3\n"
    f"M3,Headache,{NS},MILD,NOT RELATED,1\n"  # never dosed: not a TEAE, not in the safety population
)


@pytest.fixture(scope="module")
def teae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teae")
    for name, text in {"study.yaml": STUDY_YAML, "randomization.csv": RANDOMIZATION, "ex.csv": EX, "ae.csv": AE}.items():
        (folder / name).write_text(text)
    db = folder / "w.duckdb"
    build_study(folder, db)
    with warehouse.connect(db) as con:
        flags = dict(
            ((u, d), f) for u, d, f in con.execute("select usubjid, astdy, trtemfl from analysis.adae").fetchall()
        )
        table = teae_by_soc_pt(con, "TEAE1")
    return flags, table, db


def _cell(table, level, arm, soc=None, pt=None):
    rows = [
        r for r in table.iter_rows(named=True)
        if r["level"] == level and r["trta"] == arm and r["aebodsys"] == soc and r["aedecod"] == pt
    ]
    assert len(rows) == 1, (level, arm, soc, pt, rows)
    return rows[0]["n"], rows[0]["big_n"], rows[0]["pct"], rows[0]["n_events"]


def test_treatment_emergent_flag(teae):
    flags, _, _ = teae
    assert flags[("K1", -2)] == "N"  # onset before the first dose
    assert flags[("K1", 0)] == "Y"  # onset on the day of the first dose
    assert flags[("M2", 1)] == "N" and flags[("M2", 3)] == "Y"  # the subject's own first dose (day 3)
    assert flags[("M3", 1)] == "N"  # never dosed


def test_teae_counts_by_soc_and_pt(teae):
    _, t, _ = teae
    # safety population: KET K1, K2 (N = 2); MID M1, M2 (N = 2; M3 never dosed)
    assert _cell(t, "ANY", "KET") == (2, 2, 100.0, 4)  # K1 x3 TEAEs, K2 x1
    assert _cell(t, "ANY", "MID") == (2, 2, 100.0, 2)
    assert _cell(t, "SOC", "KET", NS) == (1, 2, 50.0, 3)  # K1 only
    assert _cell(t, "PT", "KET", NS, "Headache") == (1, 2, 50.0, 2)  # K1 twice -> 1 subject, 2 events
    assert _cell(t, "PT", "KET", NS, "Dizziness") == (1, 2, 50.0, 1)
    assert _cell(t, "PT", "KET", NS, "Somnolence") == (0, 2, 0.0, 0)
    assert _cell(t, "SOC", "KET", GI) == (1, 2, 50.0, 1)
    assert _cell(t, "PT", "KET", GI, "Nausea") == (1, 2, 50.0, 1)
    assert _cell(t, "SOC", "MID", NS) == (2, 2, 100.0, 2)  # M1 headache, M2 somnolence
    assert _cell(t, "PT", "MID", NS, "Headache") == (1, 2, 50.0, 1)  # M2's and M3's headaches are not TEAEs
    assert _cell(t, "PT", "MID", NS, "Somnolence") == (1, 2, 50.0, 1)
    assert _cell(t, "SOC", "MID", GI) == (0, 2, 0.0, 0)


def test_report_safety_section_counts_match_hand_counts(teae):
    """The HTML study report's safety section (pipelines/report/safety.py) on the same files. By hand:
    safety N = 2 per arm (M3 never dosed); every dosed subject has a TEAE (K1 headache/dizziness, K2
    nausea, M1 headache, M2 somnolence); none severe or serious; the most frequent preferred term is
    Headache (K1, M1: 1/2 per arm), then Dizziness, Nausea, Somnolence (1 subject each, by name)."""
    from pipelines.report.data import load_study
    from pipelines.report.safety import safety_section

    db = teae[2]
    with warehouse.connect(db, read_only=True) as con:
        section = safety_section(con, load_study(con, "TEAE1", None))
    assert section is not None and section["durability"] is None and section["peaks"] is None
    rows = {r["label"]: r["cells"] for r in section["teae"]["rows"]}
    assert rows["Participants with at least one TEAE"] == {"KET": "2/2 (100.0%)", "MID": "2/2 (100.0%)"}
    assert rows["Participants with a severe TEAE"] == {"KET": "0/2 (0.0%)", "MID": "0/2 (0.0%)"}
    assert rows["Participants with a serious TEAE"] == {"KET": "0/2 (0.0%)", "MID": "0/2 (0.0%)"}
    assert [r["label"] for r in section["teae"]["rows"][3:]] == ["Headache", "Dizziness", "Nausea", "Somnolence"]
    assert rows["Headache"] == {"KET": "1/2 (50.0%)", "MID": "1/2 (50.0%)"}
    assert rows["Somnolence"] == {"KET": "0/2 (0.0%)", "MID": "1/2 (50.0%)"}
