"""Kaplan-Meier median with its Brookmeyer-Crowley CI, the pointwise CI and the log-rank test, checked
against R's survival package on the public ``aml`` data set (acute myelogenous leukemia, Miller 1981;
in R ``survival::aml``, 23 patients, maintenance chemotherapy vs none).

Reference numbers: R 4.2.2 with survival 3.5-3 (Debian r-cran-survival 3.5-3-1), printed by

    library(survival)
    survfit(Surv(time, status) ~ x, data = aml)      # median 0.95LCL 0.95UCL per arm
    survfit(Surv(time, status) ~ 1, data = aml)      # pooled
    summary(survfit(Surv(time, status) ~ 1, data = aml))   # surv, lower, upper (conf.type "log")
    survdiff(Surv(time, status) ~ x, data = aml)$chisq; 1 - pchisq(chisq, 1)

The same printed medians and CIs (31 [18, NA], 23 [8, NA]; Chisq = 3.4 on 1 df, p = 0.07) appear in the
survival package's documentation examples. R is not needed to run this test.
"""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.stats.durability import curve, km_summary, logrank, median_ci

# survival::aml - weeks to relapse, status 1 = relapse, 0 = censored
MAINTAINED_TIME = [9, 13, 13, 18, 23, 28, 31, 34, 45, 48, 161]
MAINTAINED_STATUS = [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0]
NONMAINTAINED_TIME = [5, 5, 8, 8, 12, 16, 23, 27, 30, 33, 43, 45]
NONMAINTAINED_STATUS = [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]

ABS_SURV = 1e-9  # survival and its CI: R prints 10+ significant digits
ABS_CHISQ = 1e-8


def test_km_median_and_ci_match_r_survfit():
    # R: x=Maintained n 11 events 7 median 31 0.95LCL 18 0.95UCL NA
    assert median_ci(MAINTAINED_TIME, MAINTAINED_STATUS) == (31.0, 18.0, None)
    # R: x=Nonmaintained n 12 events 11 median 23 0.95LCL 8 0.95UCL NA (the curve reaches 0 at 45, where the
    # log-scale CI is undefined; statsmodels alone would report 45)
    assert median_ci(NONMAINTAINED_TIME, NONMAINTAINED_STATUS) == (23.0, 8.0, None)
    # R: survfit(Surv(time, status) ~ 1, data = aml): n 23 events 18 median 27 0.95LCL 18 0.95UCL 45
    assert median_ci(MAINTAINED_TIME + NONMAINTAINED_TIME, MAINTAINED_STATUS + NONMAINTAINED_STATUS) == (27.0, 18.0, 45.0)


def test_km_pointwise_ci_matches_r_summary():
    c = curve(MAINTAINED_TIME + NONMAINTAINED_TIME, MAINTAINED_STATUS + NONMAINTAINED_STATUS)
    ev = c.filter(pl.col("n_events") > 0)
    # R summary(survfit(Surv(time, status) ~ 1, data = aml)): time n.risk n.event surv lower upper
    expected = [
        (5, 23, 2, 0.91304347826, 0.80485479778, 1.0000000000),
        (8, 21, 2, 0.82608695652, 0.68483946807, 0.9964666050),
        (9, 19, 1, 0.78260869565, 0.63095791060, 0.9707087592),
        (12, 18, 1, 0.73913043478, 0.57979921797, 0.9422465272),
        (13, 17, 1, 0.69565217391, 0.53087834163, 0.9115684501),
        (18, 14, 1, 0.64596273292, 0.47525772471, 0.8779822623),
        (23, 13, 2, 0.54658385093, 0.37207808725, 0.8029333528),
        (27, 11, 1, 0.49689440994, 0.32401654569, 0.7620106378),
        (30, 9, 1, 0.44168391994, 0.27167599539, 0.7180784775),
        (31, 8, 1, 0.38647342995, 0.22251529775, 0.6712424430),
        (33, 7, 1, 0.33126293996, 0.17652018258, 0.6216577265),
        (34, 6, 1, 0.27605244997, 0.13382219563, 0.5694492963),
        (43, 5, 1, 0.22084195997, 0.09473324056, 0.5148263798),
        (45, 4, 1, 0.16563146998, 0.05984071781, 0.4584467709),
        (48, 2, 1, 0.08281573499, 0.01483460825, 0.4623274066),
    ]
    assert ev.height == len(expected)
    for row, (t, n_risk, d, s, lo, hi) in zip(ev.iter_rows(named=True), expected):
        assert (row["time"], row["n_risk"], row["n_events"]) == (t, n_risk, d)
        assert row["survival"] == pytest.approx(s, abs=ABS_SURV)
        assert row["conf_low"] == pytest.approx(lo, abs=ABS_SURV)
        assert row["conf_high"] == pytest.approx(hi, abs=ABS_SURV)


def test_logrank_matches_r_survdiff():
    t = MAINTAINED_TIME + NONMAINTAINED_TIME
    e = MAINTAINED_STATUS + NONMAINTAINED_STATUS
    g = ["Maintained"] * 11 + ["Nonmaintained"] * 12
    chisq, df, p = logrank(t, e, g)
    assert chisq == pytest.approx(3.396388699, abs=ABS_CHISQ)  # R: survdiff(...)$chisq
    assert df == 1
    assert p == pytest.approx(0.06533932204, abs=1e-9)  # R: 1 - pchisq(3.396388699, 1)


def test_km_summary_rows_and_comparison():
    adtte = pl.DataFrame({
        "paramcd": "LOSSRESP",
        "trtp": ["MAIN"] * 11 + ["NON"] * 12,
        "aval": [float(x) for x in MAINTAINED_TIME + NONMAINTAINED_TIME],
        "cnsr": [1 - s for s in MAINTAINED_STATUS + NONMAINTAINED_STATUS],
    })
    out = km_summary(adtte, [("MAIN", "Maintained"), ("NON", "Nonmaintained")])
    rows = {r["trtp"]: r for r in out.iter_rows(named=True)}
    assert (rows["MAIN"]["n_subjects"], rows["MAIN"]["n_events"], rows["MAIN"]["median"]) == (11, 7, 31.0)
    assert (rows["NON"]["n_events"], rows["NON"]["median"], rows["NON"]["conf_low"]) == (11, 23.0, 8.0)
    assert rows["COMPARISON"]["statistic"] == pytest.approx(3.396388699, abs=ABS_CHISQ)
    # one arm without responders: no log-rank, a note saying why
    one = km_summary(adtte.filter(pl.col("trtp") == "MAIN"), [("MAIN", "Maintained"), ("NON", "Nonmaintained")])
    comp = one.filter(pl.col("trtp") == "COMPARISON").row(0, named=True)
    assert comp["p_value"] is None and "no responders" in comp["note"]
