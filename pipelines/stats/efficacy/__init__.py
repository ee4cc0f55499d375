"""Efficacy analysis of one study: the primary MMRM per parameter (with covariance fallbacks), LS
means, treatment effects with Cohen's d, the multiplicity hierarchy, the
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
E5 Multiplicity: a declared testing hierarchy (serial gatekeeping) on the primary MMRM at the
   primary visit: primary endpoint -> the primary instrument's DSM-5 clusters (``analysis.multiplicity``,
   default Holm) -> the other instruments' totals (same method); see ``_Run.adjust``. Rows outside
   the hierarchy have p_adjusted NULL (no adjustment applies: shown as a dash) and adjust_method 'none'.
E6 Sensitivity (``lmm_ri``, ``lmm_rs``), for the parameters ``analysis.sensitivity_models`` names
   (default ``totals``: each instrument's total): random-effects models fitted as their marginal
   models by the project's MMRM engine, so they carry the primary model's small-sample df
   (``analysis.model.df_method``, default Kenward-Roger) instead of z tests: lmm_ri = a random
   intercept per subject (``cs(avisit | usubjid)``, the compound-symmetry marginal model);
   lmm_rs = a random intercept and slope on the visit's nominal week (manifest day / 7), G
   unstructured, residual sigma^2 I (``rs(vweek | usubjid)``; fitted only when at least 5 subjects
   have two or more post-baseline visits and the visits' nominal days differ). Same fixed effects as
   the primary model. A fit that did not converge reports no effects (converged = false); a
   converged fit whose random-effects covariance is singular (random-intercept variance <= 0, or G
   with a (nearly) zero eigenvalue) is kept, with ``singular = true`` in results.model_fits, a
   warning and a note. (statsmodels MixedLM, used before, had only z tests: at n = 30 its SE was
   2.49 vs the MMRM's 3.60, and its per-subject Python loop dominated the run time.)
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
from pipelines.stats.efficacy import missing, schema
from pipelines.stats.tables import ResultTables
from pipelines.stats.efficacy.fits import (
    FallbackFit,
    REFit,
    fit_mmrm_with_fallbacks,
    fit_random_effects_mmrm,
    fixed_effects,
    slope_identifiable,
    t_interval,
)

__all__ = ["EfficacyResults", "run_efficacy", "pooled_baseline_sd", "cohens_d"]

D_BASELINE = "d = effect / pooled baseline SD (Feingold 2009)"
D_Z = "d_z = mean change / SD of change"
WITHIN_ARM = "within_arm"
PRORATED = "mmrm_prorated"


@dataclass
class EfficacyResults(ResultTables):
    model_fits: pl.DataFrame
    lsmeans: pl.DataFrame
    treatment_effects: pl.DataFrame
    responders: pl.DataFrame
    missing_items: pl.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


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
# ADQS columns later rules added (CRIT3 loss of diagnosis, INFNO time points around an infusion): NULL
# when an ADQS built without them (an older warehouse, a hand-built test table) lacks them
_OPTIONAL_ADQS = {"crit3": "varchar", "crit3fl": "varchar", "infno": "integer"}


def _load(con: duckdb.DuckDBPyConnection, study_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    present = set(con.execute("select * from analysis.adqs limit 0").pl().columns)
    optional = ", ".join(c if c in present else f"cast(null as {t}) as {c}" for c, t in _OPTIONAL_ADQS.items())
    adqs = con.execute(
        f"""
        select usubjid, trtp, paramcd, avisit, avisitn, ady, aval, base, chg, ablfl, anl01fl,
               crit1, crit1fl, crit2, crit2fl, {optional}
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
        self.visit_weeks = {v.id: v.day / 7.0 for v in manifest.visits}
        self.extra = self.a.model.extra_terms
        self.fixed = fixed_effects(with_arm=True, extra=self.extra)
        self.fits, self.lsm, self.effects, self.notes = [], [], [], []
        self.con = con
        self.missing_rows: list[dict] = []
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
        self.covariate_frame = self._covariates(con)
        if self.covariate_frame is not None:
            self.rows = self.rows.join(self.covariate_frame, on="usubjid", how="left")
        present = set(self.rows.get_column("paramcd").unique().to_list())
        # time-point records of an infusion (INFNO; CADSS/BPRS around each dose) are safety data, analysed per
        # infusion: a parameter rated only there is not an efficacy parameter without a change
        valued = self.adqs.filter(pl.col("aval").is_not_null() & pl.col("infno").is_null())
        with_values = set(valued.get_column("paramcd").unique().to_list())
        for p in _parameter_order(with_values - present):
            self.notes.append(f"{p}: values but no post-baseline change from baseline; not analysed")
        self.only = None if parameters is None else set(parameters)
        self.parameters = [p for p in _parameter_order(present) if self.only is None or p in self.only]

    # -- helpers ---------------------------------------------------------------------------
    def _covariates(self, con) -> pl.DataFrame | None:
        """E2: the subject-level variables the manifest's covariate/strata terms name, from ADSL (a
        column, or a key of its covariates JSON); numbers when every value is a number."""
        import json
        import re

        from pipelines.core.errors import ManifestError

        names = {n for t in self.extra for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", t)}
        names -= {"base", "trtp", "avisit", "chg", "usubjid", "ady"}
        if not names:
            return None
        adsl = con.execute("select * from analysis.adsl where study_id = ?", [self.study_id]).pl()
        extra = {}
        if "covariates" in adsl.columns:
            for u, js in adsl.select("usubjid", "covariates").iter_rows():
                for k, v in (json.loads(js) if js else {}).items():
                    extra.setdefault(k, {})[u] = v
        out = adsl.select("usubjid")
        for n in sorted(names):
            if n in adsl.columns and n != "covariates":
                col = adsl.get_column(n)
            elif n in extra:
                col = pl.Series(n, [extra[n].get(u) for u in adsl.get_column("usubjid").to_list()])
            else:
                known = sorted(c for c in adsl.columns if c not in ("study_id", "usubjid", "covariates"))
                raise ManifestError(
                    f"analysis.model covariates/strata: no subject-level variable {n!r} (ADSL has "
                    f"{', '.join(known)}{'; declared covariates: ' + ', '.join(sorted(extra)) if extra else ''}); "
                    "map it under a source's columns (sex, age, site, ...) or covariates"
                )
            if col.dtype == pl.String:
                num = col.cast(pl.Float64, strict=False)
                if num.null_count() == col.null_count():
                    col = num
            out = out.with_columns(col.alias(n))
            n_missing = int(out.get_column(n).null_count())
            if n_missing:
                self.notes.append(
                    f"covariate {n}: missing for {n_missing} subject(s); their rows are left out of every model"
                )
        return out

    def _data(self, paramcd: str) -> pl.DataFrame:
        """A parameter's analysis rows: chg and base, or for a change scale aval alone."""
        data = self.rows.filter(pl.col("paramcd") == paramcd).drop("paramcd")
        return data.drop("base", "chg") if paramcd in self.change_scales else data.drop("aval")

    def _base(self, **kw):
        return {"paramcd": kw.pop("paramcd"), **kw}

    def _baseline_sd(self, paramcd: str) -> float | None:
        bl = self.adqs.filter(
            (pl.col("paramcd") == paramcd) & (pl.col("ablfl") == "Y") & pl.col("aval").is_not_null()
            & pl.col("infno").is_null()  # the study baseline, not a per-infusion one
        )
        by_arm = {a: bl.filter(pl.col("trtp") == a).get_column("aval").to_numpy() for a in self.arms}
        return pooled_baseline_sd(by_arm)

    def _fit_stats(self, res, data: pl.DataFrame) -> dict:
        """A model_fits row's fit statistics from a fit result (``res``), or, without one, the
        model's df method and the counts of ``data``."""
        if res is None:
            return {"df_method": self.a.model.df_method, "n_subjects": data.get_column("usubjid").n_unique(),
                    "n_obs": data.height}
        return {"df_method": res.df_method, "neg2_loglik": res.neg2_loglik, "aic": res.aic, "bic": res.bic,
                "n_subjects": res.n_subjects_used, "n_obs": res.n_obs}

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
    def mmrm(self, paramcd: str, data: pl.DataFrame, visits: list[str], sd: float | None, model: str = "mmrm"):
        estimation = "REML" if self.a.model.reml else "ML"
        if not self.single:
            missing = [a for a in (self.exp, self.ctl) if a not in set(data.get_column("trtp").to_list())]
            if missing:
                self._not_fitted(
                    paramcd, model, self.structures[0],
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
            extra=self.extra,
        )
        self._mmrm_fit_row(paramcd, data, fit, estimation, model)
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
                    paramcd=paramcd, model=model, trtp=r["trtp"], avisit=r["avisit"],
                    estimate=r["estimate"], std_error=r["std_error"], df=r["df"], conf_low=lo, conf_high=hi,
                    avisitn=self.visitn.get(r["avisit"]), n_obs=counts.get((r["trtp"], r["avisit"]), 0),
                )
            )  # fmt: skip
        if self.single:
            return
        per_visit = dict(data.group_by("avisit").len().iter_rows())
        for r in used.contrasts.iter_rows(named=True):
            if not np.isfinite(r["estimate"]):
                self.notes.append(f"{paramcd} {model}: the arm difference at {r['avisit']} is not estimable")
            self._effect(paramcd, model, r, used.result.df_method, sd, per_visit.get(r["avisit"], 0))

    def _mmrm_fit_row(self, paramcd, data, fit: FallbackFit, estimation, model="mmrm"):
        rep = fit.reported
        res = rep.result
        failed = fit.failed_before
        warn = list(res.warnings) if res is not None else []
        warn += [f"{a.covariance} not used: {a.reason}" for a in fit.attempts if not a.ok]
        self.fits.append(
            self._base(
                paramcd=paramcd,
                model=model,
                covariance=rep.covariance,
                estimation=estimation,
                converged=fit.used is not None,
                **self._fit_stats(res, data),
                warnings=_join(warn),
                formula=rep.formula,
                fallback_from=", ".join(a.covariance for a in failed) or None,
                n_attempts=len(fit.attempts),
            )
        )
        if fit.used is None:
            self.notes.append(
                f"{paramcd}: the {'primary MMRM' if model == 'mmrm' else model} did not converge with any covariance structure "
                f"({', '.join(a.covariance for a in fit.attempts)}); reported as converged = false, "
                "without LS means or treatment effects"
            )
        elif failed:
            why = "; ".join(f"{a.covariance}: {a.reason}" for a in failed)
            self.notes.append(
                f"{paramcd}: {'primary MMRM' if model == 'mmrm' else model} fell back to {fit.used.covariance} ({why})"
            )

    def _effect(self, paramcd, model, r, df_method, sd, n, *, d_method=D_BASELINE, interval=None):
        """A treatment_effects row from a contrast ``r`` (avisit, contrast, estimate, std_error, df,
        statistic, p_value, as the fits report them): its t interval at alpha unless ``interval`` is
        given, Cohen's d on ``sd`` (``d_method`` says which SD), ``n`` observations."""
        visit, est = r["avisit"], r["estimate"]
        lo, hi = interval if interval is not None else t_interval(est, r["std_error"], r["df"], self.alpha)
        self.effects.append(
            self._base(
                paramcd=paramcd,
                model=model,
                avisit=visit,
                is_primary=visit == self.primary_visit,
                estimate=est,
                std_error=r["std_error"],
                df=r["df"],
                df_method=df_method,
                conf_low=lo,
                conf_high=hi,
                p_value=r["p_value"],
                cohens_d=cohens_d(est, sd),
                avisitn=self.visitn.get(visit),
                contrast=r["contrast"],
                statistic=r["statistic"],
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
        ``none`` for none. on large studies the cluster-level sensitivity fits would dominate
        the run; they are one option away."""
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
                "random intercept (marginal: cs)"
                if kind == "lmm_ri"
                else "random intercept + slope on nominal week (G unstructured; marginal: rs)"
            )
            if kind == "lmm_rs":
                ok, why = slope_identifiable(data)
                weeks = [self.visit_weeks[v] for v in visits]
                if ok and len(set(weeks)) < len(weeks):
                    ok, why = False, "two post-baseline visits share a nominal day: no slope variable"
                if not ok:
                    self.notes.append(f"{paramcd}: lmm_rs skipped - {why}")
                    continue
            self.say(f"{paramcd}: {kind}")
            fit = fit_random_effects_mmrm(
                data, kind=kind, visit_levels=visits, visit_weeks=self.visit_weeks, control=self.ctl,
                reml=self.a.model.reml, df_method=self.a.model.df_method, fixed=self.fixed,
            )  # fmt: skip
            self._lmm_rows(paramcd, data, fit, covariance, estimation, sd)

    def _lmm_rows(self, paramcd, data, fit: REFit, covariance, estimation, sd):
        res = fit.result
        warn = list(res.warnings) if res is not None else []
        if fit.error:
            warn.append(fit.error)
        if fit.singular and fit.converged:
            warn.append(fit.singular)
        self.fits.append(
            self._base(
                paramcd=paramcd,
                model=fit.kind,
                covariance=covariance,
                estimation=estimation,
                converged=fit.converged,
                **self._fit_stats(res, data),
                warnings=_join(warn),
                formula=fit.formula,
                n_attempts=1,
                singular=fit.singular is not None if (fit.converged or fit.singular) else None,
            )
        )
        if not fit.converged:
            self.notes.append(f"{paramcd}: {fit.kind} not usable ({fit.error or 'no fit'}); no LS means or effects")
            return
        if fit.singular:
            self.notes.append(f"{paramcd}: {fit.kind} {fit.singular}")
        counts = {(a, v): n for a, v, n in data.group_by("trtp", "avisit").len().iter_rows()}
        per_visit = dict(data.group_by("avisit").len().iter_rows())
        for r in fit.lsmeans.iter_rows(named=True):
            lo, hi = t_interval(r["estimate"], r["std_error"], r["df"], self.alpha)
            self.lsm.append(
                self._base(
                    paramcd=paramcd, model=fit.kind, trtp=r["trtp"], avisit=r["avisit"],
                    estimate=r["estimate"], std_error=r["std_error"], df=r["df"], conf_low=lo, conf_high=hi,
                    avisitn=self.visitn.get(r["avisit"]), n_obs=counts.get((r["trtp"], r["avisit"]), 0),
                )
            )  # fmt: skip
        for r in fit.contrasts.iter_rows(named=True):
            self._effect(paramcd, fit.kind, r, res.df_method, sd, per_visit.get(r["avisit"], 0))

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
            t = mean / se if se else None
            p = float(2 * stats.t.sf(abs(t), df)) if t is not None else None
            dz_sd = sd if sd and sd > 0 else None
            r = {"avisit": v, "contrast": f"{arm} (within arm)", "estimate": mean, "std_error": se, "df": df,
                 "statistic": t, "p_value": p}  # fmt: skip
            interval = t_interval(mean, se, df, self.alpha) if se else (None, None)
            self._effect(paramcd, WITHIN_ARM, r, "t (n - 1)", dz_sd, n, d_method=D_Z, interval=interval)

    # -- multiplicity ---------------------------------------------------------------------
    def adjust(self):
        """E5: the declared testing hierarchy (serial gatekeeping) on the primary MMRM at the primary
        visit. Level 1 the primary endpoint (tested at alpha, no adjustment); level 2 the primary
        instrument's DSM-5 clusters (``analysis.multiplicity``, default Holm), tested only when the
        primary endpoint is significant; level 3 the other instruments' totals (same method), tested
        only when every level-2 hypothesis is rejected. Adjusted p of a gated hypothesis = max(its
        within-family adjusted p, the largest adjusted p of the levels before it), so p_adjusted <=
        alpha is exactly "reached and rejected". Every other row (other visits, other clusters,
        CAPS5DIS, lmm_*): no adjustment applies, p_adjusted NULL (a dash), adjust_method 'none'."""
        method = self.a.multiplicity
        for row in self.effects:
            row["p_adjusted"] = None
            row["adjust_method"] = "none"
            row["family"] = None
        primary = self.a.primary_parameter
        if self.single:
            return
        rows = {
            r["paramcd"]: r for r in self.effects if r["model"] == "mmrm" and r["avisit"] == self.primary_visit
        }
        prim = rows.get(primary)
        inst = next(
            (i for i in load_instruments().values() if any(sc.paramcd == primary for sc in i.scores)), None
        )
        clusters = [sc.paramcd for sc in inst.scores if not sc.primary_total and not sc.optional] if inst else []
        if len(clusters) < 2:
            clusters = []
        totals = [
            sc.paramcd
            for p in parameter_order(rows)
            for i in load_instruments().values()
            for sc in i.scores
            if sc.paramcd == p and sc.primary_total and sc.paramcd != primary
        ]
        totals = list(dict.fromkeys(totals))
        levels = [
            (f"hierarchy 1: primary endpoint {primary} at {self.primary_visit}", [primary], "none"),
            (f"hierarchy 2: {inst.instrument if inst else ''} clusters at {self.primary_visit}", clusters, method),
            (f"hierarchy 3: secondary totals at {self.primary_visit}", totals, method),
        ]
        gate = 0.0  # the largest adjusted p of the levels before
        lab = multiplicity.LABELS.get(method, method)
        for family, members, how in levels:
            present = [p for p in members if p in rows]
            if not present:
                continue
            ordered = [rows.get(p) for p in members]
            ps = [None if r is None else r["p_value"] for r in ordered]
            within = ps if how == "none" else multiplicity.adjust(ps, how)
            level_max = gate
            for r, pa in zip(ordered, within, strict=True):
                if r is None:
                    continue
                r["family"] = family
                if family.startswith("hierarchy 1"):
                    # tested at the full alpha: nothing is adjusted (a dash), it is the gate
                    r["adjust_method"] = "none"
                    level_max = max(level_max, r["p_value"] if r["p_value"] is not None else 1.0)
                    continue
                adj = None if pa is None else max(float(pa), gate)
                r["p_adjusted"] = adj
                r["adjust_method"] = f"{how} + hierarchy"
                level_max = max(level_max, 1.0 if adj is None else adj)
            absent = [p for p, r in zip(members, ordered, strict=True) if r is None or r["p_value"] is None]
            if absent and how != "none":
                self.notes.append(
                    f"{family}: no p-value for {', '.join(absent)}; counted as p = 1 in the {lab} adjustment "
                    f"(planned family size {len(members)}) and as not rejected for the next level"
                )
                level_max = 1.0
            gate = level_max
        if prim is None:
            return
        self.notes.append(
            f"Testing hierarchy (serial gatekeeping, alpha {self.alpha:g}): 1 the primary endpoint {primary} at "
            f"{self.primary_visit} (unadjusted); 2 the {inst.instrument if inst else ''} DSM-5 clusters ({lab}), "
            f"tested only if 1 is significant; 3 the secondary totals {', '.join(t for t in totals if t in rows) or '(none)'} "
            f"({lab}), tested only if every cluster in 2 is significant. p_adjusted = max(within-family "
            "adjusted p, the gate's); a dash (NULL) where no adjustment applies."
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
        self._analyse_all()
        self.missing_items(self.con)
        return self._finish()

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

    def missing_items(self, con) -> None:
        """M1/M2 (``pipelines.stats.efficacy.missing``): the lost-score table, and the prorated-score
        sensitivity MMRM of the primary parameter beside the primary when any of its scores was lost."""
        bl = self.m.baseline_visit.id
        self.missing_rows = missing.missing_item_rows(con, self.study_id, self.arms, bl)
        primary = self.a.primary_parameter
        lost = [r for r in self.missing_rows if r["paramcd"] == primary and r["n_lost"]]
        if lost:
            self.notes.append(
                f"{primary}: scores lost to missing items (subjects assessed whose score is missing under the "
                f"'{self.a.missing_items.method}' rule; results.missing_items names them): "
                + "; ".join(f"{r['avisit']} {r['trtp']} {r['n_lost']}/{r['n_assessed']}" for r in lost)
            )
        rule = self.a.prorated_sensitivity
        if not lost or self.a.missing_items.method != "none" or not rule.enabled or self.single:
            return
        if self.only is not None and primary not in self.only:
            return
        frame = missing.prorated_adqs(con, self.study_id, primary, rule.max_missing, rule.scope)
        if frame is None:
            return
        data = frame.filter(
            (pl.col("anl01fl") == "Y") & pl.col("chg").is_not_null() & pl.col("avisit").is_in(self.post_visits)
            & pl.col("trtp").is_in(self.arms)
        ).select("usubjid", "trtp", "avisit", "ady", "base", "chg")
        if self.covariate_frame is not None:
            data = data.join(self.covariate_frame, on="usubjid", how="left")
        present = set(data.get_column("avisit").to_list())
        visits = [v for v in self.post_visits if v in present]
        bl_vals = frame.filter((pl.col("ablfl") == "Y") & pl.col("aval").is_not_null() & pl.col("infno").is_null())
        sd = pooled_baseline_sd(
            {a: bl_vals.filter(pl.col("trtp") == a).get_column("aval").to_numpy() for a in self.arms}
        )
        self.say(f"{primary}: prorated-score sensitivity MMRM")
        self.mmrm(primary, data, visits, sd, model=PRORATED)
        self.notes.append(
            f"{primary}: scores were lost to missing items, so a prorated-score sensitivity MMRM (model "
            f"'{PRORATED}') was fitted beside the primary: scores with at most {rule.max_missing} missing "
            f"item(s) ({rule.scope}) prorated as mean of the answered items x item count, not rounded "
            f"({data.get_column('usubjid').n_unique()} subjects, {data.height} observations, vs "
            f"{self.rows.filter(pl.col('paramcd') == primary).height} observations in the primary)"
        )

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
            missing_items=schema.frame(self.missing_rows, schema.MISSING_ITEMS, **const),
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
