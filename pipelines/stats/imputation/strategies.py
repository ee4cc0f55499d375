"""Imputation distributions per strategy (Carpenter, Roger & Kenward 2013; rbmi's
``strategies.R``), vectorised over parameter samples.

For a subject whose first visit affected by the ICE has index ``t`` (visits ``< t`` are MAR):

* MAR  -- own arm's mean and covariance;
* J2R  -- own mean before ``t``, the reference arm's mean from ``t`` on (same covariates);
* CR   -- the reference arm's mean and covariance at every visit;
* CIR  -- own mean before ``t``; from ``t`` on, own mean at ``t-1`` plus the reference arm's
  increments from ``t-1``;
* LMCF -- own mean before ``t``; own mean at ``t-1`` carried to every later visit.

J2R and CIR with arm-specific covariances use rbmi's ``compute_sigma`` (Carpenter et al. 2013,
section 4.3): the pre-ICE block is the own arm's, the post-ICE conditional structure the
reference's. With one covariance for all arms (the usual case) it is that covariance.
"""

from __future__ import annotations

import numpy as np


def compute_sigma(sig_own: np.ndarray, sig_ref: np.ndarray, t: int) -> np.ndarray:
    """(S, V, V) covariance for a reference-based strategy with MAR visits ``[:t]``."""
    if sig_own is sig_ref or np.array_equal(sig_own, sig_ref):
        return sig_ref
    V = sig_own.shape[-1]
    if t >= V:
        return sig_own
    if t <= 0:
        return sig_ref
    a, b = slice(0, t), slice(t, V)
    T11 = sig_own[:, a, a]
    inv_R11 = np.linalg.inv(sig_ref[:, a, a])
    s21 = sig_ref[:, b, a] @ inv_R11 @ T11
    s22 = (
        sig_ref[:, b, b] - sig_ref[:, b, a] @ inv_R11 @ (sig_ref[:, a, a] - T11) @ inv_R11 @ sig_ref[:, a, b]
    )
    out = np.empty_like(sig_own)
    out[:, a, a] = T11
    out[:, b, a] = s21
    out[:, a, b] = np.swapaxes(s21, -1, -2)
    out[:, b, b] = s22
    return out


def distribution(strategy: str, t: int, mu_own, mu_ref, sig_own, sig_ref):
    """Mean (S, k, V) and covariance (S, V, V) of the imputation distribution of ``k`` subjects of
    one arm sharing ICE visit index ``t`` and ``strategy``."""
    V = mu_own.shape[-1]
    if strategy == "MAR" or t >= V:
        return mu_own, sig_own
    if strategy == "CR":
        return mu_ref, sig_ref
    if strategy == "J2R":
        if t <= 0:
            return mu_ref, sig_ref
        mu = mu_own.copy()
        mu[..., t:] = mu_ref[..., t:]
        return mu, compute_sigma(sig_own, sig_ref, t)
    if strategy == "CIR":
        if t <= 0:
            return mu_ref, sig_ref
        mu = mu_own.copy()
        mu[..., t:] = mu_own[..., t - 1 : t] + (mu_ref[..., t:] - mu_ref[..., t - 1 : t])
        return mu, compute_sigma(sig_own, sig_ref, t)
    if strategy == "LMCF":
        if t <= 0:
            raise ValueError("LMCF cannot be used when the intercurrent event is at the first visit")
        mu = mu_own.copy()
        mu[..., t:] = mu_own[..., t - 1 : t]
        return mu, sig_own
    raise ValueError(f"unknown strategy {strategy!r}")
