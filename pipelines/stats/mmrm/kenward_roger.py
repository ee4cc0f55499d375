"""Kenward-Roger (1997) and Satterthwaite small-sample inference, as SAS PROC MIXED computes them.

Inputs, all in SAS's covariance parameterisation ``phi``:

* ``Phi`` = (X'V^-1X)^-1, the model-based covariance of beta-hat;
* ``P[j]`` = X'V^-1 (dV/dphi_j) V^-1 X, so that dPhi/dphi_j = Phi P_j Phi;
* ``W`` = the asymptotic covariance of phi-hat, 2 x the inverse of the *observed* Hessian of
  -2 log L (REML), which is what SAS uses (checked against SAS's full-precision KR listings for UN,
  CS and AR(1); the expected information gives visibly different df);
* ``SQ`` = sum_jk W_jk Q_jk, Q_jk = X'V^-1 V_j V^-1 V_k V^-1 X; ``SR`` = sum_jk W_jk R_jk,
  R_jk = X'V^-1 (d2V/dphi_j dphi_k) V^-1 X (zero for structures linear in phi).

Kenward-Roger adjusted covariance: Phi_A = Phi + 2 Phi (SQ - sum_jk W_jk P_j Phi P_k - SR / 4) Phi.
DDFM=KR(LINEAR) (SAS's "Prasad-Rao-Jeske-Kackar-Harville" SE method) drops SR.
"""

from __future__ import annotations

import numpy as np


def kr_adjusted_vcov(Phi, P, W, SQ, SR, linear=False):
    PW = np.tensordot(W, P, axes=(1, 0))  # sum_k W_jk P_k
    SPP = np.sum((P @ Phi[None]) @ PW, axis=0)
    lam = SQ - SPP - (0.0 if linear else 0.25 * SR)
    PhiA = Phi + 2.0 * Phi @ lam @ Phi
    return 0.5 * (PhiA + PhiA.T)


def _gradients(Phi, P, c):
    """g_j = c' Phi P_j Phi c = d(c'Phi c)/dphi_j."""
    v = Phi @ c
    return np.einsum("a,jab,b->j", v, P, v)


def kr_df(Phi, P, W, L):
    """Kenward-Roger denominator df m and F scale lambda for the hypothesis L beta = 0 (L: l x p,
    full row rank). (nan, nan) when the approximation is undefined (degenerate fits)."""
    try:
        with np.errstate(all="ignore"):
            m, lam = _kr_df(Phi, P, W, L)
    except (ZeroDivisionError, np.linalg.LinAlgError, FloatingPointError):
        return np.nan, np.nan
    if not (np.isfinite(m) and np.isfinite(lam)) or m <= 0:
        return np.nan, np.nan
    return m, lam


def _kr_df(Phi, P, W, L):
    L = np.atleast_2d(L)
    l = L.shape[0]
    if l == 1:
        c = L[0]
        s = float(c @ Phi @ c)
        g = _gradients(Phi, P, c)
        A1 = A2 = float(g @ W @ g) / s**2
    else:
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        q = P.shape[0]
        U = (Theta @ Phi)[None] @ P @ Phi[None]
        tr = np.trace(U, axis1=1, axis2=2)
        A1 = float(tr @ W @ tr)
        A2 = float(np.sum(W * (U.reshape(q, -1) @ np.swapaxes(U, -1, -2).reshape(q, -1).T)))
    if A2 <= 0:
        return np.inf, 1.0
    B = (A1 + 6.0 * A2) / (2.0 * l)
    g = ((l + 1.0) * A1 - (l + 4.0) * A2) / ((l + 2.0) * A2)
    den = 3.0 * l + 2.0 * (1.0 - g)
    c1, c2, c3 = g / den, (l - g) / den, (l + 2.0 - g) / den
    e_star = 1.0 / (1.0 - A2 / l)
    v_star = (2.0 / l) * (1.0 + c1 * B) / ((1.0 - c2 * B) ** 2 * (1.0 - c3 * B))
    rho = v_star / (2.0 * e_star**2)
    m = 4.0 + (l + 2.0) / (l * rho - 1.0)
    lam = m / (e_star * (m - 2.0))
    return float(m), float(lam)


def satterthwaite_df_1d(Phi, P, W, c):
    with np.errstate(all="ignore"):
        s = float(c @ Phi @ c)
        g = _gradients(Phi, P, c)
        den = float(g @ W @ g)
        df = 2.0 * s**2 / den if den > 0 else np.inf
    return df if np.isfinite(df) or df == np.inf else np.nan


def satterthwaite_df_md(Phi, P, W, L):
    """SAS's multi-degree-of-freedom Satterthwaite df (Fai and Cornelius 1996): decompose L Phi L'
    into orthogonal single-df contrasts, nu_m for each, E = sum nu_m / (nu_m - 2), df = 2E / (E - l)."""
    L = np.atleast_2d(L)
    l = L.shape[0]
    if l == 1:
        return satterthwaite_df_1d(Phi, P, W, L[0])
    try:
        _d, U = np.linalg.eigh(L @ Phi @ L.T)
    except np.linalg.LinAlgError:
        return np.nan
    rows = U.T @ L
    E = 0.0
    for r in rows:
        nu = satterthwaite_df_1d(Phi, P, W, r)
        if nu > 2:
            E += nu / (nu - 2.0)
    return 2.0 * E / (E - l) if E > l else np.nan
