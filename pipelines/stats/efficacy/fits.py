"""Model fitting for the efficacy analysis: the primary MMRM with covariance fallbacks, and the
random-effects sensitivity models (fitted as marginal models by the same engine, with small-sample df). Tidy polars frames out; never raises for a model that
cannot be fitted (the failure is returned, with its reason).

Analysis data (one row per subject x post-baseline visit): ``usubjid, trtp, avisit, ady, base, chg``.
"""

from __future__ import annotations

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
MIN_SUBJECTS_FOR_SLOPE = 5  # assumption: subjects with >= 2 post-baseline visits on distinct days


def fixed_effects(*, with_arm: bool, extra: Sequence[str] = (), with_base: bool = True) -> str:
    """The contract's fixed effects (without the arm terms for a single-arm study; without the
    baseline covariate for a change scale such as CGI-I) plus the manifest's strata and covariate
    terms (analysis.model.strata / covariates)."""
    terms = (["base"] if with_base else []) + ["trtp * avisit" if with_arm else "avisit"]
    return " + ".join([*terms, *extra])


def mmrm_formula(
    covariance: str, *, with_arm: bool, extra: Sequence[str] = (), response: str = "chg", with_base: bool = True
) -> str:
    """The primary model's formula as fitted."""
    fixed = fixed_effects(with_arm=with_arm, extra=extra, with_base=with_base)
    return f"{response} ~ {fixed} + {covariance}(avisit | usubjid)"


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
    extra: Sequence[str] = (),
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
        formula = mmrm_formula(cov, with_arm=with_arm, extra=extra, response=response, with_base=with_base)
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
RE_STRUCTURE = {"lmm_ri": "cs", "lmm_rs": "rs"}
SINGULAR_REL = 1e-6  # a G eigenvalue below this fraction of the total variance is a singular fit


@dataclass
class REFit:
    """A random-effects sensitivity model fitted as its marginal model by the MMRM engine, so that it
    has the primary model's small-sample df (Kenward-Roger / Satterthwaite) instead of z tests."""

    kind: str  # lmm_ri | lmm_rs
    formula: str
    result: object | None = None  # MMRMResult
    error: str | None = None
    singular: str | None = None  # why the fit is singular (G on the boundary), None otherwise
    lsmeans: pl.DataFrame | None = None
    contrasts: pl.DataFrame | None = None

    @property
    def converged(self) -> bool:
        return self.error is None and self.result is not None


def _singular(res, kind: str) -> str | None:
    phi = dict(zip(res.covariance_parameters["name"], res.covariance_parameters["estimate"]))
    total = sum(abs(v) for v in phi.values()) or 1.0
    if kind == "lmm_ri":
        if phi.get("CS", 0.0) <= SINGULAR_REL * total:
            return (
                f"singular fit: the random-intercept variance is estimated as {phi.get('CS', 0.0):.4g} "
                "(<= 0); the compound-symmetry marginal model is reported"
            )
        return None
    g = np.array([[phi["UN(1,1)"], phi["UN(2,1)"]], [phi["UN(2,1)"], phi["UN(2,2)"]]])
    ev = np.linalg.eigvalsh(g)
    if ev.min() <= SINGULAR_REL * max(ev.max(), 1e-300) or ev.min() <= SINGULAR_REL * total:
        corr = phi["UN(2,1)"] / np.sqrt(max(phi["UN(1,1)"] * phi["UN(2,2)"], 1e-300))
        return (
            f"singular fit: the random-effects covariance G is on the boundary (smallest eigenvalue "
            f"{ev.min():.3g}, intercept-slope correlation {corr:.3f})"
        )
    return None


def fit_random_effects_mmrm(
    data: pl.DataFrame,
    *,
    kind: str,
    visit_levels: list[str],
    visit_weeks: dict[str, float],
    control: str,
    reml: bool,
    df_method: str,
    fixed: str = "base + trtp * avisit",
) -> REFit:
    """``lmm_ri``: random intercept per subject = ``cs(avisit | usubjid)`` (its marginal model);
    ``lmm_rs``: random intercept and slope on the visit's nominal week, G unstructured, residual
    sigma^2 I = ``rs(vweek | usubjid)``. Same fixed effects as the primary model; LS means and arm
    differences per visit with ``df_method`` (default Kenward-Roger)."""
    response, with_base = analysis_terms(data)
    if not with_base:
        fixed = fixed.replace("base + ", "", 1)
    if kind == "lmm_ri":
        d = data
        formula = f"{response} ~ {fixed} + cs(avisit | usubjid)"
        levels = {"avisit": visit_levels}
    else:
        weeks = [visit_weeks[v] for v in visit_levels]
        labels = {v: f"{visit_weeks[v]:g}" for v in visit_levels}
        d = data.with_columns(pl.col("avisit").replace_strict(labels, default=None).alias("vweek"))
        formula = f"{response} ~ {fixed} + rs(vweek | usubjid)"
        order = [labels[v] for _, v in sorted(zip(weeks, visit_levels))]
        levels = {"avisit": visit_levels, "vweek": order}
    out = REFit(kind, formula)
    try:
        res = fit_mmrm(d, formula, reml=reml, df_method=df_method, ref={"trtp": control}, levels=levels)
    except Exception as exc:
        out.error = f"could not be fitted ({type(exc).__name__}: {exc})"
        return out
    out.result = res
    if not res.converged:
        why = [w for w in res.warnings if any(k in w for k in FAILURE_WORDS)]
        out.error = "; ".join(why) or "did not converge"
        try:  # a boundary optimum (singular G) is the usual reason: say so
            out.singular = _singular(res, kind)
        except Exception:  # noqa: BLE001 - no covariance parameters at all
            out.singular = None
        if out.singular:
            out.error = f"not usable: {out.singular.replace('singular fit: ', '')} at the best point reached, where the optimiser stopped"
        return out
    try:
        out.singular = _singular(res, kind)
        out.lsmeans = res.lsmeans("trtp", by="avisit")
        out.contrasts = res.lsmean_contrasts("trtp", by="avisit", ref=control)
        out.error = _estimable_check(out.contrasts)
    except Exception as exc:
        out.error = f"LS means could not be computed ({type(exc).__name__}: {exc})"
    return out


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
