"""Properties of fit_mmrm that must hold whatever the data: invariances, equivalences, failures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipelines.core.errors import ModelSpecError
from pipelines.stats.lmm import fit_lmm
from pipelines.stats.mmrm import fit_mmrm

FORMULA = "FEV1 ~ RACE + ARMCD * AVISIT + us(AVISIT | USUBJID)"


@pytest.fixture(scope="module")
def base(fev):
    return fit_mmrm(fev, FORMULA)


def _same(a, b, atol=1e-6):
    assert a.neg2_loglik == pytest.approx(b.neg2_loglik, abs=1e-7)
    ca, cb = a.coefficients, b.coefficients
    assert ca["term"].to_list() == cb["term"].to_list()
    for col in ("estimate", "std_error", "df"):
        assert np.allclose(ca[col].to_numpy(), cb[col].to_numpy(), rtol=1e-6, atol=atol), col


def test_row_order_does_not_change_results(fev, base):
    shuffled = fev.sample(fraction=1.0, shuffle=True, seed=42)
    _same(base, fit_mmrm(shuffled, FORMULA))


def test_subject_labels_do_not_change_results(fev, base):
    rng = np.random.default_rng(0)
    ids = fev["USUBJID"].unique().to_list()
    new = dict(zip(ids, [f"Z{x:05d}" for x in rng.permutation(len(ids))]))
    relabelled = fev.with_columns(pl.col("USUBJID").replace_strict(new))
    _same(base, fit_mmrm(relabelled, FORMULA))


def test_visit_codes_do_not_change_results(fev, base):
    codes = {"VIS1": "a_base", "VIS2": "b_wk2", "VIS3": "c_wk4", "VIS4": "d_wk8"}  # same order
    recoded = fev.with_columns(pl.col("AVISIT").replace_strict(codes))
    res = fit_mmrm(recoded, FORMULA)
    assert res.neg2_loglik == pytest.approx(base.neg2_loglik, abs=1e-7)
    assert np.allclose(
        res.coefficients["estimate"].to_numpy(), base.coefficients["estimate"].to_numpy(), atol=1e-6
    )


def test_missing_responses_drop_rows_not_subjects(fev, base):
    assert base.n_obs == fev["FEV1"].is_not_null().sum() == 537
    assert base.n_subjects_used == 197 and base.n_subjects == 200


def test_pandas_and_polars_inputs_agree(fev, base):
    _same(base, fit_mmrm(fev.to_pandas(), FORMULA))


def test_cs_equals_random_intercept_mixedlm(sleepstudy):
    """Compound symmetry with a positive covariance is the random-intercept model: same REML
    criterion, fixed effects and SEs; CS = intercept variance, Residual = residual variance."""
    # Days is continuous in the mean; the time factor of the covariance is a copy of it (the time
    # variable of a covariance term is a factor wherever it appears).
    sleepstudy = sleepstudy.with_columns(pl.col("Days").alias("DAY"))
    cs = fit_mmrm(sleepstudy, "Reaction ~ Days + cs(DAY | Subject)")
    ri = fit_lmm(sleepstudy, "Reaction ~ Days", groups="Subject")
    assert cs.neg2_loglik == pytest.approx(ri.neg2_loglik, abs=1e-6)
    assert np.allclose(
        cs.coefficients["estimate"].to_numpy(), ri.coefficients["estimate"].to_numpy(), atol=1e-6
    )
    # MMRM coefficient SEs are KR-adjusted by default; compare the model-based ones
    res = fit_mmrm(sleepstudy, "Reaction ~ Days + cs(DAY | Subject)", df_method="satterthwaite")
    assert np.allclose(
        res.coefficients["std_error"].to_numpy(), ri.coefficients["std_error"].to_numpy(), rtol=1e-5
    )
    cs_par, resid = res.covariance_parameters["estimate"].to_list()
    vc = {(r["group"], r["name"]): r["variance"] for r in ri.variance_components.iter_rows(named=True)}
    assert cs_par == pytest.approx(vc[("Subject", "(Intercept)")], rel=1e-5)
    assert resid == pytest.approx(vc[("Residual", None)], rel=1e-5)


def test_constant_weights_scale_sigma_but_not_inference(fev, base):
    """SAS WEIGHT: V_i = W^-1/2 Sigma W^-1/2. With every weight 2 the per-observation variance
    V is unchanged, so Sigma-hat doubles (each variance parameter per unit weight), while beta, SEs,
    df and -2RLL are those of the unweighted fit."""
    res = fit_mmrm(fev.with_columns(pl.lit(2.0).alias("W2")), FORMULA, weights="W2")
    _same(base, res, atol=1e-5)
    assert np.allclose(res.covariance["all"]["matrix"], 2 * base.covariance["all"]["matrix"], rtol=1e-6)


def test_grouped_us_equals_separate_fits_when_mean_is_fully_interacted(fev):
    grouped = fit_mmrm(fev, "FEV1 ~ ARMCD * AVISIT + us(AVISIT | ARMCD / USUBJID)")
    assert grouped.converged
    for arm in ("PBO", "TRT"):
        alone = fit_mmrm(fev.filter(pl.col("ARMCD") == arm), "FEV1 ~ AVISIT + us(AVISIT | USUBJID)")
        assert np.allclose(grouped.covariance[arm]["matrix"], alone.covariance["all"]["matrix"], rtol=1e-5)


def test_ml_variances_are_smaller_and_ml_aic_counts_fixed_effects(fev):
    reml = fit_mmrm(fev, "FEV1 ~ ARMCD + cs(AVISIT | USUBJID)", df_method="satterthwaite")
    ml = fit_mmrm(fev, "FEV1 ~ ARMCD + cs(AVISIT | USUBJID)", reml=False, df_method="satterthwaite")
    assert sum(ml.covariance_parameters["estimate"]) < sum(reml.covariance_parameters["estimate"])
    assert ml.aic == pytest.approx(ml.neg2_loglik + 2 * (2 + 2))  # SAS ML AIC: q + p parameters
    assert reml.aic == pytest.approx(reml.neg2_loglik + 2 * 2)


def test_non_identified_covariance_is_reported_not_converged():
    """Visits A and B are never seen in the same subject: their UN covariance is not identified."""
    rng = np.random.default_rng(0)
    rows = [(f"S{s}", v, rng.normal()) for s in range(60) for v in (["A", "C"] if s % 2 else ["B", "C"])]
    res = fit_mmrm(pd.DataFrame(rows, columns=["id", "visit", "y"]), "y ~ visit + us(visit | id)")
    assert res.converged is False
    assert any("not positive definite" in w for w in res.warnings)
    assert res.to_dict()["converged"] is False


def test_singular_covariance_is_reported_not_converged():
    """Identical responses at two visits make Sigma singular: a warning and converged False."""
    rng = np.random.default_rng(1)
    rows = []
    for s in range(40):
        a = rng.normal()
        rows += [(f"S{s}", "A", a), (f"S{s}", "B", a), (f"S{s}", "C", rng.normal())]
    res = fit_mmrm(pd.DataFrame(rows, columns=["id", "visit", "y"]), "y ~ visit + us(visit | id)")
    assert res.converged is False
    assert res.warnings


@pytest.mark.parametrize("cov", ["us", "cs", "ar1", "adh"])
def test_degenerate_response_gives_a_warning_not_a_traceback(cov):
    rows = [(f"S{s}", v, 1.0) for s in range(10) for v in "ABC"]  # constant response
    res = fit_mmrm(pd.DataFrame(rows, columns=["id", "visit", "y"]), f"y ~ visit + {cov}(visit | id)")
    assert res.converged is False
    assert any("no residual variation" in w for w in res.warnings)
    assert res.to_dict()["converged"] is False


def test_rank_deficient_design_reports_aliased_columns(fev):
    data = fev.with_columns((2 * pl.col("FEV1_BL")).alias("BL2"))
    res = fit_mmrm(data, "FEV1 ~ FEV1_BL + BL2 + ARMCD * AVISIT + us(AVISIT | USUBJID)")
    full = fit_mmrm(fev, "FEV1 ~ FEV1_BL + ARMCD * AVISIT + us(AVISIT | USUBJID)")
    coefs = res.coefficients
    assert np.isnan(coefs.filter(pl.col("term") == "BL2")["estimate"][0])
    assert any("BL2" in w and "aliased" in w for w in res.warnings)
    kept = coefs.filter(pl.col("term") != "BL2")
    assert np.allclose(kept["estimate"].to_numpy(), full.coefficients["estimate"].to_numpy(), atol=1e-8)
    assert res.neg2_loglik == pytest.approx(full.neg2_loglik, abs=1e-8)
    t3 = {r["term"]: r for r in res.type3().iter_rows(named=True)}
    assert t3["BL2"]["num_df"] == 0


def test_empty_cell_lsmean_is_not_estimable(fev):
    data = fev.filter(~((pl.col("ARMCD") == "TRT") & (pl.col("AVISIT") == "VIS4")))
    res = fit_mmrm(data, "FEV1 ~ ARMCD * AVISIT + us(AVISIT | USUBJID)")
    ls = res.lsmeans("ARMCD", by="AVISIT")
    cell = ls.filter((pl.col("ARMCD") == "TRT") & (pl.col("AVISIT") == "VIS4"))
    assert np.isnan(cell["estimate"][0])
    assert ls.filter(pl.col("estimate").is_nan()).height == 1


def test_lsmeans_use_equal_weights_and_covariate_means():
    """Balanced toy: the LS mean of an arm is the average of the cell predictions over the other
    factor's levels (equal weights), with the covariate at its mean over analysis rows."""
    rng = np.random.default_rng(3)
    rows = []
    for s in range(40):
        arm = "A" if s < 10 else "B"  # unbalanced arms
        sex = "F" if s % 4 == 0 else "M"  # unbalanced sex
        x = rng.normal(5, 1)
        for v in ("V1", "V2"):
            rows.append(
                (f"S{s}", arm, sex, v, x, 1.0 * (arm == "B") + 2.0 * (sex == "F") + 0.5 * x + rng.normal())
            )
    d = pd.DataFrame(rows, columns=["id", "arm", "sex", "visit", "x", "y"])
    res = fit_mmrm(d, "y ~ arm + sex + x + visit + us(visit | id)")
    b = dict(zip(res.coefficients["term"], res.coefficients["estimate"]))
    xbar = d["x"].mean()
    expected_a = b["(Intercept)"] + 0.5 * b["sexM"] + b["x"] * xbar + 0.5 * b["visitV2"]
    ls = res.lsmeans("arm")
    assert ls.filter(pl.col("arm") == "A")["estimate"][0] == pytest.approx(expected_a, abs=1e-10)


@pytest.mark.parametrize(
    "formula, kwargs, fragment",
    [
        ("FEV1 ~ RACEX + us(AVISIT | USUBJID)", {}, "RACEX"),
        ("FEV1 ~ RACE + us(AVISIT | USUBJID)", {"ref": {"RACE": "Martian"}}, "Martian"),
        ("FEV1 ~ RACE + foo(AVISIT | USUBJID)", {}, "covariance term"),
        ("FEV1 ~ RACE", {}, "covariance term"),
        ("ARMCD ~ RACE + us(AVISIT | USUBJID)", {}, "numeric"),
        ("FEV1 ~ RACE + us(AVISIT | USUBJID)", {"df_method": "magic"}, "df method"),
        (
            "FEV1 ~ RACE + us(AVISIT | USUBJID)",
            {"vcov": "empirical", "df_method": "kenward-roger"},
            "empirical",
        ),
    ],
)
def test_user_errors_name_the_problem(fev, formula, kwargs, fragment):
    with pytest.raises(ModelSpecError) as info:
        fit_mmrm(fev, formula, file="fev.csv", **kwargs)
    assert fragment in str(info.value)


def test_duplicate_subject_visit_is_an_error_naming_both(fev):
    dup = pl.concat([fev, fev.slice(1, 1)])  # PT1 at VIS2 (an analysed row) twice
    with pytest.raises(ModelSpecError) as info:
        fit_mmrm(dup, FORMULA)
    assert "PT1" in str(info.value) and "VIS2" in str(info.value)


def test_spatial_exponential_on_unit_spaced_times_is_ar1(fev):
    """sp_exp on visit numbers 1..4 is AR(1) with rho = exp(-1 / range), grouped or not."""
    for group in ("", "ARMCD / "):
        sp = fit_mmrm(fev, f"FEV1 ~ ARMCD + sp_exp(VISITN | {group}USUBJID)")
        ar = fit_mmrm(fev, f"FEV1 ~ ARMCD + ar1(AVISIT | {group}USUBJID)")
        assert sp.neg2_loglik == pytest.approx(ar.neg2_loglik, abs=1e-6)
        rng, s2 = sp.covariance_parameters["estimate"].to_list()[:2]
        rho, s2_ar = ar.covariance_parameters["estimate"].to_list()[:2]
        assert np.exp(-1 / rng) == pytest.approx(rho, rel=1e-5) and s2 == pytest.approx(s2_ar, rel=1e-5)


def test_grouped_covariance_parameters_are_labelled_by_group(fev):
    res = fit_mmrm(fev, "FEV1 ~ ar1(AVISIT | ARMCD / USUBJID)")
    cp = res.covariance_parameters
    assert cp["group"].to_list() == ["PBO", "PBO", "TRT", "TRT"]
    assert cp["name"].to_list() == ["AR(1)", "Residual", "AR(1)", "Residual"]
    assert set(res.covariance) == {"PBO", "TRT"}
    long = res.covariance_long
    assert long.height == 2 * 16 and set(long["group"]) == {"PBO", "TRT"}


def test_reference_level_does_not_reorder_the_time_axis(fev):
    """AR(1) positions follow the visit order, whatever the reference level of the contrasts."""
    a = fit_mmrm(fev, "FEV1 ~ ARMCD * AVISIT + ar1(AVISIT | USUBJID)")
    b = fit_mmrm(fev, "FEV1 ~ ARMCD * AVISIT + ar1(AVISIT | USUBJID)", ref={"AVISIT": "VIS4"})
    assert abs(a.neg2_loglik - b.neg2_loglik) < 1e-6
    da = a.lsmean_contrasts("ARMCD").row(0, named=True)["df"]
    db = b.lsmean_contrasts("ARMCD").row(0, named=True)["df"]
    assert abs(da - db) < 1e-6
