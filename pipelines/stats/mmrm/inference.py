"""Tests of fixed effects: covariance of beta-hat and denominator degrees of freedom.

Degrees-of-freedom methods (SAS DDFM=):

* ``kenward-roger``  -- KR df; SEs from the KR-adjusted covariance (full KR in SAS's parameterisation);
* ``kenward-roger-linear`` -- SAS DDFM=KR(LINEAR): KR df, adjusted covariance without the
  second-derivative term;
* ``satterthwaite`` -- model-based covariance, Satterthwaite df (Fai-Cornelius for F tests);
* ``residual`` -- N - rank(X);
* ``between-within`` -- SAS DDFM=BW: an effect that changes within some subject gets the
  within-subject df N - n_subjects - (columns of within-subject effects), otherwise the
  between-subject df n_subjects - (columns of between-subject effects incl. the intercept). As in SAS,
  with an unstructured (TYPE=UN) covariance every effect gets the between-subject df. SAS's further
  partition of the within-subject df by subject-by-effect interactions is not implemented.

``vcov="empirical"`` replaces the model-based covariance by the sandwich
Phi (sum_i X_i'V_i^-1 r_i r_i' V_i^-1 X_i) Phi (SAS EMPIRICAL, no small-sample correction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scipy.special, not scipy.stats: the same functions (stats.t.sf is special.stdtr, stats.f.sf is
# special.fdtrc) without importing scipy.stats, which costs most of `trialpipe mmrm`'s start-up.
from scipy import special

from .kenward_roger import kr_df, satterthwaite_df_1d, satterthwaite_df_md

DF_METHODS = ("kenward-roger", "kenward-roger-linear", "satterthwaite", "residual", "between-within")


@dataclass
class TestResult:
    estimate: float
    std_error: float
    df: float
    statistic: float
    p_value: float


class Inference:
    def __init__(self, *, beta, Phi, P, W, df_method, V, N, p, between_within=None):
        self.beta = beta
        self.Phi = Phi
        self.P = P
        self.W = W
        self.df_method = df_method
        self.V = V  # covariance of beta-hat used for SEs and Wald statistics
        self.N = N
        self.p = p
        self.bw = between_within  # dict(col_df=array(p), )

    # ---------------------------------------------------------------------------------------------
    def _bw_df(self, L, term_df=None):
        if term_df is not None:
            return term_df
        cols = np.flatnonzero(np.any(np.abs(np.atleast_2d(L)) > 1e-12, axis=0))
        if len(cols) == 0:
            return np.nan
        return float(np.min(self.bw["col_df"][cols]))

    def df_1d(self, c, term_df=None):
        m = self.df_method
        if m in ("kenward-roger", "kenward-roger-linear"):
            return kr_df(self.Phi, self.P, self.W, c[None, :])[0]
        if m == "satterthwaite":
            return satterthwaite_df_1d(self.Phi, self.P, self.W, c)
        if m == "residual":
            return float(self.N - self.p)
        return self._bw_df(c, term_df)

    def t_test(self, c, term_df=None) -> TestResult:
        c = np.asarray(c, dtype=float)
        with np.errstate(all="ignore"):
            est = float(c @ self.beta)
            var = float(c @ self.V @ c)
            se = np.sqrt(var) if var > 0 else np.nan
            try:
                df = float(self.df_1d(c, term_df))
            except (ArithmeticError, np.linalg.LinAlgError, ValueError):
                df = np.nan
            t = est / se if se > 0 else np.nan
            p = 2.0 * float(special.stdtr(df, -abs(t))) if np.isfinite(t) and df > 0 else np.nan
        return TestResult(est, se, df, t, p)

    def f_test(self, L, term_df=None):
        """Wald F test of L beta = 0; returns (num_df, den_df, F, p). Rows of L must be independent."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        l = L.shape[0]
        est = L @ self.beta
        try:
            F = float(est @ np.linalg.solve(L @ self.V @ L.T, est)) / l
        except np.linalg.LinAlgError:
            return l, np.nan, np.nan, np.nan
        m = self.df_method
        if m in ("kenward-roger", "kenward-roger-linear"):
            den, lam = kr_df(self.Phi, self.P, self.W, L)
            F = F * lam
        elif m == "satterthwaite":
            den = satterthwaite_df_md(self.Phi, self.P, self.W, L)
        elif m == "residual":
            den = float(self.N - self.p)
        else:
            den = self._bw_df(L, term_df)
        p = float(special.fdtrc(l, den, F)) if np.isfinite(den) and den > 0 else np.nan
        return l, float(den), F, p


def independent_rows(L, tol=1e-8):
    """An orthonormal-free basis of the row space of L (rows kept as linear combinations)."""
    L = np.atleast_2d(L)
    if L.size == 0:
        return L
    _U, s, Vt = np.linalg.svd(L, full_matrices=False)
    r = int(np.sum(s > tol * max(1.0, s[0])))
    return Vt[:r] * s[:r, None] if r else L[:0]
