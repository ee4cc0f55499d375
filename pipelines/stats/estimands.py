"""Estimands (ICH E9(R1)) and their missing-data sensitivity analyses for one study.

Dagster-free; reads ``analysis.adsl`` / ``analysis.adqs`` and returns the contract's
``results.estimands``, ``results.sensitivity`` and ``results.tipping_point`` frames.

Rules, in words:

S1 Estimands: the manifest's ``estimands:`` block, or the documented default (id ``primary``: all
   randomized subjects, the primary parameter's change from baseline at the primary visit,
   treatment discontinuation recognised from dropout, hypothetical strategy under MAR, difference
   in LS-mean change -- what the primary MMRM estimates).
S2 Subjects: randomized subjects of the two arms with a baseline value of the parameter; post-
   baseline ADQS records with ANL01FL = 'Y' and CHG present are the observed values (as the primary
   MMRM). Subjects without any post-baseline value are imputed at every visit.
S3 Intercurrent events: a subject-level column (``column``, ``timing`` after/at) or, without one,
   dropout: the first visit of a subject's trailing run of missing visits. A subject with several
   events gets the earliest; its strategy decides: hypothetical / while on treatment -> values from
   the first affected visit on are set aside and imputed; treatment policy -> observed values kept.
S4 Sensitivity: for each strategy in ``sensitivity.strategies`` (default MAR, J2R, CR, CIR) every
   subject with an event is imputed under it after the event (missing values of subjects without an
   event: MAR), control arm the reference; imputation model chg ~ base*avisit + trtp*avisit +
   <covariance>(avisit | usubjid) (the manifest's covariance, then its fallbacks), REML; method
   ``sensitivity.method`` (default conditional mean imputation with jackknife SEs; above
   ``sensitivity.jackknife_max_subjects`` subjects (500) the delete-a-group jackknife with
   ``jackknife_groups`` random groups (100), method condmean-grouped-jackknife, t with groups - 1 df,
   and a note -- one refit per subject grows as n^2); analysis ANCOVA
   of chg on arm + base per visit; estimate = experimental minus control.
S6 Responders (results.responder_estimands): composite strategy (intercurrent event or missing =
   non-responder) as the primary responder analysis, observed cases secondary; Firth logistic
   where ML logistic fails (see _responder_rows).
S5 Tipping point (the estimand's own imputation strategy, at its visit): p over a grid of shifts of
   the imputed post-event values of each arm (default 11 steps from 0 to twice the estimate, in the
   direction that removes the effect, for each arm; the control arm shifted the other way), and per
   arm the smallest shift (bisection) that makes the two-sided p reach alpha.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pipelines.core.errors import TrialpipeError
from pipelines.stats.tables import ResultTables, results_schema

# the tables' columns and types: the contract in sql/results/_schema.yml
SENSITIVITY_SCHEMA = results_schema("results.sensitivity")
TIPPING_SCHEMA = results_schema("results.tipping_point")
ESTIMAND_SCHEMA = results_schema("results.estimands")
RESPONDER_SCHEMA = results_schema("results.responder_estimands")

STRATEGY_WORDS = {
    "MAR": "missing at random (as if they had stayed on their arm, like similar participants who did)",
    "J2R": "jump to reference (after the event, like the control arm)",
    "CR": "copy reference (as if they had been in the control arm throughout)",
    "CIR": "copy increments in reference (after the event, changing as the control arm does)",
    "LMCF": "last mean carried forward",
}
ICE_WORDS = {
    "hypothetical": "had they not had the event (hypothetical strategy)",
    "treatment_policy": "whether or not they had the event (treatment-policy strategy)",
    "composite": "counting the event as non-response (composite strategy)",
    "while_on_treatment": "while on treatment (values after the event not used)",
}


@dataclass
class EstimandResults(ResultTables):
    TABLE_NAMES = {"responders": "responder_estimands"}

    estimands: pl.DataFrame
    sensitivity: pl.DataFrame
    tipping_point: pl.DataFrame
    responders: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=RESPONDER_SCHEMA))
    notes: list[str] = field(default_factory=list)


def _clean(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _ice_visits(con, study_id, manifest, ev, subjects, visits, frame) -> dict[str, int]:
    """{usubjid: index of the first affected visit among ``visits``} for one event (S3)."""
    from pipelines.stats import imputation as mi

    if ev.column is None:
        if ev.event.lower() not in ("discontinuation", "dropout", "treatment discontinuation"):
            raise TrialpipeError(
                f"intercurrent event {ev.event!r} needs a column saying when it happened",
                hint="only treatment discontinuation can be recognised from dropout",
            )
        found = mi.ice_from_dropout(frame, subject="usubjid", visit="avisit", outcome="chg", visits=visits)
        return {s: visits.index(v) for s, v in found.items()}
    rows = con.execute(
        "select usubjid, json_extract_string(covariates, ?) from analysis.adsl where study_id = ?",
        [f'$."{ev.column}"', study_id],
    ).fetchall()
    codes = {}
    for src in manifest.sources:
        codes.update({k.strip().lower(): v for k, v in manifest.visit_codes(src).items()})
    order = [v.id for v in manifest.visits]
    out = {}
    for usubjid, raw in rows:
        if usubjid not in subjects or raw is None or str(raw).strip() == "":
            continue
        vid = codes.get(str(raw).strip().lower())
        if vid is None:
            raise TrialpipeError(
                f"subject {usubjid}: {ev.event} visit {raw!r} is not a visit of the manifest",
                column=ev.column,
                hint=f"visits are {', '.join(order)}",
            )
        pos = order.index(vid) + (1 if ev.timing == "after" else 0)
        later = [v for v in visits if order.index(v) >= pos]
        if later:
            out[usubjid] = visits.index(later[0])
    return out


def describe(manifest, e, paramcd: str, visit: str, primary_strategy: str) -> str:
    """The estimand in words (one sentence)."""
    from pipelines.instruments import score_of_paramcd

    exp, ctl = manifest.experimental_arm, manifest.control_arm
    vis = next((v for v in manifest.visits if v.id == visit), None)
    vlabel = (vis.label or vis.id) if vis else visit
    found = score_of_paramcd(paramcd)
    label = found[1].param if found else paramcd
    events = []
    for ev in e.intercurrent_events:
        how = ICE_WORDS[ev.strategy]
        if ev.strategy in ("hypothetical", "treatment_policy"):
            how += f"; missing values imputed under {STRATEGY_WORDS[ev.imputation]}"
        events.append(f"{ev.event.replace('_', ' ')}: {how}")
    summary = (
        "difference in mean change from baseline (LS-mean difference)"
        if e.summary == "difference_in_lsmean_change"
        else "difference in responder proportions"
    )
    return (
        f"Among all randomized participants, the {summary} in {label} between {exp.display} and "
        f"{ctl.display} at {vlabel}; intercurrent events - " + "; ".join(events) + "."
    )


def _fit_order(manifest) -> list[str]:
    m = manifest.analysis.model
    return list(dict.fromkeys([m.covariance, *m.fallbacks]))


def run_estimands(con, manifest, run_id: str, *, progress=None) -> EstimandResults:
    """S1-S5 for every estimand of ``manifest`` (see module docstring)."""
    from pipelines.stats import imputation as mi

    say = progress or (lambda msg: None)
    study_id = manifest.study_id
    res = EstimandResults(
        pl.DataFrame(schema=ESTIMAND_SCHEMA),
        pl.DataFrame(schema=SENSITIVITY_SCHEMA),
        pl.DataFrame(schema=TIPPING_SCHEMA),
    )
    if manifest.single_arm:
        res.notes.append("single-arm study: no between-arm estimand, no sensitivity analyses")
        return res
    exp, ctl = manifest.experimental_arm.id, manifest.control_arm.id
    alpha = manifest.analysis.alpha
    [v.id for v in manifest.visits]
    # treatment-phase visits only: follow-up visits (phase follow_up) serve the durability analysis
    post = [v.id for v in manifest.treatment_visits if not v.baseline]
    est_rows, sens_rows, tip_rows, resp_rows = [], [], [], []
    for e in manifest.default_estimands():
        paramcd = e.parameter or manifest.analysis.primary_parameter
        visit = e.visit or manifest.primary_visit.id
        adqs = con.execute(
            """
            select q.usubjid, q.trtp, q.avisit, q.chg, q.base, q.anl01fl, q.ablfl
            from analysis.adqs q join analysis.adsl s on s.study_id = q.study_id and s.usubjid = q.usubjid
            where q.study_id = ? and q.paramcd = ? and s.randfl = 'Y' and q.trtp in (?, ?)
                and q.infno is null  -- time-point records of an infusion have a per-infusion BASE
            """,
            [study_id, paramcd, exp, ctl],
        ).pl()
        base = (
            adqs.filter(pl.col("base").is_not_null())
            .group_by("usubjid")
            .agg(pl.col("base").first(), pl.col("trtp").first())
        )
        obs = adqs.filter(
            (pl.col("anl01fl") == "Y") & pl.col("chg").is_not_null() & pl.col("avisit").is_in(post)
        ).select("usubjid", "avisit", "chg")
        visits = [v for v in post if v in set(obs["avisit"].to_list())]
        words_row = {
            "study_id": study_id,
            "estimand_id": e.id,
            "label": e.label,
            "population": "all randomized participants",
            "treatment": f"{manifest.experimental_arm.display} vs {manifest.control_arm.display}",
            "paramcd": paramcd,
            "avisit": visit,
            "summary_measure": e.summary,
            "run_id": run_id,
        }
        primary_strategy = e.intercurrent_events[0].imputation if e.intercurrent_events else "MAR"
        words_row["description"] = describe(manifest, e, paramcd, visit, primary_strategy)
        words_row["strategies"] = "; ".join(
            f"{ev.event}: {ev.strategy}" + (f" ({ev.imputation})" if ev.strategy != "composite" else "")
            for ev in e.intercurrent_events
        )
        words_row["primary_strategy"] = primary_strategy
        if e.summary != "difference_in_lsmean_change" or visit not in visits or base.height == 0:
            why = (
                "responder summary (see results.responders)"
                if e.summary != "difference_in_lsmean_change"
                else f"no post-baseline {paramcd} values at {visit}"
            )
            res.notes.append(f"estimand {e.id}: no imputation analysis ({why})")
            words_row["intercurrent_events"] = ", ".join(ev.event for ev in e.intercurrent_events)
            est_rows.append(words_row)
            continue
        subjects = set(base["usubjid"].to_list())
        frame = (
            base.join(pl.DataFrame({"avisit": visits}), how="cross")
            .join(obs, on=["usubjid", "avisit"], how="left")
            .sort("usubjid")
        )
        # S3: events, earliest per subject
        first: dict[str, tuple[int, object]] = {}
        counts = []
        for ev in e.intercurrent_events:
            found = _ice_visits(con, study_id, manifest, ev, subjects, visits, frame)
            counts.append(
                f"{ev.event} ({len(found)} participants, recognised from "
                + (f"column {ev.column}" if ev.column else "dropout")
                + ")"
            )
            for s, k in found.items():
                if s not in first or k < first[s][0]:
                    first[s] = (k, ev)
        words_row["intercurrent_events"] = "; ".join(counts)
        resp_rows.extend(
            _responder_rows(con, study_id, e, paramcd, visit, visits, first, exp, ctl, alpha, run_id)
        )
        set_aside = [
            (s, visits[k])
            for s, (k, ev) in first.items()
            if ev.strategy in ("hypothetical", "while_on_treatment")
        ]
        if set_aside:
            vpos = {v: i for i, v in enumerate(visits)}
            cut = pl.DataFrame({"usubjid": [s for s, _ in set_aside], "_k": [vpos[v] for _, v in set_aside]})
            frame = (
                frame.with_columns(pl.col("avisit").replace_strict(vpos, return_dtype=pl.Int64).alias("_v"))
                .join(cut, on="usubjid", how="left")
                .with_columns(
                    pl.when(pl.col("_k").is_not_null() & (pl.col("_v") >= pl.col("_k")))
                    .then(None)
                    .otherwise(pl.col("chg"))
                    .alias("chg")
                )
                .drop("_v", "_k")
            )
        n_ice = len(first)
        words_row["n_subjects"] = len(subjects)
        words_row["n_ice"] = n_ice
        sens = e.sensitivity
        strategies = list(dict.fromkeys([primary_strategy, *sens.strategies]))
        runs = {}
        for strategy in strategies:
            ice = {
                s: (visits[k], strategy if ev.strategy != "while_on_treatment" else "MAR")
                for s, (k, ev) in first.items()
            }
            run = None
            last_err = None
            for cov in _fit_order(manifest):
                formula = f"chg ~ base*avisit + trtp*avisit + {cov}(avisit | usubjid)"
                try:
                    ld = mi.prepare(
                        frame,
                        formula,
                        group="trtp",
                        reference=ctl,
                        ice=ice,
                        strategy=strategy,
                        covariates=["base"],
                        visit_levels=visits,
                    )
                    if not ld.fit.converged:
                        raise TrialpipeError("the imputation model did not converge")
                    method, n_samples = _variance_method(sens, ld.n)
                    say(f"estimand {e.id}: {strategy} {method} ({cov})")
                    dr = mi.draws(ld, method, n_samples=n_samples, seed=sens.seed)
                    run = mi.ImputationAnalysis(ld, dr)
                    break
                except TrialpipeError as exc:
                    last_err = exc
                    continue
            if run is None:
                res.notes.append(f"estimand {e.id}: {strategy} imputation not done ({last_err})")
                continue
            runs[strategy] = (run, cov)
            if run.dr.method != sens.method and not any("grouped jackknife" in n for n in res.notes):
                res.notes.append(
                    f"estimand {e.id}: {run.ld.n:,} subjects (more than {sens.jackknife_max_subjects:,}): "
                    f"SEs from the delete-a-group jackknife with {run.dr.S - 1} random groups (Kott 2001; "
                    "t with groups - 1 df) instead of one refit per subject (method "
                    "condmean-grouped-jackknife in results.sensitivity)"
                )
            out = run.results()
            diff = out.filter(pl.col("parameter") == "difference")
            for r in diff.iter_rows(named=True):
                sens_rows.append(
                    _sens_row(study_id, e.id, paramcd, sens, strategy, 0.0, None, r, run, n_ice, cov, run_id)
                )
        words_row["tipping_delta_experimental"] = None
        words_row["tipping_delta_control"] = None
        if primary_strategy in runs and sens.tipping_point.enabled:
            run, cov = runs[primary_strategy]
            tp = sens.tipping_point
            base_row = (
                run.results()
                .filter((pl.col("parameter") == "difference") & (pl.col("visit") == visit))
                .row(0, named=True)
            )
            est = base_row["estimate"]
            tips = {
                arm: run.tipping_delta(visit, arm, alpha=alpha, cumulative=tp.cumulative)
                for arm in ("experimental", "control")
            }
            sign = -np.sign(est) if est else 1.0

            de = tp.experimental or _grid_axis(est, tips["experimental"], sign)
            dc = tp.control or _grid_axis(est, tips["control"], -sign)
            say(f"estimand {e.id}: tipping-point grid {len(de)} x {len(dc)}")
            grid = run.grid(visit, de, dc, cumulative=tp.cumulative)
            for r in grid.iter_rows(named=True):
                tip_rows.append(
                    {
                        "study_id": study_id,
                        "estimand_id": e.id,
                        "paramcd": paramcd,
                        "avisit": visit,
                        "strategy": primary_strategy,
                        "delta_experimental": r["delta_experimental"],
                        "delta_control": r["delta_control"],
                        "estimate": _clean(r["estimate"]),
                        "std_error": _clean(r["std_error"]),
                        "p_value": _clean(r["p_value"]),
                        "run_id": run_id,
                    }
                )
            for arm in ("experimental", "control"):
                d = tips[arm]
                words_row[f"tipping_delta_{arm}"] = d
                if d:
                    out = run.results(
                        d if arm == "experimental" else 0.0,
                        d if arm == "control" else 0.0,
                        cumulative=tp.cumulative,
                    )
                    r = out.filter((pl.col("parameter") == "difference") & (pl.col("visit") == visit)).row(
                        0, named=True
                    )
                    sens_rows.append(
                        _sens_row(
                            study_id,
                            e.id,
                            paramcd,
                            sens,
                            primary_strategy,
                            d,
                            arm,
                            r,
                            run,
                            n_ice,
                            cov,
                            run_id,
                        )
                    )
        est_rows.append(words_row)
    res.estimands = pl.DataFrame(est_rows, schema=ESTIMAND_SCHEMA) if est_rows else res.estimands
    res.sensitivity = pl.DataFrame(sens_rows, schema=SENSITIVITY_SCHEMA) if sens_rows else res.sensitivity
    res.tipping_point = pl.DataFrame(tip_rows, schema=TIPPING_SCHEMA) if tip_rows else res.tipping_point
    if resp_rows:
        res.responders = pl.DataFrame(resp_rows, schema=RESPONDER_SCHEMA)
    return res


def _responder_rows(con, study_id, e, paramcd, visit, visits, first, exp, ctl, alpha, run_id) -> list[dict]:
    """S6: response (ADQS CRIT1FL) at the estimand's visit. Composite (primary): every randomized
    subject of the two arms; a subject whose intercurrent event affects the visit (or earlier), or
    without a 'Y', is a non-responder. Observed (secondary): subjects with CRIT1FL Y/N at the visit.
    Per strategy: n/N per arm, risk difference (Miettinen-Nurminen CI), Fisher exact p, and the
    baseline-adjusted odds ratio - ML logistic, or Firth's penalised logistic when ML fails
    (separation)."""
    from pipelines.stats.responders import (
        firth_logistic,
        fisher_exact_p,
        logistic_baseline_adjusted,
        mn_risk_difference_ci,
    )

    q = con.execute(
        """
        select s.usubjid, s.trt01p as arm,
               max(case when q.avisit = ? and q.anl01fl = 'Y' then q.crit1fl end) as crit1fl,
               max(case when q.avisit = ? then q.crit1 end) as crit1,
               max(q.base) as base
        from analysis.adsl s left join analysis.adqs q
          on q.study_id = s.study_id and q.usubjid = s.usubjid and q.paramcd = ?
        where s.study_id = ? and s.randfl = 'Y' and s.trt01p in (?, ?)
        group by s.usubjid, s.trt01p
        order by s.usubjid  -- the logistic fits sum in this order: the same digits on every run
        """,
        [visit, visit, paramcd, study_id, exp, ctl],
    ).pl()
    if q.height == 0 or q["crit1"].drop_nulls().len() == 0:
        return []
    criterion = q["crit1"].drop_nulls()[0]
    k_visit = visits.index(visit)
    affected = {s for s, (k, ev) in first.items() if k <= k_visit}
    is_exp = (q["arm"] == exp).to_numpy()
    flag = q["crit1fl"].to_list()
    ice = np.array([u in affected for u in q["usubjid"].to_list()])
    out = []
    for missing, is_primary in (("composite", True), ("observed", False)):
        if missing == "composite":
            y = np.array([1.0 if (f == "Y" and not i) else 0.0 for f, i in zip(flag, ice)])
            use = np.ones(len(y), dtype=bool)
        else:
            y = np.array([1.0 if f == "Y" else 0.0 for f in flag])
            use = np.array([f in ("Y", "N") for f in flag])
        x1, n1 = int(y[use & is_exp].sum()), int((use & is_exp).sum())
        x2, n2 = int(y[use & ~is_exp].sum()), int((use & ~is_exp).sum())
        if n1 == 0 or n2 == 0:
            continue
        lo, hi = mn_risk_difference_ci(x1, n1, x2, n2, alpha)
        base = q["base"].to_numpy().astype(float)
        lr = logistic_baseline_adjusted(y[use], is_exp[use].astype(float), base[use], alpha)
        method = "ML"
        warning = None
        if lr.odds_ratio is None:
            warning = lr.warning
            lr = firth_logistic(y[use], np.column_stack([is_exp[use], base[use]]), alpha)
            method = "Firth"
            if lr.odds_ratio is None:
                warning = (warning + "; " if warning else "") + (lr.warning or "")
                method = None
        out.append(
            {
                "study_id": study_id, "estimand_id": e.id, "paramcd": paramcd, "avisit": visit,
                "criterion": criterion, "missing_data": missing, "is_primary": is_primary,
                "n_responders_experimental": x1, "n_experimental": n1, "n_responders_control": x2,
                "n_control": n2, "risk_difference": x1 / n1 - x2 / n2, "conf_low": lo, "conf_high": hi,
                "p_value": fisher_exact_p(x1, n1, x2, n2), "odds_ratio": lr.odds_ratio,
                "or_conf_low": lr.conf_low, "or_conf_high": lr.conf_high, "or_p_value": lr.p_value,
                "or_method": method, "warning": warning, "run_id": run_id,
            }
        )  # fmt: skip
    return out


def _variance_method(sens, n_subjects: int) -> tuple[str, int | None]:
    """The imputation method and its number of samples: the manifest's, except that the
    leave-one-out jackknife (n refits of an O(n) model: O(n^2)) becomes the delete-a-group jackknife
    with a fixed number of groups above ``jackknife_max_subjects`` subjects (S4)."""
    if sens.method == "condmean-jackknife":
        if n_subjects > sens.jackknife_max_subjects:
            return "condmean-grouped-jackknife", min(sens.jackknife_groups, n_subjects)
        return sens.method, None
    return sens.method, sens.n_samples or 200


def _grid_axis(est, tip, direction) -> list[float]:
    """0 to twice the estimate in ``direction``, stretched to 1.25 x the arm's tipping shift when larger."""
    span = 2 * abs(est) if est else 1.0
    if tip:
        span = max(span, 1.25 * abs(tip))
    return [float(direction * span * i / 10) + 0.0 for i in range(11)]


def _sens_row(study_id, eid, paramcd, sens, strategy, delta, arm, r, run, n_ice, cov, run_id):
    return {
        "study_id": study_id,
        "estimand_id": eid,
        "paramcd": paramcd,
        "method": run.dr.method,
        "strategy": strategy,
        "delta": float(delta),
        "delta_arm": arm,
        "avisit": r["visit"],
        "estimate": _clean(r["estimate"]),
        "std_error": _clean(r["std_error"]),
        "df": _clean(r["df"]),
        "conf_low": _clean(r["conf_low"]),
        "conf_high": _clean(r["conf_high"]),
        "p_value": _clean(r["p_value"]),
        "n_imputations": int(r["n_samples"]),
        "n_subjects": run.ld.n,
        "n_ice": n_ice,
        "seed": None if run.dr.method == "condmean-jackknife" else sens.seed,
        "covariance": cov,
        "run_id": run_id,
    }


def estimands_json(res: EstimandResults) -> str:
    return json.dumps({k: v.to_dicts() for k, v in res.tables().items()}, default=str)
