"""Long data for reference-based imputation: one row per subject x visit, intercurrent events,
per-subject strategies and the design rows of the imputation model for the subject's own arm and
for its reference arm (rbmi's ``longdata``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl

from pipelines.core.errors import ModelSpecError

STRATEGIES = ("MAR", "J2R", "CR", "CIR", "LMCF")
_ALIASES = {"JR": "J2R", "JTR": "J2R"}


def normalise_strategy(name: str, *, file=None, column=None) -> str:
    key = str(name).strip().upper()
    key = _ALIASES.get(key, key)
    if key not in STRATEGIES:
        raise ModelSpecError(
            f"unknown imputation strategy {name!r}",
            file=file,
            column=column,
            hint="use MAR, J2R (jump to reference), CR (copy reference), CIR (copy increments in reference) or LMCF",
        )
    return key


@dataclass
class LongData:
    """Everything the draws/impute/analyse steps need, as arrays over subjects (n) and visits (V)."""

    subject: str
    visit: str
    group: str
    outcome: str
    subjects: list[str]  # (n,) labels
    visits: list[str]  # (V,) natural order
    groups: list[str]  # [control, experimental]
    group_of: np.ndarray  # (n,) 0 = control (reference arm of the comparison), 1 = experimental
    y: np.ndarray  # (n, V) observed outcomes, NaN missing
    ice_index: np.ndarray  # (n,) first visit index affected by the ICE; V = no ICE
    strategy: np.ndarray  # (n,) object: strategy after the ICE ("MAR" without ICE)
    is_mar: np.ndarray  # (n, V) visits imputed (and fitted) under MAR
    X_own: np.ndarray  # (n, V, p) imputation-model design rows, own arm
    X_ref: np.ndarray  # (n, V, p) the same with the arm set to the subject's reference arm
    cov_group: np.ndarray  # (n,) covariance group of each subject (0 if one covariance)
    ref_cov_group: np.ndarray  # (n,) covariance group of the subject's reference arm
    fit: object  # MMRMResult of the imputation model on the MAR data
    fit_subject: np.ndarray  # (n,) index into fit.design.subject_labels, -1 if not in the fit
    covariates: np.ndarray  # (n, V, c) ANCOVA covariates (dummy-coded)
    covariate_names: list[str]
    references: dict[str, str]
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.subjects)

    @property
    def V(self) -> int:
        return len(self.visits)

    @property
    def is_missing(self) -> np.ndarray:
        return np.isnan(self.y)

    @property
    def is_post_ice(self) -> np.ndarray:
        return np.arange(self.V)[None, :] >= self.ice_index[:, None]

    def strategy_counts(self) -> dict[str, int]:
        has = self.ice_index < self.V
        vals, cnt = np.unique(self.strategy[has].astype(str), return_counts=True)
        return dict(zip(vals.tolist(), cnt.tolist()))


def _to_pandas(data) -> pd.DataFrame:
    if isinstance(data, pl.DataFrame):
        return data.to_pandas()
    if isinstance(data, pd.DataFrame):
        return data.copy()
    raise ModelSpecError(f"data must be a polars or pandas DataFrame, got {type(data).__name__}")


def ice_from_dropout(data, *, subject: str, visit: str, outcome: str, visits: list[str] | None = None):
    """rbmi's antidepressant convention: a subject whose outcome is missing at the last visit(s)
    discontinued at the first visit of that trailing run of missing visits; intermittent gaps are not
    intercurrent events. Returns {subject label: first visit affected}."""
    from pipelines.stats.mmrm.formula import factor_info, format_level

    df = _to_pandas(data)
    if visits is None:
        visits = factor_info(df[visit], visit, None, None, None)[0]
    pos = {v: i for i, v in enumerate(visits)}
    V = len(visits)
    subj = df[subject].map(format_level)
    vis = df[visit].map(format_level)
    y = pd.to_numeric(df[outcome], errors="coerce")
    last_obs = {}
    for s, v, val in zip(subj, vis, y):
        if pd.notna(val) and v in pos:
            last_obs[s] = max(last_obs.get(s, -1), pos[v])
    out = {}
    for s in dict.fromkeys(subj):
        k = last_obs.get(s, -1) + 1
        if k < V:
            out[s] = visits[k]
    return out


def prepare(
    data,
    formula: str,
    *,
    group: str,
    reference: str,
    ice: dict | None = None,
    strategy: str = "MAR",
    covariates: list[str] | None = None,
    ref: dict | None = None,
    references: dict | None = None,
    visit_levels: list[str] | None = None,
    file: str | None = None,
) -> LongData:
    """Long data + the imputation model fitted to the MAR data (post-ICE data of non-MAR strategies
    left out, as rbmi does).

    ``formula``: the imputation MMRM in R mmrm syntax, e.g.
    ``"CHANGE ~ BASVAL*VISIT + THERAPY*VISIT + us(VISIT | PATIENT)"``; ``group`` the arm column (two
    levels), ``reference`` the control arm (the arm other arms jump to / copy). ``ice``:
    {subject: visit} (first visit affected by the ICE, strategy ``strategy``) or
    {subject: (visit, strategy)}. ``covariates``: ANCOVA covariates of the analysis step (default:
    the formula's fixed-effect variables other than the arm and the visit). ``references``: {arm:
    reference arm} (default: every arm -> ``reference``). ``visit_levels``: the visits in
    schedule order (default: R's order of the visit column).
    """
    import formulaic

    from pipelines.stats.mmrm import STRUCTURES, fit_mmrm
    from pipelines.stats.mmrm.formula import (
        check_one_row_per_visit,
        check_reference,
        factor_info,
        format_level,
        parse_formula,
    )
    from pipelines.stats.mmrm.model import build_design

    parsed = parse_formula(formula)
    if STRUCTURES[parsed.cov_type].spatial:
        raise ModelSpecError(
            f"imputation needs a visit factor in the covariance term, not {parsed.cov_type} coordinates"
        )
    if parsed.group is not None and parsed.group != group:
        raise ModelSpecError(
            f"a group-specific covariance is only supported by arm ({group}), not by {parsed.group}",
            hint=f"write us({parsed.time[0]} | {group} / {parsed.subject}) or drop the group",
        )
    subject, visit, outcome = parsed.subject, parsed.time[0], parsed.response
    df = _to_pandas(data)
    df.index = pd.RangeIndex(len(df))
    fixed_vars = sorted(formulaic.Formula(parsed.fixed_rhs).required_variables)
    if group not in fixed_vars:
        raise ModelSpecError(
            f"the arm column {group} is not in the imputation model's fixed effects",
            hint=f"e.g. {outcome} ~ ... + {group}*{visit} + us({visit} | {subject})",
        )
    if covariates is None:
        covariates = [v for v in fixed_vars if v not in (group, visit)]
    for col in dict.fromkeys([subject, visit, outcome, group, *fixed_vars, *covariates]):
        if col not in df.columns:
            raise ModelSpecError("column is not in the data", file=file, column=col)
    notes: list[str] = []

    # ---- subjects, visits, arms
    for col in (subject, visit, group):
        miss = df[col].isna().to_numpy()
        if miss.any():
            raise ModelSpecError("missing value", file=file, row=int(np.flatnonzero(miss)[0]) + 2, column=col)
    visits = factor_info(df[visit], visit, visit_levels, None, file)[0]
    V = len(visits)
    vpos = {v: i for i, v in enumerate(visits)}
    subj_lab = df[subject].map(format_level).to_numpy()
    subjects = sorted(set(subj_lab))
    spos = {s: i for i, s in enumerate(subjects)}
    n = len(subjects)
    si = np.array([spos[s] for s in subj_lab])
    vi = np.array([vpos[format_level(v)] for v in df[visit]])
    check_one_row_per_visit(si, vi, V, subject_labels=subjects, visit_labels=visits, rows=np.arange(len(si)) + 2,
                            column=visit, file=file)
    arm_lab = df[group].map(format_level).to_numpy()
    arms = sorted(set(arm_lab))
    ref_label = format_level(reference)
    check_reference(ref_label, arms, group, file, what="arm")
    if len(arms) != 2:
        raise ModelSpecError(
            f"the analysis compares two arms; column {group} has {len(arms)} ({', '.join(arms[:5])})",
            file=file,
            column=group,
        )
    groups = [ref_label] + [a for a in arms if a != ref_label]
    gpos = {g: i for i, g in enumerate(groups)}
    group_of = np.full(n, -1)
    for r, (s, a) in enumerate(zip(si, arm_lab)):
        if group_of[s] not in (-1, gpos[a]):
            raise ModelSpecError(
                f"subject {subjects[s]!r} is in more than one arm", file=file, row=r + 2, column=group
            )
        group_of[s] = gpos[a]
    references = {format_level(k): format_level(v) for k, v in (references or {}).items()}
    for g in groups:
        references.setdefault(g, ref_label)
    for k, v in references.items():
        if k not in gpos or v not in gpos:
            raise ModelSpecError(f"references {k!r} -> {v!r}: both must be arms of {group}", column=group)

    # ---- complete grid (expand_locf): covariates carried forward, then backward, within subject
    grid = pd.DataFrame({subject: np.repeat(subjects, V), visit: np.tile(visits, n)})
    pos = si * V + vi
    y = np.full(n * V, np.nan)
    y[pos] = pd.to_numeric(df[outcome], errors="coerce").to_numpy(dtype=float)
    carry = [c for c in dict.fromkeys([group, *fixed_vars, *covariates]) if c not in (subject, visit)]
    for c in carry:
        col = pd.Series([None] * (n * V), dtype=object)
        col.iloc[pos] = df[c].to_numpy(dtype=object)
        by = np.repeat(np.arange(n), V)
        filled = col.groupby(by).ffill().groupby(by).bfill()  # within subject: forward, then backward
        if pd.api.types.is_numeric_dtype(df[c].dtype) and not pd.api.types.is_bool_dtype(df[c].dtype):
            filled = pd.to_numeric(filled)
        grid[c] = (
            filled.to_numpy() if not pd.api.types.is_numeric_dtype(filled.dtype) else filled.astype(float)
        )
        bad = grid[c].isna().to_numpy()
        if bad.any():
            s = subjects[int(np.flatnonzero(bad)[0]) // V]
            raise ModelSpecError(
                f"subject {s!r} has no value of covariate {c} at any visit", file=file, column=c
            )
    Y = y.reshape(n, V)

    # ---- intercurrent events and strategies
    ice_index = np.full(n, V)
    strat = np.array(["MAR"] * n, dtype=object)
    default_strategy = normalise_strategy(strategy)
    for s, spec in (ice or {}).items():
        lab = format_level(s)
        if lab not in spos:
            raise ModelSpecError(
                f"intercurrent event for subject {lab!r}, who is not in the data", column=subject
            )
        if isinstance(spec, (tuple, list)):
            v_lab, st = spec[0], normalise_strategy(spec[1])
        else:
            v_lab, st = spec, default_strategy
        if v_lab is None:
            continue
        v_lab = format_level(v_lab)
        if v_lab not in vpos:
            raise ModelSpecError(
                f"intercurrent event of subject {lab!r} at visit {v_lab!r}, which is not a visit of {visit}",
                column=visit,
                hint=f"visits are {', '.join(visits)}",
            )
        i = spos[lab]
        ice_index[i] = vpos[v_lab]
        strat[i] = st
    is_mar = (strat[:, None] == "MAR") | (np.arange(V)[None, :] < ice_index[:, None])
    lmcf0 = (strat == "LMCF") & (ice_index == 0)
    if lmcf0.any():
        raise ModelSpecError(
            f"subject {subjects[int(np.flatnonzero(lmcf0)[0])]!r}: LMCF needs a visit before the intercurrent event"
        )
    avail = (is_mar & ~np.isnan(Y)).sum(axis=0)
    if (avail == 0).any():
        raise ModelSpecError(
            f"{visit} = {visits[int(np.flatnonzero(avail == 0)[0])]!r} has no data to fit the imputation model on "
            "under these strategies",
            column=visit,
            hint="drop that visit or choose MAR for some subjects",
        )

    # ---- the imputation model on the MAR data
    fit_frame = grid.copy()
    fit_frame[outcome] = np.where(is_mar.reshape(-1), y, np.nan)
    fit = fit_mmrm(fit_frame, formula, df_method="residual", ref=ref, levels={visit: visits}, file=file)
    if fit.inference is None or not np.all(np.isfinite(fit.phi)):
        raise ModelSpecError(
            "the imputation model could not be fitted to the MAR data", hint="; ".join(fit.warnings[-2:])
        )
    if not fit.converged:
        notes.append(
            "the imputation model did not converge on the original data: " + "; ".join(fit.warnings[-1:])
        )
    d = fit.design
    levels = {f: list(d.natural_levels[f]) for f in d.fixed_factors}
    levels[visit] = list(visits)

    ref_grid = grid.copy()
    ref_of_subject = np.array([references[groups[g]] for g in group_of], dtype=object)
    ref_grid[group] = np.repeat(ref_of_subject, V)
    if pd.api.types.is_numeric_dtype(df[group].dtype):
        ref_grid[group] = pd.to_numeric(ref_grid[group])
    # one design for own-arm and reference-arm rows together, so every level is present
    both = pd.concat([grid, ref_grid], ignore_index=True)
    both[outcome] = 0.0
    both[subject] = np.concatenate([np.arange(n * V) // V, n + np.arange(n * V) // V])
    dd = build_design(both, formula, ref=ref, levels=levels, file=file)
    if dd.names != d.names:
        raise ModelSpecError(
            "the imputation model's design differs between the fitted data and the completed grid "
            "(a covariate level occurs only at visits without data?)"
        )
    if len(dd.data) != len(both):
        raise ModelSpecError("rows of the completed grid were dropped (missing covariates)")
    Xb = dd.X_all[:, d.keep].reshape(2, n, V, -1)
    X_own, X_ref = Xb[0], Xb[1]

    # covariance groups (us(VISIT | ARM / SUBJECT)) per subject and per reference arm
    if parsed.group is not None:
        cg = {lab: i for i, lab in enumerate(d.group_levels)}
        cov_group = np.array([cg[groups[g]] for g in group_of])
        ref_cov_group = np.array([cg[r] for r in ref_of_subject])
    else:
        cov_group = np.zeros(n, dtype=int)
        ref_cov_group = np.zeros(n, dtype=int)
    fpos = {s: i for i, s in enumerate(d.subject_labels)}
    fit_subject = np.array([fpos.get(s, -1) for s in subjects])

    # ---- ANCOVA covariates (numeric as is, factors dummy-coded against their first level)
    cols, names = [], []
    for c in covariates:
        if c in (group, visit):
            raise ModelSpecError(f"{c} cannot be an ANCOVA covariate (it is the arm or the visit)", column=c)
        s = grid[c]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            cols.append(s.to_numpy(dtype=float))
            names.append(c)
        else:
            lab = s.map(format_level)
            lv = sorted(set(lab))
            for level in lv[1:]:
                cols.append((lab == level).to_numpy(dtype=float))
                names.append(f"{c}[{level}]")
    cov = np.stack(cols, axis=-1).reshape(n, V, -1) if cols else np.zeros((n, V, 0))
    return LongData(
        subject=subject,
        visit=visit,
        group=group,
        outcome=outcome,
        subjects=subjects,
        visits=visits,
        groups=groups,
        group_of=group_of,
        y=Y,
        ice_index=ice_index,
        strategy=strat,
        is_mar=is_mar,
        X_own=X_own,
        X_ref=X_ref,
        cov_group=cov_group,
        ref_cov_group=ref_cov_group,
        fit=fit,
        fit_subject=fit_subject,
        covariates=cov,
        covariate_names=names,
        references=references,
        notes=notes,
    )
