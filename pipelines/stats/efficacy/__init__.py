"""Efficacy analysis of one study: the primary MMRM per parameter (with covariance fallbacks), LS
means, treatment effects with Cohen's d, multiplicity across DSM-5 clusters, the statsmodels
random-effects sensitivity models, responders/remitters, and within-arm results for single-arm
studies. Dagster-free; tidy polars frames out (``results.*`` columns, see ``schema.py`` and
``sql/results/_schema.yml``).

>>> from pipelines.stats.efficacy import run_efficacy
>>> out = run_efficacy(con, manifest, run_id)          # con holds analysis.adsl / analysis.adqs
>>> out.model_fits, out.lsmeans, out.treatment_effects, out.responders, out.notes

Rules, in words (the SAP a statistician checks):

E1 Analysis rows (every model): ADQS records with ANL01FL = 'Y', CHG not missing (for a change scale
   such as CGI-I, which has no baseline: AVAL not missing, analysed as ``aval ~ trtp * avisit`` without
   the baseline covariate), a visit after the
   manifest's baseline visit, of a randomized subject (TRTP one of the manifest's arms). Visits enter
   as a factor in manifest order. Every PARAMCD with such rows is analysed, in the order of the
   instrument definitions (``order``, then the scores as listed: CAPS5TOT, CAPS5B-E, CAPS5DIS,
   PCL5TOT, PCL5B-E, MADRSTOT, ...).
E2 Primary model (``model = 'mmrm'``): chg ~ base + trtp * avisit + <cov>(avisit | usubjid), REML
   (manifest ``analysis.model.reml``), df by ``analysis.model.df_method`` (default Kenward-Roger),
   control arm the reference. LS means of each arm at each visit at the mean baseline over the
   analysis rows (the engine's convention); treatment effect = experimental minus control LS mean at
   each visit (negative favours the experimental arm on symptom scales), t test with the model's df,
   CI at 1 - alpha (``analysis.alpha``).
E3 Fallbacks: ``analysis.model.covariance`` (default us) is tried first, then
   ``analysis.model.fallbacks`` in order (default toeph, ar1h, cs). A structure is used when the fit
   converged and is not degenerate (see ``fits.fit_mmrm_with_fallbacks``). ``results.model_fits``
   has ONE row per parameter x model: ``covariance`` is the structure whose results are reported,
   ``fallback_from`` lists the structures that failed before it (comma-separated, in order; NULL
   when the first one worked), ``n_attempts`` counts the fits tried and ``warnings`` ends with one
   "<structure> not used: <reason>" entry per failed attempt. When every structure fails the row
   has ``converged = false`` (covariance = the last structure tried) and the parameter has no LS
   means and no treatment effects for that model; a note says so. A parameter that cannot be fitted
   at all (e.g. only one arm has values) gets a ``converged = false`` row whose warnings say
   "not fitted: ...".
E4 Cohen's d (Feingold 2009): the model's treatment effect divided by the pooled baseline SD of the
   parameter: sqrt( sum over arms of (n_a - 1) s_a^2 / (n_1 + n_2 - 2) ), s_a the sample SD (n - 1)
   of the baseline value (ADQS ABLFL = 'Y' AVAL) among randomized subjects of arm a who have a
   baseline, whether or not they have post-baseline data. Same sign as the estimate.
   ``cohens_d_conf_low/high`` are the effect's CI limits divided by the same SD (the SD treated as
   known, as Feder 2021's d = 1.13, 95 % CI 0.36-1.91 = (3.75, 20.01) / 10.5).
E5 Multiplicity: one family per instrument and model - its DSM-5 cluster scores (CAPS5B-E, PCL5B-E,
   the non-total, non-optional scores of the instrument definition, in definition order B, C, D,
   E, which is also the fixed-sequence order) at the primary visit, adjusted by
   ``analysis.multiplicity`` (default holm; see ``pipelines.stats.multiplicity``). ``family`` names
   it (e.g. 'CAPS-5 clusters at W2'), ``adjust_method`` is the method code. Every other row (totals,
   the primary endpoint, MADRS, CAPS5DIS, other visits) has ``p_adjusted = p_value``,
   ``adjust_method = 'none'`` and no family: the primary endpoint is tested unadjusted.
E6 Sensitivity (``lmm_ri``, ``lmm_rs``), for the parameters ``analysis.sensitivity_models`` names
   (default ``totals``: each instrument's total): statsmodels MixedLM with the same fixed effects, a random
   intercept per subject (lmm_ri) or a random intercept and slope on study day (lmm_rs, ADY / 7 =
   weeks, unstructured G; fitted only when at least 5 subjects have post-baseline values on two or
   more distinct days). Residual covariance sigma^2 I. Wald z inference: ``df`` is NULL and
   ``df_method = 'z (normal)'``. A fit whose optimiser did not converge, or that could not be
   fitted, reports no effects (converged = false); a converged fit with a variance component on the
   boundary (zero, singular G) is kept, with statsmodels' warning in ``warnings``.
E7 Single-arm study (one arm in the manifest): no between-arm contrast. The MMRM is fitted without
   the arm terms (chg ~ base + avisit + <cov>(avisit | usubjid), same fallbacks) and gives LS-mean
   changes per visit (``results.lsmeans``, model 'mmrm'). ``results.treatment_effects`` holds
   ``model = 'within_arm'`` rows: the observed mean change from baseline at each visit with its t
   CI (df n - 1) and the one-sample t test of "mean change = 0", and Cohen's d_z = mean change / SD
   of the change (``effect_size_method`` says which d). No random-effects models.
E8 Responders and remitters: see ``pipelines.stats.responders``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl
from scipy import stats

from pipelines.instruments import load_instruments, parameter_order
from pipelines.stats import multiplicity, responders
from pipelines.stats.efficacy import schema
from pipelines.stats.efficacy.fits import (
    SLOPE_SCALE_DAYS,
    FallbackFit,
    LMMFit,
    fit_mmrm_with_fallbacks,
    fit_random_effects,
    slope_identifiable,
    t_interval,
    z_interval,
)

__all__ = ["EfficacyResults", "run_efficacy", "pooled_baseline_sd", "cohens_d"]

DF_Z = "z (normal)"
D_BASELINE = "d = effect / pooled baseline SD (Feingold 2009)"
D_Z = "d_z = mean change / SD of change"
WITHIN_ARM = "within_arm"


@dataclass
class EfficacyResults:
    model_fits: pl.DataFrame
    lsmeans: pl.DataFrame
    treatment_effects: pl.DataFrame
    responders: pl.DataFrame
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pl.DataFrame]:
        """``results.<name>`` -> frame, for writing to the warehouse."""
        return {
            "results.model_fits": self.model_fits,
            "results.lsmeans": self.lsmeans,
            "results.treatment_effects": self.treatment_effects,
            "results.responders": self.responders,
        }


# ------------------------------------------------------------------------------ effect sizes
def pooled_baseline_sd(baselines: dict[str, np.ndarray]) -> float | None:
    """sqrt( sum_a (n_a - 1) s_a^2 / sum_a (n_a - 1) ): the df-weighted pooled SD over arms (the
    within-arm sum of squares over N - number of arms). None when it is not defined or zero."""
    ss, dof = 0.0, 0
    for values in baselines.values():
        x = np.asarray(values, dtype=float)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        ss += float(((x - x.mean()) ** 2).sum())
        dof += x.size - 1
    if dof <= 0 or ss <= 0:
        return None
    return math.sqrt(ss / dof)


def cohens_d(estimate, sd):
    if estimate is None or sd is None or not np.isfinite(estimate) or sd <= 0:
        return None
    return float(estimate) / sd


# ------------------------------------------------------------------------------ inputs
def _load(con: duckdb.DuckDBPyConnection, study_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    adqs = con.execute(
        """
        select usubjid, trtp, paramcd, avisit, avisitn, ady, aval, base, chg, ablfl, anl01fl,
               crit1, crit1fl, crit2, crit2fl
        from analysis.adqs
        where study_id = ?
        """,
        [study_id],
    ).pl()
    adsl = con.execute(
        "select usubjid, trt01p, randfl from analysis.adsl where study_id = ?", [study_id]
    ).pl()
    return adqs, adsl


_parameter_order = parameter_order


def _families() -> list[tuple[str, list[str]]]:
    """(instrument name, subscale PARAMCDs in definition order) for instruments with 2+ subscales."""
    return [
        (inst.instrument, [s.paramcd for s in inst.subscales])
        for inst in load_instruments().values()
        if len(inst.subscales) >= 2
    ]


def _join(items) -> str | None:
    items = list(dict.fromkeys(str(x) for x in items if x))
    return " | ".join(items) if items else None


# ------------------------------------------------------------------------------ the analysis
class _Run:
    def __init__(self, con, manifest, run_id, progress, parameters, sensitivity):
        self.m = manifest
        self.a = manifest.analysis
        self.study_id = manifest.study_id
        self.run_id = run_id
        self.say = progress or (lambda msg: None)
        self.sensitivity = sensitivity
        # which parameters get the random-effects models: the manifest's analysis.sensitivity_models
        self.sensitivity_scope = self.a.sensitivity_models
        self.alpha = float(self.a.alpha)
        self.arms = [arm.id for arm in manifest.arms]
        self.single = manifest.single_arm
        self.exp = None if self.single else manifest.experimental_arm.id
        self.ctl = None if self.single else manifest.control_arm.id
        self.primary_visit = manifest.primary_visit.id
        # the treatment-phase visits after baseline: follow-up visits (phase follow_up) serve the
        # durability analysis only and never enter the efficacy models
        vids = [v.id for v in manifest.visits]
        treatment = {v.id for v in manifest.treatment_visits}
        self.post_visits = [v for v in vids[vids.index(manifest.baseline_visit.id) + 1 :] if v in treatment]
        self.structures = [self.a.model.covariance, *self.a.model.fallbacks]
        self.fits, self.lsm, self.effects, self.notes = [], [], [], []
        self.adqs, self.adsl = _load(con, self.study_id)
        self.adqs = self.adqs.filter(pl.col("trtp").is_in(self.arms))
        self.visitn = dict(
            self.adqs.select("avisit", "avisitn").unique().drop_nulls().iter_rows()
        )
        # a change scale (CGI-I) has no baseline: its value itself is analysed (E1)
        self.change_scales = {
            sc.paramcd for inst in load_instruments().values() if inst.change_scale for sc in inst.scores
        }
        analysable = self.adqs.filter(
            (pl.col("anl01fl") == "Y")
            & (
                pl.col("chg").is_not_null()
                | (pl.col("paramcd").is_in(self.change_scales) & pl.col("aval").is_not_null())
            )
            & pl.col("avisit").is_in(self.post_visits)
        )
        self.rows = analysable.select("usubjid", "trtp", "paramcd", "avisit", "ady", "base", "chg", "aval")
        present = set(self.rows.get_column("paramcd").unique().to_list())
        valued = self.adqs.filter(pl.col("aval").is_not_null())
        with_values = set(valued.get_column("paramcd").unique().to_list())
        for p in _parameter_order(with_values - present):
            self.notes.append(f"{p}: values but no post-baseline change from baseline; not analysed")
        self.only = None if parameters is None else set(parameters)
        self.parameters = [p for p in _parameter_order(present) if self.only is None or p in self.only]

    # -- helpers ---------------------------------------------------------------------------
    def _data(self, paramcd: str) -> pl.DataFrame:
        """A parameter's analysis rows: chg and base, or for a change scale aval alone."""
        data = self.rows.filter(pl.col("paramcd") == paramcd).drop("paramcd")
        return data.drop("base", "chg") if paramcd in self.change_scales else data.drop("aval")

    def _base(self, **kw):
        return {"paramcd": kw.pop("paramcd"), **kw}

    def _baseline_sd(self, paramcd: str) -> float | None:
        bl = self.adqs.filter(
            (pl.col("paramcd") == paramcd) & (pl.col("ablfl") == "Y") & pl.col("aval").is_not_null()
        )
        by_arm = {a: bl.filter(pl.col("trtp") == a).get_column("aval").to_numpy() for a in self.arms}
        return pooled_baseline_sd(by_arm)

    def _not_fitted(self, paramcd, model, covariance, reason, data, estimation, df_method):
        self.fits.append(
            self._base(
                paramcd=paramcd,
                model=model,
                covariance=covariance,
                estimation=estimation,
                df_method=df_method,
                converged=False,
                n_subjects=data.get_column("usubjid").n_unique(),
                n_obs=data.height,
                warnings=f"not fitted: {reason}",
                n_attempts=0,
            )
        )
        self.notes.append(f"{paramcd}: {model} not fitted - {reason}")

    # -- primary MMRM ---------------------------------------------------------------------
    def mmrm(self, paramcd: str, data: pl.DataFrame, visits: list[str], sd: float | None):
        estimation = "REML" if self.a.model.reml else "ML"
        if not self.single:
            missing = [a for a in (self.exp, self.ctl) if a not in set(data.get_column("trtp").to_list())]
            if missing:
                self._not_fitted(
                    paramcd, "mmrm", self.structures[0],
                    f"arm {', '.join(missing)} has no post-baseline values; no between-arm model",
                    data, estimation, self.a.model.df_method,
                )  # fmt: skip
                return
        fit = fit_mmrm_with_fallbacks(
            data,
            structures=self.structures,
            df_method=self.a.model.df_method,
            reml=self.a.model.reml,
            visit_levels=visits,
            control=self.ctl,
            with_arm=not self.single,
            progress=lambda msg: self.say(f"{paramcd}: {msg}"),
        )
        self._mmrm_fit_row(paramcd, data, fit, estimation)
        used = fit.used
        if used is None:
            return
        counts = {
            (a, v): n for a, v, n in data.group_by("trtp", "avisit").len().iter_rows()
        }
        lsm = used.lsmeans
        if self.single:
            lsm = lsm.with_columns(trtp=pl.lit(self.arms[0]))
        for r in lsm.iter_rows(named=True):
            lo, hi = t_interval(r["estimate"], r["std_error"], r["df"], self.alpha)
            self.lsm.append(
                self._base(
                    paramcd=paramcd, model="mmrm", trtp=r["trtp"], avisit=r["avisit"],
                    estimate=r["estimate"], std_error=r["std_error"], df=r["df"], conf_low=lo, conf_high=hi,
                    avisitn=self.visitn.get(r["avisit"]), n_obs=counts.get((r["trtp"], r["avisit"]), 0),
                )
            )  # fmt: skip
        if self.single:
            return
        per_visit = dict(data.group_by("avisit").len().iter_rows())
        for r in used.contrasts.iter_rows(named=True):
            lo, hi = t_interval(r["estimate"], r["std_error"], r["df"], self.alpha)
            if not np.isfinite(r["estimate"]):
                self.notes.append(f"{paramcd} mmrm: the arm difference at {r['avisit']} is not estimable")
            self._effect(
                paramcd, "mmrm", r["avisit"], r["estimate"], r["std_error"], r["df"], used.result.df_method,
                lo, hi, r["statistic"], r["p_value"], sd, r["contrast"], per_visit.get(r["avisit"], 0),
            )  # fmt: skip

    def _mmrm_fit_row(self, paramcd, data, fit: FallbackFit, estimation):
        rep = fit.reported
        res = rep.result
        failed = fit.failed_before
        warn = list(res.warnings) if res is not None else []
        warn += [f"{a.covariance} not used: {a.reason}" for a in fit.attempts if not a.ok]
        self.fits.append(
            self._base(
                paramcd=paramcd,
                model="mmrm",
                covariance=rep.covariance,
                estimation=estimation,
                df_method=res.df_method if res is not None else self.a.model.df_method,
                converged=fit.used is not None,
                neg2_loglik=res.neg2_loglik if res is not None else None,
                aic=res.aic if res is not None else None,
                bic=res.bic if res is not None else None,
                n_subjects=res.n_subjects_used if res is not None else data.get_column("usubjid").n_unique(),
                n_obs=res.n_obs if res is not None else data.height,
                warnings=_join(warn),
                formula=rep.formula,
                fallback_from=", ".join(a.covariance for a in failed) or None,
                n_attempts=len(fit.attempts),
            )
        )
        if fit.used is None:
            self.notes.append(
                f"{paramcd}: the primary MMRM did not converge with any covariance structure "
                f"({', '.join(a.covariance for a in fit.attempts)}); reported as converged = false, "
                "without LS means or treatment effects"
            )
        elif failed:
            why = "; ".join(f"{a.covariance}: {a.reason}" for a in failed)
            self.notes.append(f"{paramcd}: primary MMRM fell back to {fit.used.covariance} ({why})")

    def _effect(self, paramcd, model, visit, est, se, df, df_method, lo, hi, stat, p, sd, contrast, n,
                d_method=D_BASELINE):  # fmt: skip
        self.effects.append(
            self._base(
                paramcd=paramcd,
                model=model,
                avisit=visit,
                is_primary=visit == self.primary_visit,
                estimate=est,
                std_error=se,
                df=df,
                df_method=df_method,
                conf_low=lo,
                conf_high=hi,
                p_value=p,
                cohens_d=cohens_d(est, sd),
                avisitn=self.visitn.get(visit),
                contrast=contrast,
                statistic=stat,
                cohens_d_conf_low=cohens_d(lo, sd),
                cohens_d_conf_high=cohens_d(hi, sd),
                effect_size_sd=sd,
                effect_size_method=d_method if sd is not None else None,
                n_obs=n,
            )
        )

    # -- sensitivity ----------------------------------------------------------------------
    def _sensitivity_for(self, paramcd: str) -> bool:
        """E6 scope: ``totals`` (default) fits the random-effects models for each instrument's
        total score (the primary and key secondary endpoints), ``all`` for every parameter,
        ``none`` for none. statsmodels MixedLM loops over subjects in Python, so on large studies
        the cluster-level sensitivity fits would dominate the run; they are one option away."""
        if not self.sensitivity or self.sensitivity_scope == "none":
            return False
        if self.sensitivity_scope == "all":
            return True
        totals = {s.paramcd for i in load_instruments().values() for s in i.scores if s.primary_total}
        return paramcd in totals or paramcd == self.a.primary_parameter

    def lmm(self, paramcd: str, data: pl.DataFrame, visits: list[str], sd: float | None):
        arms_present = set(data.get_column("trtp").to_list())
        if not {self.exp, self.ctl} <= arms_present:
            return  # the mmrm row already says why
        estimation = "REML" if self.a.model.reml else "ML"
        for kind in ("lmm_ri", "lmm_rs"):
            covariance = (
                "random intercept"
                if kind == "lmm_ri"
                else f"random intercept + slope on ady/{SLOPE_SCALE_DAYS:g} (unstructured)"
            )
            if kind == "lmm_rs":
                ok, why = slope_identifiable(data)
                if not ok:
                    self.notes.append(f"{paramcd}: lmm_rs skipped - {why}")
                    continue
            self.say(f"{paramcd}: {kind}")
            future = self._futures.get((paramcd, kind))
            fit = None
            if future is not None:
                try:
                    fit = future.result()
                except Exception:  # noqa: BLE001 - a broken worker pool: fit here instead
                    fit = None
            if fit is None:
                fit = fit_random_effects(
                    data, kind=kind, visit_levels=visits, experimental=self.exp, control=self.ctl,
                    reml=self.a.model.reml,
                )  # fmt: skip
            self._lmm_rows(paramcd, data, fit, covariance, estimation, sd)

    def _lmm_rows(self, paramcd, data, fit: LMMFit, covariance, estimation, sd):
        res = fit.result
        re_part = "(1 | usubjid)" if fit.re_formula is None else "(1 + ady_weeks | usubjid)"
        warn = list(res.warnings) if res is not None else []
        if fit.error:
            warn.append(fit.error)
        self.fits.append(
            self._base(
                paramcd=paramcd,
                model=fit.kind,
                covariance=covariance,
                estimation=estimation,
                df_method=DF_Z,
                converged=fit.converged,
                neg2_loglik=res.neg2_loglik if res is not None else None,
                aic=res.aic if res is not None else None,
                bic=res.bic if res is not None else None,
                n_subjects=res.n_groups if res is not None else data.get_column("usubjid").n_unique(),
                n_obs=res.n_obs if res is not None else data.height,
                warnings=_join(warn),
                formula=f"{fit.formula} + {re_part}",
                n_attempts=1,
            )
        )
        if not fit.converged:
            self.notes.append(
                f"{paramcd}: {fit.kind} not usable ({_join(warn) or 'statsmodels'}); no LS means or effects"
            )
            return
        counts = {(a, v): n for a, v, n in data.group_by("trtp", "avisit").len().iter_rows()}
        per_visit = dict(data.group_by("avisit").len().iter_rows())
        for r in fit.lsmeans:
            lo, hi = z_interval(r["estimate"], r["std_error"], self.alpha)
            self.lsm.append(
                self._base(
                    paramcd=paramcd, model=fit.kind, trtp=r["trtp"], avisit=r["avisit"],
                    estimate=r["estimate"], std_error=r["std_error"], conf_low=lo, conf_high=hi,
                    avisitn=self.visitn.get(r["avisit"]), n_obs=counts.get((r["trtp"], r["avisit"]), 0),
                )
            )  # fmt: skip
        for r in fit.contrasts:
            lo, hi = z_interval(r["estimate"], r["std_error"], self.alpha)
            self._effect(
                paramcd, fit.kind, r["avisit"], r["estimate"], r["std_error"], None, DF_Z, lo, hi,
                r["statistic"], r["p_value"], sd, f"{self.exp} - {self.ctl}", per_visit.get(r["avisit"], 0),
            )  # fmt: skip

    # -- single arm -----------------------------------------------------------------------
    def within_arm(self, paramcd: str, data: pl.DataFrame, visits: list[str]):
        arm = self.arms[0]
        for v in visits:
            x = data.filter(pl.col("avisit") == v).get_column("chg").cast(pl.Float64).to_numpy()
            n = int(x.size)
            mean = float(x.mean()) if n else None
            sd = float(x.std(ddof=1)) if n >= 2 else None
            se = sd / math.sqrt(n) if sd is not None else None
            df = n - 1 if n >= 2 else None
            lo, hi = t_interval(mean, se, df, self.alpha) if se else (None, None)
            t = mean / se if se else None
            p = float(2 * stats.t.sf(abs(t), df)) if t is not None else None
            dz_sd = sd if sd and sd > 0 else None
            self._effect(
                paramcd, WITHIN_ARM, v, mean, se, df, "t (n - 1)", lo, hi, t, p, dz_sd,
                f"{arm} (within arm)", n, d_method=D_Z,
            )  # fmt: skip

    # -- multiplicity ---------------------------------------------------------------------
    def adjust(self):
        method = self.a.multiplicity
        for row in self.effects:
            row["p_adjusted"] = row["p_value"]
            row["adjust_method"] = "none"
            row["family"] = None
        models = dict.fromkeys(r["model"] for r in self.effects)
        for model in models:
            for instrument, members in _families():
                rows = {
                    r["paramcd"]: r
                    for r in self.effects
                    if r["model"] == model and r["avisit"] == self.primary_visit and r["paramcd"] in members
                }
                if not rows:
                    continue
                ordered = [rows.get(p) for p in members]
                adj = multiplicity.adjust([None if r is None else r["p_value"] for r in ordered], method)
                family = f"{instrument} clusters at {self.primary_visit}"
                for r, pa in zip(ordered, adj, strict=True):
                    if r is None:
                        continue
                    r["p_adjusted"] = pa
                    r["adjust_method"] = method
                    r["family"] = family
                absent = [
                    p for p, r in zip(members, ordered, strict=True) if r is None or r["p_value"] is None
                ]
                if absent:
                    self.notes.append(
                        f"{family} ({model}): no p-value for {', '.join(absent)}; counted as p = 1 in the "
                        f"{multiplicity.LABELS[method]} adjustment (planned family size {len(members)})"
                    )
        primary = self.a.primary_parameter
        if primary not in self.parameters:
            return
        self.notes.append(
            f"The primary endpoint {primary} at {self.primary_visit} is tested unadjusted (p_adjusted = "
            f"p_value); the {multiplicity.LABELS[method]} adjustment applies within each instrument's "
            f"DSM-5 cluster family at {self.primary_visit} only (adjust_method = '{method}')."
        )

    # -- driver ---------------------------------------------------------------------------
    def run(self) -> EfficacyResults:
        if self.single:
            self.notes.insert(
                0,
                f"single-arm study ({self.arms[0]}): no between-arm contrast; treatment_effects hold "
                "within-arm mean changes (model 'within_arm', Cohen's d_z); the MMRM gives within-arm "
                "LS means; no random-effects models",
            )
        if self.adqs.height == 0:
            self.notes.append(f"analysis.adqs has no rows of randomized subjects for study {self.study_id}")
        pool = self._start_random_effects_pool()
        try:
            self._analyse_all()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return self._finish()

    # Large studies: statsmodels MixedLM is single-threaded Python looping over subjects, so the
    # random-effects fits run in worker processes (one per core) while the MMRMs run here. Small
    # studies fit them in line (starting workers costs more than it saves).
    PARALLEL_MIN_SUBJECTS = 1000

    def _start_random_effects_pool(self):
        self._futures: dict = {}
        if self.single or not self.sensitivity:
            return None
        n_subjects = self.rows.get_column("usubjid").n_unique() if self.rows.height else 0
        tasks = []
        for paramcd in self.parameters:
            if not self._sensitivity_for(paramcd):
                continue
            data = self._data(paramcd)
            if not {self.exp, self.ctl} <= set(data.get_column("trtp").to_list()):
                continue
            present = set(data.get_column("avisit").to_list())
            visits = [v for v in self.post_visits if v in present]
            for kind in ("lmm_ri", "lmm_rs"):
                if kind == "lmm_rs" and not slope_identifiable(data)[0]:
                    continue
                tasks.append(((paramcd, kind), data, visits))
        if n_subjects < self.PARALLEL_MIN_SUBJECTS or len(tasks) < 2:
            return None
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        workers = max(1, min(len(tasks), os.cpu_count() or 1))
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        self.say(f"random-effects models: {len(tasks)} fits in {workers} worker processes")
        for key, data, visits in tasks:
            self._futures[key] = pool.submit(
                fit_random_effects, data, kind=key[1], visit_levels=visits, experimental=self.exp,
                control=self.ctl, reml=self.a.model.reml,
            )  # fmt: skip
        return pool

    def _analyse_all(self) -> None:
        for paramcd in self.parameters:
            self.say(f"{paramcd}: analysing")
            data = self._data(paramcd)
            present = set(data.get_column("avisit").to_list())
            visits = [v for v in self.post_visits if v in present]
            sd = self._baseline_sd(paramcd)
            if sd is None and not self.single:
                self.notes.append(f"{paramcd}: the pooled baseline SD is not defined; Cohen's d not computed")
            self.mmrm(paramcd, data, visits, sd)
            if self.single and "chg" in data.columns:
                self.within_arm(paramcd, data, visits)
            elif self._sensitivity_for(paramcd):
                self.lmm(paramcd, data, visits, sd)

    def _finish(self) -> EfficacyResults:
        self.adjust()
        randomized = dict(
            self.adsl.filter((pl.col("randfl") == "Y") & pl.col("trt01p").is_in(self.arms))
            .group_by("trt01p")
            .len()
            .iter_rows()
        )
        self.say("responders")
        resp_rows, resp_notes = responders.responder_rows(
            self.adqs,
            randomized,
            arms=self.arms,
            experimental=self.exp,
            control=self.ctl,
            primary_visit=self.primary_visit,
            alpha=self.alpha,
            parameters=[
                p
                for p in _parameter_order(set(self.adqs.get_column("paramcd").unique().to_list()))
                if self.only is None or p in self.only
            ],
        )
        self.notes += resp_notes
        const = {"study_id": self.study_id, "run_id": self.run_id}
        return EfficacyResults(
            model_fits=schema.frame(self.fits, schema.MODEL_FITS, **const),
            lsmeans=schema.frame(self.lsm, schema.LSMEANS, **const),
            treatment_effects=schema.frame(self.effects, schema.TREATMENT_EFFECTS, **const),
            responders=schema.frame(resp_rows, schema.RESPONDERS, **const),
            notes=self.notes,
        )


def run_efficacy(
    con: duckdb.DuckDBPyConnection,
    manifest,
    run_id: str,
    progress: Callable[[str], None] | None = None,
    *,
    parameters: list[str] | None = None,
    sensitivity: bool = True,
) -> EfficacyResults:
    """The efficacy analysis of ``manifest``'s study from ``analysis.adsl`` / ``analysis.adqs`` in
    ``con`` (rules E1-E8 in the module docstring). ``progress``: optional callable(str) told about
    each step. ``parameters``: restrict to these PARAMCDs (default: every one with analysis rows);
    ``sensitivity=False`` skips the random-effects models. Never raises for a model that cannot be
    fitted: it is reported (converged = false) and explained in ``notes``."""
    return _Run(con, manifest, run_id, progress, parameters, sensitivity).run()
