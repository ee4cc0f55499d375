"""End to end through build_study: CAPS-5 items 21-25 read from a REDCap-style wide export and from
SDTM RS, DSM-5 diagnosis per assessment (ADQS DSMDXFL) and loss of diagnosis (CRIT3FL), checked by
hand. Ratings: see tests/analysis/test_diagnosis.py for the rule."""

from __future__ import annotations

import pandas as pd
import pyreadstat

from pipelines.core.build import build_study
from tests.conftest import ARMS_VISITS, query, write_study

CODES = ["b1", "b2", "b3", "b4", "b5", "c1", "c2", "d1", "d2", "d3", "d4", "d5", "d6", "d7",
         "e1", "e2", "e3", "e4", "e5", "e6"]
# minimum of every symptom criterion: B1, C1, D1, D2, E1, E2 at 2, the rest 1; total 26
MEETS = [2, 1, 1, 1, 1, 2, 1, 2, 2, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1]
# severity improved: only B1 and C1 still at 2 -> D and E fail; total 22
BETTER = [2, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
# (visit, symptom items, items 21-25 or None = not administered)
VISITS = {
    "101": [("baseline_arm_1", MEETS, [0, 1, 3, 2, 0]), ("week_2_arm_1", BETTER, [0, 1, 1, 1, 0])],  # lost
    "102": [("baseline_arm_1", MEETS, [0, 1, 2, 2, 2]), ("week_2_arm_1", MEETS, [0, 1, 2, 0, 0])],   # kept
    "103": [("baseline_arm_1", MEETS, [0, 1, 2, 0, 0]), ("week_2_arm_1", MEETS, None)],             # severity only
}
RAND = "id,arm\n101,1\n102,0\n103,1\n"
EXPECTED = [
    # usubjid, avisit, aval (sum of items 1-20 only), dsmdxfl, crit3fl
    ("101", "BL", 26.0, "Y", None),
    ("101", "W2", 22.0, "N", "Y"),   # D: no item >= 2, E: none; G: 23-25 at 1, 1, 0 -> loss
    ("102", "BL", 26.0, "Y", None),
    ("102", "W2", 26.0, "Y", "N"),   # every criterion still met (G by item 23 = 2)
    ("103", "BL", 26.0, "Y", None),
    ("103", "W2", 26.0, None, None),  # no items 22-25 at W2: no diagnosis flag, not evaluable
]
SQL = "select usubjid, avisit, aval, dsmdxfl, crit3fl from analysis.adqs where paramcd = 'CAPS5TOT' order by usubjid, avisitn"


def _build(study, manifest: str, files: dict[str, str], tmp_path):
    write_study(study, manifest, files)
    db = tmp_path / "w.duckdb"
    result, _ = build_study(study, db)
    assert [r.error for r in result.reads] == [None] * len(result.reads)
    return db


def test_redcap_wide_export_with_items_21_to_25(tmp_path):
    header = ["record_id", "redcap_event_name", *[f"caps5_{c}" for c in CODES],
              "caps5_f1", "caps5_f2", "caps5_g1", "caps5_g2", "caps5_g3"]
    lines = [",".join(header)]
    for subj, visits in VISITS.items():
        for event, sym, fg in visits:
            lines.append(",".join([subj, event, *map(str, sym), *(["" ] * 5 if fg is None else map(str, fg))]))
    manifest = f"""\
study_id: DXWIDE
{ARMS_VISITS}
sources:
  - {{file: rand.csv, kind: randomization, columns: {{subject: id, arm: arm}}}}
  - file: caps.csv
    kind: caps5
    columns: {{subject: record_id, visit: redcap_event_name}}
    items: "caps5_{{code_lower}}"
"""
    db = _build(tmp_path / "study", manifest, {"rand.csv": RAND, "caps.csv": "\n".join(lines) + "\n"}, tmp_path)
    assert query(db, SQL) == EXPECTED
    # the F/G items are staged as items 21-25 and never summed: n_items stays 20
    assert query(db, "select distinct n_items from analysis.adqs where paramcd = 'CAPS5TOT'") == [(20,)]
    # 6 administrations x 5 cells; 103's W2 cells are blank (received, missing)
    assert query(db, "select count(*), count(value) from staging.item_responses where item between 21 and 25") == [(30, 25)]


def test_sdtm_rs_with_items_21_to_25(tmp_path):
    study = tmp_path / "study"
    (study / "sdtm").mkdir(parents=True)
    recs = []
    visit_name = {"baseline_arm_1": "BASELINE", "week_2_arm_1": "WEEK 2"}
    for subj, visits in VISITS.items():
        for event, sym, fg in visits:
            vals = dict(enumerate(sym, start=1))
            if fg is not None:
                vals.update(dict(zip(range(21, 26), fg)))
            for n, v in vals.items():
                recs.append(("X", "RS", subj, "CAPS-5", f"CAPS5{n:02d}", str(v), float(v), visit_name[event]))
    rs = pd.DataFrame(recs, columns=["STUDYID", "DOMAIN", "USUBJID", "RSCAT", "RSTESTCD", "RSORRES", "RSSTRESN", "VISIT"])
    pyreadstat.write_xport(rs, str(study / "sdtm" / "rs.xpt"), file_format_version=5, table_name="RS")
    manifest = f"""\
study_id: DXSDTM
{ARMS_VISITS}
sources:
  - {{file: rand.csv, kind: randomization, columns: {{subject: id, arm: arm}}}}
  - {{file: sdtm/rs.xpt, kind: sdtm, columns: {{subject: USUBJID, visit: VISIT}}}}
"""
    db = _build(study, manifest, {"rand.csv": RAND}, tmp_path)
    assert query(db, SQL) == EXPECTED
    # 103 W2 has no F/G records at all: 5 x 5 = 25 item rows 21-25
    assert query(db, "select count(*) from staging.item_responses where item between 21 and 25") == [(25,)]
