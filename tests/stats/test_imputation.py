"""Hand-derived properties of the imputation library (no reference software needed) and the
``trialpipe impute`` command."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from pipelines.cli.impute import impute as impute_cmd
from pipelines.core.errors import ModelSpecError
from pipelines.stats import imputation as mi

FORMULA = "CHANGE ~ BASVAL*VISIT + THERAPY*VISIT + us(VISIT | PATIENT)"


@pytest.fixture(scope="module")
def antidepressant(refdata_dir):
    return pl.read_csv(
        refdata_dir / "antidepressant_data.csv", null_values=["NA"], schema_overrides={"POOLINV": pl.Utf8}
    )


@pytest.fixture(scope="module")
def twins(antidepressant):
    """PLACEBO subjects twice: once as PLACEBO, once (new ids) as DRUG -- identical arms."""
    pbo = antidepressant.filter(pl.col("THERAPY") == "PLACEBO")
    drug = pbo.with_columns(pl.lit("DRUG").alias("THERAPY"), (pl.col("PATIENT") + 100000).alias("PATIENT"))
    return pl.concat([pbo, drug])


def _run(data, strategy, method="condmean-jackknife", **kw):
    ice = mi.ice_from_dropout(data, subject="PATIENT", visit="VISIT", outcome="CHANGE")
    ld = mi.prepare(data, FORMULA, group="THERAPY", reference="PLACEBO", ice=ice, strategy=strategy)
    return mi.ImputationAnalysis(ld, mi.draws(ld, method, **kw))


def test_reference_based_equals_mar_when_arms_are_identical(twins):
    # Identical arms: the fitted arm effects are exactly 0, so the reference arm's mean is the own
    # arm's mean and J2R = CR = CIR = MAR on the original data, with estimate 0 at every visit.
    base = _run(twins, "MAR").results()
    for strategy in ("J2R", "CR", "CIR"):
        res = _run(twins, strategy).results()
        assert np.allclose(res["estimate"].to_numpy(), base["estimate"].to_numpy(), atol=1e-8)
        # (the jackknife SEs differ: removing one subject makes the arms unequal again)
    diff = base.filter(pl.col("parameter") == "difference")
    assert np.allclose(diff["estimate"].to_numpy(), 0.0, atol=1e-8)


@pytest.fixture(scope="module")
def j2r(antidepressant):
    return _run(antidepressant, "J2R")


def test_delta_zero_is_the_undelta_d_analysis(j2r):
    a, b = j2r.results(), j2r.results(0.0, 0.0, cumulative=True)
    assert a.drop("delta_experimental", "delta_control").equals(b.drop("delta_experimental", "delta_control"))


def test_delta_shifts_the_estimate_by_its_ols_projection(j2r):
    # ANCOVA is linear in the outcome: shifting imputed post-ICE values of the experimental arm by d
    # moves the estimate at a visit by d times the arm coefficient of regressing the shift
    # indicator on (1, arm, BASVAL) -- computed here with plain least squares.
    ld = j2r.ld
    d = 3.0
    shifted = j2r.results(delta_experimental=d)
    base = j2r.results()
    post_missing = ld.is_missing & ld.is_post_ice & (ld.group_of == 1)[:, None]
    for v, visit in enumerate(ld.visits):
        X = np.column_stack([np.ones(ld.n), ld.group_of == 1, ld.covariates[:, v, 0]])
        coef = np.linalg.lstsq(X, d * post_missing[:, v].astype(float), rcond=None)[0][1]
        e0 = base.filter((pl.col("visit") == visit) & (pl.col("parameter") == "difference"))["estimate"][0]
        e1 = shifted.filter((pl.col("visit") == visit) & (pl.col("parameter") == "difference"))["estimate"][0]
        assert abs((e1 - e0) - coef) <= 1e-9


def test_cumulative_delta_accumulates_over_post_ice_visits(j2r):
    ld = j2r.ld
    D = mi.delta_matrix(ld, 1.0, 0.0, cumulative=True)
    i = next(i for i in range(ld.n) if ld.group_of[i] == 1 and ld.ice_index[i] == 1)  # ICE at visit 5
    assert D[i].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert mi.delta_matrix(ld, 1.0, 0.0)[i].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert not mi.delta_matrix(ld, 1.0, 0.0)[ld.group_of == 0].any()


def test_tipping_point_and_large_delta(j2r):
    # J2R week 6 is significant (p 0.013); shifting DRUG's imputed values up (worse) tips it at the
    # delta where p = 0.05, and at the delta that cancels the estimate p is 1.
    tip = j2r.tipping_delta("7", "experimental")
    assert tip is not None and tip > 0
    at_tip = j2r.results(delta_experimental=tip).filter(
        (pl.col("visit") == "7") & (pl.col("parameter") == "difference")
    )
    assert abs(at_tip["p_value"][0] - 0.05) < 2e-3
    ld = j2r.ld
    X = np.column_stack([np.ones(ld.n), ld.group_of == 1, ld.covariates[:, 3, 0]])
    slope = np.linalg.lstsq(
        X, (ld.is_missing & ld.is_post_ice & (ld.group_of == 1)[:, None])[:, 3] * 1.0, rcond=None
    )[0][1]
    est0 = j2r.results().filter((pl.col("visit") == "7") & (pl.col("parameter") == "difference"))["estimate"][
        0
    ]
    zero = j2r.results(delta_experimental=-est0 / slope).filter(
        (pl.col("visit") == "7") & (pl.col("parameter") == "difference")
    )
    assert abs(zero["estimate"][0]) < 1e-9 and zero["p_value"][0] > 0.999
    grid = j2r.grid("7", [0.0, tip, 20.0], [0.0])
    assert grid["p_value"][0] < 0.05 and grid["p_value"][1] >= 0.0499


def test_rubin_rules_by_hand():
    ests = np.array([1.0, 1.5, 2.0, 1.2])
    ses = np.array([0.5, 0.6, 0.55, 0.5])
    p = mi.rubin(ests, ses, v_com=40)
    M, qbar = 4, 1.425
    W = np.mean(ses**2)
    B = np.sum((ests - qbar) ** 2) / 3
    T = W + (1 + 1 / M) * B
    lam = (1 + 1 / M) * B / T
    v_old = (M - 1) / lam**2
    v_obs = (41 / 43) * 40 * (1 - lam)
    assert abs(p.estimate - qbar) < 1e-12
    assert abs(p.std_error - np.sqrt(T)) < 1e-12
    assert abs(p.df - v_old * v_obs / (v_old + v_obs)) < 1e-9


def test_jackknife_se_by_hand():
    ests = np.array([5.0, 4.0, 6.0, 5.5])  # full-data estimate first
    jk = ests[1:]
    se = np.sqrt((3 - 1) / 3 * np.sum((jk - jk.mean()) ** 2))
    p = mi.pool_jackknife(ests)
    assert p.estimate == 5.0 and abs(p.std_error - se) < 1e-12
    assert abs(p.conf_high - (5.0 + 1.959963984540054 * se)) < 1e-9


def test_condmean_bootstrap_is_reproducible_and_centred(antidepressant):
    a = _run(antidepressant, "J2R", "condmean-bootstrap", n_samples=30, seed=3).results()
    b = _run(antidepressant, "J2R", "condmean-bootstrap", n_samples=30, seed=3).results()
    assert a.equals(b)
    r = a.filter((pl.col("visit") == "7") & (pl.col("parameter") == "difference"))
    assert abs(r["estimate"][0] - (-2.12558)) < 1e-4  # point estimate = the original data's
    assert 0.6 < r["std_error"][0] < 1.2


def test_lmcf_at_first_visit_is_a_clear_error(antidepressant):
    with pytest.raises(ModelSpecError, match="LMCF"):
        mi.prepare(
            antidepressant, FORMULA, group="THERAPY", reference="PLACEBO", ice={"1503": "4"}, strategy="LMCF"
        )


def test_impute_cli_writes_rbmi_numbers(refdata_dir, tmp_path):
    out = tmp_path / "out.json"
    res = CliRunner().invoke(
        impute_cmd,
        [
            str(refdata_dir / "antidepressant_data.csv"),
            FORMULA,
            "--group",
            "THERAPY",
            "--reference",
            "PLACEBO",
            "--strategy",
            "J2R",
            "--method",
            "condmean-jackknife",
            "--json",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    w6 = next(e for e in payload["estimates"] if e["visit"] == "7" and e["parameter"] == "difference")
    # rbmi CondMean_Inference vignette: PLACEBO - DRUG 2.126 (SE 0.858, CI 0.444 to 3.807)
    assert abs(w6["estimate"] + 2.126) < 1e-3 and abs(w6["std_error"] - 0.858) < 1e-3
    assert abs(w6["conf_low"] + 3.807) < 1e-3 and abs(w6["conf_high"] + 0.444) < 1e-3
    assert payload["n_ice"] == 43 and payload["strategies"] == {"J2R": 43}
    assert "VISIT 7 = -2.1256" in res.output.splitlines()[-1]


def test_impute_cli_user_errors(refdata_dir, tmp_path):
    from pipelines.cli import main

    csv = str(refdata_dir / "antidepressant_data.csv")
    with pytest.raises(SystemExit) as exc:
        main(["impute", csv, FORMULA, "--group", "THERAPY", "--reference", "PLACEBOX"])
    assert exc.value.code == 2
    ice = tmp_path / "ice.csv"
    ice.write_text("PATIENT,VISIT,strategy\n1513,5,JR\n1514,9,J2R\n")
    with pytest.raises(SystemExit) as exc:
        main(["impute", csv, FORMULA, "--group", "THERAPY", "--reference", "PLACEBO", "--ice-file", str(ice)])
    assert exc.value.code == 2


def test_compute_sigma_keeps_own_past_and_reference_conditional_future():
    # Carpenter, Roger & Kenward 2013 (J2R/CIR with arm-specific covariances): the pre-ICE block is
    # the own arm's, and the post-ICE values given the pre-ICE ones have the reference arm's
    # regression coefficients and residual covariance.
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    own, ref = A @ A.T + 4 * np.eye(4), B @ B.T + 4 * np.eye(4)
    t = 2
    S = mi.compute_sigma(own[None], ref[None], t)[0]
    a, b = slice(0, t), slice(t, 4)
    assert np.allclose(S[a, a], own[a, a])
    assert np.allclose(S[b, a] @ np.linalg.inv(S[a, a]), ref[b, a] @ np.linalg.inv(ref[a, a]))
    cond = lambda M: M[b, b] - M[b, a] @ np.linalg.inv(M[a, a]) @ M[a, b]
    assert np.allclose(cond(S), cond(ref))
    assert np.allclose(S, S.T) and np.all(np.linalg.eigvalsh(S) > 0)


def test_arm_specific_covariance_runs_and_mar_matches_its_mmrm(antidepressant):
    # us(VISIT | THERAPY / PATIENT): one covariance per arm (rbmi same_cov = FALSE). The EM fixed-point
    # identity (MAR conditional mean + ANCOVA = MMRM) is exact only with one covariance: with one per
    # arm the MMRM weights the arms' shared BASVAL slope by their covariances and OLS does not, so the
    # two agree only closely (0.007 here), and J2R differs from MAR.
    from pipelines.stats.mmrm import fit_mmrm

    f = "CHANGE ~ BASVAL*VISIT + THERAPY*VISIT + us(VISIT | THERAPY / PATIENT)"
    ice = mi.ice_from_dropout(antidepressant, subject="PATIENT", visit="VISIT", outcome="CHANGE")
    ld = mi.prepare(antidepressant, f, group="THERAPY", reference="PLACEBO", ice=ice, strategy="MAR")
    dr = mi.draws(ld, "condmean-jackknife")
    an = mi.ancova(ld, mi.impute(ld, dr, slice(0, 1)), dr.weights[:1])
    c = fit_mmrm(antidepressant, f, df_method="residual").lsmean_contrasts(
        "THERAPY", by="VISIT", ref="PLACEBO"
    )
    assert abs(an.est[0, 3] - c.filter(pl.col("VISIT") == "7")["estimate"][0]) < 0.05
    j2r = mi.prepare(antidepressant, f, group="THERAPY", reference="PLACEBO", ice=ice, strategy="J2R")
    assert len(set(j2r.cov_group.tolist())) == 2 and set(j2r.ref_cov_group.tolist()) == {1}
    dj = mi.draws(j2r, "condmean-jackknife")
    est = mi.ancova(j2r, mi.impute(j2r, dj, slice(0, 1)), dj.weights[:1]).est[0, 3]
    assert est > an.est[0, 3] + 0.3  # J2R pulls the discontinued DRUG subjects towards PLACEBO


# ------------------------------------------------------------------ delete-a-group jackknife
def test_grouped_jackknife_with_one_subject_per_group_is_the_jackknife(antidepressant):
    # G = n groups of one subject: the same n leave-one-out refits, so the same SEs as the exact
    # jackknife (only the reference distribution differs: t with n - 1 df instead of normal).
    ice = mi.ice_from_dropout(antidepressant, subject="PATIENT", visit="VISIT", outcome="CHANGE")
    ld = mi.prepare(antidepressant, FORMULA, group="THERAPY", reference="PLACEBO", ice=ice, strategy="J2R")
    exact = mi.ImputationAnalysis(ld, mi.draws(ld, "condmean-jackknife")).results()
    grouped = mi.ImputationAnalysis(ld, mi.draws(ld, "condmean-grouped-jackknife", n_samples=ld.n, seed=5)).results()
    for col in ("estimate", "std_error"):
        assert np.allclose(grouped[col].to_numpy(), exact[col].to_numpy(), rtol=1e-9, atol=1e-12), col
    assert (grouped["df"] == ld.n - 1).all()
    assert set(grouped["method"]) == {"condmean-grouped-jackknife"} and set(grouped["n_samples"]) == {ld.n}


def test_grouped_jackknife_groups_are_balanced_and_reproducible(antidepressant):
    ice = mi.ice_from_dropout(antidepressant, subject="PATIENT", visit="VISIT", outcome="CHANGE")
    ld = mi.prepare(antidepressant, FORMULA, group="THERAPY", reference="PLACEBO", ice=ice, strategy="MAR")
    g = mi.jackknife_groups(ld, 10, seed=7)
    assert np.array_equal(g, mi.jackknife_groups(ld, 10, seed=7))
    assert not np.array_equal(g, mi.jackknife_groups(ld, 10, seed=8))
    sizes = np.bincount(g, minlength=10)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == ld.n
    for arm in (0, 1):  # each arm dealt out over the groups
        per = np.bincount(g[ld.group_of == arm], minlength=10)
        assert per.max() - per.min() <= 1


def test_grouped_jackknife_equals_delete_group_ols_by_hand(antidepressant):
    # Complete data (completers only): imputation changes nothing, each replicate is the OLS of CHANGE
    # at visit 7 on arm and baseline without one group, so the SE can be computed with numpy directly
    # (Kott 2001: v = (G-1)/G sum (theta_g - mean)^2; t with G-1 df).
    from scipy import stats

    full = antidepressant.group_by("PATIENT").agg(pl.col("CHANGE").is_not_null().sum().alias("k"))
    keep = full.filter(pl.col("k") == 4)["PATIENT"]
    data = antidepressant.filter(pl.col("PATIENT").is_in(keep.to_list()))
    ld = mi.prepare(data, FORMULA, group="THERAPY", reference="PLACEBO", ice={}, strategy="MAR")
    assert not ld.is_missing.any()
    G = 8
    run = mi.ImputationAnalysis(ld, mi.draws(ld, "condmean-grouped-jackknife", n_samples=G, seed=11))
    got = run.results().filter((pl.col("visit") == "7") & (pl.col("parameter") == "difference")).row(0, named=True)

    v = ld.visits.index("7")
    y = ld.y[:, v]
    X = np.column_stack([np.ones(ld.n), ld.group_of == 1, ld.covariates[:, v, :]])
    groups = mi.jackknife_groups(ld, G, seed=11)
    theta = np.linalg.lstsq(X, y, rcond=None)[0][1]
    reps = np.array([np.linalg.lstsq(X[groups != g], y[groups != g], rcond=None)[0][1] for g in range(G)])
    se = np.sqrt((G - 1) / G * np.sum((reps - reps.mean()) ** 2))
    t = stats.t.ppf(0.975, G - 1)
    assert abs(got["estimate"] - theta) < 1e-9
    assert abs(got["std_error"] - se) < 1e-9
    assert abs(got["conf_low"] - (theta - t * se)) < 1e-8 and got["df"] == G - 1
    assert abs(got["p_value"] - 2 * stats.t.sf(abs(theta / se), G - 1)) < 1e-9


def test_grouped_jackknife_replicate_is_a_refit_without_the_group(antidepressant):
    # The re-weighted refit of a deleted group equals fitting the imputation model from scratch on the
    # data without that group's subjects (with missing values, so imputation matters).
    ice = mi.ice_from_dropout(antidepressant, subject="PATIENT", visit="VISIT", outcome="CHANGE")
    ld = mi.prepare(antidepressant, FORMULA, group="THERAPY", reference="PLACEBO", ice=ice, strategy="J2R")
    dr = mi.draws(ld, "condmean-grouped-jackknife", n_samples=5, seed=3)
    groups = mi.jackknife_groups(ld, 5, seed=3)
    an = mi.ImputationAnalysis(ld, dr).analyses([np.zeros((ld.n, ld.V))])[0]
    for g in (0, 3):
        drop = [ld.subjects[i] for i in np.flatnonzero(groups == g)]
        sub = antidepressant.filter(~pl.col("PATIENT").cast(pl.Utf8).is_in([str(s) for s in drop]))
        ice_s = {k: v for k, v in ice.items() if str(k) not in {str(s) for s in drop}}
        ld2 = mi.prepare(sub, FORMULA, group="THERAPY", reference="PLACEBO", ice=ice_s, strategy="J2R")
        assert ld2.n == ld.n - len(drop) and len(drop) > 30
        ref = mi.ImputationAnalysis(ld2, mi.draws(ld2, "condmean-bootstrap", n_samples=2, seed=1))
        direct = ref.analyses([np.zeros((ld2.n, ld2.V))])[0].est[0]  # sample 0 = the original data's fit
        assert np.allclose(an.est[1 + g], direct, atol=1e-6), g


def test_large_ancova_path_agrees_with_the_small_one(j2r, monkeypatch):
    # Large problems form the ANCOVA sums by matrix products (core._GEMM_MIN); forcing that path on
    # the antidepressant data gives the einsum path's numbers up to rounding, deltas included.
    from pipelines.stats.imputation import core

    D = mi.delta_matrix(j2r.ld, 1.5, -0.5)
    small = j2r.analyses([np.zeros((j2r.ld.n, j2r.ld.V)), D])
    monkeypatch.setattr(core, "_GEMM_MIN", 1)
    large = j2r.analyses([np.zeros((j2r.ld.n, j2r.ld.V)), D])
    for a, b in zip(small, large):
        for f in ("est", "se", "df", "lsm", "lsm_se"):
            assert np.allclose(getattr(a, f), getattr(b, f), rtol=1e-10, atol=1e-12), f
    assert not np.allclose(small[0].est, small[1].est)  # the delta did shift the estimates
