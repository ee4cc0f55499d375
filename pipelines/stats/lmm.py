"""Random-intercept and random-slope linear mixed models (statsmodels ``MixedLM``), tidy output.

The secondary, random-effects analysis: ``y ~ fixed`` with a random intercept per ``groups`` level
(``re_formula=None`` or ``"1"``) or a random intercept and slope (``re_formula="~day"``), residual
covariance sigma^2 I. ``re_cov="diagonal"`` makes the random effects uncorrelated (lme4 ``(day || id)``).

Inference: statsmodels gives Wald z tests, so ``statistic`` is z, ``p_value`` is from the normal
distribution and ``df`` is NaN (no small-sample df for MixedLM); the confidence limits are normal too.
``neg2_loglik`` is -2 x the (REML or ML) log-likelihood, which for REML equals lme4's
"REML criterion at convergence". Convergence warnings from statsmodels are captured into
``warnings`` and make ``converged`` false.
"""

from __future__ import annotations

import warnings as _warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats

from pipelines.core.errors import ModelSpecError

TIDY = ["term", "estimate", "std_error", "df", "statistic", "p_value", "conf_low", "conf_high"]


@dataclass
class LMMResult:
    formula: str
    groups: str
    re_formula: str | None
    reml: bool
    coefficients: pl.DataFrame
    variance_components: pl.DataFrame
    neg2_loglik: float
    aic: float
    bic: float
    n_obs: int
    n_groups: int
    converged: bool
    warnings: list[str] = field(default_factory=list)
    vcov: np.ndarray | None = None
    model_result: object = None

    def summary(self) -> dict:
        return {
            "formula": self.formula,
            "groups": self.groups,
            "re_formula": self.re_formula,
            "estimation": "REML" if self.reml else "ML",
            "neg2_loglik": self.neg2_loglik,
            "aic": self.aic,
            "bic": self.bic,
            "n_obs": self.n_obs,
            "n_groups": self.n_groups,
            "converged": self.converged,
            "warnings": list(self.warnings),
        }


LARGE_N_GROUPS = 1000  # above this many subjects, L-BFGS first (see fit_lmm)


def fit_lmm(
    data,
    formula: str,
    groups: str,
    re_formula: str | None = None,
    reml: bool = True,
    re_cov: str = "unstructured",
    conf_level: float = 0.95,
) -> LMMResult:
    """Fit ``formula`` with random effects ``re_formula`` per level of column ``groups``."""
    import statsmodels.formula.api as smf
    from statsmodels.regression.mixed_linear_model import MixedLMParams
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    df = data.to_pandas() if isinstance(data, pl.DataFrame) else pd.DataFrame(data).copy()
    if groups not in df.columns:
        raise ModelSpecError("grouping column is not in the data", column=groups)
    if re_formula in (None, "", "1", "~1"):
        re_formula_sm = None
    else:
        re_formula_sm = re_formula if re_formula.strip().startswith("~") else "~" + re_formula
    if re_cov not in ("unstructured", "diagonal"):
        raise ModelSpecError(f"re_cov must be 'unstructured' or 'diagonal', got {re_cov!r}")
    response = formula.split("~", 1)[0].strip()
    if response not in df.columns:
        raise ModelSpecError("response column is not in the data", column=response)
    df = df.dropna(subset=[response, groups])
    try:
        model = smf.mixedlm(formula, df, groups=df[groups], re_formula=re_formula_sm)
    except Exception as exc:
        raise ModelSpecError(f"cannot build the mixed model {formula!r}: {exc}") from exc
    free = None
    if re_cov == "diagonal" and model.k_re > 1:
        free = MixedLMParams.from_components(np.ones(model.k_fe), np.eye(model.k_re))
    # BFGS with a tight gradient tolerance reaches the optimum lme4 reports (L-BFGS, statsmodels'
    # first choice, stops ~4e-5 short in the variances on sleepstudy); L-BFGS/CG are the fallbacks.
    # With many subjects every likelihood evaluation loops over them in Python, and the absolute
    # gradient tolerance cannot be met (the log-likelihood grows with n): there L-BFGS, statsmodels'
    # default, goes first (10,000 subjects: 5 s instead of a minute for the same optimum to 1e-9).
    attempts = [("bfgs", {"gtol": 1e-10}), ("lbfgs", {}), ("cg", {})]
    if model.n_groups > LARGE_N_GROUPS:
        attempts = [("lbfgs", {}), ("bfgs", {"gtol": 1e-10 * model.nobs}), ("cg", {})]
    res = None
    for method, kw in attempts:
        with _warnings.catch_warnings(record=True) as caught:
            _warnings.simplefilter("always")
            try:
                res = model.fit(reml=reml, method=method, free=free, **kw)
            except (np.linalg.LinAlgError, ValueError) as exc:
                caught.append(_warnings.WarningMessage(f"{method} failed: {exc}", RuntimeWarning, "", 0))
                continue
        if getattr(res, "converged", False) and not any(
            issubclass(w.category, ConvergenceWarning) for w in caught
        ):
            break
    if res is None:
        raise ModelSpecError(f"statsmodels MixedLM could not fit {formula!r}")
    msgs = []
    conv_warn = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            conv_warn = True
            msgs.append(f"statsmodels: {w.message}")
        elif issubclass(w.category, (RuntimeWarning, UserWarning)):
            msgs.append(f"statsmodels: {w.message}")
    converged = bool(getattr(res, "converged", False)) and not conv_warn
    if not converged and not msgs:
        msgs.append("statsmodels MixedLM reports that the optimiser did not converge")
    names = list(res.fe_params.index)
    est = res.fe_params.to_numpy()
    se = res.bse_fe.to_numpy()
    z = est / se
    p = 2 * stats.norm.sf(np.abs(z))
    q = stats.norm.ppf(0.5 + conf_level / 2)
    coef = pl.DataFrame(
        {
            "term": ["(Intercept)" if n == "Intercept" else n for n in names],
            "estimate": est,
            "std_error": se,
            "df": np.full(len(est), np.nan),
            "statistic": z,
            "p_value": p,
            "conf_low": est - q * se,
            "conf_high": est + q * se,
        }
    )
    cov_re = np.asarray(res.cov_re)
    re_names = ["(Intercept)" if n in ("Group", "Intercept") else n for n in res.cov_re.index]
    rows = []
    for i, a in enumerate(re_names):
        rows.append(
            {
                "group": groups,
                "name": a,
                "name2": None,
                "variance": float(cov_re[i, i]),
                "sd": float(np.sqrt(cov_re[i, i])),
                "corr": None,
            }
        )
    for i in range(len(re_names)):
        for j in range(i):
            c = float(cov_re[i, j])
            rows.append(
                {
                    "group": groups,
                    "name": re_names[j],
                    "name2": re_names[i],
                    "variance": c,
                    "sd": None,
                    "corr": c / np.sqrt(cov_re[i, i] * cov_re[j, j])
                    if cov_re[i, i] > 0 and cov_re[j, j] > 0
                    else None,
                }
            )
    rows.append(
        {
            "group": "Residual",
            "name": None,
            "name2": None,
            "variance": float(res.scale),
            "sd": float(np.sqrt(res.scale)),
            "corr": None,
        }
    )
    vc = pl.DataFrame(
        rows,
        schema={
            "group": pl.Utf8,
            "name": pl.Utf8,
            "name2": pl.Utf8,
            "variance": pl.Float64,
            "sd": pl.Float64,
            "corr": pl.Float64,
        },
    )
    n_par = len(est) + (model.k_re * (model.k_re + 1) // 2 if re_cov == "unstructured" else model.k_re) + 1
    if reml:
        n_par -= len(est)  # lme4/SAS count covariance parameters only for REML criteria
    neg2 = -2.0 * float(res.llf)
    return LMMResult(
        formula=formula,
        groups=groups,
        re_formula=re_formula,
        reml=reml,
        coefficients=coef,
        variance_components=vc,
        neg2_loglik=neg2,
        aic=neg2 + 2 * n_par,
        bic=neg2 + n_par * np.log(len(model.group_labels)),
        n_obs=int(model.nobs),
        n_groups=len(model.group_labels),
        converged=converged,
        warnings=msgs,
        vcov=np.asarray(res.cov_params())[: len(est), : len(est)],
        model_result=res,
    )
