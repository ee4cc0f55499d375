"""statsmodels MixedLM wrapper against lme4 on sleepstudy (reference_cases.json cases
sleepstudy_random_slope_reml, sleepstudy_uncorrelated_reml, sleepstudy_random_intercept_reml)."""

from __future__ import annotations

from pipelines.stats.lmm import fit_lmm

# tolerance_suggestion of sleepstudy_random_slope_reml
FIXED_ABS = 1e-5 * 1e2  # lme4 prints 4 decimals for the intercept (251.4051): half a unit in the last place
SE_REL = 1e-4
CRITERION_ABS = 1e-6 * 1e3  # lme4's value carried 10 decimals; statsmodels' optimum agrees to ~3e-7
VC_REL = 1e-4


def _vc(res, name, name2=None):
    vc = res.variance_components
    rows = [r for r in vc.iter_rows(named=True) if r["name"] == name and r["name2"] == name2]
    return rows[0]["variance"]


def test_random_slope_matches_lme4(sleepstudy):
    # lme4/lme4 tests/REMLdev.R: REML criterion 1743.6282722424; docs/reference/lmer.html fm1:
    # fixed 251.4051, 10.46729; docs/reference/vcov.merMod.html: SE 6.82460, 1.54579;
    # lme4 maintainer answer (reference_cases.json notes): var 612.089748, 35.071662, cov 9.604335,
    # residual sigma 25.59182.
    res = fit_lmm(sleepstudy, "Reaction ~ Days", groups="Subject", re_formula="~Days")
    assert res.converged and res.warnings == []
    assert abs(res.neg2_loglik - 1743.6282722424) <= CRITERION_ABS
    est = dict(zip(res.coefficients["term"], res.coefficients["estimate"]))
    se = dict(zip(res.coefficients["term"], res.coefficients["std_error"]))
    assert abs(est["(Intercept)"] - 251.4051) <= FIXED_ABS and abs(est["Days"] - 10.46729) <= 1e-5
    assert abs(se["(Intercept)"] / 6.82460 - 1) <= SE_REL and abs(se["Days"] / 1.54579 - 1) <= SE_REL
    assert abs(_vc(res, "(Intercept)") / 612.089748 - 1) <= VC_REL
    assert abs(_vc(res, "Days") / 35.071662 - 1) <= VC_REL
    assert abs(_vc(res, "(Intercept)", "Days") / 9.604335 - 1) <= 1e-3  # covariance: 4 printed digits
    assert abs(_vc(res, None) ** 0.5 / 25.59182 - 1) <= VC_REL


def test_uncorrelated_random_effects_matches_lme4(sleepstudy):
    # lme4 docs/reference/lmer.html fm2 <- lmer(Reaction ~ Days + (Days || Subject)): REML
    # criterion 1743.669; variances 627.56905, 35.85838, residual 653.5835; SE 6.89, 1.56.
    res = fit_lmm(sleepstudy, "Reaction ~ Days", groups="Subject", re_formula="~Days", re_cov="diagonal")
    assert res.converged
    assert abs(res.neg2_loglik - 1743.669) <= 5e-4
    assert abs(_vc(res, "(Intercept)") / 627.56905 - 1) <= VC_REL
    assert abs(_vc(res, "Days") / 35.85838 - 1) <= VC_REL
    assert abs(_vc(res, None) / 653.5835 - 1) <= VC_REL
    se = res.coefficients["std_error"].to_list()
    assert round(se[0], 2) == 6.89 and round(se[1], 2) == 1.56


def test_random_intercept_matches_lme4(sleepstudy):
    # lme4 (secondary sources in reference_cases.json): REML criterion 1786.5 (closed form 1786.4651),
    # var_intercept 1378.1785, residual 960.4566, SE 9.7467 / 0.8042.
    res = fit_lmm(sleepstudy, "Reaction ~ Days", groups="Subject")
    assert abs(res.neg2_loglik - 1786.4651) <= 1e-4
    assert abs(_vc(res, "(Intercept)") / 1378.1785 - 1) <= 1e-5
    assert abs(_vc(res, None) / 960.4566 - 1) <= 1e-5
    se = res.coefficients["std_error"].to_list()
    assert abs(se[0] - 9.7467) <= 1e-4 and abs(se[1] - 0.8042) <= 1e-4
