"""Per-infusion time points of any instrument (CADSS/BPRS around each dose) reach ADQS as ATPT.

Visits of phase infusion carry the infusion number, the time point and the minutes from the start of
the infusion; ADQS takes them as INFNO / ATPT / ATPTN, and the efficacy models ignore such visits.
Checked here with MADRS (the mechanics are generic over instruments); expected values are the ones
written into the hand-built manifest and file below.
"""

from __future__ import annotations

import pytest

from pipelines.core import warehouse
from pipelines.core.build import build_study
from pipelines.core.manifest import load_manifest

STUDY = """\
study_id: ATPT1
arms:
  - {id: KET, role: experimental, codes: ["1"]}
  - {id: MID, role: control, codes: ["0"]}
visits:
  - {id: BL, day: 0, baseline: true}
  - {id: I1PRE, day: 0, phase: infusion, infusion: 1, timepoint: PRE-INFUSION, elapsed_min: -15}
  - {id: I1POST, day: 0, phase: infusion, infusion: 1, timepoint: 40 MIN, elapsed_min: 40}
  - {id: I2POST, day: 2, phase: infusion, infusion: 2, timepoint: 40 MIN, elapsed_min: 40}
  - {id: W2, day: 14, primary: true}
sources:
  - {file: randomization.csv, kind: randomization, columns: {subject: record_id, arm: arm}}
  - {file: madrs.csv, kind: madrs, columns: {subject: record_id, visit: visit}, items: "madrs_{n}"}
"""
ITEMS = ",".join(f"madrs_{n}" for n in range(1, 11))


def row(s, visit, v):
    return f"{s},{visit}," + ",".join([str(v)] * 10)


MADRS = "\n".join(
    [f"record_id,visit,{ITEMS}"]
    + [row(s, vis, v) for s in ("S1", "S2", "S3", "S4") for vis, v in (("BL", 3), ("I1PRE", 3), ("I1POST", 1), ("I2POST", 2), ("W2", 2))]
) + "\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atpt")
    (folder / "study.yaml").write_text(STUDY)
    (folder / "randomization.csv").write_text("record_id,arm\nS1,1\nS2,1\nS3,0\nS4,0\n")
    (folder / "madrs.csv").write_text(MADRS)
    db = folder / "w.duckdb"
    build_study(folder, db)
    return folder, db


def test_adqs_carries_infusion_time_points(built):
    _, db = built
    with warehouse.connect(db, read_only=True) as con:
        rows = con.execute(
            "select avisit, infno, atpt, atptn, aval from analysis.adqs where usubjid = 'S1' and paramcd = 'MADRSTOT' "
            "order by avisitn"
        ).fetchall()
    assert rows == [
        ("BL", None, None, None, 30.0),
        ("I1PRE", 1, "PRE-INFUSION", -15, 30.0),
        ("I1POST", 1, "40 MIN", 40, 10.0),
        ("I2POST", 2, "40 MIN", 40, 20.0),
        ("W2", None, None, None, 20.0),
    ]


def test_infusion_visits_stay_out_of_the_efficacy_models(built):
    from pipelines.stats.efficacy import _Run

    folder, db = built
    manifest = load_manifest(folder)
    assert [v.id for v in manifest.treatment_visits] == ["BL", "W2"]
    with warehouse.connect(db, read_only=True) as con:
        run = _Run(con, manifest, "t", None, None, False)
    assert run.post_visits == ["W2"]
    assert set(run.rows["avisit"].to_list()) == {"W2"}


def test_infusion_fields_belong_to_infusion_visits():
    from pipelines.core.errors import ManifestError
    from pipelines.core.manifest import parse_manifest

    bad = STUDY.replace("{id: W2, day: 14, primary: true}", "{id: W2, day: 14, primary: true, infusion: 3}")
    with pytest.raises(ManifestError, match="are for visits of phase infusion"):
        parse_manifest(bad)
