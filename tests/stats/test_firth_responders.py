"""Firth logistic regression for responders under separation, checked by hand.

For a 2 x 2 table, Firth's penalised MLE (Jeffreys prior) of the arm's log odds ratio equals the
empirical log odds ratio with 1/2 added to every cell (Firth 1993, Biometrika 80:27-38, section 3.3;
Heinze & Schemper 2002, Stat Med 21:2409-19): finite even when an arm has no responder."""

from __future__ import annotations

import math

import numpy as np

from pipelines.stats.responders import firth_logistic, logistic_baseline_adjusted


def _table(x1, n1, x2, n2):
    y = np.array([1.0] * x1 + [0.0] * (n1 - x1) + [1.0] * x2 + [0.0] * (n2 - x2))
    arm = np.array([1.0] * n1 + [0.0] * n2)
    return y, arm


def test_firth_equals_haldane_corrected_odds_ratio_under_separation():
    # MADRS remission in the demo is 2/14 vs 0/15: ML logistic has no finite estimate
    y, arm = _table(2, 14, 0, 15)
    ml = logistic_baseline_adjusted(y, arm, np.zeros_like(y) + np.arange(len(y)) % 3)
    assert ml.odds_ratio is None and "separation" in ml.warning
    f = firth_logistic(y, arm[:, None])
    haldane = (2.5 / 12.5) / (0.5 / 15.5)
    assert abs(math.log(f.odds_ratio) - math.log(haldane)) < 1e-6
    assert f.conf_low < f.odds_ratio < f.conf_high and 0 < f.p_value < 1


def test_firth_without_separation_is_close_to_haldane_too():
    y, arm = _table(10, 15, 3, 15)  # Feder 2021 response 10/15 vs 3/15
    f = firth_logistic(y, arm[:, None])
    assert abs(math.log(f.odds_ratio) - math.log((10.5 / 5.5) / (3.5 / 12.5))) < 1e-6
