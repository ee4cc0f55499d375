"""Durability of response: Kaplan-Meier per arm, median with its 95 % CI, and the log-rank test.

Input is ``analysis.adtte`` (PARAMCD LOSSRESP: days from the primary visit to loss of response, CNSR 1
when censored). Output are two tidy frames:

* :func:`km_summary` - one row per arm (responders, events, censored, median and its CI) plus one
  comparison row (log-rank chi-square, df, p) when both arms have responders and at least one event;
* :func:`km_curve` - the step function per arm: time, numbers at risk, events, censored, survival and its
  pointwise CI (for the figure with numbers at risk, and the TLF package).

Statistics come from statsmodels (``SurvfuncRight``, ``survdiff``; lifelines is not in the lock).
Conventions follow R's survival package (``survfit`` defaults), which the reference test checks:

* survival is the Kaplan-Meier product-limit estimate with Greenwood's variance;
* the pointwise CI is on the log scale, S * exp(+-z * se(S) / S) (R ``conf.type = "log"``), capped at 1;
* the median is the first time the curve is at or below 0.5; its CI is Brookmeyer-Crowley (1982): the
  times whose pointwise log-scale CI contains 0.5 (statsmodels ``quantile_ci(method="log")``). Where the
  curve reaches 0 the log-scale CI is undefined, so such a time is no CI limit (R reports NA there);
  a limit that is not reached is NULL (not estimable), as R's NA.
* log-rank: the unweighted test (statsmodels ``survdiff``), chi-square on 1 df for two arms.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl
from scipy import stats

CI_METHOD = "Brookmeyer-Crowley, log transform (R survfit default)"
SUMMARY_COLUMNS = [
    "paramcd", "trtp", "arm_label", "n_subjects", "n_events", "n_censored", "median", "conf_low", "conf_high",
    "conf_level", "ci_method", "test", "statistic", "df", "p_value", "note",
]


def _fit(time: np.ndarray, event: np.ndarray):
    from statsmodels.duration.survfunc import SurvfuncRight

    return SurvfuncRight(time, event)


def median_ci(time, event, alpha: float = 0.05) -> tuple[float | None, float | None, float | None]:
    """(median, lower, upper) of the Kaplan-Meier curve; None when not reached / not estimable."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    if time.size == 0:
        return None, None, None
    sf = _fit(time, event)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        med = sf.quantile(0.5)
        if sf.surv_prob.size == 0:
            return None, None, None
        lo, hi = sf.quantile_ci(0.5, alpha=alpha, method="log")
    zero_times = set(sf.surv_times[sf.surv_prob <= 0].tolist())

    def clean(x):
        if x is None or not np.isfinite(x) or float(x) in zero_times:
            return None
        return float(x)

    return clean(med), clean(lo), clean(hi)


def curve(time, event, alpha: float = 0.05) -> pl.DataFrame:
    """Kaplan-Meier steps: one row per distinct time (event or censoring), time 0 first."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    z = stats.norm.ppf(1 - alpha / 2)
    rows = [(0.0, int(time.size), 0, 0, 1.0, 1.0, 1.0)]
    s, var_sum = 1.0, 0.0
    for t in np.unique(time):
        at_risk = int((time >= t).sum())
        d = int(((time == t) & (event == 1)).sum())
        c = int(((time == t) & (event == 0)).sum())
        if d:
            s *= 1 - d / at_risk
            var_sum += d / (at_risk * (at_risk - d)) if at_risk > d else math.inf
        if s > 0 and math.isfinite(var_sum):
            se_log = math.sqrt(var_sum)
            lo, hi = s * math.exp(-z * se_log), min(1.0, s * math.exp(z * se_log))
        else:
            lo = hi = None
        rows.append((float(t), at_risk, d, c, s, lo, hi))
    return pl.DataFrame(
        rows, orient="row",
        schema={"time": pl.Float64, "n_risk": pl.Int64, "n_events": pl.Int64, "n_censored": pl.Int64,
                "survival": pl.Float64, "conf_low": pl.Float64, "conf_high": pl.Float64},
    )


def logrank(time, event, group) -> tuple[float, int, float]:
    """(chi-square, df, p) of the unweighted log-rank test."""
    from statsmodels.duration.survfunc import survdiff

    time, event, group = np.asarray(time, float), np.asarray(event, int), np.asarray(group)
    chisq, p = survdiff(time, event, group)
    return float(chisq), len(np.unique(group)) - 1, float(p)


def km_summary(adtte: pl.DataFrame, arms: list[tuple[str, str]], alpha: float = 0.05) -> pl.DataFrame:
    """``adtte`` rows of one parameter (columns trtp, aval, cnsr); ``arms`` (id, label) in display order."""
    paramcd = adtte["paramcd"][0] if adtte.height else "LOSSRESP"
    rows = []
    for arm_id, label in arms:
        part = adtte.filter(pl.col("trtp") == arm_id)
        t = part["aval"].to_numpy().astype(float)
        e = (1 - part["cnsr"].to_numpy()).astype(int)
        med, lo, hi = median_ci(t, e, alpha) if part.height else (None, None, None)
        note = None
        if part.height == 0:
            note = "no responders at the primary visit"
        elif e.sum() == 0:
            note = "no loss of response observed; median not reached"
        elif med is None:
            note = "median not reached"
        rows.append({
            "paramcd": paramcd, "trtp": arm_id, "arm_label": label, "n_subjects": part.height,
            "n_events": int(e.sum()), "n_censored": int(part.height - e.sum()), "median": med,
            "conf_low": lo, "conf_high": hi, "conf_level": 1 - alpha, "ci_method": CI_METHOD,
            "test": None, "statistic": None, "df": None, "p_value": None, "note": note,
        })
    with_resp = [a for a, _ in arms if adtte.filter(pl.col("trtp") == a).height > 0]
    if len(arms) == 2:
        comparison = {k: None for k in SUMMARY_COLUMNS}
        comparison.update(paramcd=paramcd, trtp="COMPARISON", arm_label=" vs ".join(label for _, label in arms),
                          n_subjects=adtte.height, n_events=int((adtte["cnsr"] == 0).sum()) if adtte.height else 0,
                          n_censored=int((adtte["cnsr"] == 1).sum()) if adtte.height else 0, test="log-rank")
        part = adtte.filter(pl.col("trtp").is_in([a for a, _ in arms]))
        if len(with_resp) == 2 and int((part["cnsr"] == 0).sum()) > 0:
            chisq, dof, p = logrank(part["aval"].to_numpy(), 1 - part["cnsr"].to_numpy(), part["trtp"].to_numpy())
            comparison.update(statistic=chisq, df=dof, p_value=p)
        else:
            comparison["note"] = "log-rank not computed: " + (
                "an arm has no responders" if len(with_resp) < 2 else "no loss of response observed"
            )
        comparison["n_censored"] = comparison["n_subjects"] - comparison["n_events"]
        rows.append(comparison)
    return pl.DataFrame(rows, schema={
        "paramcd": pl.String, "trtp": pl.String, "arm_label": pl.String, "n_subjects": pl.Int64,
        "n_events": pl.Int64, "n_censored": pl.Int64, "median": pl.Float64, "conf_low": pl.Float64,
        "conf_high": pl.Float64, "conf_level": pl.Float64, "ci_method": pl.String, "test": pl.String,
        "statistic": pl.Float64, "df": pl.Int64, "p_value": pl.Float64, "note": pl.String,
    })


def km_curves(adtte: pl.DataFrame, arms: list[tuple[str, str]], alpha: float = 0.05) -> pl.DataFrame:
    frames = []
    for arm_id, _label in arms:
        part = adtte.filter(pl.col("trtp") == arm_id)
        if part.height == 0:
            continue
        c = curve(part["aval"].to_numpy(), 1 - part["cnsr"].to_numpy(), alpha)
        frames.append(c.with_columns(pl.lit(arm_id).alias("trtp")).select("trtp", *c.columns))
    if not frames:
        return pl.DataFrame(schema={"trtp": pl.String, "time": pl.Float64, "n_risk": pl.Int64, "n_events": pl.Int64,
                                    "n_censored": pl.Int64, "survival": pl.Float64, "conf_low": pl.Float64,
                                    "conf_high": pl.Float64})
    return pl.concat(frames)


def run_durability(con, manifest, run_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """results.durability and results.durability_curve for the study in ``con`` (analysis.adtte)."""
    sid = manifest.study_id
    adtte = con.execute(
        "select paramcd, trtp, aval, cnsr from analysis.adtte where study_id = ? and paramcd = 'LOSSRESP'", [sid]
    ).pl()
    arms = [(a.id, a.display) for a in sorted(manifest.arms, key=lambda a: a.role != "experimental")]
    alpha = float(manifest.analysis.alpha)
    summary = km_summary(adtte, arms, alpha)
    if not manifest.follow_up_visits:
        summary = summary.with_columns(
            pl.lit("the manifest has no follow-up visits (phase follow_up): every responder is censored at the primary visit")
            .alias("note")
        )
    curves = km_curves(adtte, arms, alpha)
    extra = [pl.lit(sid).alias("study_id")]
    summary = summary.select(extra[0], *summary.columns, pl.lit(run_id).alias("run_id"))
    curves = curves.select(pl.lit(sid).alias("study_id"), *curves.columns, pl.lit(run_id).alias("run_id"))
    return summary, curves
