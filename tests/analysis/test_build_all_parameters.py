"""End to end through build_study with all three instruments in one wide export: every contract PARAMCD
(plus CAPS5DIS) reaches analysis.adqs, and wherever items are complete each total and cluster equals the
plain sum of its items in staging.item_responses (checked with an independent SQL sum, not the model)."""

from __future__ import annotations

import random

from pipelines.core import warehouse
from pipelines.core.build import build_study
from tests.conftest import ARMS_VISITS, query, write_study

CONTRACT_PARAMCDS = {"CAPS5TOT", "CAPS5B", "CAPS5C", "CAPS5D", "CAPS5E",
                     "PCL5TOT", "PCL5B", "PCL5C", "PCL5D", "PCL5E", "MADRSTOT"}

COLUMNS = ([f"pcl5_{i}" for i in range(1, 21)] + [f"caps5_{i}" for i in range(1, 21)] + ["caps5_29", "caps5_30"]
           + [f"madrs_{i}" for i in range(1, 11)])
MAX = {"pcl5": 4, "caps5": 4, "madrs": 6}


def export(seed: int = 11, n_subjects: int = 12) -> tuple[str, str]:
    rnd = random.Random(seed)
    lines = ["subject,event," + ",".join(COLUMNS)]
    for s in range(1, n_subjects + 1):
        for event in ("baseline_arm_1", "week_1_arm_1", "week_2_arm_1"):
            cells = []
            for col in COLUMNS:
                top = MAX[col.split("_")[0]]
                cells.append("" if rnd.random() < 0.03 else str(rnd.randint(0, top)))
            lines.append(f"P{s:02d},{event}," + ",".join(cells))
    rand = "id,arm\n" + "\n".join(f"P{s:02d},{s % 2}" for s in range(1, n_subjects + 1)) + "\n"
    return "\n".join(lines) + "\n", rand


MANIFEST = f"""\
study_id: ALL3
{ARMS_VISITS}
sources:
  - {{file: rand.csv, kind: randomization, columns: {{subject: id, arm: arm}}}}
  - file: ratings.csv
    kind: assessments
    columns: {{subject: subject, visit: event}}
    instruments:
      pcl5: {{items: "pcl5_{{n}}"}}
      caps5: {{items: [{", ".join(f"caps5_{i}" for i in range(1, 21))}, caps5_29, caps5_30]}}
      madrs: {{items: "madrs_{{n}}"}}
"""


def test_every_parameter_and_item_sums_where_complete(tmp_path):
    data, rand = export()
    study = write_study(tmp_path / "study", MANIFEST, {"ratings.csv": data, "rand.csv": rand})
    db = tmp_path / "w.duckdb"
    result, _ = build_study(study, db)
    assert [r.error for r in result.reads] == [None, None]
    present = {r[0] for r in query(db, "select distinct paramcd from analysis.adqs where aval is not null")}
    assert CONTRACT_PARAMCDS | {"CAPS5DIS"} == present
    # independent check: sum the staged items of each score (ref.scores lists them) where all are answered
    checked, differing = query(db, """
        with sums as (
            select i.usubjid, r.paramcd, i.visit, i.study_day,
                   count(i.value) as answered, any_value(r.n_items) as needed, sum(i.value) as item_sum
            from staging.item_responses as i
            inner join ref.scores as r on r.instrument_id = i.instrument_id and r.item = i.item
            group by all
        )
        select count(*), count(*) filter (where q.aval is distinct from s.item_sum)
        from sums as s
        inner join analysis.adqs as q
            on q.usubjid = s.usubjid and q.paramcd = s.paramcd and q.avisit = s.visit and q.ady = s.study_day
        where s.answered = s.needed
    """)[0]
    assert checked > 300 and differing == 0
    # with 3% of cells empty some scores are incomplete, and the default rule leaves them missing
    assert query(db, "select count(*) > 0, count(*) filter (where aval is not null) from analysis.adqs "
                     "where n_items_missing > 0 and paramcd <> 'CAPS5DIS'")[0] == (True, 0)
    # ABLFL exactly once per subject x parameter with a baseline value; BASE equal on all records
    assert query(db, """
        select count(*) from (
            select usubjid, paramcd, count(*) filter (where ablfl = 'Y') as n_bl, count(distinct base) as n_base
            from analysis.adqs group by all
        ) where n_bl > 1 or n_base > 1
    """) == [(0,)]
    assert query(db, "select count(*) from analysis.adqs where chg is distinct from (case when avisitn > 0 then aval - base end)") == [(0,)]
    # every analysis column is documented (publishing writes the docs as COMMENTs)
    with warehouse.connect(db, read_only=True) as con:
        assert warehouse.undocumented(con, "analysis") == []
    assert query(db, "select count(*), count(*) filter (where complfl = 'Y') > 0 from analysis.adsl") == [(12, True)]
