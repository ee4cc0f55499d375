"""The pattern-batched likelihood engine against a direct dense computation of SAS's definitions."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.stats.mmrm.covariance import make_structure
from pipelines.stats.mmrm.engine import MarginalModel
from pipelines.stats.mmrm.kenward_roger import kr_df, satterthwaite_df_1d


def _toy(seed=0, n=30, m=4, p=3, weights=False):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        visits = sorted(rng.choice(m, size=rng.integers(1, m + 1), replace=False))
        for v in visits:
            rows.append((s, v))
    subj = np.array([r[0] for r in rows])
    time = np.array([r[1] for r in rows])
    X = np.column_stack([np.ones(len(rows)), rng.normal(size=(len(rows), p - 1))])
    y = X @ rng.normal(size=p) + rng.normal(size=len(rows)) * 2
    w = rng.uniform(0.5, 2.0, size=len(rows)) if weights else None
    return X, y, subj, time, w


def _dense_neg2ll(X, y, subj, time, w, Sigma, reml):
    """-2 log L straight from SAS's definition, with dense per-subject matrices."""
    N, p = X.shape
    A = np.zeros((p, p))
    b = np.zeros(p)
    logdet = 0.0
    Vinv = {}
    for s in np.unique(subj):
        idx = np.flatnonzero(subj == s)
        V = Sigma[np.ix_(time[idx], time[idx])].copy()
        if w is not None:
            V = V / np.sqrt(np.outer(w[idx], w[idx]))
        Vi = np.linalg.inv(V)
        Vinv[s] = (idx, Vi)
        logdet += np.linalg.slogdet(V)[1]
        A += X[idx].T @ Vi @ X[idx]
        b += X[idx].T @ Vi @ y[idx]
    beta = np.linalg.solve(A, b)
    rVr = sum((y[i] - X[i] @ beta) @ Vi @ (y[i] - X[i] @ beta) for i, Vi in Vinv.values())
    if reml:
        return logdet + np.linalg.slogdet(A)[1] + rVr + (N - p) * np.log(2 * np.pi), beta
    return logdet + rVr + N * np.log(2 * np.pi), beta


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("weights", [False, True])
def test_engine_likelihood_equals_dense_definition(reml, weights):
    X, y, subj, time, w = _toy(weights=weights)
    st = make_structure("us", 4)
    rng = np.random.default_rng(5)
    Lc = np.tril(rng.normal(size=(4, 4))) + 3 * np.eye(4)
    Sigma = Lc @ Lc.T
    phi = Sigma[np.tril_indices(4)]
    model = MarginalModel(X, y, subj, time, np.zeros(subj.max() + 1, int), [st], weights=w, reml=reml)
    ev = model.evaluate(phi)
    expected, beta = _dense_neg2ll(X, y, subj, time, w, Sigma, reml)
    assert ev.f == pytest.approx(expected, abs=1e-9)
    assert np.allclose(ev.beta, beta, atol=1e-10)


def test_reml_minus_ml_is_log_det_of_information():
    """REML -2LL = ML -2LL + log|X'V^-1X| - p log(2 pi) at any covariance parameters."""
    X, y, subj, time, _ = _toy(seed=1)
    st = make_structure("ar1", 4)
    phi = np.array([0.4, 3.0])
    g = np.zeros(subj.max() + 1, int)
    f_reml = MarginalModel(X, y, subj, time, g, [st], reml=True).evaluate(phi)
    f_ml = MarginalModel(X, y, subj, time, g, [st], reml=False).evaluate(phi)
    logdet = np.linalg.slogdet(f_reml.XtVX)[1]
    assert f_reml.f - f_ml.f == pytest.approx(logdet - X.shape[1] * np.log(2 * np.pi), abs=1e-9)


@pytest.mark.parametrize("name", ["us", "csh", "toeph", "adh", "ar1"])
@pytest.mark.parametrize("reml", [True, False])
def test_gradient_and_observed_hessian_match_numerical_derivatives(name, reml):
    X, y, subj, time, w = _toy(seed=2, n=40, weights=True)
    st = make_structure(name, 4)
    model = MarginalModel(X, y, subj, time, np.zeros(subj.max() + 1, int), [st], weights=w, reml=reml)
    phi = st.theta_to_phi(np.random.default_rng(4).normal(scale=0.4, size=st.n_params))
    ev = model.evaluate(phi, grad=True)
    H = model.inference_terms(phi)["H_obs"]
    q = st.n_params
    h = 1e-5
    num_g = np.zeros(q)
    num_H = np.zeros((q, q))
    for j in range(q):
        e = np.zeros(q)
        e[j] = h
        num_g[j] = (model.objective(phi + e) - model.objective(phi - e)) / (2 * h)
        num_H[:, j] = (
            model.evaluate(phi + e, grad=True).grad_phi - model.evaluate(phi - e, grad=True).grad_phi
        ) / (2 * h)
    assert np.allclose(ev.grad_phi, num_g, rtol=1e-5, atol=1e-5)
    assert np.allclose(H, 0.5 * (num_H + num_H.T), rtol=1e-4, atol=1e-4)


def test_kenward_roger_df_of_one_contrast_equals_satterthwaite():
    """For a single contrast the KR df reduces to the Satterthwaite df (with the unadjusted Phi)."""
    X, y, subj, time, _ = _toy(seed=3, n=50)
    st = make_structure("csh", 4)
    model = MarginalModel(X, y, subj, time, np.zeros(subj.max() + 1, int), [st])
    res = model.optimise(model.phi_to_theta(st.init_phi(np.eye(4) * 4 + 1)))
    assert res.converged
    T = model.inference_terms(res.phi)
    W = 2 * np.linalg.inv(T["H_obs"])
    c = np.array([0.0, 1.0, -0.5])
    assert kr_df(T["Phi"], T["P"], W, c[None])[0] == pytest.approx(
        satterthwaite_df_1d(T["Phi"], T["P"], W, c), rel=1e-10
    )


def test_optimiser_reaches_a_stationary_point():
    X, y, subj, time, _ = _toy(seed=4, n=60)
    st = make_structure("toeph", 4)
    model = MarginalModel(X, y, subj, time, np.zeros(subj.max() + 1, int), [st])
    res = model.optimise(model.phi_to_theta(st.init_phi(np.eye(4) * 4 + 1)))
    assert res.converged
    g = model.evaluate(res.phi, grad=True).grad_phi
    H = model.inference_terms(res.phi)["H_obs"]
    assert float(g @ np.linalg.solve(H, g)) < 1e-8  # Newton decrement
    assert np.all(np.linalg.eigvalsh(H) > 0)
