"""Responder statistics against published or hand-computed values (pipelines.stats.responders)."""

from __future__ import annotations

import math

import pytest

from pipelines.stats.responders import (
    EXACT_CI_MIN_SUBJECTS,
    conditional_odds_ratio,
    exact_odds_ratio_ci,
    fisher_exact_p,
    logistic_baseline_adjusted,
    mn_risk_difference_ci,
    wilson_ci,
)

ABS_PUBLISHED_4DP = 5e-5  # published to 4 decimals
RTOL = 1e-6


def test_fisher_exact_matches_feder2021_derived_value():
    # Feder 2021 responders 67 % vs 20 % of 15 = 10/15 vs 3/15; two-sided Fisher p = 0.02533
    # (shared/docs/domain.md section 1, derived value "p ~ 0.025"). By hand: the one-sided tail
    # P(X >= 10 | margins 13, 17, N 30) plus the equally or less likely tables on the other side.
    assert fisher_exact_p(10, 15, 3, 15) == pytest.approx(0.025328, abs=5e-6)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # Newcombe RG (1998) Stat Med 17:873-890, Table II, Miettinen-Nurminen score interval;
        # the same values are checked by GSK-Biostatistics/cicalc tests/testthat/test-prop_ci_mn.R
        ((56, 70, 48, 80), (0.0528, 0.3382)),
        ((9, 10, 3, 10), (0.1700, 0.8406)),
        ((10, 10, 0, 20), (0.7156, 1.0)),
    ],
)
def test_risk_difference_ci_matches_newcombe1998_miettinen_nurminen(counts, expected):
    lo, hi = mn_risk_difference_ci(*counts)
    assert lo == pytest.approx(expected[0], abs=ABS_PUBLISHED_4DP)
    assert hi == pytest.approx(expected[1], abs=ABS_PUBLISHED_4DP)


def test_risk_difference_ci_is_symmetric_in_the_arms():
    lo, hi = mn_risk_difference_ci(10, 15, 3, 15)
    lo2, hi2 = mn_risk_difference_ci(3, 15, 10, 15)
    assert (lo2, hi2) == pytest.approx((-hi, -lo), abs=1e-9)
    assert lo < 10 / 15 - 3 / 15 < hi


def test_wilson_ci_matches_hand_computation():
    # 10/15, z = 1.959964, z^2 = 3.841459: centre p + z^2/2n = 0.6666667 + 0.1280486 = 0.7947153;
    # half-width z sqrt(p(1-p)/n + z^2/4n^2) = 1.959964 x sqrt(0.0148148 + 0.0042683) = 0.2707525;
    # divided by 1 + z^2/n = 1.2560973: 0.5239628 / 1.2560973 = 0.417135 to 1.0654678 / 1.2560973 = 0.848237
    lo, hi = wilson_ci(10, 15)
    assert (lo, hi) == pytest.approx((0.417135, 0.848237), abs=2e-6)
    assert wilson_ci(0, 0) == (None, None)


def test_conditional_odds_ratio_is_finite_or_none():
    est, lo, hi = conditional_odds_ratio(10, 15, 3, 15)
    assert lo < est < hi
    assert conditional_odds_ratio(5, 10, 0, 10)[0] is None  # infinite estimate -> None, not inf


def test_logistic_with_an_uninformative_baseline_gives_the_woolf_odds_ratio():
    # Baseline has mean 40 in each arm x outcome group, so the ML baseline coefficient is exactly 0
    # (score equation) and the arm term equals the 2 x 2 table: OR = (10/5) / (3/12) = 8,
    # SE(log OR) = sqrt(1/10 + 1/5 + 1/3 + 1/12) = 0.846562, CI exp(log 8 -/+ 1.959964 x 0.846562)
    # = 1.522283 to 42.042118, Wald p = 2 Phi(-2.079442 / 0.846562) = 0.014036.
    y = [1] * 10 + [0] * 5 + [1] * 3 + [0] * 12
    arm = [1] * 15 + [0] * 15
    base = [30, 50] * 5 + [35, 45, 40, 30, 50] + [30, 40, 50] + [30, 50] * 6
    r = logistic_baseline_adjusted(y, arm, base)
    assert r.warning is None and r.n == 30
    assert r.odds_ratio == pytest.approx(8.0, rel=RTOL)
    assert (r.conf_low, r.conf_high) == pytest.approx((1.522283, 42.042118), rel=1e-5)
    assert r.p_value == pytest.approx(0.014036, abs=1e-6)


def test_logistic_separation_is_a_warning_not_a_crash():
    y = [1] * 15 + [0] * 15  # every experimental subject responds, no control subject does
    arm = [1] * 15 + [0] * 15
    base = list(range(30))
    r = logistic_baseline_adjusted(y, arm, base)
    assert r.odds_ratio is None and r.p_value is None
    assert "separation" in r.warning
    assert math.isfinite(fisher_exact_p(15, 15, 0, 15))


@pytest.mark.parametrize(
    "table",
    [(10, 15, 3, 15), (5, 10, 0, 10), (0, 10, 5, 10), (3, 50, 7, 50), (120, 250, 90, 250), (600, 1000, 420, 1000),
     (2, 1000, 0, 900), (998, 1000, 990, 1000)],
)
def test_exact_odds_ratio_ci_is_scipys_conditional_ci(table):
    """The vectorised exact conditional CI used for large studies against scipy's
    odds_ratio(kind='conditional').confidence_interval (BiasedUrn, computed point by point): same
    interval to 1e-10 relative, open ends (0, inf) where scipy has them."""
    from scipy.stats.contingency import odds_ratio

    x1, n1, x2, n2 = table
    ref = odds_ratio([[x1, n1 - x1], [x2, n2 - x2]], kind="conditional").confidence_interval(0.95)
    lo, hi = exact_odds_ratio_ci(x1, n1, x2, n2, 0.05)
    for mine, theirs in ((lo, ref.low), (hi, ref.high)):
        if theirs in (0, math.inf):
            assert mine == theirs
        else:
            assert mine == pytest.approx(theirs, rel=1e-10)


def test_large_tables_take_the_vectorised_ci_and_keep_scipys_estimate():
    from scipy.stats.contingency import odds_ratio

    est, lo, hi = conditional_odds_ratio(600, 1000, 420, 1000)
    assert 1000 + 1000 > EXACT_CI_MIN_SUBJECTS
    assert (lo, hi) == exact_odds_ratio_ci(600, 1000, 420, 1000)
    assert est == odds_ratio([[600, 400], [420, 580]], kind="conditional").statistic
