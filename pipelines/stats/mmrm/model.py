"""``fit_mmrm``: the MMRM front end (data checks, design, fitting, results)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from pipelines.core.errors import ModelSpecError

from .covariance import STRUCTURES, CovarianceStructure, make_structure
from .engine import MarginalModel, NotPositiveDefinite
from .formula import (
    DesignBuilder,
    _unique_labels,
    check_one_row_per_visit,
    factor_info,
    format_level,
    full_rank_columns,
    parse_formula,
    r_column_name,
    simple_terms,
    sum_coded_rhs,
)
from .frame import Column, Frame, as_frame, parse_number
from .inference import DF_METHODS, Inference
from .kenward_roger import kr_adjusted_vcov

VCOV_METHODS = (None, "empirical", "kenward-roger-linear")
_DF_ALIASES = {
    "kr": "kenward-roger",
    "kenward-roger": "kenward-roger",
    "kenward_roger": "kenward-roger",
    "kenwardroger": "kenward-roger",
    "kr-linear": "kenward-roger-linear",
    "kenward-roger-linear": "kenward-roger-linear",
    "satterthwaite": "satterthwaite",
    "sat": "satterthwaite",
    "residual": "residual",
    "between-within": "between-within",
    "bw": "between-within",
    "betwithin": "between-within",
}


# ------------------------------------------------------------------------------------------- data
@dataclass
class Design:
    parsed: object
    data: Frame  # analysis rows of the model's columns, factors as factor columns
    y: np.ndarray
    X_all: np.ndarray  # all columns (incl. aliased)
    keep: np.ndarray  # bool mask of estimable (non-aliased) columns
    names: list[str]  # R-style names of all columns
    term_of_col: list[str]  # term label of each column
    terms: list[str]  # term labels in order (R style, ':' for interactions)
    term_vars: dict[str, frozenset]
    model_spec: object
    factors: dict[str, list[str]]  # factor column -> levels in coding order (reference first)
    natural_levels: dict[str, list[str]]  # factor column -> levels in natural (display) order
    fixed_factors: list[str]
    fixed_continuous: list[str]
    subject_codes: np.ndarray
    subject_labels: list[str]
    time_codes: np.ndarray | None
    time_levels: list[str] | None
    coords: np.ndarray | None
    group_of_subject: np.ndarray
    group_levels: list[str]
    weights: np.ndarray | None
    n_rows_read: int
    n_subjects_read: int
    notes: list[str] = field(default_factory=list)
    X_sum: np.ndarray | None = None
    sum_term_cols: dict | None = None

    def sum_coded(self):
        """(X in sum-to-zero coding, columns per term) - see :func:`sum_coded_design`."""
        return sum_coded_design(self)


def sum_coded_design(design: Design):
    """The same design with every factor in sum-to-zero coding (for Type III); cached on the design."""
    import re

    import formulaic

    if design.X_sum is None:
        mm_s = formulaic.model_matrix(
            sum_coded_rhs(design.parsed.fixed_rhs, design.fixed_factors), design.data.to_pandas(), na_action="raise"
        )
        design.X_sum = np.asarray(mm_s.values, dtype=float)
        cols = {}
        for term, idx in mm_s.model_spec.term_indices.items():
            vs = frozenset(
                re.sub(r"^C\((.*), contr\.sum\)$", r"\1", str(f)) for f in term.factors if str(f) != "1"
            )
            cols[vs] = list(idx)
        design.sum_term_cols = cols
    return design.X_sum, design.sum_term_cols


def _check_columns(df: Frame, names, file):
    for name in names:
        if name not in df.columns:
            close = difflib.get_close_matches(name, [str(c) for c in df.columns], n=3)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"columns are {', '.join(map(str, df.columns[:15]))}"
            )
            raise ModelSpecError(
                "column named in the formula is not in the data", file=file, column=name, hint=hint
            )


def _numeric(series: Column, column: str, file, what: str) -> np.ndarray:
    """float64 values of a column (missing -> NaN); text must hold numbers (pandas' to_numeric)."""
    if series.kind in ("number", "bool"):
        return series.to_float()
    vals = series.labels() if series.kind == "factor" else series.values
    out = np.full(len(vals), np.nan)
    for pos, (v, miss) in enumerate(zip(vals.tolist(), series.na.tolist())):
        if miss:
            continue
        x = parse_number(v)
        if x is None:
            raise ModelSpecError(f"{what} must be numeric", file=file, row=pos + 1, column=column, value=v)
        out[pos] = x
    return out


def build_design(data, formula, *, weights=None, ref=None, levels=None, file=None) -> Design:
    parsed = parse_formula(formula)
    df = as_frame(data)
    ref = dict(ref or {})
    levels = dict(levels or {})
    try:
        simple = simple_terms(parsed.fixed_rhs)
        if simple is not None:
            fixed_vars = sorted({v for t in simple for v in t})
        elif parsed.fixed_rhs.strip() in ("1", "0", "-1"):
            fixed_vars = []
        else:
            import formulaic

            fixed_vars = sorted(formulaic.Formula(parsed.fixed_rhs).required_variables)
    except Exception as exc:  # formulaic parse errors
        raise ModelSpecError(f"cannot parse the fixed effects {parsed.fixed_rhs!r}: {exc}") from exc
    fixed_vars = [v for v in fixed_vars if v not in ("contr",)]
    needed = (
        [parsed.response, parsed.subject]
        + parsed.time
        + ([parsed.group] if parsed.group else [])
        + fixed_vars
    )
    if weights is not None:
        needed.append(weights)
    _check_columns(df, needed, file)
    for var in list(ref) + list(levels):
        if var not in df.columns:
            raise ModelSpecError(
                "reference/levels given for a column that is not in the data", file=file, column=var
            )

    n_rows_read = len(df)
    n_subjects_read = len(set(_unique_labels(df[parsed.subject])))
    notes = []

    # response and numeric inputs
    y_all = _numeric(df[parsed.response], parsed.response, file, "the response")
    spatial = STRUCTURES[parsed.cov_type].spatial
    coords_cols = {}
    if spatial:
        for t in parsed.time:
            coords_cols[t] = _numeric(df[t], t, file, f"{parsed.cov_type} coordinates")
    w_all = None
    if weights is not None:
        w_all = _numeric(df[weights], weights, file, "weights")

    # which fixed-effect variables are factors
    factor_set = set(parsed.forced_factors)
    if not spatial:
        factor_set.add(parsed.time[0])
    if parsed.group:
        factor_set.add(parsed.group)
    for v in fixed_vars:
        if not df[v].is_number:
            factor_set.add(v)
    for var in ref:
        if var not in factor_set and var in fixed_vars:
            factor_set.add(var)

    # analysis rows: complete cases of every model variable
    y_np = y_all
    used_mask = ~np.isnan(y_np)
    n_missing_y = int((~used_mask).sum())
    for v in [parsed.subject] + ([parsed.group] if parsed.group else []) + parsed.time + fixed_vars:
        used_mask &= ~df[v].na
    if spatial:
        for t in parsed.time:
            used_mask &= ~np.isnan(coords_cols[t])
    n_missing_cov = int((~used_mask).sum()) - n_missing_y
    if w_all is not None:
        w_np = w_all
        used_mask &= ~np.isnan(w_np)
        nonpos = used_mask & (w_np <= 0)
        if nonpos.any():
            notes.append(f"{int(nonpos.sum())} rows with non-positive weights were not used (as in SAS)")
            used_mask &= ~nonpos
    if n_missing_cov > 0:
        notes.append(f"{n_missing_cov} rows with a missing covariate, time, group or subject were not used")
    if not used_mask.any():
        raise ModelSpecError(
            "no rows left after dropping rows with missing values", file=file, column=parsed.response
        )
    d = df.take(used_mask, list(dict.fromkeys(needed)))

    factors: dict[str, list[str]] = {}  # coding order: reference level first
    natural: dict[str, list[str]] = {}  # display / time order: R's order (or the given levels)
    for v in sorted(factor_set):
        lv_nat, lv_full, codes_all, labels = factor_info(df[v], v, levels.get(v), ref.get(v), file)
        codes_used = codes_all[used_mask]
        present = {labels[c] for c in np.unique(codes_used) if c >= 0}
        lv = [x for x in lv_full if x in present]
        dropped = [x for x in lv_full if x not in present]
        if dropped and v in fixed_vars:
            notes.append(f"level(s) {', '.join(dropped[:5])} of {v} have no analysis rows and were dropped")
        factors[v] = lv
        natural[v] = [x for x in lv_nat if x in present]
        pos = {lab: i for i, lab in enumerate(lv)}
        lut = np.array([pos.get(lab, -1) for lab in labels] + [-1], dtype=int)
        d[v] = Column(lut[codes_used], "factor", lv)
    y = y_all[used_mask]

    # subjects, time, groups
    raw_codes, raw_uniques = d[parsed.subject].factorize()
    raw_labels = [format_level(u) for u in raw_uniques]
    subject_labels = sorted(set(raw_labels))
    spos = {s_: i for i, s_ in enumerate(subject_labels)}
    subj_codes = np.array([spos[x] for x in raw_labels], dtype=int)[raw_codes]
    time_codes = time_levels = coords = None
    if spatial:
        coords = np.column_stack([coords_cols[t][used_mask] for t in parsed.time])
        _, key, count = np.unique(
            np.column_stack([subj_codes, coords]), axis=0, return_inverse=True, return_counts=True
        )
        dup = count[key.reshape(-1)] > 1
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            raise ModelSpecError(
                f"subject {subject_labels[subj_codes[i]]!r} has two rows at the same coordinates "
                f"({', '.join(format_level(c) for c in coords[i])})",
                file=file,
                row=int(d.index[i]) + 1,
                column=parsed.time[0],
                hint="each subject may have one observation per time point",
            )
        time_order = coords[:, 0]
    else:
        tvar = parsed.time[0]
        # the covariance structure uses the natural level order (a reference level changes contrasts only)
        time_levels = natural[tvar]
        tpos = np.array([time_levels.index(lv) for lv in factors[tvar]], dtype=int)
        time_codes = tpos[d[tvar].values.astype(int)]
        check_one_row_per_visit(subj_codes, time_codes, len(time_levels), subject_labels=subject_labels,
                                visit_labels=time_levels, rows=d.index + 1, column=tvar, file=file)
        time_order = time_codes
    n_subj = len(subject_labels)
    if parsed.group:
        group_levels = natural[parsed.group]
        gpos = np.array([group_levels.index(lv) for lv in factors[parsed.group]], dtype=int)
        gcodes = gpos[d[parsed.group].values.astype(int)]
        gos = np.full(n_subj, -1)
        for s_, g_ in zip(subj_codes, gcodes):
            if gos[s_] not in (-1, g_):
                raise ModelSpecError(
                    f"subject {subject_labels[s_]!r} belongs to more than one level of the covariance group {parsed.group}",
                    file=file,
                    column=parsed.group,
                    hint="the group of a group-specific covariance must be constant within subject",
                )
            gos[s_] = g_
        used_groups = sorted(set(gos.tolist()))
        remap = {g: i for i, g in enumerate(used_groups)}
        group_of_subject = np.array([remap[g] for g in gos])
        group_levels = [group_levels[g] for g in used_groups]
    else:
        group_of_subject = np.zeros(n_subj, dtype=int)
        group_levels = ["all"]
    wts = None if w_all is None else w_all[used_mask]

    # fixed-effects design (treatment contrasts, R names) and the sum-coded twin for Type III
    rhs = parsed.fixed_rhs
    try:
        builder = DesignBuilder(rhs, d, factor_set)
        X_all = builder.matrix(d if builder.fast else None)
    except ModelSpecError:
        raise
    except Exception as exc:
        raise ModelSpecError(f"cannot build the fixed-effects design from {rhs!r}: {exc}", file=file) from exc
    names = [r_column_name(c) for c in builder.columns]
    term_of_col = [""] * X_all.shape[1]
    terms, term_vars = [], {}
    for (label, cols), fs in zip(builder.term_indices.items(), builder.term_factors):
        label = "(Intercept)" if label == "1" else label
        terms.append(label)
        term_vars[label] = frozenset(fs)
        for c in cols:
            term_of_col[c] = label
    keep = full_rank_columns(X_all)
    if not np.all(np.isfinite(X_all)):
        raise ModelSpecError(
            "the fixed-effects design has non-finite values (check covariate transformations)", file=file
        )
    fixed_factors = [v for v in fixed_vars if v in factor_set]
    fixed_continuous = [v for v in fixed_vars if v not in factor_set]
    return Design(
        parsed=parsed,
        data=d,
        y=y,
        X_all=X_all,
        keep=keep,
        names=names,
        term_of_col=term_of_col,
        terms=terms,
        term_vars=term_vars,
        model_spec=builder,
        factors=factors,
        natural_levels=natural,
        fixed_factors=fixed_factors,
        fixed_continuous=fixed_continuous,
        subject_codes=subj_codes,
        subject_labels=subject_labels,
        time_codes=time_codes if not spatial else np.argsort(np.argsort(time_order)),
        time_levels=time_levels,
        coords=coords,
        group_of_subject=group_of_subject,
        group_levels=group_levels,
        weights=wts,
        n_rows_read=n_rows_read,
        n_subjects_read=n_subjects_read,
        notes=notes,
    )


# ------------------------------------------------------------------------------------------- fitting
def _normalise_methods(reml, df_method, vcov):
    if vcov is not None:
        vcov = str(vcov).lower()
        if vcov in ("model", "model-based", "asymptotic"):
            vcov = None
        elif vcov in ("kr-linear", "kenward-roger-linear"):
            vcov = "kenward-roger-linear"
        elif vcov not in ("empirical",):
            raise ModelSpecError(f"unknown vcov {vcov!r}", hint="use empirical or kenward-roger-linear")
    if df_method is None:
        if vcov == "empirical":
            df_method = "between-within"
        else:
            df_method = "kenward-roger"
    key = str(df_method).lower().replace("_", "-").replace(" ", "-")
    if key not in _DF_ALIASES:
        raise ModelSpecError(
            f"unknown df method {df_method!r}", hint="use " + ", ".join(DF_METHODS[:1] + DF_METHODS[2:])
        )
    df_method = _DF_ALIASES[key]
    if vcov == "kenward-roger-linear":
        if df_method not in ("kenward-roger", "kenward-roger-linear"):
            raise ModelSpecError(
                f"vcov kenward-roger-linear goes with Kenward-Roger df, not {df_method}",
                hint="drop --df or use --df kenward-roger",
            )
        df_method = "kenward-roger-linear"
    if vcov == "empirical" and df_method in ("kenward-roger", "kenward-roger-linear", "satterthwaite"):
        raise ModelSpecError(
            f"empirical (sandwich) standard errors are combined with between-within or residual df, not {df_method}",
            hint="use --df between-within (SAS's default with EMPIRICAL) or --df residual",
        )
    return df_method, vcov


def _starting_values(model: MarginalModel, design: Design):
    """Several starting points: residual moments (pairwise complete), their diagonal, and a
    compound-symmetry-like matrix; each mapped onto the structure."""
    X, y = model.X, model.y
    sw = np.ones_like(y) if model.weights is None else np.sqrt(model.weights)
    beta0 = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
    starts = []
    if model.spatial:
        var, corr, dist = model.spatial_moments(beta0)
        var = max(var, 1e-8)
        for c in (corr, 0.5, 0.1):
            c = float(np.clip(c, 0.05, 0.95))
            rng = model.structures[0].range_for(c, dist) if dist > 0 else 1.0
            starts.append(
                (f"sp moments (corr {c:.2f})", np.concatenate([[rng, var]] * len(model.structures)))
            )
        return starts
    S0s = model.residual_moments(beta0)
    variants = {"residual moments": lambda S: S, "diagonal": lambda S: np.diag(np.diag(S))}

    def cs_like(S):
        m = S.shape[0]
        v = np.diag(S)
        off = S[~np.eye(m, dtype=bool)]
        r = np.clip(np.mean(off) / np.mean(v), 0.0, 0.8) if m > 1 else 0.0
        sd = np.sqrt(v)
        return np.outer(sd, sd) * (r + (1 - r) * np.eye(m))

    variants["compound symmetry"] = cs_like
    for name, fn in variants.items():
        phis = []
        for st, S0 in zip(model.structures, S0s):
            phis.append(st.init_phi(fn(S0)))
        starts.append((name, np.concatenate(phis)))
    return starts


def fit_mmrm(
    data,
    formula: str,
    *,
    reml: bool = True,
    df_method: str | None = None,
    vcov: str | None = None,
    weights: str | None = None,
    ref: dict | None = None,
    levels: dict | None = None,
    file: str | None = None,
    progress=None,
):
    """Fit an MMRM (SAS PROC MIXED with a REPEATED statement) and return an :class:`MMRMResult`.

    ``data``: polars or pandas DataFrame, or a dict of columns (numpy arrays or lists; see
    :mod:`.frame`). ``formula``: R mmrm syntax,
    e.g. ``"chg ~ base + trtp * avisit + us(avisit | usubjid)"``. ``reml``: REML (default) or ML.
    ``df_method``: kenward-roger (default), satterthwaite, residual or between-within
    (default between-within when ``vcov="empirical"``). ``vcov``: None (model-based; KR-adjusted
    under Kenward-Roger), "empirical" (sandwich) or "kenward-roger-linear" (SAS DDFM=KR(LINEAR)).
    ``weights``: column of observation weights (SAS WEIGHT: Sigma_i -> W^-1/2 Sigma_i W^-1/2).
    ``ref``: {column: reference level}; ``levels``: {column: [level order]}.
    ``progress``: optional callable(str) told about long steps.
    """
    with _single_threaded_blas():
        return _fit_mmrm(
            data,
            formula,
            reml=reml,
            df_method=df_method,
            vcov=vcov,
            weights=weights,
            ref=ref,
            levels=levels,
            file=file,
            progress=progress,
        )


def _single_threaded_blas():
    """BLAS on one thread for the fit. The engine multiplies small matrices (visits x visits, a few
    hundred columns at most), where a second OpenBLAS thread gains nothing on a quiet machine and,
    on a loaded one, spin-waits for a descheduled partner: measured on 2 busy cores, the bcva UN fit
    took 6.0 s with 2 threads and 0.97 s with 1 (benchmarks/mmrm.py)."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            import contextlib

            return contextlib.nullcontext()
        _BLAS_CONTROLLER = ThreadpoolController()  # finding the libraries costs ~10 ms: once
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


_BLAS_CONTROLLER = None


def _fit_mmrm(data, formula, *, reml, df_method, vcov, weights, ref, levels, file, progress):
    from .result import MMRMResult

    say = progress or (lambda msg: None)
    df_method, vcov = _normalise_methods(reml, df_method, vcov)
    design = build_design(data, formula, weights=weights, ref=ref, levels=levels, file=file)
    parsed = design.parsed
    warn = list(design.notes)
    X = design.X_all[:, design.keep]
    aliased = [n for n, k in zip(design.names, design.keep) if not k]
    if aliased:
        warn.append(
            "the design is rank deficient: " + ", ".join(aliased) + " aliased with earlier columns "
            "(not estimable, reported as NaN; SAS prints 0)"
        )
    N, p = X.shape
    if p == 0:
        raise ModelSpecError("the model has no fixed effects", hint="keep the intercept or add terms")
    # covariance structures
    if STRUCTURES[parsed.cov_type].spatial:
        m = design.coords.shape[1]
    else:
        m = len(design.time_levels)
    structures = [
        make_structure(parsed.cov_type, m, None if parsed.cov_type == "sp_exp" else design.time_levels)
        for _ in design.group_levels
    ]
    q = sum(s.n_params for s in structures)
    if N - p <= 0:
        raise ModelSpecError(f"{N} observations cannot estimate {p} fixed effects")
    warn += _identifiability_notes(design, parsed)
    say(
        f"fitting {parsed.cov_type} covariance ({q} parameters) to {N} observations of {len(design.subject_labels)} subjects"
    )
    model = MarginalModel(
        X,
        design.y,
        design.subject_codes,
        design.time_codes,
        design.group_of_subject,
        structures,
        weights=design.weights,
        coords=design.coords,
        reml=reml,
    )
    sw = np.ones(N) if design.weights is None else np.sqrt(design.weights)
    ols = np.linalg.lstsq(X * sw[:, None], design.y * sw, rcond=None)[0]
    rss = float(np.sum(((design.y - X @ ols) * sw) ** 2))
    if rss <= 1e-20 * max(1.0, float(np.sum((design.y * sw) ** 2))):
        warn.append(
            "the fixed effects reproduce the response exactly (no residual variation): the "
            "covariance parameters cannot be estimated"
        )
    best = None
    tried = []
    for name, phi0 in _starting_values(model, design):
        try:
            theta0 = model.phi_to_theta(phi0)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            continue
        try:
            with np.errstate(all="ignore"):
                res = model.optimise(theta0, start=name)
        except (np.linalg.LinAlgError, ArithmeticError, ValueError, NotPositiveDefinite) as exc:
            warn.append(f"start '{name}': the optimiser stopped on a numerical error ({exc})")
            continue
        tried.append(res)
        if (
            res.converged
            and (best is None or not best.converged or res.f < best.f - 1e-9)
            or best is None
            or (not best.converged and res.f < best.f)
        ):
            best = res
        if best is not None and best.converged:
            break
    if best is not None and not best.converged and np.isfinite(best.f):
        polished = _lbfgs_fallback(model, best)
        if polished is not None:
            tried.append(polished)
            if polished.converged or polished.f < best.f:
                best = polished
    converged = best is not None and best.converged and np.isfinite(best.f)
    if best is None or not np.isfinite(best.f):
        warn.append("the optimiser found no valid covariance parameters (all starting values failed)")
        return MMRMResult.failed(design, model, parsed, reml, df_method, vcov, warn)
    if not converged:
        warn.append(
            f"the optimiser did not converge ({best.message} after {best.iterations} iterations, starts tried: "
            + ", ".join(r.start for r in tried)
            + "); estimates are those of the best point reached"
        )
    phi = best.phi
    say("computing standard errors and degrees of freedom")
    try:
        with np.errstate(all="ignore"):
            inf, W, kr_pieces, conv_ok = _inference(
                model, design, structures, phi, X, reml, df_method, vcov, warn
            )
    except (np.linalg.LinAlgError, ArithmeticError, ValueError, NotPositiveDefinite) as exc:
        warn.append(f"standard errors could not be computed at the solution ({exc}); the fit is degenerate")
        return MMRMResult.failed(design, model, parsed, reml, df_method, vcov, warn, phi=phi, f=best.f)
    converged = converged and conv_ok
    return MMRMResult(
        design=design,
        model=model,
        parsed=parsed,
        reml=reml,
        df_method=df_method,
        vcov=vcov,
        phi=phi,
        f=best.f,
        converged=bool(converged),
        warnings=warn,
        inference=inf,
        W=W,
        optim=best,
        kr_pieces=kr_pieces,
    )


def _lbfgs_fallback(model: MarginalModel, best):
    """Second optimiser when scoring/Newton did not converge from any start: L-BFGS-B on theta with
    the analytic gradient, then Newton again from where it stops (which decides convergence)."""
    from scipy.optimize import minimize

    def fg(theta):
        try:
            ev = model.evaluate(model.theta_to_phi(theta), grad=True)
        except NotPositiveDefinite:
            return np.inf, np.zeros_like(theta)
        return ev.f, model.jacobian(theta).T @ ev.grad_phi

    try:
        with np.errstate(all="ignore"):
            opt = minimize(
                fg,
                best.theta,
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-8},
            )
            if not np.isfinite(opt.fun):
                return None
            res = model.optimise(opt.x, start="L-BFGS-B from the best point")
    except (np.linalg.LinAlgError, ArithmeticError, ValueError, NotPositiveDefinite):
        return None
    return res


def _inference(model, design, structures, phi, X, reml, df_method, vcov, warn):
    """Covariance of beta-hat, asymptotic covariance W of phi-hat and the df machinery at phi."""
    N, p = X.shape
    conv_ok = True
    terms = model.inference_terms(phi, second_derivatives=True)
    H = terms["H_obs"]
    if not np.all(np.isfinite(H)):
        raise ValueError("non-finite information matrix")
    try:
        np.linalg.cholesky(H)
        W = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        conv_ok = False
        warn.append(
            "the Hessian of the -2 log-likelihood is not positive definite at the solution: covariance "
            "parameters are not identified or lie on the boundary (results are not reliable)"
        )
        W = 2.0 * np.linalg.pinv(H)
    warn += _boundary_notes(structures, model.split_phi(phi), design.group_levels)
    for st, ph in zip(structures, model.split_phi(phi)):
        if not st.spatial:
            ev = np.linalg.eigvalsh(st.full_sigma(ph))
            if ev[0] <= 1e-10 * ev[-1]:
                conv_ok = False
                warn.append("the estimated covariance matrix is (numerically) singular")
    if not reml and df_method in ("kenward-roger", "kenward-roger-linear"):
        warn.append("Kenward-Roger is defined for REML; with ML it uses the ML information matrix")
    Phi = terms["Phi"]
    Vb = Phi
    kr_pieces = None
    if df_method in ("kenward-roger", "kenward-roger-linear"):
        SQ, SR = model.kr_sums(terms, W)
        Vb = kr_adjusted_vcov(Phi, terms["P"], W, SQ, SR, linear=(df_method == "kenward-roger-linear"))
        kr_pieces = (SQ, SR)
    if vcov == "empirical":
        e, _ = model.score_contributions(terms)
        emp = Phi @ (e.T @ e) @ Phi
        Vb = 0.5 * (emp + emp.T)
    bw = _between_within(design, X) if df_method == "between-within" else None
    inf = Inference(
        beta=terms["beta"], Phi=Phi, P=terms["P"], W=W, df_method=df_method, V=Vb, N=N, p=p, between_within=bw
    )
    return inf, W, kr_pieces, conv_ok


def _identifiability_notes(design: Design, parsed) -> list[str]:
    out = []
    if STRUCTURES[parsed.cov_type].spatial:
        return out
    tl = design.time_levels
    for g in range(len(design.group_levels)):
        sel = design.group_of_subject[design.subject_codes] == g
        counts = np.bincount(design.time_codes[sel], minlength=len(tl))
        gname = "" if len(design.group_levels) == 1 else f" in group {design.group_levels[g]}"
        for lv, c in zip(tl, counts):
            if c < 2:
                out.append(
                    f"{parsed.time[0]} = {lv}{gname} has {c} observation(s): its variance is barely or not identified"
                )
    return out


def _boundary_notes(structures: list[CovarianceStructure], phis, group_levels) -> list[str]:
    out = []
    for st, ph, g in zip(structures, phis, group_levels):
        names = st.param_names()
        gname = "" if len(group_levels) == 1 else f" (group {g})"
        for n, v in zip(names, ph):
            is_corr = n.startswith(("AR", "CSH", "TOEPH", "Rho", "ARH"))
            if is_corr and abs(v) > 0.9999:
                out.append(f"covariance parameter {n}{gname} = {v:.6f} is on the boundary")
            if (n.startswith("Var") or n == "Residual") and v < 1e-8:
                out.append(f"covariance parameter {n}{gname} = {v:.3g} is (nearly) zero")
    return out


def _between_within(design: Design, X) -> dict:
    """SAS DDFM=BW column df (see inference.py)."""
    subj = design.subject_codes
    n_subj = len(design.subject_labels)
    N = X.shape[0]
    kept_terms = [t for t, k in zip(design.term_of_col, design.keep) if k]
    within_term = {}
    for t in dict.fromkeys(kept_terms):
        cols = [i for i, tt in enumerate(kept_terms) if tt == t]
        varies = False
        for c in cols:
            x = X[:, c]
            mn = np.full(n_subj, np.inf)
            mx = np.full(n_subj, -np.inf)
            np.minimum.at(mn, subj, x)
            np.maximum.at(mx, subj, x)
            if np.any(mx - mn > 1e-12 * max(1.0, np.max(np.abs(x)))):
                varies = True
                break
        within_term[t] = varies and t != "(Intercept)"
    if design.parsed.cov_type == "us":
        within_term = {t: False for t in within_term}
    between_cols = [i for i, t in enumerate(kept_terms) if not within_term[t]]
    [i for i, t in enumerate(kept_terms) if within_term[t]]
    rank_b = np.linalg.matrix_rank(X[:, between_cols]) if between_cols else 0
    df_between = n_subj - rank_b
    df_within = N - n_subj - (X.shape[1] - rank_b)
    col_df = np.array([df_within if within_term[t] else df_between for t in kept_terms], dtype=float)
    term_df = {t: (df_within if w else df_between) for t, w in within_term.items()}
    return {"col_df": col_df, "term_df": term_df, "df_between": df_between, "df_within": df_within}
