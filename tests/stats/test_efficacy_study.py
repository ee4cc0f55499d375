"""run_efficacy end to end on simulated studies built with build_study (no Dagster): the Feder-sized
demo, a null trial, a large trial that must recover the simulator's effects, and a single-arm study.

Expected effects come from the simulator's calibration targets (Feder et al. 2021, Am J Psychiatry
178:193-202, shared/docs/domain.md section 1): CAPS-5 week-2 difference -11.88; ketamine effect in
clusters B, C, D and none in E (pipelines/simulate/model.py, ``ket_clusters``). Counts and SDs are
checked with independent SQL on analysis.adqs, never with the code under test."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from pipelines.core import warehouse
from pipelines.core.build import build_study
from pipelines.core.manifest import load_manifest
from pipelines.simulate import write_study
from pipelines.stats.efficacy import run_efficacy

CONTRACT = {
    "model_fits": ["study_id", "paramcd", "model", "covariance", "estimation", "df_method", "converged",
                   "neg2_loglik", "aic", "n_subjects", "n_obs", "warnings"],
    "lsmeans": ["study_id", "paramcd", "model", "trtp", "avisit", "estimate", "std_error", "df", "conf_low",
                "conf_high"],
    "treatment_effects": ["study_id", "paramcd", "model", "avisit", "is_primary", "estimate", "std_error", "df",
                          "df_method", "conf_low", "conf_high", "p_value", "p_adjusted", "adjust_method",
                          "cohens_d", "run_id"],
    "responders": ["study_id", "paramcd", "criterion", "trtp", "n_responders", "n_evaluable", "proportion",
                   "risk_difference", "conf_low", "conf_high", "p_value", "test"],
}  # fmt: skip  (docs/contract.md, "The warehouse")
PARAMCDS = ["CAPS5TOT", "CAPS5B", "CAPS5C", "CAPS5D", "CAPS5E", "PCL5TOT", "PCL5B", "PCL5C", "PCL5D", "PCL5E",
            "MADRSTOT"]  # fmt: skip
FEDER_CAPS5_W2_DIFF = -11.88  # Feder 2021
TOL_DIFF_400 = 2.5  # per_arm 400: SE about 0.66 (brief: within +/- 2.5)
TOL_E_400 = 1.0  # cluster E has no true effect; SE about 0.25 at 400 per arm
MAX_NULL_Z = 3.5


def _build(tmp_path, name, **kw):
    study = write_study(tmp_path / name, formats=("wide",), **kw)
    db = tmp_path / f"{name}.duckdb"
    build_study(study, db)
    return study, db


@pytest.fixture(scope="module")
def feder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feder")
    study, db = _build(tmp, "demo", per_arm=15, seed=20210105)
    con = duckdb.connect(str(db))
    seen = []
    out = run_efficacy(con, load_manifest(study), "run-feder", progress=seen.append)
    yield out, con, seen
    con.close()


def test_tables_have_the_contract_columns_first_and_every_row_its_ids(feder):
    out, _, seen = feder
    for name, cols in CONTRACT.items():
        frame = getattr(out, name)
        assert frame.columns[: len(cols)] == cols, name
        assert frame.height > 0, name
        assert set(frame["study_id"]) == {"FEDERSIM-20210105"}, name
        assert set(frame["run_id"]) == {"run-feder"}, name
    assert any(s.startswith("CAPS5TOT") for s in seen)  # progress was reported


def test_every_parameter_has_the_three_models_and_the_primary_converged(feder):
    out, con, _ = feder
    fits = out.model_fits
    assert fits.filter(pl.col("model") == "mmrm")["paramcd"].to_list() == PARAMCDS
    assert fits.filter(pl.col("model") == "mmrm")["converged"].all()
    assert set(fits["model"]) == {"mmrm", "lmm_ri", "lmm_rs"}
    caps = fits.filter((pl.col("paramcd") == "CAPS5TOT") & (pl.col("model") == "mmrm")).row(0, named=True)
    # independent count of the analysis rows: post-baseline ANL01FL records with CHG
    n_obs, n_subj = con.execute("""
        select count(*), count(distinct usubjid) from analysis.adqs
        where paramcd = 'CAPS5TOT' and anl01fl = 'Y' and chg is not null and avisitn > 0
    """).fetchone()
    assert (caps["n_obs"], caps["n_subjects"]) == (n_obs, n_subj)
    assert (caps["estimation"], caps["df_method"]) == ("REML", "kenward-roger")


def test_treatment_effects_per_visit_with_sign_primary_flag_and_cohens_d(feder):
    out, con, _ = feder
    te = out.treatment_effects
    assert te.group_by("paramcd", "model", "avisit").len()["len"].max() == 1
    assert set(te.filter(pl.col("is_primary"))["avisit"]) == {"W2"}
    assert set(te["avisit"]) == {"D1", "W1", "W2"}
    p = te.filter((pl.col("paramcd") == "CAPS5TOT") & (pl.col("model") == "mmrm") & pl.col("is_primary")).row(
        0, named=True
    )
    assert p["estimate"] < 0 and p["conf_low"] < p["estimate"] < p["conf_high"]  # ketamine better
    assert p["contrast"] == "KET - MID" and p["adjust_method"] == "none" and p["p_adjusted"] is None
    # pooled baseline SD by independent SQL: sqrt(sum (n - 1) var / sum (n - 1)) over the arms
    sd = con.execute("""
        select sqrt(sum((n - 1) * v) / sum(n - 1)) from (
            select trtp, count(*) as n, var_samp(aval) as v from analysis.adqs
            where paramcd = 'CAPS5TOT' and ablfl = 'Y' and aval is not null group by trtp)
    """).fetchone()[0]
    assert p["effect_size_sd"] == pytest.approx(sd, rel=1e-12)
    assert p["cohens_d"] == pytest.approx(p["estimate"] / sd, rel=1e-12)
    assert p["cohens_d_conf_high"] == pytest.approx(p["conf_high"] / sd, rel=1e-12)
    ri = te.filter((pl.col("paramcd") == "CAPS5TOT") & (pl.col("model") == "lmm_ri") & pl.col("is_primary"))
    # random-effects sensitivity models carry small-sample df (Kenward-Roger), not z tests
    assert ri["df_method"].to_list() == ["kenward-roger"] and 0 < ri["df"].to_list()[0] < 200


def test_testing_hierarchy_on_the_primary_mmrm_at_the_primary_visit(feder):
    out, _, _ = feder
    fam = out.treatment_effects.filter(pl.col("family").is_not_null())
    assert set(fam["family"]) == {
        "hierarchy 1: primary endpoint CAPS5TOT at W2", "hierarchy 2: CAPS-5 clusters at W2",
        "hierarchy 3: secondary totals at W2",
    }
    assert set(fam["model"]) == {"mmrm"} and set(fam["avisit"]) == {"W2"}
    gated = fam.filter(pl.col("p_adjusted").is_not_null())
    assert set(gated["adjust_method"]) == {"holm + hierarchy"}
    assert (gated["p_adjusted"] >= gated["p_value"]).all()
    assert any("Testing hierarchy" in n for n in out.notes)


def test_responders_count_what_adqs_says(feder):
    out, con, _ = feder
    r = out.responders.filter((pl.col("paramcd") == "CAPS5TOT") & (pl.col("criterion") == "response"))
    obs = r.filter(pl.col("missing_data") == "observed")
    counts = dict(
        ((arm, (x, n)) for arm, x, n in con.execute("""
            select trtp, count(*) filter (where crit1fl = 'Y'), count(crit1fl) from analysis.adqs
            where paramcd = 'CAPS5TOT' and avisit = 'W2' and anl01fl = 'Y' group by trtp""").fetchall())
    )
    for arm in ("KET", "MID"):
        row = obs.filter(pl.col("trtp") == arm).row(0, named=True)
        assert (row["n_responders"], row["n_evaluable"]) == counts[arm]
    cmp = obs.filter(pl.col("test") == "Fisher exact (two-sided)").row(0, named=True)
    (xk, nk), (xm, nm) = counts["KET"], counts["MID"]
    assert cmp["trtp"] == "KET - MID" and cmp["risk_difference"] == pytest.approx(xk / nk - xm / nm)
    assert cmp["conf_low"] < cmp["risk_difference"] < cmp["conf_high"]
    assert obs.filter(pl.col("test") == "logistic (baseline-adjusted)").height == 1
    nri = r.filter((pl.col("missing_data") == "non-responder imputation") & (pl.col("trtp") == "KET"))
    assert nri["n_evaluable"].to_list() == [15]  # every randomized ketamine subject


def test_results_tables_are_documented_when_written(feder):
    """Every column the efficacy step writes is described in sql/results/_schema.yml (what publishing
    turns into COMMENTs); written as into the published warehouse, the comments are there."""
    out, con, _ = feder
    warehouse.ensure_schemas(con)
    for table, frame in out.tables().items():
        warehouse.write_frame(con, table, frame)
    assert warehouse.undocumented(con, "results") == []
    for table, frame in out.tables().items():
        warehouse.write_frame(con, table, frame, documented=True)
    undocumented = con.execute(
        "select table_name, column_name from duckdb_columns() where schema_name = 'results' and comment is null"
    ).fetchall()
    assert undocumented == []
    assert con.execute(
        "select count(*) from duckdb_tables() where schema_name = 'results' and comment is not null"
    ).fetchone()[0] == 5  # model_fits, lsmeans, treatment_effects, responders, missing_items


def test_null_trial_gives_contrasts_near_zero(tmp_path):
    study, db = _build(tmp_path, "null", per_arm=100, seed=31, effect_scale=0.0)
    with duckdb.connect(str(db), read_only=True) as con:
        out = run_efficacy(con, load_manifest(study), "null", sensitivity=False)
    w2 = out.treatment_effects.filter(pl.col("is_primary"))
    assert w2["paramcd"].to_list() == PARAMCDS
    z = (w2["estimate"] / w2["std_error"]).abs()
    assert (z < MAX_NULL_Z).all(), w2.select("paramcd", "estimate", "std_error")


def test_large_trial_recovers_the_simulated_effects(tmp_path):
    study, db = _build(tmp_path, "large", per_arm=400, seed=1)
    with duckdb.connect(str(db), read_only=True) as con:
        out = run_efficacy(
            con, load_manifest(study), "large", sensitivity=False,
            parameters=["CAPS5TOT", "CAPS5B", "CAPS5C", "CAPS5D", "CAPS5E"],
        )  # fmt: skip
    w2 = {r["paramcd"]: r for r in out.treatment_effects.filter(pl.col("is_primary")).iter_rows(named=True)}
    assert abs(w2["CAPS5TOT"]["estimate"] - FEDER_CAPS5_W2_DIFF) < TOL_DIFF_400
    for cluster in ("CAPS5B", "CAPS5C", "CAPS5D"):
        assert w2[cluster]["conf_high"] < 0, cluster
    assert abs(w2["CAPS5E"]["estimate"]) < TOL_E_400


def _single_arm_study(tmp_path):
    """The simulated study cut down to its ketamine arm: an open-label single-arm study."""
    study = write_study(tmp_path / "single", per_arm=15, seed=7, formats=("wide",))
    rand = pl.read_csv(study / "randomization.csv", infer_schema=False).filter(pl.col("arm") == "1")
    rand.write_csv(study / "randomization.csv")
    for f in study.glob("*_redcap.csv"):
        t = pl.read_csv(f, infer_schema=False)
        t.filter(pl.col("record_id").is_in(rand["record_id"].to_list())).write_csv(f)
    text = (study / "study.yaml").read_text()
    text = text.replace("  - id: MID\n    label: Midazolam 0.045 mg/kg\n    role: control\n", "")
    text = text.replace('arm: {"1": KET, "0": MID}', 'arm: {"1": KET}')
    (study / "study.yaml").write_text(text)
    return study


def test_single_arm_study_runs_end_to_end(tmp_path):
    study = _single_arm_study(tmp_path)
    db = tmp_path / "single.duckdb"
    build_study(study, db)
    manifest = load_manifest(study)
    assert manifest.single_arm
    with duckdb.connect(str(db), read_only=True) as con:
        out = run_efficacy(con, manifest, "single")
        chg = con.execute("""
            select avg(chg), stddev_samp(chg), count(chg) from analysis.adqs
            where paramcd = 'CAPS5TOT' and avisit = 'W2' and anl01fl = 'Y'""").fetchone()
    assert out.notes[0].startswith("single-arm study (KET): no between-arm contrast")
    assert set(out.treatment_effects["model"]) == {"within_arm"}
    assert set(out.model_fits["model"]) == {"mmrm"} and out.model_fits["converged"].all()
    assert set(out.lsmeans["trtp"]) == {"KET"}
    w2 = out.treatment_effects.filter((pl.col("paramcd") == "CAPS5TOT") & pl.col("is_primary")).row(0, named=True)
    mean, sd, n = chg
    assert w2["estimate"] == pytest.approx(mean) and w2["df"] == n - 1
    assert w2["cohens_d"] == pytest.approx(mean / sd)  # d_z
    assert w2["contrast"] == "KET (within arm)" and w2["effect_size_method"].startswith("d_z")
    resp = out.responders
    assert set(resp["trtp"]) == {"KET"} and resp["risk_difference"].null_count() == resp.height
