"""Model fitting for the efficacy analysis: the primary MMRM with covariance fallbacks, and the
statsmodels random-effects sensitivity models. Tidy polars frames out; never raises for a model that
cannot be fitted (the failure is returned, with its reason).

Analysis data (one row per subject x post-baseline visit): ``usubjid, trtp, avisit, ady, base, chg``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats

from pipelines.stats.mmrm import fit_mmrm

# Structures with one variance per visit: a visit with fewer than two observations leaves its
# variance unidentified (the engine warns "... barely or not identified").
HETEROGENEOUS = frozenset({"us", "csh", "toeph", "ar1h", "adh"})
# Engine warnings that make a fit that "converged" unusable (covariance on the boundary or zero).
DEGENERATE = ("on the boundary", "is (nearly) zero", "no residual variation")
# Engine warnings that say why a fit failed (shown in results.model_fits.warnings).
FAILURE_WORDS = (
    "did not converge",
    "not positive definite",
    "singular",
    "could not be computed",
    "no valid covariance",
    "on the boundary",
    "(nearly) zero",
    "no residual variation",
    "not identified",
)
SLOPE_SCALE_DAYS = 7.0  # random slope per week of study day (a rescaling; the model is the same)
MIN_SUBJECTS_FOR_SLOPE = 5  # assumption: subjects with >= 2 post-baseline visits on distinct days


def mmrm_formula(covariance: str, *, with_arm: bool, response: str = "chg", with_base: bool = True) -> str:
    """The contract's primary model; without the arm terms for a single-arm study; for a change
    scale (CGI-I: no baseline) the value itself without the baseline covariate."""
    terms = (["base"] if with_base else []) + ["trtp * avisit" if with_arm else "avisit"]
    return f"{response} ~ {' + '.join(terms)} + {covariance}(avisit | usubjid)"


def analysis_terms(data: pl.DataFrame) -> tuple[str, bool]:
    """(response column, baseline covariate?) of an analysis frame: ``chg`` with ``base``, or
    ``aval`` alone for a change scale, whose frame has no ``chg`` column."""
    return ("chg", True) if "chg" in data.columns else ("aval", False)


def t_interval(est, se, df, alpha):
    if est is None or se is None or df is None:
        return None, None
    if not (np.isfinite(est) and np.isfinite(se) and np.isfinite(df) and df > 0):
        return None, None
    q = stats.t.ppf(1.0 - alpha / 2.0, df)
    return est - q * se, est + q * se


def z_interval(est, se, alpha):
    if not (np.isfinite(est) and np.isfinite(se)):
        return None, None
    q = stats.norm.ppf(1.0 - alpha / 2.0)
    return est - q * se, est + q * se


# ------------------------------------------------------------------------------ primary MMRM
@dataclass
class Attempt:
    covariance: str
    formula: str
    result: object | None = None  # MMRMResult
    reason: str | None = None  # why it was not used (None = used)
    lsmeans: pl.DataFrame | None = None
    contrasts: pl.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass
class FallbackFit:
    """The attempts in order; ``used`` is the first usable one (None when every structure failed)."""

    attempts: list[Attempt] = field(default_factory=list)

    @property
    def used(self) -> Attempt | None:
        return next((a for a in self.attempts if a.ok), None)

    @property
    def reported(self) -> Attempt:
        """The attempt model_fits describes: the one used, else the last one tried."""
        return self.used or self.attempts[-1]

    @property
    def failed_before(self) -> list[Attempt]:
        out = []
        for a in self.attempts:
            if a.ok:
                break
            out.append(a)
        return out if self.used is not None else out[:-1]


def _failure_reason(res, covariance: str) -> str | None:
    if not res.converged:
        why = [w for w in res.warnings if any(k in w for k in FAILURE_WORDS)]
        return "; ".join(why) or "did not converge"
    bad = [w for w in res.warnings if any(k in w for k in DEGENERATE)]
    if covariance in HETEROGENEOUS:
        bad += [w for w in res.warnings if "not identified" in w]
    if bad:
        return "degenerate fit: " + "; ".join(bad)
    return None


def _estimable_check(frame: pl.DataFrame) -> str | None:
    """None when every estimable row has a finite SE and df; a reason otherwise."""
    est = frame["estimate"].to_numpy()
    se = frame["std_error"].to_numpy()
    df = frame["df"].to_numpy()
    finite = np.isfinite(est)
    if not finite.any():
        return "no estimable LS mean or treatment effect"
    bad = finite & ~(np.isfinite(se) & (se > 0) & np.isfinite(df) & (df > 0))
    if bad.any():
        return "standard errors or degrees of freedom are not finite at the solution"
    return None


def fit_mmrm_with_fallbacks(
    data: pl.DataFrame,
    *,
    structures: Sequence[str],
    df_method: str,
    reml: bool,
    visit_levels: list[str],
    control: str | None,
    with_arm: bool,
    progress: Callable[[str], None] | None = None,
) -> FallbackFit:
    """Fit ``chg ~ base + trtp * avisit + <structure>(avisit | usubjid)`` with each structure in
    turn until one is usable.

    Usable = the engine says converged, no degenerate covariance (a correlation on the boundary, a
    variance of (nearly) zero, or, for structures with a variance per visit, a visit whose variance
    is not identified), and every estimable LS mean / arm difference has a finite standard error and
    df. Not estimable (aliased) cells are not a covariance failure: they stay NaN in the output.
    Data errors (``ModelSpecError``) and unexpected numerical errors are recorded as failed attempts.
    """
    fit = FallbackFit()
    for cov in dict.fromkeys(structures):
        response, with_base = analysis_terms(data)
        formula = mmrm_formula(cov, with_arm=with_arm, response=response, with_base=with_base)
        att = Attempt(cov, formula)
        fit.attempts.append(att)
        if progress:
            progress(f"MMRM {cov}")
        try:
            res = fit_mmrm(
                data,
                formula,
                reml=reml,
                df_method=df_method,
                ref={"trtp": control} if with_arm else None,
                levels={"avisit": visit_levels},
            )
        except Exception as exc:  # ModelSpecError for data problems; anything else is reported too
            att.reason = f"could not be fitted ({type(exc).__name__}: {exc})"
            continue
        att.result = res
        att.reason = _failure_reason(res, cov)
        if att.reason:
            continue
        try:
            if with_arm:
                att.lsmeans = res.lsmeans("trtp", by="avisit")
                att.contrasts = res.lsmean_contrasts("trtp", by="avisit", ref=control)
                att.reason = _estimable_check(att.contrasts) or _estimable_check(att.lsmeans)
            else:
                att.lsmeans = res.lsmeans("avisit")
                att.reason = _estimable_check(att.lsmeans)
        except Exception as exc:
            att.reason = f"LS means could not be computed ({type(exc).__name__}: {exc})"
        if att.ok:
            break
    return fit


# ------------------------------------------------------------------------------ random effects
@dataclass
class LMMFit:
    kind: str  # "lmm_ri" | "lmm_rs"
    formula: str
    re_formula: str | None
    result: object | None = None  # LMMResult
    error: str | None = None
    lsmeans: list[dict] = field(default_factory=list)  # trtp, avisit, estimate, std_error
    contrasts: list[dict] = field(default_factory=list)  # avisit, estimate, std_error, statistic, p_value

    usable: bool = False

    @property
    def converged(self) -> bool:
        """Usable: statsmodels' optimiser converged, the only convergence warnings (if any) say a
        variance component is on the boundary (estimated as zero / singular G), and the treatment
        effects have finite standard errors. ``pipelines.stats.lmm.fit_lmm`` counts the boundary
        warning as non-convergence; a zero variance component is a legitimate REML estimate (the
        model reduces to fewer random effects) and SAS/lme4 report such fits, so we keep them and
        list the warning in results.model_fits.warnings."""
        return self.usable


def lmm_design(
    data: pl.DataFrame, *, visit_levels: list[str], experimental: str
) -> tuple[pl.DataFrame, list[str]]:
    """Treatment-coded numeric columns for ``chg ~ base + trtp * avisit`` (first visit and the
    control arm are the reference): ``x_trt``, ``x_v<j>``, ``x_tv<j>`` for visits j >= 2."""
    d = data.with_columns(x_trt=(pl.col("trtp") == experimental).cast(pl.Float64))
    cols = (["base"] if analysis_terms(data)[1] else []) + ["x_trt"]
    for j, v in enumerate(visit_levels[1:], start=2):
        d = d.with_columns(
            (pl.col("avisit") == v).cast(pl.Float64).alias(f"x_v{j}"),
            ((pl.col("avisit") == v) & (pl.col("trtp") == experimental)).cast(pl.Float64).alias(f"x_tv{j}"),
        )
        cols += [f"x_v{j}", f"x_tv{j}"]
    return d, cols


def fit_random_effects(
    data: pl.DataFrame,
    *,
    kind: str,
    visit_levels: list[str],
    experimental: str,
    control: str,
    reml: bool,
) -> LMMFit:
    """statsmodels MixedLM: ``lmm_ri`` chg ~ base + trtp * avisit + (1 | usubjid); ``lmm_rs`` the same
    fixed effects with a random intercept and a random slope on study day (ADY / 7, i.e. per week;
    unstructured 2 x 2 G). LS means at the mean baseline of the analysis rows, arm differences per
    visit; Wald z inference (statsmodels MixedLM has no small-sample df)."""
    from pipelines.stats.lmm import fit_lmm

    d, cols = lmm_design(data, visit_levels=visit_levels, experimental=experimental)
    # a visit x arm cell without data leaves its column all zero: drop it (that effect is not estimable)
    keep = [c for c in cols if c == "base" or float(d.get_column(c).abs().sum()) > 0]
    response, with_base = analysis_terms(data)
    formula = f"{response} ~ " + " + ".join(keep)
    re_formula = None
    if kind == "lmm_rs":
        d = d.with_columns((pl.col("ady").cast(pl.Float64) / SLOPE_SCALE_DAYS).alias("ady_weeks"))
        d = d.filter(pl.col("ady_weeks").is_not_null())
        re_formula = "~ady_weeks"
    out = LMMFit(kind, formula, re_formula)
    try:
        with warnings.catch_warnings():
            # numerical RuntimeWarnings statsmodels emits outside fit_lmm's own recording (e.g. log(0)
            # for a response without variation); the fit's convergence flag carries the verdict
            warnings.simplefilter("ignore", RuntimeWarning)
            res = fit_lmm(d, formula, groups="usubjid", re_formula=re_formula, reml=reml)
    except Exception as exc:
        out.error = f"could not be fitted ({type(exc).__name__}: {exc})"
        return out
    out.result = res
    if not _lmm_usable(res):
        return out
    names = list(res.model_result.fe_params.index)
    beta = res.model_result.fe_params.to_numpy()
    V = res.vcov
    pos = {n: i for i, n in enumerate(names)}
    base_mean = float(d.get_column("base").mean()) if with_base else 0.0

    def vec(trt: float, j: int, contrast: bool) -> np.ndarray | None:
        L = np.zeros(len(names))
        if not contrast:
            L[pos["Intercept"]] = 1.0
            if with_base:
                L[pos["base"]] = base_mean
        need = []
        if trt:
            need.append(("x_trt", 1.0))
        if j >= 2:
            if not contrast:
                need.append((f"x_v{j}", 1.0))
            if trt:
                need.append((f"x_tv{j}", 1.0))
        for name, val in need:
            if name not in pos:
                return None  # not estimable: the cell has no data
            L[pos[name]] = val
        return L

    def est_se(L):
        if L is None:
            return float("nan"), float("nan")
        return float(L @ beta), float(np.sqrt(max(L @ V @ L, 0.0)))

    arms = [(control, 0.0), (experimental, 1.0)]
    for j, v in enumerate(visit_levels, start=1):
        for arm, trt in arms:
            e, s = est_se(vec(trt, j, contrast=False))
            out.lsmeans.append({"trtp": arm, "avisit": v, "estimate": e, "std_error": s})
        e, s = est_se(vec(1.0, j, contrast=True))
        z = e / s if np.isfinite(e) and s > 0 else float("nan")
        p = float(2.0 * stats.norm.sf(abs(z))) if np.isfinite(z) else float("nan")
        out.contrasts.append({"avisit": v, "estimate": e, "std_error": s, "statistic": z, "p_value": p})
    if not any(np.isfinite(c["estimate"]) and c["std_error"] > 0 for c in out.contrasts):  # NaN > 0 is False
        out.error = "no estimable treatment effect (standard errors not finite or zero)"
    out.usable = out.error is None
    return out


BOUNDARY_WARNINGS = ("on the boundary of the parameter space", "Random effects covariance is singular")


def _lmm_usable(res) -> bool:
    if res.converged:
        return True
    if not bool(getattr(res.model_result, "converged", False)):
        return False
    other = [w for w in res.warnings if not any(k in w for k in BOUNDARY_WARNINGS)]
    return not any(("converge" in w.lower() or "failed" in w.lower()) for w in other)


def slope_identifiable(data: pl.DataFrame) -> tuple[bool, str]:
    """A random slope on study day needs subjects seen on two or more distinct post-baseline days."""
    per = (
        data.filter(pl.col("ady").is_not_null())
        .group_by("usubjid")
        .agg(pl.col("ady").n_unique().alias("n_days"))
    )
    n = int((per.get_column("n_days") >= 2).sum()) if per.height else 0
    if n < MIN_SUBJECTS_FOR_SLOPE:
        return False, (
            f"{n} subject(s) have post-baseline values on two or more distinct days (at least "
            f"{MIN_SUBJECTS_FOR_SLOPE} needed): the random slope is not identifiable"
        )
    return True, ""
