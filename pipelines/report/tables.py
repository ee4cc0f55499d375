"""The report's tables as rows of display strings (and the numbers figures need), from a StudyData.

Each function states where its numbers come from. Descriptive statistics (counts, means, SDs of
observed values) are computed here from analysis.adsl / analysis.adqs; every model-based number
(LS means, differences, CIs, p values, d, responder tests) is read from results.* as stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import polars as pl

from pipelines.report import fmt
from pipelines.report.data import MODEL_LABEL, MODELS, StudyData

ADJUST_LABEL = {
    "holm": "Holm",
    "hochberg": "Hochberg",
    "fdr_bh": "Benjamini-Hochberg (false discovery rate)",
    "bonferroni": "Bonferroni",
    "fixed_sequence": "fixed-sequence (hierarchical) testing",
    "none": "none",
}
DEFAULT_COVARIANCE = "us"
COVARIANCE_LABEL = {
    "us": "unstructured",
    "cs": "compound symmetry",
    "csh": "heterogeneous compound symmetry",
    "ar1": "AR(1)",
    "ar1h": "heterogeneous AR(1)",
    "toep": "Toeplitz",
    "toeph": "heterogeneous Toeplitz",
    "ad": "ante-dependence",
    "adh": "heterogeneous ante-dependence",
    "sp_exp": "spatial exponential",
    "sp_gau": "spatial Gaussian",
}


def covariance_text(code) -> str:
    if not code:
        return fmt.DASH
    return f"{code} ({COVARIANCE_LABEL[code]})" if code in COVARIANCE_LABEL else str(code)


def _truthy(v) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() in ("true", "y", "yes", "1")) or v == 1


def _falsy(v) -> bool:
    return v is False or (isinstance(v, str) and v.strip().lower() in ("false", "n", "no", "0")) or v == 0


# ---------------------------------------------------------------------------------------- flow
def participant_flow(data: StudyData) -> list[dict]:
    """CONSORT flow per arm: randomized (ADSL RANDFL) -> received treatment (ADSL SAFFL, when the
    data say) -> discontinued before the primary visit (EOSSTT/DCSREAS when present, else not
    completed = COMPLFL N), with the reasons -> analysed by the MMRM (a baseline and at least one
    post-baseline change) and excluded from it. Every count is out of the randomized; "analysed"
    is not a subset of "completed" (a subject who discontinued after a post-baseline visit is
    analysed). Rows: {stage, short (for the diagram), counts: {arm_id: n}, total, reasons?}."""
    adsl, adqs = data.adsl, data.adqs
    arms = [a.id for a in data.arms]
    if adsl is None or adsl.is_empty():
        return []
    pcd = data.primary_parameter
    if "primary_paramcd" in adsl.columns and adsl["primary_paramcd"].drop_nulls().len():
        pcd = adsl["primary_paramcd"].drop_nulls()[0]
    arm_of = (
        dict(zip(adsl["usubjid"].to_list(), adsl["trt01p"].to_list(), strict=True))
        if "trt01p" in adsl.columns
        else {}
    )

    def count(subjects) -> tuple[dict, int]:
        subjects = set(subjects)
        c = {a: sum(1 for s in subjects if arm_of.get(s) == a) for a in arms}
        return c, len(subjects)

    rows = []
    rand = (
        adsl.filter(pl.col("randfl") == "Y")["usubjid"].to_list()
        if "randfl" in adsl.columns
        else adsl["usubjid"].to_list()
    )
    radsl = adsl.filter(pl.col("usubjid").is_in(rand))
    c, t = count(rand)
    first = "Enrolled" if data.single_arm else "Randomized"
    rows.append({"stage": first, "short": first, "counts": c, "total": t})
    if "saffl" in radsl.columns and radsl["saffl"].drop_nulls().len():
        c, t = count(radsl.filter(pl.col("saffl") == "Y")["usubjid"].to_list())
        rows.append({"stage": "Received the allocated treatment (SAFFL = Y)", "short": "Received treatment",
                     "counts": c, "total": t})
    visit = data.visit_label(data.primary_visit)
    label = data.param(pcd).label
    disc = None
    if "eosstt" in radsl.columns and radsl["eosstt"].drop_nulls().len():
        disc = radsl.filter(pl.col("eosstt").cast(pl.String).str.to_uppercase() == "DISCONTINUED")
        how = "EOSSTT = DISCONTINUED"
    elif "complfl" in radsl.columns:
        disc = radsl.filter(pl.col("complfl") != "Y")
        how = f"{label} not assessed at {visit} (COMPLFL = N)"
    if disc is not None:
        c, t = count(disc["usubjid"].to_list())
        reasons: dict[str, dict[str, int]] = {}
        rcol = "dcsreas" if "dcsreas" in disc.columns else None
        for r in disc.to_dicts():
            why = (r.get(rcol) if rcol else None) or "reason not recorded"
            reasons.setdefault(str(why), {a: 0 for a in arms})
            if r.get("trt01p") in arms:
                reasons[str(why)][r["trt01p"]] += 1
        rows.append({"stage": f"Discontinued before {visit} ({how})", "short": f"Discontinued before {visit}",
                     "counts": c, "total": t, "reasons": reasons})
    if adqs is not None and not adqs.is_empty():
        q = adqs.filter(pl.col("paramcd") == pcd)
        post = set(q.filter(pl.col("chg").is_not_null())["usubjid"].unique().to_list()) & set(rand)
        c, t = count(post)
        rows.append(
            {
                "stage": f"Analysed by the MMRM ({label}: a baseline and at least one post-baseline value)",
                "short": "Analysed (MMRM)",
                "counts": c,
                "total": t,
            }
        )
        c, t = count(set(rand) - post)
        rows.append({"stage": "Excluded from the MMRM (no baseline or no post-baseline value)",
                     "short": "Excluded from analysis", "counts": c, "total": t})
    return rows


def by_visit_descriptives(data: StudyData, paramcd: str | None = None) -> list[dict]:
    """Observed values by visit and arm (ADQS ANL01FL records): n, mean (SD), median, min-max of
    AVAL, and mean (SD) of CHG on post-baseline visits. Rows {visit, arm, cells}."""
    adqs = data.adqs
    pcd = paramcd or data.primary_parameter
    if adqs is None or adqs.is_empty():
        return []
    q = adqs.filter(pl.col("paramcd") == pcd)
    out = []
    for v in data.visits:
        for a in data.arms:
            x = q.filter((pl.col("avisit") == v.id) & (pl.col("trtp") == a.id))
            vals = [float(y) for y in x["aval"].to_list() if fmt.is_num(y)]
            chg = [float(y) for y in x["chg"].to_list() if fmt.is_num(y)] if "chg" in x.columns else []
            if not vals:
                continue
            k, m, sd = _num_summary(vals)
            vals.sort()
            med = vals[k // 2] if k % 2 else (vals[k // 2 - 1] + vals[k // 2]) / 2
            kc, mc, sdc = _num_summary(chg)
            out.append(
                {
                    "visit": v.label,
                    "day": v.day,
                    "arm": a.label,
                    "arm_id": a.id,
                    "cells": {
                        "n": str(k),
                        "mean_sd": fmt.mean_sd(m, sd),
                        "median": fmt.num(med, 1),
                        "range": f"{fmt.num(vals[0], 0)} to {fmt.num(vals[-1], 0)}",
                        "chg": (fmt.mean_sd(mc, sdc) + (f"; n = {kc}" if kc != k else "")) if kc else fmt.DASH,
                    },
                }
            )
    return out


# ------------------------------------------------------------------------------------- baseline
def _num_summary(values: list) -> tuple[int, float | None, float | None]:
    v = [float(x) for x in values if fmt.is_num(x)]
    n = len(v)
    if not n:
        return 0, None, None
    mean = sum(v) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else None
    return n, mean, sd


def baseline_characteristics(data: StudyData) -> list[dict]:
    """Rows {label, indent, cells: {arm_id: text}, total}: N, age (mean (SD) when numeric, band
    counts otherwise), sex, race, ethnicity, site (when more than one), baseline totals (mean (SD))."""
    adsl = data.adsl
    if adsl is None or adsl.is_empty():
        return []
    if "randfl" in adsl.columns:
        adsl = adsl.filter(pl.col("randfl") == "Y")
    arms = [a.id for a in data.arms]
    groups = {a: adsl.filter(pl.col("trt01p") == a) for a in arms} if "trt01p" in adsl.columns else {}
    n = {a: g.height for a, g in groups.items()}
    rows: list[dict] = [
        {
            "label": "N (enrolled)" if data.single_arm else "N (randomized)",
            "indent": False,
            "cells": {a: str(n[a]) for a in arms},
            "total": str(adsl.height),
        }
    ]

    def numeric(label, col, frame_of, total_frame, digits=1):
        cells = {}
        for a in arms:
            k, m, s = _num_summary(frame_of(a)[col].to_list())
            cells[a] = fmt.mean_sd(m, s, digits) + (f"; n = {k}" if k and k < n[a] else "")
        k, m, s = _num_summary(total_frame[col].to_list())
        rows.append(
            {
                "label": label,
                "indent": False,
                "cells": cells,
                "total": fmt.mean_sd(m, s, digits) + (f"; n = {k}" if k and k < total_frame.height else ""),
            }
        )

    def categorical(label, col):
        vals = adsl[col]
        if vals.drop_nulls().len() == 0:
            return
        levels = sorted({str(v) for v in vals.drop_nulls().to_list()})
        rows.append(
            {"label": f"{label}, n (%)", "indent": False, "cells": {a: "" for a in arms}, "total": ""}
        )

        def count(frame, level):
            col_vals = frame[col].to_list()
            k = sum(1 for v in col_vals if (v is None if level is None else str(v) == level))
            return f"{k} ({fmt.num(100 * k / len(col_vals), 1)}%)" if col_vals else "0"

        for lev in levels + ([None] if vals.null_count() else []):
            rows.append(
                {
                    "label": "missing" if lev is None else lev,
                    "indent": True,
                    "cells": {a: count(groups[a], lev) for a in arms},
                    "total": count(adsl, lev),
                }
            )

    if "age" in adsl.columns and adsl["age"].drop_nulls().len():
        adsl = adsl.with_columns(pl.col("age").cast(pl.Float64, strict=False))
        groups = {a: adsl.filter(pl.col("trt01p") == a) for a in arms}
        numeric("Age, years, mean (SD)", "age", lambda a: groups[a], adsl)
    elif "age_band" in adsl.columns:
        categorical("Age band, years", "age_band")
    for col, label in (("sex", "Sex"), ("race", "Race"), ("ethnicity", "Ethnicity")):
        if col in adsl.columns:
            categorical(label, col)
    if "site" in adsl.columns and adsl["site"].drop_nulls().n_unique() > 1:
        categorical("Site", "site")

    adqs = data.adqs
    if adqs is not None and not adqs.is_empty():
        base = adqs.filter((pl.col("ablfl") == "Y") & pl.col("usubjid").is_in(adsl["usubjid"].to_list()))
        totals = [p for p in data.paramcds() if data.param(p).is_total]
        if totals and not base.is_empty():
            rows.append(
                {
                    "label": "Baseline score, mean (SD)",
                    "indent": False,
                    "cells": {a: "" for a in arms},
                    "total": "",
                }
            )
            for p in totals:
                b = base.filter(pl.col("paramcd") == p)
                if b.is_empty():
                    continue
                cells = {}
                for a in arms:
                    k, m, s = _num_summary(b.filter(pl.col("trtp") == a)["aval"].to_list())
                    cells[a] = fmt.mean_sd(m, s) + (f"; n = {k}" if k < n[a] else "")
                k, m, s = _num_summary(b["aval"].to_list())
                rows.append(
                    {
                        "label": data.param(p).axis_label,
                        "indent": True,
                        "cells": cells,
                        "total": fmt.mean_sd(m, s) + (f"; n = {k}" if k < adsl.height else ""),
                    }
                )
    return rows


# ------------------------------------------------------------------------------- primary results
@dataclass
class EffectRow:
    paramcd: str
    label: str
    indent: bool
    is_primary: bool
    lsmeans: dict[str, str]  # arm id -> "est (SE)"
    estimate: float | None = None
    n_obs: dict[str, int | None] = field(default_factory=dict)  # arm id -> subjects analysed at the visit
    conf_low: float | None = None
    conf_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    cohens_d: float | None = None
    adjust_method: str | None = None
    covariance: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def cells(self) -> dict[str, str]:
        return {
            "estimate": fmt.num(self.estimate),
            "ci": fmt.ci(self.conf_low, self.conf_high),
            "p": fmt.p_value(self.p_value),
            "p_adj": fmt.p_value(self.p_adjusted),
            "d": fmt.num(self.cohens_d),
        }


def fit_notes(data: StudyData, paramcd: str, model: str = "mmrm") -> list[str]:
    fit = data.model_fit(paramcd, model)
    if fit is None:
        return []
    out = []
    if _falsy(fit.get("converged")):
        out.append("model did not converge")
    if _truthy(fit.get("singular")):
        out.append("singular random-effects fit")
    return out


def effect_rows(data: StudyData, model: str = "mmrm", visit: str | None = None) -> list[EffectRow]:
    """One row per parameter present (totals, clusters indented under them) at the primary visit:
    LS-mean change per arm (results.lsmeans), difference experimental - control with CI, p,
    adjusted p and Cohen's d (results.treatment_effects), convergence (results.model_fits)."""
    visit = visit or data.primary_visit
    rows = []
    for pcd in data.paramcds():
        p = data.param(pcd)
        e = data.effect(pcd, visit, model) or {}
        ls = {
            a.id: fmt.est_se(
                (data.lsmean(pcd, a.id, visit, model) or {}).get("estimate"),
                (data.lsmean(pcd, a.id, visit, model) or {}).get("std_error"),
            )
            for a in data.arms
        }
        notes = fit_notes(data, pcd, model)
        if not e and all(v == fmt.DASH for v in ls.values()):
            notes.append("no model results")
        elif not e:
            notes.append("no treatment-effect row")
        elif not fmt.is_num(e.get("estimate")):
            notes.append("not estimable")
        fit = data.model_fit(pcd, model) or {}
        rows.append(
            EffectRow(
                paramcd=pcd,
                label=p.label,
                indent=not p.is_total,
                is_primary=pcd == data.primary_parameter,
                lsmeans=ls,
                n_obs={a.id: (data.lsmean(pcd, a.id, visit, model) or {}).get("n_obs") for a in data.arms},
                estimate=e.get("estimate"),
                conf_low=e.get("conf_low"),
                conf_high=e.get("conf_high"),
                p_value=e.get("p_value"),
                p_adjusted=e.get("p_adjusted"),
                cohens_d=e.get("cohens_d"),
                adjust_method=e.get("adjust_method"),
                covariance=fit.get("covariance"),
                notes=notes,
            )
        )
    return rows


def multiplicity_note(data: StudyData, rows: list[EffectRow]) -> str:
    """The declared testing hierarchy, read from results.treatment_effects.family (model mmrm at the
    primary visit); a dash in the adjusted-p column where no adjustment applies."""
    effects = [
        r for r in data.rows("results.treatment_effects", model="mmrm", avisit=data.primary_visit)
        if r.get("family")
    ]
    if not effects:
        method = data.multiplicity
        if any(fmt.is_num(r.p_adjusted) for r in rows):
            return f"Adjusted p: {ADJUST_LABEL.get(method, method)}."
        return "No adjusted p values are stored." + (
            f" (The study's multiplicity method is {ADJUST_LABEL.get(method, method)}.)" if method else ""
        )
    fams: dict[str, list[str]] = {}
    for r in sorted(effects, key=lambda r: r["family"]):
        fams.setdefault(r["family"], []).append(data.param(r["paramcd"]).label)
    method = data.multiplicity or "holm"
    parts = [f"{fam.split(': ', 1)[0].replace('hierarchy', 'level')}: {', '.join(m)}" for fam, m in fams.items()]
    return (
        "Testing hierarchy (serial gatekeeping) at " + data.visit_label(data.primary_visit) + ": "
        + "; ".join(parts)
        + f". The primary endpoint is tested at alpha = {data.alpha:g} without adjustment; each later level is "
        f"tested ({ADJUST_LABEL.get(method, method)} within the level) only if every hypothesis before it is "
        "rejected, and its adjusted p is the larger of its within-level adjusted p and the gate's. "
        "A dash: no adjustment applies (the primary endpoint, other visits, exploratory parameters)."
    )


# ------------------------------------------------------------------------------------ sensitivity
def sensitivity_rows(data: StudyData, paramcd: str | None = None) -> list[dict]:
    """The primary parameter's difference at the primary visit under each model (results.treatment_effects,
    results.model_fits). Every model has small-sample df (the random-effects models are fitted as marginal models by the MMRM engine)."""
    pcd = paramcd or data.primary_parameter
    rows = []
    for m in MODELS:
        e = data.effect(pcd, data.primary_visit, m)
        fit = data.model_fit(pcd, m) or {}
        if e is None and not fit:
            continue
        e = e or {}
        df = e.get("df")
        notes = fit_notes(data, pcd, m)
        if not e:
            notes.append("no treatment-effect row")
        rows.append(
            {
                "model": m,
                "label": MODEL_LABEL.get(m, m),
                "structure": covariance_text(fit.get("covariance"))
                if m in ("mmrm", "mmrm_prorated")
                else (fit.get("covariance") or "residual \u03c3\u00b2I"),
                "estimate": e.get("estimate"),
                "conf_low": e.get("conf_low"),
                "conf_high": e.get("conf_high"),
                "cells": {
                    "estimate": fmt.est_se(e.get("estimate"), e.get("std_error")),
                    "df": fmt.num(df, 1) if fmt.is_num(df) else fmt.DASH,
                    "ci": fmt.ci(e.get("conf_low"), e.get("conf_high")),
                    "p": fmt.p_value(e.get("p_value")),
                    "d": fmt.num(e.get("cohens_d")),
                    "aic": fmt.num(fit.get("aic"), 1),
                },
                "notes": notes,
            }
        )
    return rows


# ---------------------------------------------------------------------------------- missing items
def missing_item_groups(data: StudyData) -> list[dict]:
    """results.missing_items per instrument total: one row per visit with 'lost/assessed (%)' per arm
    and the subjects who lost a score (only instruments with any lost or prorated score)."""
    rows = data.rows("results.missing_items")
    out = []
    for pcd in dict.fromkeys(r["paramcd"] for r in rows):
        prs = [r for r in rows if r["paramcd"] == pcd]
        if not any((r.get("n_lost") or 0) or (r.get("n_prorated") or 0) for r in prs):
            continue
        visits = []
        for v in data.visits:
            vr = {r["trtp"]: r for r in prs if r["avisit"] == v.id}
            if not vr:
                continue
            visits.append(
                {
                    "visit": v.label,
                    "arms": {
                        a.id: (
                            fmt.count_pct(vr[a.id].get("n_lost"), vr[a.id].get("n_assessed"))
                            if a.id in vr else fmt.DASH
                        )
                        for a in data.arms
                    },
                    "prorated": sum((r.get("n_prorated") or 0) for r in vr.values()),
                    "subjects": ", ".join(r["subjects_lost"] for r in vr.values() if r.get("subjects_lost")) or fmt.DASH,
                }
            )
        out.append({"paramcd": pcd, "label": data.param(pcd).full_label, "visits": visits})
    return out


def missing_item_lines(data: StudyData, paramcd: str) -> list[str]:
    """One line per visit for the CLI: 'BL: KET 5/15 (33%), MID 9/15 (60%)' (lost / assessed)."""
    out = []
    for g in missing_item_groups(data):
        if g["paramcd"] != paramcd:
            continue
        for v in g["visits"]:
            out.append(f"{v['visit']}: " + ", ".join(f"{data.arm_label(a)} {t}" for a, t in v["arms"].items()))
    return out


# -------------------------------------------------------------------------------------- models
def model_rows(data: StudyData, requested_covariance: str | None) -> list[dict]:
    """results.model_fits, one row per parameter x model; a covariance other than the requested one is
    a fallback."""
    out = []
    fits = data.rows("results.model_fits")
    order = {p: i for i, p in enumerate(data.paramcds())}
    fits.sort(
        key=lambda r: (
            MODELS.index(r["model"]) if r.get("model") in MODELS else 9,
            order.get(r.get("paramcd"), 99),
        )
    )
    for f in fits:
        cov = f.get("covariance")
        fallback = f.get("model") == "mmrm" and requested_covariance and cov and cov != requested_covariance
        conv = f.get("converged")
        out.append(
            {
                "paramcd": f.get("paramcd"),
                "param": data.param(f.get("paramcd") or "").full_label,
                "model": f.get("model"),
                "covariance": cov or fmt.DASH,
                "covariance_name": COVARIANCE_LABEL.get(cov, "") if cov else "",
                "fallback": bool(fallback),
                "estimation": f.get("estimation") or fmt.DASH,
                "df_method": f.get("df_method") or fmt.DASH,
                "singular": _truthy(f.get("singular")),
                "formula": f.get("formula") or fmt.DASH,
                "converged": "yes" if _truthy(conv) else ("NO" if _falsy(conv) else fmt.DASH),
                "not_converged": _falsy(conv),
                "neg2_loglik": fmt.num(f.get("neg2_loglik"), 1),
                "aic": fmt.num(f.get("aic"), 1),
                "n": f"{f.get('n_subjects') if f.get('n_subjects') is not None else fmt.DASH} / "
                f"{f.get('n_obs') if f.get('n_obs') is not None else fmt.DASH}",
                "warnings": _warnings_text(f.get("warnings")),
            }
        )
    return out


def _warnings_text(w) -> str:
    if w is None:
        return ""
    if isinstance(w, (list, tuple)):
        return "; ".join(map(str, w))
    s = str(w).strip()
    if s.startswith("["):
        try:
            import json

            return "; ".join(map(str, json.loads(s)))
        except ValueError:
            pass
    return s


# ------------------------------------------------------------------------------------- responders
def criterion_label(paramcd: str | None, criterion: str | None) -> str:
    """What a criterion is, exactly: a PCL-5 total under its cut-off is not remission (PCL-5 is a
    screening measure; < 33 is "below the probable-PTSD cut-off", NCPTSD), MADRS <= 10 is remission."""
    if (paramcd or "").startswith("PCL5") and _kind(criterion) == "remission":
        return "below the probable-PTSD cut-off"
    return criterion or ""


def _kind(criterion: str | None) -> str:
    c = (criterion or "").lower()
    if "diagnosis" in c or "crit3" in c:
        return "loss of diagnosis"
    return "remission" if "remission" in c or "crit2" in c else "response"


def criterion_text(data: StudyData, paramcd: str, criterion: str | None) -> str:
    """The rule in words from ADQS CRIT1/CRIT2 (e.g. 'CAPS5TOT reduction from baseline >= 30%')."""
    adqs = data.adqs
    col = {"remission": "crit2", "loss of diagnosis": "crit3"}.get(_kind(criterion), "crit1")
    if adqs is None or adqs.is_empty() or col not in adqs.columns:
        return ""
    vals = adqs.filter(pl.col("paramcd") == paramcd)[col].drop_nulls()
    return pretty_rule(data, vals[0]) if vals.len() else ""


def pretty_rule(data: StudyData, rule: str) -> str:
    """'CAPS5TOT reduction from baseline >= 30%' -> 'CAPS-5 total reduction from baseline ≥ 30%'."""
    if not rule:
        return ""
    code = rule.split(" ", 1)[0]
    if code in data.params:
        rule = data.param(code).full_label + rule[len(code) :]
    return rule.replace(">=", "≥").replace("<=", "≤")


def responder_groups(data: StudyData) -> list[dict]:
    """results.responders grouped by parameter x criterion: the arm rows (responders / evaluable,
    proportion, its CI) and the comparison row (risk difference with CI, p value and test)."""
    rows = data.rows("results.responders")
    arm_ids = {a.id for a in data.arms} | {a.label for a in data.arms}
    groups: dict[tuple, dict] = {}
    order = {p: i for i, p in enumerate(data.paramcds())}
    for r in rows:
        # observed (evaluable at the primary visit) first; non-responder imputation as its own group
        handling = r.get("missing_data") or "observed"
        key = (r.get("paramcd"), r.get("criterion"), handling)
        g = groups.setdefault(
            key, {"paramcd": key[0], "criterion": key[1], "missing_data": handling, "arms": {}, "comparison": None}
        )
        trt = r.get("trtp")
        if trt in arm_ids and (r.get("n_evaluable") is not None or r.get("proportion") is not None):
            arm = next(a.id for a in data.arms if trt in (a.id, a.label))
            g["arms"][arm] = r
        elif g["comparison"] is None or str(r.get("test") or "").lower().startswith("fisher"):
            g["comparison"] = r  # the Fisher exact row is the comparison shown; logistic is secondary
    out = []
    for g in groups.values():
        comp = g["comparison"] or next(
            (
                r
                for r in g["arms"].values()
                if fmt.is_num(r.get("risk_difference")) or fmt.is_num(r.get("p_value"))
            ),
            None,
        )
        p = data.param(g["paramcd"] or "")
        kind = _kind(g["criterion"])
        nri = g["missing_data"] != "observed"
        g.update(
            label=f"{p.full_label}: {criterion_label(g['paramcd'], g['criterion'] or kind)}"
            + (" (missing = non-responder, all randomized)" if nri else ""),
            kind=kind,
            rule=criterion_text(data, g["paramcd"], g["criterion"]),
            comp=comp or {},
        )
        cells = {}
        for a in data.arms:
            r = g["arms"].get(a.id)
            if r is None:
                cells[a.id] = fmt.DASH
                continue
            prop = r.get("proportion")
            if not fmt.is_num(prop) and fmt.is_num(r.get("n_responders")) and r.get("n_evaluable"):
                prop = r["n_responders"] / r["n_evaluable"]
            cells[a.id] = f"{r.get('n_responders')}/{r.get('n_evaluable')} ({fmt.pct(prop)})" + (
                f" {fmt.ci(100 * r['conf_low'], 100 * r['conf_high'], 1)}"
                if fmt.is_num(r.get("conf_low")) and fmt.is_num(r.get("conf_high"))
                else ""
            )
            r["_prop"] = prop
        c = g["comp"]
        g["cells"] = cells
        g["rd"] = (
            (
                f"{fmt.num(100 * c['risk_difference'], 1)}"
                + (
                    f" {fmt.ci(100 * c['conf_low'], 100 * c['conf_high'], 1)}"
                    if fmt.is_num(c.get("conf_low")) and fmt.is_num(c.get("conf_high"))
                    else ""
                )
            )
            if fmt.is_num(c.get("risk_difference"))
            else fmt.DASH
        )
        g["p"] = fmt.p_value(c.get("p_value"))
        g["test"] = c.get("test") or ""
        out.append(g)
    out.sort(
        key=lambda g: (g["missing_data"] != "observed", order.get(g["paramcd"], 99), g["kind"] != "response", str(g["criterion"]))
    )
    return out


# ----------------------------------------------------------------------------- observed summaries
def observed_by_visit(data: StudyData, paramcd: str, value: str = "chg") -> dict[tuple[str, str], dict]:
    """(arm, visit) -> {n, mean, sd, se, lo, hi} of observed ADQS values (ANL01FL records); a t-based
    95% CI of the mean (descriptive, not a model)."""
    from scipy import stats

    adqs = data.adqs
    out: dict[tuple[str, str], dict] = {}
    if adqs is None or adqs.is_empty():
        return out
    q = adqs.filter((pl.col("paramcd") == paramcd) & pl.col(value).is_not_null())
    for (arm, visit), g in q.group_by(["trtp", "avisit"]):
        n, m, s = _num_summary(g[value].to_list())
        se = s / math.sqrt(n) if s is not None and n > 1 else None
        t = stats.t.ppf(1 - (1 - data.level / 100) / 2, n - 1) if n > 1 else None
        out[(arm, visit)] = {
            "n": n,
            "mean": m,
            "sd": s,
            "se": se,
            "lo": m - t * se if se is not None else None,
            "hi": m + t * se if se is not None else None,
        }
    return out


def within_arm_rows(data: StudyData) -> list[dict]:
    """Single-arm studies: per parameter at the primary visit, the observed change (n, mean (SD), CI of
    the mean, from ADQS) and the model LS-mean change (results.lsmeans, model mmrm) when stored."""
    rows = []
    arm = data.arms[0].id if data.arms else None
    for pcd in data.paramcds():
        p = data.param(pcd)
        obs = observed_by_visit(data, pcd).get((arm, data.primary_visit)) if arm else None
        ls = data.lsmean(pcd, arm) if arm else None
        notes = fit_notes(data, pcd)
        rows.append(
            {
                "paramcd": pcd,
                "label": p.label,
                "indent": not p.is_total,
                "is_primary": pcd == data.primary_parameter,
                "n": str(obs["n"]) if obs else fmt.DASH,
                "observed": fmt.mean_sd(obs["mean"], obs["sd"], 2) if obs else fmt.DASH,
                "observed_ci": fmt.ci(obs["lo"], obs["hi"]) if obs else fmt.DASH,
                "lsmean": fmt.est_se(ls.get("estimate"), ls.get("std_error")) if ls else fmt.DASH,
                "ls_ci": fmt.ci(ls.get("conf_low"), ls.get("conf_high")) if ls else fmt.DASH,
                "notes": notes,
            }
        )
    return rows


def observed_proportions(data: StudyData) -> list[dict]:
    """Single-arm (or no results.responders): responders / evaluable at the primary visit counted from
    ADQS CRIT1FL (response) and CRIT2FL (remission)."""
    adqs = data.adqs
    out = []
    if adqs is None or adqs.is_empty():
        return out
    q = adqs.filter(pl.col("avisit") == data.primary_visit)
    for pcd in data.paramcds():
        for col, rule_col, kind in (
            ("crit1fl", "crit1", "response"), ("crit2fl", "crit2", "remission"), ("crit3fl", "crit3", "loss of diagnosis"),
        ):
            if col not in q.columns:
                continue
            g = q.filter((pl.col("paramcd") == pcd) & pl.col(col).is_not_null())
            if g.is_empty():
                continue
            for a in data.arms:
                ga = g.filter(pl.col("trtp") == a.id)
                k = ga.filter(pl.col(col) == "Y").height
                out.append(
                    {
                        "label": f"{data.param(pcd).full_label}: {kind}",
                        "rule": pretty_rule(data, ga[rule_col].drop_nulls()[0])
                        if rule_col in ga.columns and ga[rule_col].drop_nulls().len()
                        else "",
                        "arm": a.id,
                        "k": k,
                        "n": ga.height,
                        "text": fmt.count_pct(k, ga.height),
                    }
                )
    return out
