"""draws -> impute -> analyse -> pool (rbmi's four steps), vectorised over parameter samples.

Methods (Wolbers et al. 2022; rbmi ``method_condmean`` / ``method_approxbayes``):

* ``condmean-jackknife``: imputation-model fits on the original data and on every leave-one-subject-
  out data set; each data set is completed with conditional means and analysed; the point estimate is
  the original data's, the SE the jackknife's sqrt((n-1)/n * sum (theta_-i - mean)^2); normal CI/p.
* ``condmean-grouped-jackknife``: the delete-a-group jackknife (Kott 2001, J. Official Statistics
  17:521-526; Efron & Tibshirani 1993 sec. 11.5): the subjects are split into G random groups
  (stratified by arm, balanced: sizes differ by at most one, reproducible from the seed) and each
  replicate leaves one whole group out; SE = sqrt((G-1)/G * sum (theta_-g - mean)^2), CI and p from
  t with G-1 df. Cost G refits instead of n, so it is what large studies use (with G = n and one
  subject per group it is the leave-one-out jackknife's SE).
* ``condmean-bootstrap``: the same with B bootstrap samples (stratified by arm); SE = SD of the
  bootstrap estimates (normal CI/p), or percentile CI/p (rbmi's default ``type = "percentile"``).
* ``approx-bayes``: M bootstrap fits (stratified by arm) are the posterior draws; each imputes the
  original data once by a random draw from the conditional distribution; Rubin's rules with the
  Barnard-Rubin (1999) degrees of freedom, complete-data df = the ANCOVA's residual df.

The analysis step is rbmi's ``ancova``: at each visit separately, ordinary least squares of the
completed outcome on the arm (0 = control, 1 = experimental) and the covariates; the treatment effect
is the arm coefficient (experimental minus control), LS means use "counterfactual" weights (covariates
at their mean over the data set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats

from pipelines.core.errors import ModelSpecError

from .data import LongData
from .refit import Refitter
from .strategies import distribution

METHODS = ("condmean-jackknife", "condmean-grouped-jackknife", "condmean-bootstrap", "approx-bayes")
_CACHE_LIMIT = 40_000_000  # completed values kept in memory (S * n * V, 320 MB); beyond, re-impute per pass


@dataclass
class Draws:
    method: str
    betas: np.ndarray  # (S, p)
    sigmas: np.ndarray  # (S, G, V, V)
    weights: np.ndarray  # (S, n) multiplicity of each subject in the sample's data set
    random: bool
    seed: int | None
    n_failed: int = 0
    iterations: list = field(default_factory=list)

    @property
    def S(self) -> int:
        return len(self.betas)


def _fit_weights(ld: LongData, counts: np.ndarray) -> np.ndarray:
    nfit = ld.fit.model.n_subjects
    w = np.zeros(nfit)
    sel = ld.fit_subject >= 0
    np.add.at(w, ld.fit_subject[sel], counts[sel])
    return w


def _bootstrap_counts(ld: LongData, rng: np.random.Generator) -> np.ndarray:
    counts = np.zeros(ld.n)
    for g in range(len(ld.groups)):
        idx = np.flatnonzero(ld.group_of == g)
        pick = idx[rng.integers(0, len(idx), len(idx))]
        np.add.at(counts, pick, 1.0)
    return counts


def jackknife_groups(ld: LongData, n_groups: int, seed: int | None) -> np.ndarray:
    """Group (0..G-1) of each subject for the delete-a-group jackknife: within each arm a random
    permutation (from ``seed``) dealt out in turn, continuing the deal across arms, so every group
    holds both arms in proportion and sizes differ by at most one."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    group = np.empty(ld.n, dtype=int)
    k = 0
    for g in range(len(ld.groups)):
        idx = rng.permutation(np.flatnonzero(ld.group_of == g))
        group[idx] = (k + np.arange(len(idx))) % n_groups
        k += len(idx)
    return group


def draws(ld: LongData, method: str, **kw) -> Draws:
    """Parameter samples of the imputation model for ``method`` (see module docstring); BLAS on one
    thread as in the MMRM fit (small matrices)."""
    from pipelines.stats.mmrm.model import _single_threaded_blas

    with _single_threaded_blas():
        return _draws(ld, method, **kw)


def _jackknife(method: str, ld: LongData, full, deletions, seed) -> Draws:
    """The full fit, then one refit per deletion ``(weights, refit, what was removed)``; ``refit`` is
    None when the deletion removes nobody from the fit (the full fit stands for it)."""
    betas, sigmas, weights, its = [full.beta], [full.sigmas], [np.ones(ld.n)], []
    for w, refit, removed in deletions:
        r = full if refit is None else refit()
        if r is None:
            raise ModelSpecError(
                f"the imputation model failed to fit after removing {removed}", hint="try a simpler covariance structure"
            )
        betas.append(r.beta)
        sigmas.append(r.sigmas)
        weights.append(w)
        its.append(r.iterations)
    return Draws(method, np.array(betas), np.array(sigmas), np.array(weights), False, seed, 0, its)


def _draws(
    ld: LongData,
    method: str,
    *,
    n_samples: int | None = None,
    seed: int | None = None,
    threshold: float = 0.01,
    progress=None,
) -> Draws:
    say = progress or (lambda msg: None)
    if method not in METHODS:
        raise ModelSpecError(f"unknown method {method!r}", hint="use " + ", ".join(METHODS))
    rf = Refitter(ld.fit)
    full = rf.full
    betas, sigmas, weights, its = [], [], [], []
    if method == "condmean-jackknife":
        say(f"jackknife: {ld.n} leave-one-subject-out refits")

        def leave_one_out():
            for j in range(ld.n):
                w = np.ones(ld.n)
                w[j] = 0.0
                refit = None if ld.fit_subject[j] < 0 else (lambda w=w: rf.refit(_fit_weights(ld, w)))
                yield w, refit, f"subject {ld.subjects[j]!r}"

        return _jackknife(method, ld, full, leave_one_out(), None)
    if n_samples is None or n_samples < 2:
        raise ModelSpecError(f"{method} needs n_samples >= 2")
    if method == "condmean-grouped-jackknife":
        if n_samples > ld.n:
            raise ModelSpecError(f"{method}: {n_samples} groups for {ld.n} subjects", hint="use at most one group per subject")
        group = jackknife_groups(ld, n_samples, seed)
        say(f"grouped jackknife: {n_samples} delete-a-group refits")

        def delete_a_group():
            for j in range(n_samples):
                removed = ld.fit_subject[(group == j) & (ld.fit_subject >= 0)]
                refit = None if len(removed) == 0 else (lambda removed=removed: rf.refit_without(removed))
                yield (group != j).astype(float), refit, f"jackknife group {j + 1} of {n_samples}"

        return _jackknife(method, ld, full, delete_a_group(), seed)
    ss = np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss.spawn(1)[0])
    first_orig = method == "condmean-bootstrap"
    if first_orig:
        betas.append(full.beta)
        sigmas.append(full.sigmas)
        weights.append(np.ones(ld.n))
    limit = math.ceil(threshold * n_samples)
    failed = 0
    done = 0
    say(f"{method}: {n_samples} bootstrap refits")
    while done < n_samples:
        counts = _bootstrap_counts(ld, rng)
        r = rf.refit(_fit_weights(ld, counts))
        if r is None:
            failed += 1
            if failed > limit:
                raise ModelSpecError(
                    f"more than {limit} bootstrap fits of the imputation model failed",
                    hint="try a simpler covariance structure",
                )
            continue
        betas.append(r.beta)
        sigmas.append(r.sigmas)
        weights.append(counts if first_orig else np.ones(ld.n))
        its.append(r.iterations)
        done += 1
    return Draws(
        method,
        np.array(betas),
        np.array(sigmas),
        np.array(weights),
        method == "approx-bayes",
        seed,
        failed,
        its,
    )


# ------------------------------------------------------------------------------------ impute
def _cells(ld: LongData):
    """Subjects with missing values grouped by (covariance groups, strategy, ICE index, pattern)."""
    miss = ld.is_missing
    out: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(miss.any(axis=1)):
        st = ld.strategy[i]
        t = int(ld.ice_index[i]) if st != "MAR" else ld.V
        key = (int(ld.cov_group[i]), int(ld.ref_cov_group[i]), st, t, miss[i].tobytes())
        out.setdefault(key, []).append(int(i))
    return [(k, np.array(v)) for k, v in out.items()]


def impute(ld: LongData, dr: Draws, samples: slice | None = None) -> np.ndarray:
    """Completed outcomes (s, n, V) for the draws in ``samples``: conditional means, or one random
    draw per sample (approximate Bayes; reproducible from the seed whatever the slicing)."""
    samples = samples or slice(0, dr.S)
    idx = np.arange(dr.S)[samples]
    B = dr.betas[idx]
    Sg = dr.sigmas[idx]
    s = len(idx)
    Y = np.broadcast_to(ld.y, (s, ld.n, ld.V)).copy()
    miss = ld.is_missing
    noise = None
    if dr.random:
        total = int(miss.sum())
        noise = np.empty((s, total))
        for r, k in enumerate(idx):
            g = np.random.default_rng(np.random.SeedSequence(dr.seed, spawn_key=(1, int(k))))
            noise[r] = g.standard_normal(total)
        offset = np.zeros(ld.n, dtype=int)
        offset[1:] = np.cumsum(miss.sum(axis=1))[:-1]
    for (cg, rg, st, t, pat), subj in _cells(ld):
        m = np.frombuffer(pat, dtype=bool)
        o = ~m
        mu_own = np.einsum("kvp,sp->skv", ld.X_own[subj], B)
        mu_ref = mu_own if st == "MAR" else np.einsum("kvp,sp->skv", ld.X_ref[subj], B)
        mu, sig = distribution(st, t, mu_own, mu_ref, Sg[:, cg], Sg[:, rg])
        if o.any():
            Soo = sig[:, o][:, :, o]
            Som = sig[:, o][:, :, m]
            A = np.swapaxes(np.linalg.solve(Soo, Som), -1, -2)  # (s, nm, no)
            r = ld.y[subj][:, o][None] - mu[..., o]
            val = mu[..., m] + np.einsum("smo,sko->skm", A, r)
            ccov = sig[:, m][:, :, m] - A @ Som
        else:
            val = mu[..., m]
            ccov = sig[:, m][:, :, m]
        if dr.random:
            L = np.linalg.cholesky(0.5 * (ccov + np.swapaxes(ccov, -1, -2)))
            nm = int(m.sum())
            z = noise[:, offset[subj][:, None] + np.arange(nm)[None, :]]  # (s, k, nm)
            val = val + np.einsum("sij,skj->ski", L, z)
        sub = Y[:, subj]
        sub[..., m] = val
        Y[:, subj] = sub
    return Y


# ------------------------------------------------------------------------------------ delta
def delta_matrix(
    ld: LongData, delta_experimental=0.0, delta_control=0.0, *, cumulative: bool = False
) -> np.ndarray:
    """(n, V) shifts added to imputed post-ICE values (rbmi ``delta_template(missing_only=TRUE)``):
    a scalar or one value per visit for each arm; ``cumulative`` sums the per-visit deltas over the
    post-ICE visits (rbmi ``dlag`` of ones), otherwise each visit gets its own delta."""
    D = np.zeros((ld.n, ld.V))
    post = ld.is_post_ice
    for g, dv in ((1, delta_experimental), (0, delta_control)):
        dv = np.broadcast_to(np.asarray(dv, dtype=float), (ld.V,))
        if not np.any(dv):
            continue
        sel = ld.group_of == g
        vals = np.where(post[sel], dv[None, :], 0.0)
        if cumulative:
            vals = np.cumsum(vals, axis=1)
        D[sel] = vals
    D[~(ld.is_missing & post)] = 0.0
    return D


# ------------------------------------------------------------------------------------ analyse
@dataclass
class Analysis:
    est: np.ndarray  # (S, V) experimental - control
    se: np.ndarray  # (S, V)
    df: np.ndarray  # (S, V)
    lsm: np.ndarray  # (S, 2, V) LS mean of control, experimental
    lsm_se: np.ndarray  # (S, 2, V)


_GEMM_MIN = 50_000  # samples x subjects from which the per-visit sums go through matrix products


def ancova(
    ld: LongData,
    Y: np.ndarray,
    W: np.ndarray,
    D: np.ndarray | None = None,
    *,
    visits: list[int] | None = None,
    design: dict | None = None,
) -> Analysis:
    """Per-visit ANCOVA of the completed outcomes ``Y`` (s, n, V) plus the shifts ``D`` (n, V), with
    subject weights ``W`` (s, n). Large problems (s * n >= _GEMM_MIN) form the weighted sums by
    matrix products (BLAS) instead of einsum's loops: the same sums, up to rounding in the last
    bits, tens of times faster at 10,000+ subjects; small ones keep the einsum sums.

    ``visits``: analyse only these visit indices (the others are NaN); ``design``: a dict kept by
    the caller across calls with the same ``W`` (the weighted cross-products and their inverses do
    not depend on ``Y`` or ``D``: a delta grid computes them once)."""
    s = Y.shape[0]
    gemm = s * ld.n >= _GEMM_MIN
    V = ld.V
    g = (ld.group_of == 1).astype(float)
    est = np.full((s, V), np.nan)
    se = np.full((s, V), np.nan)
    df = np.full((s, V), np.nan)
    lsm = np.full((s, 2, V), np.nan)
    lsm_se = np.full((s, 2, V), np.nan)
    design = {} if design is None else design
    for v in range(V) if visits is None else visits:
        if v not in design:
            Xa = np.column_stack([np.ones(ld.n), g, ld.covariates[:, v, :]])  # (n, k)
            k = Xa.shape[1]
            if gemm:
                XtX = (W @ (Xa[:, :, None] * Xa[:, None, :]).reshape(ld.n, k * k)).reshape(s, k, k)
            else:
                XtX = np.einsum("sn,ni,nj->sij", W, Xa, Xa)
            design[v] = (Xa, np.linalg.inv(XtX))
        Xa, inv = design[v]
        k = Xa.shape[1]
        Yv = Y[:, :, v] if D is None else Y[:, :, v] + D[None, :, v]
        dfv = W.sum(axis=1) - k
        if gemm:
            WY = W * Yv
            Xty = WY @ Xa
            b = (inv @ Xty[:, :, None])[:, :, 0]
            # residual sum of squares y'Wy - b'X'Wy (normal equations): no (s, n) residual array
            s2 = (np.einsum("sn,sn->s", WY, Yv) - (b * Xty).sum(axis=1)) / dfv
        else:
            Xty = np.einsum("sn,ni,sn->si", W, Xa, Yv)
            b = np.einsum("sij,sj->si", inv, Xty)
            res = Yv - b @ Xa.T
            s2 = np.einsum("sn,sn->s", W, res**2) / dfv
        est[:, v] = b[:, 1]
        se[:, v] = np.sqrt(s2 * inv[:, 1, 1])
        df[:, v] = dfv
        cbar = (W @ Xa[:, 2:]) / W.sum(axis=1, keepdims=True)  # (s, c)
        for arm in (0, 1):
            L = np.concatenate([np.ones((s, 1)), np.full((s, 1), float(arm)), cbar], axis=1)
            if gemm:
                lsm[:, arm, v] = (L * b).sum(axis=1)
                lsm_se[:, arm, v] = np.sqrt(s2 * ((L[:, None, :] @ inv)[:, 0, :] * L).sum(axis=1))
            else:
                lsm[:, arm, v] = np.einsum("si,si->s", L, b)
                lsm_se[:, arm, v] = np.sqrt(s2 * np.einsum("si,sij,sj->s", L, inv, L))
    return Analysis(est, se, df, lsm, lsm_se)


# ------------------------------------------------------------------------------------ pool
@dataclass
class Pooled:
    estimate: float
    std_error: float
    df: float
    conf_low: float
    conf_high: float
    p_value: float


def _normal(point, se, level):
    if not (np.isfinite(se) and se > 0):
        return Pooled(point, se, math.inf, math.nan, math.nan, math.nan)
    z = stats.norm.ppf(0.5 + level / 2)
    p = 2 * stats.norm.sf(abs(point / se))
    return Pooled(point, se, math.inf, point - z * se, point + z * se, min(1.0, p))


def pool_jackknife(ests: np.ndarray, level=0.95) -> Pooled:
    point, jack = ests[0], ests[1:]
    nj = len(jack)
    se = math.sqrt((nj - 1) / nj * float(np.sum((jack - jack.mean()) ** 2)))
    return _normal(float(point), se, level)


def pool_grouped_jackknife(ests: np.ndarray, level=0.95) -> Pooled:
    """Delete-a-group jackknife (Kott 2001): the jackknife SE over the G group-deleted estimates,
    CI and p from t with G-1 degrees of freedom."""
    point, jack = float(ests[0]), ests[1:]
    g = len(jack)
    se = math.sqrt((g - 1) / g * float(np.sum((jack - jack.mean()) ** 2)))
    if not (np.isfinite(se) and se > 0):
        return Pooled(point, se, g - 1, math.nan, math.nan, math.nan)
    t = stats.t.ppf(0.5 + level / 2, g - 1)
    p = 2 * stats.t.sf(abs(point / se), g - 1)
    return Pooled(point, se, float(g - 1), point - t * se, point + t * se, min(1.0, p))


def pool_bootstrap_normal(ests: np.ndarray, level=0.95) -> Pooled:
    return _normal(float(ests[0]), float(np.std(ests[1:], ddof=1)), level)


def pool_bootstrap_percentile(ests: np.ndarray, level=0.95) -> Pooled:
    """rbmi ``pool_bootstrap_percentile``: type-6 quantiles, p from the quantile at which the
    bootstrap distribution crosses zero."""
    point, b = float(ests[0]), np.sort(ests[1:])
    a = 1 - level
    lo, hi = np.quantile(b, [a / 2, 1 - a / 2], method="weibull")
    if np.all(b == 0):
        pg = pl_ = 1.0
    elif b.min() > 0:
        pg, pl_ = 0.0, 1.0
    elif b.max() < 0:
        pg, pl_ = 1.0, 0.0
    else:
        pos = np.arange(1, len(b) + 1) / (len(b) + 1)
        q = float(np.interp(0.0, b, pos))
        pg, pl_ = q, 1 - q
    return Pooled(point, math.nan, math.inf, float(lo), float(hi), min(1.0, 2 * min(pg, pl_)))


def rubin(ests: np.ndarray, ses: np.ndarray, v_com: float, level=0.95) -> Pooled:
    """Rubin's rules; Barnard & Rubin (1999) df with complete-data df ``v_com`` (rbmi ``rubin_df``)."""
    M = len(ests)
    point = float(np.mean(ests))
    var_w = float(np.mean(ses**2))
    var_b = float(np.var(ests, ddof=1))
    var_t = var_w + var_b + var_b / M
    if not np.isfinite(v_com) and var_b == 0:
        df = math.inf
    else:
        lam = (1 + 1 / M) * var_b / var_t
        v_obs = ((v_com + 1) / (v_com + 3)) * v_com * (1 - lam) if np.isfinite(v_com) else math.inf
        if lam != 0:
            v_old = (M - 1) / lam**2
            df = v_old if not np.isfinite(v_com) else (v_old * v_obs) / (v_old + v_obs)
        else:
            df = v_obs
    se = math.sqrt(var_t)
    t = stats.t.ppf(0.5 + level / 2, df)
    p = 2 * stats.t.sf(abs(point / se), df) if se > 0 else math.nan
    return Pooled(point, se, df, point - t * se, point + t * se, min(1.0, p))


def pool(
    dr: Draws, est: np.ndarray, se: np.ndarray, df: np.ndarray, level=0.95, bootstrap_ci="normal"
) -> Pooled:
    if dr.method == "condmean-jackknife":
        return pool_jackknife(est, level)
    if dr.method == "condmean-grouped-jackknife":
        return pool_grouped_jackknife(est, level)
    if dr.method == "condmean-bootstrap":
        return (pool_bootstrap_percentile if bootstrap_ci == "percentile" else pool_bootstrap_normal)(
            est, level
        )
    return rubin(est, se, float(df[0]), level)


# ------------------------------------------------------------------------------------ the whole run
class ImputationAnalysis:
    """Draws once, imputes once (kept in memory when small), analyses for any number of deltas."""

    def __init__(self, ld: LongData, dr: Draws, *, conf_level=0.95, bootstrap_ci="normal"):
        self.ld = ld
        self.dr = dr
        self.conf_level = conf_level
        self.bootstrap_ci = bootstrap_ci
        size = dr.S * ld.n * ld.V
        self._Y = impute(ld, dr) if size <= _CACHE_LIMIT else None
        self._chunk = max(1, _CACHE_LIMIT // max(1, ld.n * ld.V) // 4)

    def analyses(self, deltas: list[np.ndarray], visits: list[int] | None = None) -> list[Analysis]:
        """ANCOVA of every sample for each (n, V) delta matrix (at ``visits`` only, when given)."""
        parts: list[list[Analysis]] = [[] for _ in deltas]
        chunks = (
            [slice(0, self.dr.S)]
            if self._Y is not None
            else [slice(a, min(a + self._chunk, self.dr.S)) for a in range(0, self.dr.S, self._chunk)]
        )
        for sl in chunks:
            Y = self._Y if self._Y is not None else impute(self.ld, self.dr, sl)
            W = self.dr.weights[sl]
            design: dict = {}
            for i, D in enumerate(deltas):
                parts[i].append(ancova(self.ld, Y, W, D if np.any(D) else None, visits=visits, design=design))
        out = []
        for p in parts:
            out.append(
                Analysis(
                    *[
                        np.concatenate([getattr(a, f) for a in p])
                        for f in ("est", "se", "df", "lsm", "lsm_se")
                    ]
                )
            )
        return out

    def pooled(self, an: Analysis, visit: int) -> Pooled:
        return pool(
            self.dr, an.est[:, visit], an.se[:, visit], an.df[:, visit], self.conf_level, self.bootstrap_ci
        )

    def results(self, delta_experimental=0.0, delta_control=0.0, *, cumulative=False) -> pl.DataFrame:
        """Pooled treatment effect and LS means per visit (tidy)."""
        D = delta_matrix(self.ld, delta_experimental, delta_control, cumulative=cumulative)
        an = self.analyses([D])[0]
        rows = []
        ld = self.ld
        for v, vis in enumerate(ld.visits):
            p = self.pooled(an, v)
            rows.append(
                dict(visit=vis, parameter="difference", arm=f"{ld.groups[1]} - {ld.groups[0]}", **p.__dict__)
            )
            for arm in (0, 1):
                q = pool(
                    self.dr,
                    an.lsm[:, arm, v],
                    an.lsm_se[:, arm, v],
                    an.df[:, v],
                    self.conf_level,
                    self.bootstrap_ci,
                )
                rows.append(dict(visit=vis, parameter="lsmean", arm=ld.groups[arm], **q.__dict__))
        frame = pl.DataFrame(rows)
        return frame.with_columns(
            pl.lit(self.dr.method).alias("method"),
            pl.lit(float(np.mean(np.atleast_1d(delta_experimental)))).alias("delta_experimental"),
            pl.lit(float(np.mean(np.atleast_1d(delta_control)))).alias("delta_control"),
            pl.lit(self.dr.S - (1 if self.dr.method.startswith("condmean") else 0)).alias("n_samples"),
        )

    # ------------------------------------------------------------------ tipping point
    def grid(self, visit: str, deltas_experimental, deltas_control, *, cumulative=False) -> pl.DataFrame:
        """Estimate and p at ``visit`` over the delta grid (rows: every combination)."""
        v = self.ld.visits.index(str(visit))
        combos = [(float(a), float(b)) for a in deltas_experimental for b in deltas_control]
        Ds = [delta_matrix(self.ld, a, b, cumulative=cumulative) for a, b in combos]
        ans = self.analyses(Ds, visits=[v])
        rows = []
        for (a, b), an in zip(combos, ans):
            p = self.pooled(an, v)
            rows.append(
                {
                    "delta_experimental": a,
                    "delta_control": b,
                    "estimate": p.estimate,
                    "std_error": p.std_error,
                    "p_value": p.p_value,
                    "conf_low": p.conf_low,
                    "conf_high": p.conf_high,
                }
            )
        return pl.DataFrame(rows)

    def tipping_delta(self, visit: str, arm: str, *, alpha=0.05, cumulative=False, max_delta=None, tol=1e-3):
        """Smallest shift of the imputed post-ICE values of one arm (``"experimental"`` or
        ``"control"``), in the direction that moves the contrast towards no effect, at which the
        two-sided p at ``visit`` reaches ``alpha``. 0 if the contrast is not significant to begin with;
        None if no shift up to ``max_delta`` (default 10 x |estimate| + 10 SE) tips it."""
        v = self.ld.visits.index(str(visit))

        def p_at(d):
            D = (
                delta_matrix(self.ld, d, 0.0, cumulative=cumulative)
                if arm == "experimental"
                else delta_matrix(self.ld, 0.0, d, cumulative=cumulative)
            )
            return self.pooled(self.analyses([D], visits=[v])[0], v)

        base = p_at(0.0)
        if not (base.p_value < alpha):
            return 0.0
        sign = -np.sign(base.estimate) if arm == "experimental" else np.sign(base.estimate)

        def still_significant(d):
            p = p_at(sign * d)
            return p.p_value < alpha and np.sign(p.estimate) == np.sign(base.estimate)

        step = base.std_error if np.isfinite(base.std_error) and base.std_error > 0 else abs(base.estimate)
        limit = max_delta or 1e3 * (abs(base.estimate) + step)
        lo, hi = 0.0, step
        while still_significant(hi):
            lo, hi = hi, 2 * hi
            if hi > limit:
                return None  # too few imputed values in this arm to move the contrast
        while hi - lo > tol:
            mid = 0.5 * (lo + hi)
            if still_significant(mid):
                lo = mid
            else:
                hi = mid
        return float(sign * hi)
