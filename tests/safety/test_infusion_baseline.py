"""Per-infusion baseline of time-point records in ADQS (rule A10): the pre-infusion rating of the same
infusion is BASE for that infusion's post-infusion records, CHG = AVAL - BASE there; the records are
flagged ANL02FL and kept out of the by-visit efficacy analysis (ANL01FL = 'N', not in the MMRM rows).

A tiny hand-built CADSS study: every expected BASE/CHG below is worked by hand from the file written in
this module (the CADSS total is the sum of its 23 items, each 0-4; a row fills items 1, 2, ... with 4
until the value written is reached, the rest 0, so the total equals the value written; an empty row is a
rating with every item missing).
"""

from __future__ import annotations

import pytest

from pipelines.core import warehouse
from pipelines.core.build import build_study
from pipelines.core.manifest import load_manifest

STUDY = """\
study_id: INFB1
arms:
  - {id: KET, role: experimental, codes: ["1"]}
  - {id: MID, role: control, codes: ["0"]}
visits:
  - {id: BL, day: 0, baseline: true}
  - {id: W2, day: 14, primary: true}
  - {id: I1PRE60, day: 0, phase: infusion, infusion: 1, timepoint: PRE-INFUSION 60 MIN, elapsed_min: -60}
  - {id: I1PRE, day: 0, phase: infusion, infusion: 1, timepoint: PRE-INFUSION, elapsed_min: -15}
  - {id: I1P40, day: 0, phase: infusion, infusion: 1, timepoint: 40 MIN, elapsed_min: 40}
  - {id: I1P240, day: 0, phase: infusion, infusion: 1, timepoint: 240 MIN, elapsed_min: 240}
  - {id: I2PRE, day: 2, phase: infusion, infusion: 2, timepoint: PRE-INFUSION, elapsed_min: -15}
  - {id: I2P40, day: 2, phase: infusion, infusion: 2, timepoint: 40 MIN, elapsed_min: 40}
  - {id: I3P40, day: 4, phase: infusion, infusion: 3, timepoint: 40 MIN, elapsed_min: 40}
sources:
  - {file: randomization.csv, kind: randomization, columns: {subject: record_id, arm: arm}}
  - {file: cadss.csv, kind: cadss, columns: {subject: record_id, visit: visit}, items: "cadss_{n}"}
"""
VALUES = {  # subject -> visit -> CADSS total (None = every item missing)
    "S1": {"BL": 2, "I1PRE60": 5, "I1PRE": 3, "I1P40": 21, "I1P240": 4, "I2PRE": 1, "I2P40": 13, "I3P40": 9, "W2": 6},
    "S2": {"BL": 4, "I1PRE60": 2, "I1PRE": None, "I1P40": 5, "I1P240": 2, "I2PRE": 0, "I2P40": 0, "I3P40": 3, "W2": 1},
}
# (avisit, infno, basetype, ablfl, anl01fl, anl02fl, aval, base, chg, pchg), worked by hand:
EXPECTED = {
    "S1": [
        ("BL", None, None, "Y", "Y", None, 2.0, 2.0, None, None),  # study baseline
        ("W2", None, None, None, "Y", None, 6.0, 2.0, 4.0, 200.0),  # 6 - 2, study baseline untouched
        ("I1PRE60", 1, "PRE-INFUSION", None, "N", "Y", 5.0, 3.0, None, None),  # pre: no CHG; not the latest pre
        ("I1PRE", 1, "PRE-INFUSION", "Y", "N", "Y", 3.0, 3.0, None, None),  # latest pre-infusion rating = BASE
        ("I1P40", 1, "PRE-INFUSION", None, "N", "Y", 21.0, 3.0, 18.0, 600.0),  # 21 - 3; 100 * 18 / 3
        ("I1P240", 1, "PRE-INFUSION", None, "N", "Y", 4.0, 3.0, 1.0, 100.0 / 3),  # 4 - 3
        ("I2PRE", 2, "PRE-INFUSION", "Y", "N", "Y", 1.0, 1.0, None, None),  # infusion 2's own baseline
        ("I2P40", 2, "PRE-INFUSION", None, "N", "Y", 13.0, 1.0, 12.0, 1200.0),  # 13 - 1 (not 13 - 3)
        ("I3P40", 3, "PRE-INFUSION", None, "N", "Y", 9.0, None, None, None),  # infusion 3 has no pre rating
    ],
    "S2": [
        ("BL", None, None, "Y", "Y", None, 4.0, 4.0, None, None),
        ("W2", None, None, None, "Y", None, 1.0, 4.0, -3.0, -75.0),
        ("I1PRE60", 1, "PRE-INFUSION", "Y", "N", "Y", 2.0, 2.0, None, None),  # the -15 min rating is empty
        # I1PRE: every item missing - no rating, no ADQS record; the -60 min rating is the baseline
        ("I1P40", 1, "PRE-INFUSION", None, "N", "Y", 5.0, 2.0, 3.0, 150.0),  # 5 - 2
        ("I1P240", 1, "PRE-INFUSION", None, "N", "Y", 2.0, 2.0, 0.0, 0.0),  # 2 - 2
        ("I2PRE", 2, "PRE-INFUSION", "Y", "N", "Y", 0.0, 0.0, None, None),
        ("I2P40", 2, "PRE-INFUSION", None, "N", "Y", 0.0, 0.0, 0.0, None),  # BASE 0: PCHG not defined
        ("I3P40", 3, "PRE-INFUSION", None, "N", "Y", 3.0, None, None, None),
    ],
}
ITEMS = ",".join(f"cadss_{n}" for n in range(1, 24))


def _row(subject: str, visit: str, total: int | None) -> str:
    cells = [""] * 23 if total is None else [str(min(4, max(0, total - 4 * i))) for i in range(23)]
    return ",".join([subject, visit, *cells])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("infbase")
    (folder / "study.yaml").write_text(STUDY)
    (folder / "randomization.csv").write_text("record_id,arm\nS1,1\nS2,0\n")
    lines = [f"record_id,visit,{ITEMS}"] + [_row(s, v, x) for s, vals in VALUES.items() for v, x in vals.items()]
    (folder / "cadss.csv").write_text("\n".join(lines) + "\n")
    db = folder / "w.duckdb"
    build_study(folder, db)
    return folder, db


def test_per_infusion_base_and_change_match_hand_computation(built):
    _, db = built
    with warehouse.connect(db, read_only=True) as con:
        for subject, expected in EXPECTED.items():
            rows = con.execute(
                "select avisit, infno, basetype, ablfl, anl01fl, anl02fl, aval, base, chg, pchg from analysis.adqs "
                "where usubjid = ? and paramcd = 'CADSSTOT' order by avisitn",
                [subject],
            ).fetchall()
            assert [r[:9] for r in rows] == [e[:9] for e in expected], subject
            assert [r[9] for r in rows] == pytest.approx([e[9] for e in expected], nan_ok=False), subject


def test_time_point_records_take_no_response_flag(built):
    _, db = built
    with warehouse.connect(db, read_only=True) as con:
        flags = con.execute(
            "select distinct crit1fl from analysis.adqs where paramcd = 'CADSSTOT' and infno is not null"
        ).fetchall()
    assert flags == [(None,)]


def test_time_point_records_stay_out_of_the_efficacy_rows(built):
    from pipelines.stats.efficacy import _Run

    folder, db = built
    with warehouse.connect(db, read_only=True) as con:
        run = _Run(con, load_manifest(folder), "t", None, None, False)
    rows = run.rows.filter(run.rows["paramcd"] == "CADSSTOT").sort("usubjid")
    assert rows["avisit"].to_list() == ["W2", "W2"]
    assert rows["base"].to_list() == [2.0, 4.0]  # the study baseline, never a pre-infusion rating
    assert rows["chg"].to_list() == [4.0, -3.0]


def test_gx_baseline_rule_holds_with_one_baseline_per_infusion(built):
    """The ADQS suite's 'at most one ABLFL per subject x parameter' counts per BASETYPE x infusion."""
    import json
    from pathlib import Path

    from pipelines.core import validation

    _, db = built
    suite = json.loads((Path(__file__).parents[2] / "expectations" / "adqs.json").read_text())
    query = validation.suite_query(suite)  # meta.query with {rows} read as analysis.adqs
    with warehouse.connect(db, read_only=True) as con:
        most = con.execute(f"select max(n_baseline_records) from ({query})").fetchone()[0]
    assert most == 1


def test_report_peak_cadss_matches_hand_computation(built):
    """The HTML report's safety section on this study. By hand from VALUES: S1 (KET) post-infusion totals
    21, 4, 13, 9 -> peak 21; changes from its infusion's pre rating 18, 1, 12 (I3 has no pre) -> largest 18.
    S2 (MID) 5, 2, 0, 3 -> peak 5; changes 3, 0, 0 -> largest 3. One participant per arm: the mean alone (no SD)."""
    from pipelines.report.data import load_study
    from pipelines.report.safety import safety_section

    _, db = built
    with warehouse.connect(db, read_only=True) as con:
        section = safety_section(con, load_study(con, "INFB1", None))
    assert section["teae"] is None and section["durability"] is None and section["peaks"]["sbp"] == []
    rows = [(r["arm"], r["n"], r["peak"], r["max"], r["chg"]) for r in section["peaks"]["cadss"]]
    assert rows == [("KET", 1, "21.0", "21", "18.0"), ("MID", 1, "5.0", "5", "3.0")]  # mean only without an SD
