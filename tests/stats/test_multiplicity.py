"""Adjusted p-values on one hand-worked vector (pipelines.stats.multiplicity).

Family in test order B, C, D, E: p = (0.010, 0.040, 0.030, 0.005); m = 4.
Sorted ascending: E 0.005, B 0.010, D 0.030, C 0.040.

* Holm (step-down, running max of (m - j + 1) p(j)): E 4 x .005 = .02; B 3 x .01 = .03;
  D 2 x .03 = .06; C max(.06, 1 x .04) = .06            -> B .03, C .06, D .06, E .02
* Hochberg (step-up, running min from the largest of (m - j + 1) p(j)): C 1 x .04 = .04;
  D min(2 x .03, .04) = .04; B min(3 x .01, .04) = .03; E min(4 x .005, .03) = .02
                                                         -> B .03, C .04, D .04, E .02
* Benjamini-Hochberg (running min from the largest of m p(j) / j): C 4 x .04 / 4 = .04;
  D min(4 x .03 / 3, .04) = .04; B min(4 x .01 / 2, .04) = .02; E min(4 x .005 / 1, .02) = .02
                                                         -> B .02, C .04, D .04, E .02
* Fixed sequence B, C, D, E (running max in test order): .01, .04, .04, .04
* Bonferroni (4 p, capped at 1): .04, .16, .12, .02
"""

from __future__ import annotations

import pytest

from pipelines.stats.multiplicity import adjust

P = [0.010, 0.040, 0.030, 0.005]
ABS = 1e-12


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("holm", [0.03, 0.06, 0.06, 0.02]),
        ("hochberg", [0.03, 0.04, 0.04, 0.02]),
        ("fdr_bh", [0.02, 0.04, 0.04, 0.02]),
        ("fixed_sequence", [0.01, 0.04, 0.04, 0.04]),
        ("bonferroni", [0.04, 0.16, 0.12, 0.02]),
        ("none", P),
    ],
)
def test_adjusted_p_values_match_hand_computation(method, expected):
    assert adjust(P, method) == pytest.approx(expected, abs=ABS)


def test_a_missing_p_value_counts_as_one_and_stays_missing():
    # Holm with D missing (treated as 1): sorted E .005 (x4 = .02), B .01 (x3 = .03), C .04 (x2 = .08),
    # D 1 (x1 = 1)
    assert adjust([0.010, 0.040, None, 0.005], "holm") == pytest.approx([0.03, 0.08, None, 0.02], abs=ABS)
    # fixed sequence: a hypothesis that was not tested stops the sequence (everything after it is 1)
    assert adjust([0.010, None, 0.001, 0.002], "fixed_sequence") == pytest.approx([0.01, None, 1.0, 1.0])


def test_fixed_sequence_stops_at_the_first_non_rejection():
    # B .001 rejected, C .20 not rejected at .05: D and E cannot be rejected however small their p
    adj = adjust([0.001, 0.20, 0.0001, 0.0001], "fixed_sequence")
    assert adj == pytest.approx([0.001, 0.20, 0.20, 0.20])
    assert [a <= 0.05 for a in adj] == [True, False, False, False]


def test_unknown_method_and_out_of_range_p_are_refused():
    with pytest.raises(ValueError, match="unknown multiplicity method"):
        adjust(P, "sidak")
    with pytest.raises(ValueError, match="outside"):
        adjust([1.5], "holm")
