"""End to end: an SDTM QS file holding only derived total records (no items) still gives the total
parameter, with dtype REPORTED, baseline and change."""

from __future__ import annotations

import pandas as pd
import pyreadstat

from pipelines.core.build import build_study
from tests.conftest import ARMS_VISITS, query, write_study


def test_sdtm_derived_totals_only(tmp_path):
    study = tmp_path / "study"
    (study / "sdtm").mkdir(parents=True)
    qs = pd.DataFrame(
        [("X", "QS", "S7", "PCL-5", "PCL01TOT", "40", 40.0, "BASELINE", 1.0, 0.0, "Y"),
         ("X", "QS", "S7", "PCL-5", "PCL01TOT", "20", 20.0, "WEEK 2", 3.0, 14.0, "Y")],
        columns=["STUDYID", "DOMAIN", "USUBJID", "QSCAT", "QSTESTCD", "QSORRES", "QSSTRESN", "VISIT", "VISITNUM",
                 "QSDY", "QSDRVFL"],
    )
    pyreadstat.write_xport(qs, str(study / "sdtm" / "qs.xpt"), file_format_version=5, table_name="QS")
    manifest = f"""\
study_id: TOTONLY
{ARMS_VISITS}
sources:
  - {{file: rand.csv, kind: randomization, columns: {{subject: id, arm: arm}}}}
  - {{file: sdtm/qs.xpt, kind: sdtm}}
"""
    write_study(study, manifest, {"rand.csv": "id,arm\nS7,1\n"})
    db = tmp_path / "w.duckdb"
    result, _ = build_study(study, db)
    assert [r.error for r in result.reads] == [None, None]
    assert query(db, "select paramcd, avisit, aval, base, chg, pchg, ablfl, avalmeth, n_items, n_items_missing, crit1fl, crit2fl "
                     "from analysis.adqs order by avisitn") == [
        ("PCL5TOT", "BL", 40.0, 40.0, None, None, "Y", "REPORTED", 20, 20, None, None),
        # 20 - 40 = -20, -50%: response; 20 < 33: remission
        ("PCL5TOT", "W2", 20.0, 40.0, -20.0, -50.0, None, "REPORTED", 20, 20, "Y", "Y"),
    ]
    assert query(db, "select count(*) from qc.total_mismatches") == [(0,)]
