"""Efficacy rules on tiny hand-made analysis tables: the primary model's numbers against a hand
ANCOVA, Cohen's d, covariance fallbacks and failures that are reported, never raised."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.stats.efficacy import cohens_d, pooled_baseline_sd, run_efficacy
from tests.stats.efficacy_data import connection, manifest

RTOL = 1e-6


# ------------------------------------------------------------------------------ Cohen's d
def test_pooled_baseline_sd_matches_hand_computation():
    # arm A 10, 12, 14: mean 12, SS 4 + 0 + 4 = 8; arm B 20, 24: mean 22, SS 8;
    # pooled SD = sqrt((8 + 8) / (2 + 1)) = sqrt(5.333333) = 2.309401
    assert pooled_baseline_sd({"A": np.array([10, 12, 14]), "B": np.array([20, 24])}) == pytest.approx(
        2.309401, rel=RTOL
    )
    assert pooled_baseline_sd({"A": np.array([5.0]), "B": np.array([7.0])}) is None  # no within-arm df


def test_cohens_d_keeps_the_sign_and_reproduces_feder2021():
    # Feder 2021: 11.88 points lower with ketamine, d = 1.13, 95 % CI 0.36-1.91 (domain.md section 1);
    # the implied SD is 11.88 / 1.13 = 10.513. Our sign: estimate -11.88 -> d -1.13.
    sd = 11.88 / 1.13
    assert cohens_d(-11.88, sd) == pytest.approx(-1.13, rel=RTOL)
    # the CI of d is the CI of the difference over the same SD: t(27) CI 3.75-20.01 (derived,
    # domain.md) / 10.513 = 0.357-1.903, Feder's 0.36-1.91 to rounding
    assert cohens_d(-20.01, sd) == pytest.approx(-1.903, abs=1e-3)
    assert cohens_d(-3.75, sd) == pytest.approx(-0.357, abs=1e-3)
    assert cohens_d(1.0, None) is None


# ------------------------------------------------------------------------------ the primary model
# One post-baseline visit (W2): the MMRM is the ANCOVA chg ~ base + arm with one variance.
# KET: base 10, 12, 14 -> W2 3, 7, 8 (chg -7, -5, -6); MID: base 10, 12, 14 -> W2 9, 9, 12
# (chg -1, -3, -2). Base means are equal (12), so the adjusted difference is the raw one:
# -6 - (-2) = -4. Within-arm centred base (-2, 0, 2), centred chg KET (-1, 1, 0), MID (1, -1, 0):
# Sxy = 2 - 2 = 0 -> slope 0; residual SS = 2 + 2 = 4 on 6 - 3 = 3 df -> s^2 = 4/3;
# SE(diff) = sqrt(s^2 (1/3 + 1/3)) = sqrt(8/9) = 0.942809; t = -4.242641 on 3 df, p = 0.023981;
# 95 % CI -4 -/+ 3.182446 x 0.942809 = -4 -/+ 3.000439 = (-7.000439, -0.999561). LS means at base 12: KET -6,
# MID -2, SE sqrt(s^2 / 3) = 0.666667. Pooled baseline SD = sqrt((8 + 8) / 4) = 2 -> d = -2.
ANCOVA = [
    ("K1", "KET", "CAPS5TOT", "BL", 10.0), ("K1", "KET", "CAPS5TOT", "W2", 3.0),
    ("K2", "KET", "CAPS5TOT", "BL", 12.0), ("K2", "KET", "CAPS5TOT", "W2", 7.0),
    ("K3", "KET", "CAPS5TOT", "BL", 14.0), ("K3", "KET", "CAPS5TOT", "W2", 8.0),
    ("M1", "MID", "CAPS5TOT", "BL", 10.0), ("M1", "MID", "CAPS5TOT", "W2", 9.0),
    ("M2", "MID", "CAPS5TOT", "BL", 12.0), ("M2", "MID", "CAPS5TOT", "W2", 9.0),
    ("M3", "MID", "CAPS5TOT", "BL", 14.0), ("M3", "MID", "CAPS5TOT", "W2", 12.0),
]  # fmt: skip


def test_primary_effect_matches_a_hand_ancova():
    out = run_efficacy(connection(ANCOVA), manifest(), "run-1", sensitivity=False)
    eff = out.treatment_effects.row(0, named=True)
    assert (eff["study_id"], eff["run_id"], eff["paramcd"], eff["model"], eff["avisit"]) == (
        "TINY", "run-1", "CAPS5TOT", "mmrm", "W2"
    )
    assert eff["is_primary"] and eff["contrast"] == "KET - MID" and eff["df_method"] == "kenward-roger"
    assert eff["estimate"] == pytest.approx(-4.0, rel=RTOL)
    assert eff["std_error"] == pytest.approx(0.942809, rel=RTOL)
    assert eff["df"] == pytest.approx(3.0, rel=RTOL)
    assert eff["p_value"] == pytest.approx(0.023981, abs=1e-6)
    assert (eff["conf_low"], eff["conf_high"]) == pytest.approx((-7.000439, -0.999561), rel=RTOL)
    assert eff["effect_size_sd"] == pytest.approx(2.0, rel=RTOL)
    assert eff["cohens_d"] == pytest.approx(-2.0, rel=RTOL)
    assert (eff["cohens_d_conf_low"], eff["cohens_d_conf_high"]) == pytest.approx((-3.500220, -0.499780), rel=RTOL)
    # the primary endpoint is level 1 of the hierarchy: tested at alpha, nothing adjusted (a dash)
    assert (eff["p_adjusted"], eff["adjust_method"], eff["family"]) == (
        None, "none", "hierarchy 1: primary endpoint CAPS5TOT at W2"
    )
    lsm = {r["trtp"]: r for r in out.lsmeans.iter_rows(named=True)}
    assert lsm["KET"]["estimate"] == pytest.approx(-6.0, rel=RTOL)
    assert lsm["MID"]["estimate"] == pytest.approx(-2.0, rel=RTOL)
    assert lsm["KET"]["std_error"] == pytest.approx(0.666667, rel=RTOL)
    fit = out.model_fits.row(0, named=True)
    assert (fit["covariance"], fit["converged"], fit["n_subjects"], fit["n_obs"], fit["fallback_from"]) == (
        "us", True, 6, 6, None
    )


def test_alpha_from_the_manifest_sets_the_confidence_level():
    m = manifest()
    m.analysis.alpha = 0.10
    eff = run_efficacy(connection(ANCOVA), m, "r", sensitivity=False).treatment_effects.row(0, named=True)
    # t(3) 95th percentile 2.353363 x 0.942809 = 2.218772
    assert (eff["conf_low"], eff["conf_high"]) == pytest.approx((-6.218772, -1.781228), rel=RTOL)


# ------------------------------------------------------------------------------ failures
def _three_visit_data(seed: int, n_per_arm: int = 8, w1_only: str | None = None, paramcd: str = "CAPS5TOT"):
    """Random but fixed inputs: BL, D1, W1, W2 for every subject (W1 for subject w1_only alone)."""
    rng = np.random.default_rng(seed)
    rows = []
    for arm in ("KET", "MID"):
        for i in range(n_per_arm):
            s = f"{arm}{i}"
            bl = float(rng.integers(30, 50))
            for v in ("BL", "D1", "W1", "W2"):
                if v == "W1" and w1_only is not None and s != w1_only:
                    continue
                rows.append((s, arm, paramcd, v, bl if v == "BL" else bl - float(rng.integers(0, 12))))
    return rows


def test_a_visit_with_one_observation_falls_back_and_is_reported():
    # W1 has a single observation: its own variance (us, toeph, ar1h) is not identified, so the
    # fallback ends at cs; the W1 difference is not estimable (one arm only) and is NULL, not hidden.
    out = run_efficacy(connection(_three_visit_data(1, w1_only="KET0")), manifest(), "r", sensitivity=False)
    fit = out.model_fits.row(0, named=True)
    assert fit["covariance"] == "cs" and fit["converged"] is True
    assert fit["fallback_from"] == "us, toeph, ar1h" and fit["n_attempts"] == 4
    assert "us not used" in fit["warnings"]
    eff = {r["avisit"]: r for r in out.treatment_effects.iter_rows(named=True)}
    assert eff["W1"]["estimate"] is None
    assert eff["W2"]["estimate"] is not None and eff["W2"]["std_error"] > 0
    assert any("fell back to cs" in n for n in out.notes)
    assert any("W1 is not estimable" in n for n in out.notes)


def test_a_degenerate_parameter_is_reported_as_not_converged_without_effects():
    # CAPS5B never changes (CHG = 0 everywhere): no covariance structure can be estimated.
    rows = _three_visit_data(2) + _three_visit_data(5, paramcd="CAPS5C") + [
        (s, a, "CAPS5B", v, 10.0) for s, a, _, v, _ in _three_visit_data(2)
    ]
    out = run_efficacy(connection(rows), manifest(), "r", sensitivity=True)
    fit = out.model_fits.filter((pl.col("paramcd") == "CAPS5B") & (pl.col("model") == "mmrm")).row(0, named=True)
    assert fit["converged"] is False and fit["n_attempts"] == 4
    assert fit["covariance"] == "cs" and fit["fallback_from"] == "us, toeph, ar1h"
    assert out.lsmeans.filter(pl.col("paramcd") == "CAPS5B").height == 0
    assert out.treatment_effects.filter((pl.col("paramcd") == "CAPS5B") & (pl.col("model") == "mmrm")).height == 0
    assert any("CAPS5B: the primary MMRM did not converge" in n for n in out.notes)
    # the other parameter is unaffected, and the cluster family counts the missing CAPS5B as p = 1
    assert out.model_fits.filter(pl.col("paramcd") == "CAPS5TOT")["converged"].to_list() == [True, True, True]
    assert any("no p-value for CAPS5B" in n for n in out.notes)


def test_a_parameter_with_one_arm_only_gets_a_not_fitted_row():
    rows = _three_visit_data(3) + [r[:2] + ("MADRSTOT",) + r[3:] for r in _three_visit_data(3) if r[1] == "KET"]
    out = run_efficacy(connection(rows), manifest(), "r", sensitivity=False)
    fit = out.model_fits.filter(pl.col("paramcd") == "MADRSTOT").row(0, named=True)
    assert fit["converged"] is False and fit["n_attempts"] == 0
    assert fit["warnings"].startswith("not fitted: arm MID has no post-baseline values")


def test_testing_hierarchy_primary_then_clusters_then_secondary_totals():
    rows = []
    for p in ("CAPS5TOT", "CAPS5B", "CAPS5C", "CAPS5D", "CAPS5E", "PCL5TOT", "MADRSTOT", "PCL5B"):
        rows += _three_visit_data(4, paramcd=p)
    out = run_efficacy(connection(rows), manifest(multiplicity="bonferroni"), "r", sensitivity=False)
    te = out.treatment_effects.filter(pl.col("model") == "mmrm")
    p = {r["paramcd"]: r for r in te.filter(pl.col("avisit") == "W2").iter_rows(named=True)}
    gate1 = p["CAPS5TOT"]["p_value"]
    assert p["CAPS5TOT"]["p_adjusted"] is None  # level 1: no adjustment applies
    clusters = ["CAPS5B", "CAPS5C", "CAPS5D", "CAPS5E"]
    for c in clusters:  # Bonferroni with m = 4, gated by the primary: max(4 p, p_primary)
        r = p[c]
        assert r["family"] == "hierarchy 2: CAPS-5 clusters at W2" and r["adjust_method"] == "bonferroni + hierarchy"
        assert r["p_adjusted"] == pytest.approx(max(min(1.0, 4 * r["p_value"]), gate1), rel=1e-12)
    gate2 = max(p[c]["p_adjusted"] for c in clusters)
    for t in ("PCL5TOT", "MADRSTOT"):  # Bonferroni with m = 2, gated by every cluster
        r = p[t]
        assert r["family"] == "hierarchy 3: secondary totals at W2"
        assert r["p_adjusted"] == pytest.approx(max(min(1.0, 2 * r["p_value"]), gate2), rel=1e-12)
    # outside the hierarchy (other visits, other instruments' clusters): a dash, not a copy of p
    rest = out.treatment_effects.filter(pl.col("family").is_null())
    assert rest.height > 0 and set(rest["adjust_method"]) == {"none"} and rest["p_adjusted"].null_count() == rest.height
    assert "PCL5B" in set(rest["paramcd"])
