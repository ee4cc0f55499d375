"""Missing-item transparency (results.missing_items) and the prorated-score sensitivity MMRM, on a
simulated REDCap study with 1.5% of item responses missing (rules M1/M2 of
pipelines.stats.efficacy.missing). Counts are checked against an independent count from the
staging item rows, not against the table's own SQL."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from pipelines.core.build import build_study
from pipelines.core.manifest import load_manifest
from pipelines.simulate import write_study
from pipelines.stats.efficacy import run_efficacy


@pytest.fixture(scope="module")
def lossy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lossy")
    study = write_study(tmp / "study", formats=("wide",), per_arm=15, seed=20210105, missing_item_rate=0.015)
    db = tmp / "w.duckdb"
    build_study(study, db)
    con = duckdb.connect(str(db))
    out = run_efficacy(con, load_manifest(study), "run-lossy", parameters=["CAPS5TOT"])
    yield out, con
    con.close()


def test_lost_scores_per_arm_and_visit_match_an_independent_count(lossy):
    out, con = lossy
    # independent: an assessment of CAPS-5 whose 20 symptom items (1..20) are not all answered
    expected = con.execute("""
        with a as (
            select r.usubjid, s.arm, r.visit, count(*) filter (where r.value is null and r.item <= 20) as n_missing
            from staging.item_responses r join staging.subjects s using (usubjid)
            where r.instrument = 'CAPS-5' group by all
        )
        select arm, visit, count(*) as assessed, count(*) filter (where n_missing > 0) as lost,
               string_agg(usubjid, ', ' order by usubjid) filter (where n_missing > 0) as who
        from a group by all
    """).fetchall()
    got = out.missing_items.filter(pl.col("paramcd") == "CAPS5TOT")
    assert got.height == len(expected) == 8  # 2 arms x 4 visits
    table = {(r["trtp"], r["avisit"]): (r["n_assessed"], r["n_lost"], r["subjects_lost"]) for r in got.iter_rows(named=True)}
    for arm, visit, assessed, lost, who in expected:
        assert table[(arm, visit)] == (assessed, lost, who)
    assert got["n_lost"].sum() > 0
    r = got.row(0, named=True)
    assert r["pct_lost"] == pytest.approx(100 * r["n_lost"] / r["n_assessed"])


def test_prorated_sensitivity_mmrm_sits_beside_the_primary(lossy):
    out, con = lossy
    fits = {r["model"]: r for r in out.model_fits.filter(pl.col("paramcd") == "CAPS5TOT").iter_rows(named=True)}
    assert {"mmrm", "mmrm_prorated"} <= set(fits)
    assert fits["mmrm_prorated"]["converged"]
    # proration recovers observations the default rule loses: at most 2 of 20 items missing is scored
    recovered = con.execute("""
        with a as (
            select r.usubjid, r.visit, count(*) filter (where r.value is null and r.item <= 20) as n_missing
            from staging.item_responses r where r.instrument = 'CAPS-5' group by all
        )
        select count(*) filter (where n_missing between 1 and 2) from a
    """).fetchone()[0]
    assert recovered > 0
    assert fits["mmrm_prorated"]["n_obs"] > fits["mmrm"]["n_obs"]
    te = out.treatment_effects.filter((pl.col("paramcd") == "CAPS5TOT") & pl.col("is_primary"))
    assert set(te["model"]) >= {"mmrm", "mmrm_prorated"}
    # the primary scores themselves are untouched: the re-derivation was rolled back
    assert con.execute("select count(*) from analysis.scores where dtype = 'PRORATED'").fetchone()[0] == 0
    assert any("prorated-score sensitivity MMRM" in n for n in out.notes)
