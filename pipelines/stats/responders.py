"""Responder and remitter analysis at the primary visit (``results.responders``).

Rules, in words:

* R1 Source: ADQS records of the primary visit with ANL01FL = 'Y'. Response is CRIT1FL, remission
  CRIT2FL (their thresholds are ADQS CRIT1 / CRIT2: by default >= 30 % reduction of CAPS-5 or PCL-5,
  >= 50 % of MADRS; remission MADRS <= 10, PCL-5 < 33). A parameter gets rows for a criterion when
  its ADQS records carry the rule (CRIT1 / CRIT2 not null).
  Loss of diagnosis is CRIT3FL (ADQS rule A10: the instrument's diagnostic rule, CAPS-5 DSM-5
  PTSD, met at baseline and not at the visit); subjects without a diagnosis at baseline are not
  evaluable (observed) and count as non-responders under non-responder imputation, like the
  composite strategy (Feder 2021 reported loss of diagnosis over all randomized).
* R2 Missing data, default ("observed"): a subject is evaluable when the flag is Y or N at the
  primary visit; subjects without a primary-visit value (dropouts, missing items) or without a
  usable baseline are not evaluable and are left out of numerator and denominator.
  Secondary ("non-responder imputation"): every randomized subject of the arm is in the denominator
  and every subject without a Y counts as a non-responder (the ITT convention of Feder 2021, whose
  67 % = 10/15 uses the 15 randomized).
* R3 Per arm: n responders / n evaluable, proportion, Wilson score 95 % CI (statsmodels
  ``proportion_confint(method="wilson")``).
* R4 Comparison (experimental - control), ``trtp`` = 'KET - MID': risk difference with the
  Miettinen-Nurminen score CI (computed here; statsmodels 0.15 ``confint_proportions_2indep(...,
  method="score")`` does not reproduce the published MN limits, see :func:`mn_risk_difference_ci`)
  and the two-sided Fisher exact p (scipy, the usual sum of table probabilities not above the
  observed one). ``odds_ratio`` on that row is the conditional MLE with its exact CI (scipy
  ``contingency.odds_ratio``), consistent with Fisher's test.
* R5 Secondary: logistic regression response ~ arm + baseline (statsmodels Logit, Wald p of the arm
  term, odds ratio exp(beta) with a Wald CI), observed data only. With (quasi-)complete separation
  (e.g. no responder in an arm) or no convergence the row has no estimate and ``warning`` says why.
* R6 Single-arm studies: per-arm rows only (no comparison).

Confidence level 1 - alpha (manifest ``analysis.alpha``).
"""

from __future__ import annotations

import math
import warnings as _warnings
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import optimize, stats

CRITERIA = (
    ("response", "crit1", "crit1fl"),
    ("remission", "crit2", "crit2fl"),
    ("loss of diagnosis", "crit3", "crit3fl"),
)
TEST_FISHER = "Fisher exact (two-sided)"
TEST_LOGISTIC = "logistic (baseline-adjusted)"
CI_WILSON = "Wilson score"
CI_MN = "Miettinen-Nurminen score"
CI_LOGIT = "Wald (logistic)"
OBSERVED = "observed"
NRI = "non-responder imputation"


# ------------------------------------------------------------------------------ building blocks
def wilson_ci(count: int, nobs: int, alpha: float = 0.05) -> tuple[float | None, float | None]:
    """Wilson score interval of a binomial proportion (None when nobs is 0)."""
    if nobs <= 0:
        return None, None
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(count, nobs, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def _mn_restricted(x1: int, n1: int, x2: int, n2: int, delta: float) -> tuple[float, float]:
    """Maximum-likelihood (p1, p2) under p1 - p2 = delta: the closed-form cubic root of Miettinen &
    Nurminen (1985), as written by Farrington & Manning (1990)."""
    p1h, p2h = x1 / n1, x2 / n2
    theta = n2 / n1
    a = 1.0 + theta
    b = -(1.0 + theta + p1h + theta * p2h + delta * (theta + 2.0))
    c = delta**2 + delta * (2.0 * p1h + theta + 1.0) + p1h + theta * p2h
    d = -p1h * delta * (1.0 + delta)
    v = b**3 / (3.0 * a) ** 3 - b * c / (6.0 * a**2) + d / (2.0 * a)
    u2 = b**2 / (3.0 * a) ** 2 - c / (3.0 * a)
    u = math.copysign(math.sqrt(max(u2, 0.0)), v if v != 0 else 1.0)
    if u == 0.0:
        p1 = -b / (3.0 * a)
    else:
        w = (math.pi + math.acos(max(-1.0, min(1.0, v / u**3)))) / 3.0
        p1 = 2.0 * u * math.cos(w) - b / (3.0 * a)
    p1 = min(1.0, max(0.0, p1))
    p2 = min(1.0, max(0.0, p1 - delta))
    return p1, p2


def _mn_z(x1: int, n1: int, x2: int, n2: int, delta: float) -> float:
    """Miettinen-Nurminen score statistic for H0: p1 - p2 = delta (variance with the N/(N-1) factor)."""
    p1t, p2t = _mn_restricted(x1, n1, x2, n2, delta)
    n = n1 + n2
    var = (p1t * (1.0 - p1t) / n1 + p2t * (1.0 - p2t) / n2) * n / (n - 1.0)
    num = x1 / n1 - x2 / n2 - delta
    if var <= 0.0:
        return 0.0 if abs(num) < 1e-15 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def mn_risk_difference_ci(
    x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05
) -> tuple[float | None, float | None]:
    """Miettinen-Nurminen (1985) score confidence interval for p1 - p2.

    The set of delta whose score statistic (restricted MLE variance times N/(N-1)) satisfies
    |Z(delta)| <= z(1 - alpha/2), found by root finding on each side of the estimate. It reproduces
    Newcombe (1998, Stat Med 17:873-890, Table II, the MN score method): 56/70 - 48/80 ->
    0.0528 to 0.3382; 9/10 - 3/10 -> 0.1700 to 0.8406; 10/10 - 0/20 -> 0.7156 to 1.

    (statsmodels 0.15 ``confint_proportions_2indep(method="score")`` gives 0.0526 to 0.3440 for the
    first example and raises ValueError for the second, hence this implementation.)
    """
    if n1 <= 0 or n2 <= 0 or n1 + n2 < 2:
        return None, None
    z = stats.norm.isf(alpha / 2.0)
    est = x1 / n1 - x2 / n2
    eps = 1e-12

    def f(delta):
        return _mn_z(x1, n1, x2, n2, delta)

    if est <= -1.0 + eps or f(-1.0 + eps) <= z:
        lo = -1.0
    else:
        lo = optimize.brentq(lambda d: f(d) - z, -1.0 + eps, est, xtol=1e-12)
    if est >= 1.0 - eps or f(1.0 - eps) >= -z:
        hi = 1.0
    else:
        hi = optimize.brentq(lambda d: f(d) + z, est, 1.0 - eps, xtol=1e-12)
    return float(lo), float(hi)


def fisher_exact_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided Fisher exact p of the 2 x 2 table [[x1, n1 - x1], [x2, n2 - x2]] (scipy)."""
    return float(stats.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="two-sided").pvalue)


# Above this many subjects in the 2 x 2 table the exact CI is computed by exact_odds_ratio_ci, not
# scipy: scipy evaluates each noncentral hypergeometric probability with a fresh BiasedUrn object
# (np.vectorize over the support, the normalising sum again for every point), so one CI cost
# O(support x probable range) per evaluation - 31 of the 45 s of a 10,000-subject efficacy step.
# Both solve the same equations with the same root finder; they agree to ~1e-9 (tests/stats).
EXACT_CI_MIN_SUBJECTS = 500


def _solve_increasing(func) -> float:
    """func(nc) = 0 for an increasing func: double or halve nc from 1 to bracket the root, then
    Brent (the bracketing of scipy.stats._odds_ratio._solve, same tolerance)."""
    nc = 1.0
    value = func(nc)
    if value == 0:
        return nc
    factor = 2.0
    if value > 0:
        nc /= factor
        while func(nc) > 0:
            nc /= factor
        lo, hi = nc, factor * nc
    else:
        nc *= factor
        while func(nc) < 0:
            nc *= factor
        lo, hi = nc / factor, nc
    return float(optimize.brentq(func, lo, hi, xtol=1e-13))


def exact_odds_ratio_ci(x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05) -> tuple[float, float]:
    """The exact conditional CI of the odds ratio of [[x1, n1 - x1], [x2, n2 - x2]] (Cornfield's;
    what scipy's ``odds_ratio(kind='conditional').confidence_interval`` returns): the noncentrality
    of Fisher's noncentral hypergeometric distribution (margins fixed) at which P(X >= x1) = alpha/2
    (lower) and P(X <= x1) = alpha/2 (upper), the whole support's log probabilities computed at once."""
    from scipy.special import gammaln, logsumexp

    m, n, c = n1 + n2, n1, x1 + x2  # total, row 0 (experimental) sum, column 0 (responders) sum
    k = np.arange(max(0, c - (m - n)), min(n, c) + 1)
    log_base = -gammaln(k + 1) - gammaln(n - k + 1) - gammaln(c - k + 1) - gammaln(m - n - c + k + 1)
    upper_tail, lower_tail = k >= x1, k <= x1

    def log_prob(nc: float, where) -> float:  # log P(X in where) at odds ratio nc
        w = log_base + k * math.log(nc)
        return float(logsumexp(w[where]) - logsumexp(w))

    a, b, c_, d = x1, n1 - x1, x2, n2 - x2  # the sample odds ratio ad/bc decides the open ends, as in scipy
    sample = a * d / (c_ * b) if c_ > 0 and b > 0 else (math.nan if a == 0 or d == 0 else math.inf)
    half = alpha / 2
    lo = 0.0 if sample == 0 else _solve_increasing(lambda nc: math.exp(log_prob(nc, upper_tail)) - half)
    hi = math.inf if sample == math.inf else _solve_increasing(lambda nc: half - math.exp(log_prob(nc, lower_tail)))
    return lo, hi


def conditional_odds_ratio(x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05):
    """Conditional MLE odds ratio with its exact CI (scipy), the estimate that goes with Fisher's test;
    above EXACT_CI_MIN_SUBJECTS the CI comes from :func:`exact_odds_ratio_ci`."""
    from scipy.stats.contingency import odds_ratio

    try:
        res = odds_ratio([[x1, n1 - x1], [x2, n2 - x2]], kind="conditional")
        if n1 + n2 > EXACT_CI_MIN_SUBJECTS:
            low, high = exact_odds_ratio_ci(x1, n1, x2, n2, alpha)
        else:
            ci = res.confidence_interval(confidence_level=1.0 - alpha)
            low, high = ci.low, ci.high
        vals = (float(res.statistic), float(low), float(high))
    except (ValueError, ZeroDivisionError):
        return None, None, None
    return tuple(v if math.isfinite(v) else None for v in vals)


@dataclass
class LogisticResult:
    odds_ratio: float | None
    conf_low: float | None
    conf_high: float | None
    p_value: float | None
    n: int
    warning: str | None


def logistic_baseline_adjusted(y, arm, base, alpha: float = 0.05) -> LogisticResult:
    """Logit(P(response)) = b0 + b1 arm + b2 baseline (statsmodels Logit, ML). Returns exp(b1), its
    Wald CI and the Wald p of b1. Separation or non-convergence gives no estimate and a warning."""
    # the model's own module: statsmodels.api imports every model statsmodels has (~1 s per process)
    from statsmodels.discrete.discrete_model import Logit
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    y = np.asarray(y, dtype=float)
    arm = np.asarray(arm, dtype=float)
    base = np.asarray(base, dtype=float)
    ok = np.isfinite(y) & np.isfinite(arm) & np.isfinite(base)
    y, arm, base = y[ok], arm[ok], base[ok]
    n = int(len(y))

    def fail(msg):
        return LogisticResult(None, None, None, None, n, msg)

    if n < 4 or len(np.unique(arm)) < 2:
        return fail("too few evaluable subjects for the logistic model")
    for a in (0.0, 1.0):
        ya = y[arm == a]
        if ya.size and (ya.min() == ya.max()):
            what = "no responder" if ya.max() == 0 else "only responders"
            return fail(
                f"{'experimental' if a else 'control'} arm has {what}: (quasi-)complete separation, "
                "the odds ratio is not estimable (see the Fisher exact test)"
            )
    if y.min() == y.max():
        return fail("every evaluable subject has the same outcome: the odds ratio is not estimable")
    X = np.column_stack([np.ones(n), arm, base])
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            res = Logit(y, X).fit(disp=0, maxiter=200)
        except Exception as exc:  # PerfectSeparationError (older statsmodels), LinAlgError
            return fail(f"the logistic model could not be fitted ({type(exc).__name__}: {exc})")
    bad = [
        w
        for w in caught
        if issubclass(w.category, ConvergenceWarning) or "separation" in str(w.message).lower()
    ]
    if bad or not res.mle_retvals.get("converged", False):
        msg = str(bad[0].message) if bad else "the optimiser did not converge"
        return fail(f"the logistic model did not converge or shows separation ({msg})")
    b, se = float(res.params[1]), float(res.bse[1])
    if not (math.isfinite(b) and math.isfinite(se)) or se > 1e3:
        return fail("the logistic model gives no finite standard error for the arm term (separation)")
    q = stats.norm.isf(alpha / 2.0)
    return LogisticResult(
        math.exp(b), math.exp(b - q * se), math.exp(b + q * se), float(res.pvalues[1]), n, None
    )


def firth_logistic(y, X, alpha: float = 0.05, term: int = 0) -> LogisticResult:
    """Firth-penalised logistic regression (Firth 1993; firthmodels, Heinze & Schemper 2002's
    profile-likelihood CI and penalised likelihood-ratio p, as R logistf reports them) of ``y`` on
    the columns of ``X`` (an intercept is added); the odds ratio of column ``term``. Finite under
    (quasi-)complete separation."""
    from firthmodels import FirthLogisticRegression

    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float).reshape(len(y), -1)
    ok = np.isfinite(y) & np.all(np.isfinite(X), axis=1)
    y, X = y[ok], X[ok]
    n = len(y)
    if n < 3 or len(np.unique(X[:, term])) < 2:
        return LogisticResult(None, None, None, None, n, "too few evaluable subjects for the logistic model")
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        m = FirthLogisticRegression(max_iter=200, gtol=1e-9, xtol=1e-9).fit(X, y)
        if not m.converged_:
            return LogisticResult(None, None, None, None, n, "the Firth logistic model did not converge")
        lo, hi = m.conf_int(alpha=alpha, method="pl", tol=1e-8)[term]
        m.lrt(features=term)
    b = float(m.coef_[term])
    p = float(m.lrt_pvalues_[term])
    return LogisticResult(math.exp(b), math.exp(lo), math.exp(hi), p, n, None)


# ------------------------------------------------------------------------------ the table
def _rate(x: int, n: int):
    return x / n if n > 0 else None


def responder_rows(
    adqs: pl.DataFrame,
    randomized: dict[str, int],
    *,
    arms: list[str],
    experimental: str | None,
    control: str | None,
    primary_visit: str,
    alpha: float,
    parameters: list[str],
) -> tuple[list[dict], list[str]]:
    """Rows of ``results.responders`` (without study_id / run_id) and notes.

    ``adqs``: analysis.adqs restricted to randomized subjects (columns usubjid, trtp, paramcd,
    avisit, anl01fl, base, crit1, crit1fl, crit2, crit2fl, and crit3, crit3fl when present). ``randomized``: arm -> number of
    randomized subjects (the non-responder-imputation denominator). ``arms``: arm ids in manifest
    order; ``experimental``/``control`` None for a single-arm study.
    """
    rows: list[dict] = []
    notes: list[str] = []
    two_arm = experimental is not None and control is not None
    at_visit = adqs.filter((pl.col("avisit") == primary_visit) & (pl.col("anl01fl") == "Y"))
    for paramcd in parameters:
        prm = adqs.filter(pl.col("paramcd") == paramcd)
        rec = at_visit.filter(pl.col("paramcd") == paramcd)
        for criterion, rule_col, flag_col in CRITERIA:
            if rule_col not in prm.columns:
                continue
            rules = prm.get_column(rule_col).drop_nulls().unique().to_list()
            if not rules:
                continue
            rule = rules[0]
            ev = rec.filter(pl.col(flag_col).is_not_null())
            counts = {}
            for arm in arms:
                a = ev.filter(pl.col("trtp") == arm)
                x = int((a.get_column(flag_col) == "Y").sum())
                counts[arm] = (x, a.height, randomized.get(arm, 0))

            base_row = {
                "paramcd": paramcd,
                "criterion": criterion,
                "avisit": primary_visit,
                "criterion_text": rule,
            }
            for missing, pick in ((OBSERVED, lambda c: (c[0], c[1])), (NRI, lambda c: (c[0], c[2]))):
                for arm in arms:
                    x, n = pick(counts[arm])
                    lo, hi = wilson_ci(x, n, alpha)
                    rows.append(
                        {
                            **base_row,
                            "trtp": arm,
                            "n_responders": x,
                            "n_evaluable": n,
                            "proportion": _rate(x, n),
                            "conf_low": lo,
                            "conf_high": hi,
                            "ci_method": CI_WILSON,
                            "missing_data": missing,
                        }
                    )
                if not two_arm:
                    continue
                (x1, n1), (x2, n2) = pick(counts[experimental]), pick(counts[control])
                label = f"{experimental} - {control}"
                if n1 == 0 or n2 == 0:
                    notes.append(
                        f"{paramcd} {criterion} ({missing}): an arm has no evaluable subject at "
                        f"{primary_visit}; no comparison"
                    )
                    continue
                lo, hi = mn_risk_difference_ci(x1, n1, x2, n2, alpha)
                or_, or_lo, or_hi = conditional_odds_ratio(x1, n1, x2, n2, alpha)
                rows.append(
                    {
                        **base_row,
                        "trtp": label,
                        "risk_difference": x1 / n1 - x2 / n2,
                        "conf_low": lo,
                        "conf_high": hi,
                        "p_value": fisher_exact_p(x1, n1, x2, n2),
                        "test": TEST_FISHER,
                        "ci_method": CI_MN,
                        "odds_ratio": or_,
                        "odds_ratio_conf_low": or_lo,
                        "odds_ratio_conf_high": or_hi,
                        "missing_data": missing,
                    }
                )
                if missing != OBSERVED:
                    continue
                lr_data = ev.filter(pl.col("trtp").is_in([experimental, control]))
                lr = logistic_baseline_adjusted(
                    (lr_data.get_column(flag_col) == "Y").cast(pl.Float64).to_numpy(),
                    (lr_data.get_column("trtp") == experimental).cast(pl.Float64).to_numpy(),
                    lr_data.get_column("base").cast(pl.Float64).fill_null(float("nan")).to_numpy(),
                    alpha,
                )
                if lr.warning:
                    notes.append(f"{paramcd} {criterion}: logistic regression not estimated - {lr.warning}")
                rows.append(
                    {
                        **base_row,
                        "trtp": label,
                        "n_evaluable": lr.n,
                        "p_value": lr.p_value,
                        "test": TEST_LOGISTIC,
                        "ci_method": CI_LOGIT,
                        "odds_ratio": lr.odds_ratio,
                        "odds_ratio_conf_low": lr.conf_low,
                        "odds_ratio_conf_high": lr.conf_high,
                        "missing_data": OBSERVED,
                        "warning": lr.warning,
                    }
                )
    return rows, notes
