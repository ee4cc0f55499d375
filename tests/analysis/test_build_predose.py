"""End to end through build_study: a REDCap-style export of a ketamine trial rated on infusion day
(pre-dose and 40 min post-dose, both study day 0) with the timing column mapped as
columns.predose. The pre-dose rating is the baseline; the post-dose rating is an analysed
post-baseline record; no record is both. Totals are hand computed (20 items x the rating)."""

from __future__ import annotations

from pipelines.core.build import build_study
from tests.conftest import query, write_study

HEADER = "record_id,redcap_event_name,timing,study_day," + ",".join(f"pcl5_{i}" for i in range(1, 21))


def row(subject: str, event: str, timing: str, day: int, rating: int) -> str:
    return ",".join([subject, event, timing, str(day), *([str(rating)] * 20)])


EXPORT = "\n".join([
    HEADER,
    row("301", "infusion_1_arm_1", "pre-dose", 0, 3),            # 60: the baseline
    row("301", "infusion_1_post_arm_1", "40 min post-dose", 0, 1),  # 20: post-dose, same day
    row("301", "week_2_arm_1", "", 14, 2),                       # 40
    row("302", "infusion_1_post_arm_1", "40 min post-dose", 0, 1),  # post-dose only: no baseline
    row("302", "week_2_arm_1", "", 14, 2),
]) + "\n"

RAND = "id,arm\n301,1\n302,0\n"

MANIFEST = """\
study_id: PREDOSE1
arms:
  - {id: KET, label: Ketamine, role: experimental, codes: ["1"]}
  - {id: MID, label: Midazolam, role: control, codes: ["0"]}
visits:
  - {id: BL, label: Baseline (pre-dose), day: 0, baseline: true, codes: [infusion_1_arm_1]}
  - {id: D0P, label: Day 0 post-dose, day: 0, codes: [infusion_1_post_arm_1]}
  - {id: W2, day: 14, primary: true, codes: [week_2_arm_1]}
sources:
  - {file: rand.csv, kind: randomization, columns: {subject: id, arm: arm}}
  - file: export.csv
    kind: pcl5
    columns: {subject: record_id, visit: redcap_event_name, study_day: study_day, predose: timing}
    items: "pcl5_{n}"
analysis:
  baseline: last_on_or_before_day0
  primary_parameter: PCL5TOT
"""


def test_post_dose_day0_rating_is_not_the_baseline_end_to_end(tmp_path):
    study = write_study(tmp_path / "study", MANIFEST, {"export.csv": EXPORT, "rand.csv": RAND})
    db = tmp_path / "w.duckdb"
    result, _ = build_study(study, db)
    assert [r.error for r in result.reads] == [None, None]
    assert query(db, "select usubjid, visit, predose from staging.assessment_rows order by 1, avisitn") == [
        ("301", "BL", "Y"), ("301", "D0P", "N"), ("301", "W2", None), ("302", "D0P", "N"), ("302", "W2", None),
    ]
    assert query(db, "select usubjid, avisit, aval, base, chg, ablfl from analysis.adqs "
                     "where paramcd = 'PCL5TOT' order by usubjid, avisitn") == [
        ("301", "BL", 60.0, 60.0, None, "Y"),
        ("301", "D0P", 20.0, 60.0, -40.0, None),   # 20 - 60
        ("301", "W2", 40.0, 60.0, -20.0, None),    # 40 - 60
        ("302", "D0P", 20.0, None, None, None),    # post-dose: never a baseline
        ("302", "W2", 40.0, None, None, None),
    ]
    assert query(db, "select count(*) from analysis.adqs where ablfl = 'Y' and chg is not null") == [(0,)]
