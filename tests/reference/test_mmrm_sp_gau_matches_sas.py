"""Spatial Gaussian covariance (sp_gau) against SAS PROC MIXED TYPE=SP(GAU) on fev_data.

Every expected number is transcribed from a SAS listing in openpharma/mmrm, ``design/SAS/`` at
snapshot commit ec290b2695b25057b31bc98e27c39d3f498cd0d6 (Apache-2.0); the programs that made them are
in ``design/SAS/sas_sp_gau.R`` there:

* ``sas_sp_gau_ml.txt`` / ``sas_sp_gau_reml.txt``: ``MODEL FEV1 = / ddfm=satterthwaite``,
  ``REPEATED / subject=USUBJID type=sp(gau)(visitn)``, METHOD=ML / REML;
* ``sas_sp_gau2_ml.txt`` / ``sas_sp_gau2_reml.txt``: the same with ``sp(gau)(visitn visitn2)``;
* ``sas_sp_gau_kr.txt``: ``CLASS USUBJID ARMCD; MODEL FEV1 = ARMCD / ddfm=kenwardroger`` with
  ``sp(gau)(visitn visitn2)``, REML, run twice: DDFM=KR (pages 1-3) and DDFM=KR(FIRSTORDER) (pages
  4-6, SAS's "Prasad-Rao-Jeske-Kackar-Harville" SEs, our ``vcov="kenward-roger-linear"``). SAS's
  reference level of ARMCD is its last level, TRT, hence ``ref={"ARMCD": "TRT"}``.

SAS parameterises SP(GAU) as Sigma_ij = Residual * exp(-d_ij^2 / SP(GAU)^2), d the Euclidean distance
of the coordinates; our covariance parameters are SAS's, so they are compared directly.
-2 log-likelihoods are the last line of SAS's Iteration History (8 decimals).
"""

from __future__ import annotations

import pytest
from tolerances import (
    COVPARM_REL,
    NEG2LL_ABS_FULL,
    PRINTED_1DP_ABS,
    df_rounded_ok,
    estimate_ok,
    f_ok,
    se_ok,
)

from pipelines.stats.mmrm import fit_mmrm

# (coordinates, REML?, -2 log-lik (Iteration History), AIC, BIC, SP(GAU), Residual,
#  intercept, SE, df, listing)
CASES = [
    (
        "VISITN",
        False,
        3871.05833365,
        3877.1,
        3887.0,
        1.0853,
        88.4874,
        42.3539,
        0.4772,
        303,
        "sas_sp_gau_ml.txt",
    ),
    (
        "VISITN",
        True,
        3870.69846121,
        3874.7,
        3881.3,
        1.0871,
        88.7170,
        42.3542,
        0.4780,
        302,
        "sas_sp_gau_reml.txt",
    ),
    (
        "VISITN, VISITN2",
        False,
        3891.37909815,
        3897.4,
        3907.3,
        1.4052,
        89.7880,
        42.2192,
        0.4675,
        261,
        "sas_sp_gau2_ml.txt",
    ),
    (
        "VISITN, VISITN2",
        True,
        3891.05998791,
        3895.1,
        3901.7,
        1.4086,
        90.0242,
        42.2195,
        0.4684,
        261,
        "sas_sp_gau2_reml.txt",
    ),
]


@pytest.mark.parametrize("coords, reml, neg2ll, aic, bic, rng, resid, est, se, df, listing", CASES)
def test_sp_gau_intercept_model_matches_sas(
    fev, coords, reml, neg2ll, aic, bic, rng, resid, est, se, df, listing
):
    res = fit_mmrm(fev, f"FEV1 ~ sp_gau({coords} | USUBJID)", reml=reml, df_method="satterthwaite")
    assert res.converged, res.warnings
    assert abs(res.neg2_loglik - neg2ll) <= NEG2LL_ABS_FULL, listing
    assert abs(res.aic - aic) <= PRINTED_1DP_ABS, listing
    assert abs(res.bic - bic) <= PRINTED_1DP_ABS, listing  # SAS counts all 200 subjects, as we do
    cp = res.covariance_parameters
    assert cp["name"].to_list() == ["SP(GAU)", "Residual"]
    for ours, sas in zip(cp["estimate"].to_list(), [rng, resid], strict=True):
        assert abs(ours - sas) <= max(COVPARM_REL * abs(sas), 5e-5), (listing, ours, sas)
    row = res.coefficients.row(0, named=True)
    assert estimate_ok(row["estimate"], est, row["std_error"]), listing
    assert se_ok(row["std_error"], se), listing
    assert df_rounded_ok(row["df"], df), listing


# sas_sp_gau_kr.txt: "Solution for Fixed Effects" (estimate, SE, df) and "Type 3 Tests" (den df, F)
KR = {
    "kenward-roger": {  # pages 1-3, DDFM=KR
        "(Intercept)": (44.4161, 0.6503, 244),
        "ARMCDPBO": (-4.2312, 0.9016, 250),
        "type3": (250, 22.02),
    },
    "kenward-roger-linear": {  # pages 4-6, DDFM=KR(FIRSTORDER)
        "(Intercept)": (44.4161, 0.6512, 244),
        "ARMCDPBO": (-4.2312, 0.9028, 250),
        "type3": (250, 21.96),
    },
}


@pytest.mark.parametrize("method", list(KR))
def test_sp_gau_kenward_roger_matches_sas(fev, method):
    vcov = "kenward-roger-linear" if method == "kenward-roger-linear" else None
    res = fit_mmrm(fev, "FEV1 ~ ARMCD + sp_gau(VISITN, VISITN2 | USUBJID)", ref={"ARMCD": "TRT"}, vcov=vcov)
    assert res.converged, res.warnings
    assert abs(res.neg2_loglik - 3868.21965706) <= NEG2LL_ABS_FULL  # both runs' Iteration History
    # Covariance Parameter Estimates: SP(GAU) 1.3379, Residual 85.3830 (both runs)
    for ours, sas in zip(res.covariance_parameters["estimate"].to_list(), [1.3379, 85.3830], strict=True):
        assert abs(ours - sas) <= max(COVPARM_REL * abs(sas), 5e-5)
    expected = KR[method]
    for row in res.coefficients.iter_rows(named=True):
        e, s, d = expected[row["term"]]
        assert estimate_ok(row["estimate"], e, s), row
        assert se_ok(row["std_error"], s), row
        assert df_rounded_ok(row["df"], d), row
    t3 = res.type3().row(0, named=True)
    assert df_rounded_ok(t3["den_df"], expected["type3"][0])
    assert f_ok(t3["f_value"], expected["type3"][1])


def test_sp_gau_on_unit_spaced_visits_is_not_ar1(fev):
    """A structural check beside the SAS numbers: at the SAS estimate the correlation of two visits
    one unit apart is exp(-1 / SP(GAU)^2) and two units apart its 4th power (Gaussian decay, unlike
    AR(1)'s square). sas_sp_gau_reml.txt prints 0.03388 for PT1's two visits, which are 2 apart."""
    res = fit_mmrm(fev, "FEV1 ~ sp_gau(VISITN | USUBJID)", df_method="satterthwaite")
    cov = res.covariance["all"]
    S = cov["matrix"]
    r1 = S[0, 1] / S[0, 0]
    r2 = S[0, 2] / S[0, 0]
    assert abs(r2 - r1**4) <= 1e-12
    assert abs(r2 - 0.03388) <= 5e-5  # Estimated R Correlation Matrix for USUBJID PT1
