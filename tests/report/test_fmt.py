"""Number formats of the report, the metadata and the headline."""

from __future__ import annotations

import math

from pipelines.report import fmt


def test_estimates_two_decimals_and_no_negative_zero():
    assert fmt.num(-11.8789) == "-11.88"
    assert fmt.num(-0.001) == "0.00"
    assert fmt.num(None) == fmt.num(math.nan) == fmt.num("x") == "\u2014"


def test_p_values():
    assert [fmt.p_value(p) for p in (0.0058, 0.0004, 0.001, 0.9995, 0.05, None)] == [
        "0.006",
        "<0.001",
        "0.001",
        ">0.999",
        "0.050",
        "\u2014",
    ]
    assert fmt.p_text(0.0058) == "p = 0.006"
    assert fmt.p_text(1e-5) == "p < 0.001"
    assert fmt.p_text(None) == "p = n/a"
    assert fmt.p_text(0.0336, name="adjusted p") == "adjusted p = 0.034"


def test_confidence_intervals():
    assert fmt.ci(-20.01, -3.75) == "(-20.01, -3.75)"
    assert fmt.ci(None, 1) == "\u2014"
    assert fmt.ci_words(-20.01, -3.75) == "95% CI -20.01 to -3.75"
    assert fmt.ci_words(1, 2, level=90) == "90% CI 1.00 to 2.00"
    assert fmt.level_of(0.05) == 95 and fmt.level_of(0.1) == 90 and fmt.level_of(None) == 95


def test_counts_and_means():
    assert fmt.count_pct(10, 15) == "10/15 (66.7%)"
    assert fmt.count_pct(0, 0) == "0/0"
    assert fmt.mean_sd(41.2, 9.34) == "41.2 (9.3)"
    assert fmt.est_se(-13.92, 3.4) == "-13.92 (3.40)"
    assert fmt.pct(2 / 3) == "66.7%"
