"""Cross-checks against R nlme::gls for models no SAS listing here covers (AR(1) and ML UN with
covariates). Numbers produced during development with R 4.2.2, nlme 3.1.162:

    d <- read.csv("fev_data.csv", na.strings = "NA"); d <- d[!is.na(d$FEV1), ]
    d$SEX <- factor(d$SEX, levels = c("Male", "Female")); (RACE, ARMCD, AVISIT: factor())
    f1 <- gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, data = d,
              correlation = corAR1(form = ~ VISITN | USUBJID), method = "REML")
    f2 <- gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, data = d,
              correlation = corSymm(form = ~ VISITN | USUBJID),
              weights = varIdent(form = ~ 1 | AVISIT), method = "ML")
    -2 * logLik(f), coef(f), sqrt(diag(vcov(f))), f1$sigma^2, coef(f1$modelStruct$corStruct, FALSE)
"""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.stats.mmrm import fit_mmrm

FIXED = "FEV1 ~ RACE + SEX + ARMCD * AVISIT"
# order of R's coef(): (Intercept), RACEBlack.., RACEWhite, SEXFemale, ARMCDTRT, AVISITVIS2..4, ARMCDTRT:AVISITVIS2..4


def test_ar1_reml_with_covariates_matches_nlme(fev):
    res = fit_mmrm(fev, FIXED + " + ar1(AVISIT | USUBJID)", ref={"SEX": "Male"}, df_method="satterthwaite")
    # f1: -2 logLik 3525.07876301; sigma^2 45.08299175; rho 0.25193572
    assert res.neg2_loglik == pytest.approx(3525.07876301, abs=1e-6)
    assert res.covariance_parameters["estimate"].to_list() == pytest.approx(
        [0.25193572, 45.08299175], rel=1e-6
    )
    coef = [
        31.18470180,
        0.44119727,
        5.42853992,
        0.45496654,
        3.63053244,
        4.91011336,
        10.28798240,
        15.12256072,
        0.01673268,
        -0.95483533,
        0.46718209,
    ]
    se = [
        1.00521140,
        0.77179362,
        0.84693731,
        0.66246726,
        1.15957139,
        1.03268317,
        1.10429743,
        1.14148782,
        1.45701398,
        1.60849387,
        1.62073561,
    ]
    assert np.allclose(res.coefficients["estimate"].to_numpy(), coef, atol=1e-6)
    assert np.allclose(res.coefficients["std_error"].to_numpy(), se, rtol=1e-6)


def test_un_ml_with_covariates_matches_nlme(fev):
    res = fit_mmrm(
        fev, FIXED + " + us(AVISIT | USUBJID)", ref={"SEX": "Male"}, reml=False, df_method="satterthwaite"
    )
    # f2: -2 logLik 3397.57219663
    assert res.neg2_loglik == pytest.approx(3397.57219663, abs=1e-5)
    coef = [
        30.77480759,
        1.53612657,
        5.64360031,
        0.32737826,
        3.77505667,
        4.83759316,
        10.34585003,
        15.04800596,
        -0.03922799,
        -0.69222835,
        0.62501368,
    ]
    se_nlme = [
        0.88580746,
        0.62098538,
        0.66165153,
        0.52893011,
        1.07518492,
        0.80309264,
        0.82413095,
        1.31624570,
        1.13127903,
        1.18961997,
        1.85578386,
    ]
    se = res.coefficients["std_error"].to_numpy()
    assert np.allclose(res.coefficients["estimate"].to_numpy(), coef, atol=0.01 * se)  # flat ML surface
    # nlme scales an ML fit's vcov by N / (N - p) (537 / 526); SAS and we use the ML covariance as is
    # (the SAS ML listings in test_mmrm_structures_match_sas.py confirm ours).
    assert np.allclose(se * np.sqrt(537 / 526), se_nlme, rtol=2e-5)
