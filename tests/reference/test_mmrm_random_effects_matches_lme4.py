"""The MMRM engine's marginal random-effects structures against lme4 / lmerTest on sleepstudy
(lme4/lme4 data/sleepstudy.rda, see tests/data/refdata/SOURCES.md). These are the structures the
efficacy analysis uses for its lmm_ri (cs) and lmm_rs (rs) sensitivity models, with small-sample df.

Reference numbers, each with its source:
* random intercept + slope, REML: criterion 1743.6282722424 (lme4 tests/REMLdev.R); fixed 251.4051,
  10.46729 (lme4 docs/reference/lmer.html, fm1); SE 6.82460, 1.54579 (docs/reference/vcov.merMod.html);
  G 612.089748, 9.604335, 35.071662 and residual SD 25.59182 (reference_cases.json
  sleepstudy_random_slope_reml); Satterthwaite df 17 for both fixed effects (lmerTest summary of
  fm1, Kuznetsova, Brockhoff & Christensen 2017, J Stat Softw 82(13), Table/summary output:
  "(Intercept) 251.405 6.825 17.000 36.838; Days 10.467 1.546 17.000 6.771 3.26e-06").
* random intercept, REML: criterion 1786.4651, var 1378.1785, residual 960.4566, SE 9.7467 / 0.8042
  (reference_cases.json sleepstudy_random_intercept_reml).
"""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.stats.mmrm import fit_mmrm


@pytest.fixture(scope="module")
def sleep(sleepstudy):
    df = pl.from_pandas(sleepstudy) if not isinstance(sleepstudy, pl.DataFrame) else sleepstudy
    return df.with_columns(
        pl.col("Days").cast(pl.Float64),
        pl.col("Days").cast(pl.Int64).cast(pl.String).alias("DayF"),
        pl.col("Subject").cast(pl.String),
    )


LEVELS = {"DayF": [str(d) for d in range(10)]}


def _coef(res):
    return {r["term"]: r for r in res.coefficients.iter_rows(named=True)}


def test_rs_structure_is_lme4_random_slope_with_satterthwaite_df(sleep):
    res = fit_mmrm(sleep, "Reaction ~ Days + rs(DayF | Subject)", df_method="satterthwaite", levels=LEVELS)
    assert res.converged
    assert abs(res.neg2_loglik - 1743.6282722424) <= 1e-3
    c = _coef(res)
    assert abs(c["(Intercept)"]["estimate"] - 251.4051) <= 1e-3
    assert abs(c["Days"]["estimate"] - 10.46729) <= 1e-4
    assert abs(c["(Intercept)"]["std_error"] / 6.82460 - 1) <= 1e-4
    assert abs(c["Days"]["std_error"] / 1.54579 - 1) <= 1e-4
    assert abs(c["(Intercept)"]["df"] - 17) <= 0.01 and abs(c["Days"]["df"] - 17) <= 0.01
    phi = dict(zip(res.covariance_parameters["name"], res.covariance_parameters["estimate"]))
    assert abs(phi["UN(1,1)"] / 612.089748 - 1) <= 1e-3
    assert abs(phi["UN(2,2)"] / 35.071662 - 1) <= 1e-3
    assert abs(phi["UN(2,1)"] / 9.604335 - 1) <= 1e-2
    assert abs(phi["Residual"] ** 0.5 / 25.59182 - 1) <= 1e-4


def test_cs_structure_is_lme4_random_intercept(sleep):
    res = fit_mmrm(sleep, "Reaction ~ Days + cs(DayF | Subject)", df_method="satterthwaite", levels=LEVELS)
    assert res.converged
    assert abs(res.neg2_loglik - 1786.4651) <= 1e-3
    phi = dict(zip(res.covariance_parameters["name"], res.covariance_parameters["estimate"]))
    assert abs(phi["CS"] / 1378.1785 - 1) <= 1e-4
    assert abs(phi["Residual"] / 960.4566 - 1) <= 1e-4
    c = _coef(res)
    assert abs(c["(Intercept)"]["std_error"] - 9.7467) <= 1e-3 and abs(c["Days"]["std_error"] - 0.8042) <= 1e-4


def test_rs_needs_numeric_time_levels(sleep):
    from pipelines.core.errors import ModelSpecError

    bad = sleep.with_columns(("d" + pl.col("DayF")).alias("DayF"))
    with pytest.raises(ModelSpecError, match="levels are numbers"):
        fit_mmrm(bad, "Reaction ~ Days + rs(DayF | Subject)")
