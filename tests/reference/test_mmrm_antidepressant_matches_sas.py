"""HAMD-17 antidepressant MMRM (DIA working group example) against SAS PROC MIXED with DDFM=KR.

Source: insightsengineering/rbmi misc/antidepressant_analysis/results_SAS.pdf, pages 1-4 (program
antidepressant_data_analysis.sas), as recorded in reference_cases.json case
antidepressant_mmrm_us_reml_kr. SAS's model is CHANGE = BASVAL*VISIT THERAPY*VISIT (13 columns,
rank 12); the R formula below spans the same column space.
"""

from __future__ import annotations

import polars as pl
import pytest
from tolerances import NEG2LL_ABS_FULL, PRINTED_1DP_ABS, df_rounded_ok, estimate_ok, f_ok, se_ok

from pipelines.stats.mmrm import fit_mmrm

R_FORMULA = "CHANGE ~ BASVAL*VISIT + THERAPY*VISIT + us(VISIT | PATIENT)"
# SAS's own parameterisation: no main effects, so THERAPY:VISIT and BASVAL:VISIT carry 7 and 4 df.
SAS_FORMULA = "CHANGE ~ BASVAL:VISIT + THERAPY:VISIT + us(VISIT | PATIENT)"


@pytest.fixture(scope="module")
def fit(antidepressant):
    return fit_mmrm(antidepressant, R_FORMULA)


def test_antidepressant_fit_statistics_matches_sas(fit):
    # results_SAS.pdf: -2 Res Log Likelihood 3494.20285008 (iteration history), AIC 3514.2, AICC
    # 3514.6, BIC 3545.7; 608 observations, 172 patients.
    assert fit.converged
    assert abs(fit.neg2_loglik - 3494.20285008) <= NEG2LL_ABS_FULL
    assert abs(fit.aic - 3514.2) <= PRINTED_1DP_ABS
    assert abs(fit.aicc - 3514.6) <= PRINTED_1DP_ABS
    assert abs(fit.bic - 3545.7) <= PRINTED_1DP_ABS
    assert (fit.n_obs, fit.n_subjects) == (608, 172)


def test_antidepressant_week6_difference_matches_sas(fit):
    # results_SAS.pdf, Differences of LSMEANS (DRUG, VISIT 7) - (PLACEBO, VISIT 7):
    # estimate -2.8018, SE 1.1163, df 150, t -2.51, p 0.0131.
    row = (
        fit.lsmean_contrasts("THERAPY", by="VISIT", ref="PLACEBO")
        .filter(fit.lsmean_contrasts("THERAPY", by="VISIT", ref="PLACEBO")["VISIT"] == "7")
        .row(0, named=True)
    )
    assert estimate_ok(row["estimate"], -2.8018, 1.1163)
    assert se_ok(row["std_error"], 1.1163)
    assert df_rounded_ok(row["df"], 150)
    assert round(row["statistic"], 2) == -2.51
    assert round(row["p_value"], 4) == 0.0131


def test_antidepressant_lsmeans_matches_sas(fit, reference_cases):
    case = reference_cases["antidepressant_mmrm_us_reml_kr"]  # LSMEANS THERAPY*VISIT at mean BASVAL
    ls = fit.lsmeans("THERAPY", by="VISIT")
    for ref in case["lsmeans"]:
        row = ls.filter((ls["THERAPY"] == ref["THERAPY"]) & (ls["VISIT"] == ref["VISIT"])).row(0, named=True)
        assert estimate_ok(row["estimate"], ref["estimate"], ref["se"]), ref
        assert se_ok(row["std_error"], ref["se"]), ref
        assert df_rounded_ok(row["df"], ref["df"]), ref


def test_antidepressant_visitwise_differences_matches_sas(fit, reference_cases):
    case = reference_cases["antidepressant_mmrm_us_reml_kr"]
    diffs = fit.lsmean_contrasts("THERAPY", by="VISIT", ref="PLACEBO")
    for ref in case["lsmean_differences"]:
        if ref["lhs"]["VISIT"] != ref["rhs"]["VISIT"]:
            continue
        row = diffs.filter(diffs["VISIT"] == ref["lhs"]["VISIT"]).row(0, named=True)
        assert estimate_ok(row["estimate"], ref["estimate"], ref["se"]), ref
        assert se_ok(row["std_error"], ref["se"]), ref
        assert df_rounded_ok(row["df"], ref["df"]), ref


def test_antidepressant_covariance_matches_sas(fit, reference_cases):
    case = reference_cases["antidepressant_mmrm_us_reml_kr"]  # printed UN(i,j), visits 4..7
    cov = fit.covariance["all"]
    assert cov["labels"] == ["4", "5", "6", "7"]
    for i, row in enumerate(case["covariance_matrix"]["matrices"]["all"]):
        for j, v in enumerate(row):
            assert abs(cov["matrix"][i][j] - v) <= 2e-4 * max(abs(v), 1.0)


def test_antidepressant_sas_parameterisation_type3_matches_sas(antidepressant):
    # results_SAS.pdf, Type 3 Tests: basval*VISIT 4 / 153, F 6.46; VISIT*THERAPY 7 / 206, F 1.99.
    res = fit_mmrm(antidepressant, SAS_FORMULA)
    assert abs(res.neg2_loglik - 3494.20285008) <= NEG2LL_ABS_FULL
    t3 = {r["term"]: r for r in res.type3().iter_rows(named=True)}
    assert t3["BASVAL:VISIT"]["num_df"] == 4 and df_rounded_ok(t3["BASVAL:VISIT"]["den_df"], 153)
    assert f_ok(t3["BASVAL:VISIT"]["f_value"], 6.46)
    assert t3["THERAPY:VISIT"]["num_df"] == 7 and df_rounded_ok(t3["THERAPY:VISIT"]["den_df"], 206)
    assert f_ok(t3["THERAPY:VISIT"]["f_value"], 1.99)
    # same fitted model: same key result
    row = res.lsmean_contrasts("THERAPY", by="VISIT", ref="PLACEBO").row(3, named=True)
    assert estimate_ok(row["estimate"], -2.8018, 1.1163) and se_ok(row["std_error"], 1.1163)


def test_antidepressant_rank_deficient_design_matches_sas(antidepressant):
    """A deliberately rank-deficient parameterisation of the same model (therapy-by-visit cells,
    then VISIT again, then per-visit BASVAL slopes): the three VISIT columns are aliased with the
    cell indicators before them, are reported as not estimable (NaN), and every estimable result
    is still SAS's."""
    cell = (antidepressant["VISIT"].cast(str) + "_" + antidepressant["THERAPY"]).alias("CELL")
    data = antidepressant.with_columns(cell)
    res = fit_mmrm(data, "CHANGE ~ CELL + VISIT + BASVAL:VISIT + us(VISIT | PATIENT)")
    assert any("aliased" in w for w in res.warnings)
    assert abs(res.neg2_loglik - 3494.20285008) <= NEG2LL_ABS_FULL
    coefs = res.coefficients
    assert coefs.filter(coefs["estimate"].is_nan())["term"].to_list() == ["VISIT5", "VISIT6", "VISIT7"]
    # (DRUG, VISIT 7) - (PLACEBO, VISIT 7) from the cell LS means at VISIT 7; cells that cannot
    # occur (7_DRUG at VISIT 4) are not estimable, so averaging over VISIT gives NaN, as in SAS.
    ls = res.lsmeans("CELL", by="VISIT").filter(pl.col("VISIT") == "7")
    drug = ls.filter(pl.col("CELL") == "7_DRUG").row(0, named=True)["estimate"]
    pbo = ls.filter(pl.col("CELL") == "7_PLACEBO").row(0, named=True)["estimate"]
    assert estimate_ok(drug - pbo, -2.8018, 1.1163)
    assert res.lsmeans("CELL")["estimate"].is_nan().all()
