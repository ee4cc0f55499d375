"""Builders: the warehouse -> one output's rows (or figure). A shell names its builder.

Every builder takes a :class:`Context` and returns a :class:`TableOut`, a :class:`FigureOut` or an
:class:`Absent` saying which dataset or column is missing - never raises for absent data, so a
study without safety data still gets its efficacy outputs. Model-based numbers are read from
``results.*`` as stored; descriptive statistics are computed here from the ADaM tables. The
efficacy readers, tables and figures of the HTML study report (``pipelines.report``) are reused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import polars as pl

from pipelines.report import fmt
from pipelines.report import tables as T
from pipelines.report.data import StudyData, has_table, read_table

DASH = fmt.DASH
INDENT = "\u00a0\u00a0\u00a0"  # non-breaking: RTF readers and HTML keep it


@dataclass
class TableOut:
    columns: list[str]
    rows: list[list[str]]
    widths: list[float]  # relative column widths
    justify: list[str] | None = None  # per column: l | c | r (default: first l, rest c)
    spanners: list[tuple[str, int]] | None = None  # header row above the columns: (text, n columns)
    notes: list[str] = field(default_factory=list)  # footnotes computed from the data
    group: int = 0  # leading columns whose repeated values are shown once (restored on a new page)

    def __post_init__(self) -> None:
        n = len(self.columns)
        self.justify = self.justify or ["l"] + ["c"] * (n - 1)
        bad = [i for i, r in enumerate(self.rows) if len(r) != n]
        if bad or len(self.widths) != n or len(self.justify) != n:
            raise ValueError(f"table shape: {n} columns, widths {len(self.widths)}, bad rows {bad[:3]}")
        if self.spanners and sum(k for _, k in self.spanners) != n:
            raise ValueError("spanners must cover every column")


@dataclass
class FigureOut:
    figure: object  # matplotlib Figure
    notes: list[str] = field(default_factory=list)


@dataclass
class Absent:
    reason: str


Built = TableOut | FigureOut | Absent


class Context:
    """What builders read: the connection, the study's report data and the ADaM/results tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection, data: StudyData):
        self.con = con
        self.data = data
        self.study_id = data.study_id
        self._cache: dict[str, pl.DataFrame | None] = {}

    def table(self, name: str) -> pl.DataFrame | None:
        """The study's rows of a table (None when the table does not exist or has no rows)."""
        if name not in self._cache:
            df = read_table(self.con, name, self.study_id)
            self._cache[name] = df if df is not None and not df.is_empty() else None
        return self._cache[name]

    # -- populations ---------------------------------------------------------------------------
    def adsl_pop(self, flag: str) -> tuple[pl.DataFrame | None, str]:
        """ADSL rows of a population flag (ITTFL, SAFFL) and the flag used; RANDFL when the flag is
        not in ADSL (the returned text says so)."""
        adsl = self.table("analysis.adsl")
        if adsl is None:
            return None, ""
        col = flag.lower()
        if col in adsl.columns and adsl[col].drop_nulls().len():
            return adsl.filter(pl.col(col) == "Y"), flag
        if "randfl" in adsl.columns:
            return adsl.filter(pl.col("randfl") == "Y"), "RANDFL"
        return adsl, ""

    def arm_n(self, flag: str = "ITTFL") -> tuple[dict[str, int], str]:
        pop, used = self.adsl_pop(flag)
        arms = [a.id for a in self.data.arms]
        if pop is None or "trt01p" not in pop.columns:
            return {a.id: a.n or 0 for a in self.data.arms}, used
        arm_col = "trt01a" if flag == "SAFFL" and "trt01a" in pop.columns else "trt01p"
        counts = dict(pop.group_by(arm_col).len().iter_rows())
        return {a: int(counts.get(a, 0)) for a in arms}, used

    def arm_headers(self, flag: str = "ITTFL") -> list[str]:
        n, _ = self.arm_n(flag)
        return [f"{a.label} (N={n.get(a.id, 0)})" for a in self.data.arms]

    def population_note(self, flag: str) -> list[str]:
        _, used = self.arm_n(flag)
        if used and used != flag:
            return [f"ADSL has no {flag}: the population is every participant with {used} = 'Y'."]
        return []

    def with_arm(self, df: pl.DataFrame, safety: bool = False) -> pl.DataFrame:
        """``df`` with an ``_arm`` column: its own treatment variable, else the subject's ADSL arm."""
        order = ("trta", "trt01a", "trtp", "trt01p") if safety else ("trtp", "trt01p", "trta", "trt01a")
        for col in order:
            if col in df.columns:
                return df.with_columns(pl.col(col).alias("_arm"))
        adsl = self.table("analysis.adsl")
        if adsl is None or "usubjid" not in df.columns:
            return df.with_columns(pl.lit(None, pl.String).alias("_arm"))
        col = "trt01a" if safety and "trt01a" in adsl.columns else "trt01p"
        return df.join(adsl.select("usubjid", pl.col(col).alias("_arm")), on="usubjid", how="left")


# ------------------------------------------------------------------------------- statistics
def describe(values) -> dict:
    v = sorted(float(x) for x in values if fmt.is_num(x))
    n = len(v)
    if not n:
        return {"n": 0, "mean": None, "sd": None, "median": None, "min": None, "max": None}
    mean = sum(v) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else None
    median = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {"n": n, "mean": mean, "sd": sd, "median": median, "min": v[0], "max": v[-1]}


def _dig(x: float | None, base: int) -> str:
    return fmt.num(x, base)


def desc_cells(values, digits: int = 1) -> list[str]:
    """n | mean (SD) | median | min, max - mean and median one decimal more than the data, SD two."""
    d = describe(values)
    if not d["n"]:
        return ["0", DASH, DASH, DASH]
    mean_sd = _dig(d["mean"], digits) + (f" ({_dig(d['sd'], digits + 1)})" if d["sd"] is not None else "")
    return [str(d["n"]), mean_sd, _dig(d["median"], digits), f"{_dig(d['min'], digits - 1)}, {_dig(d['max'], digits - 1)}"]


def n_pct(k: int, n: int) -> str:
    if not n:
        return str(k)
    return f"{k} ({fmt.num(100 * k / n, 1)})"


def _need(ctx: Context, *tables: str) -> Absent | None:
    missing = [t for t in tables if ctx.table(t) is None]
    if missing:
        return Absent(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the warehouse for this study")
    return None


def _need_cols(df: pl.DataFrame, table: str, *cols: str) -> Absent | None:
    missing = [c for c in cols if c not in df.columns]
    return Absent(f"{table} has no column {', '.join(missing)}") if missing else None


# ------------------------------------------------------------------------------------- 14.1
def disposition(ctx: Context) -> Built:
    if (a := _need(ctx, "analysis.adsl")):
        return a
    data = ctx.data
    adsl = ctx.table("analysis.adsl")
    arms = data.arms
    rand = adsl.filter(pl.col("randfl") == "Y") if "randfl" in adsl.columns else adsl
    n = {a.id: rand.filter(pl.col("trt01p") == a.id).height for a in arms}
    total = rand.height

    def line(label, frame, indent=0):
        cells = [n_pct(frame.filter(pl.col("trt01p") == a.id).height, n[a.id]) for a in arms]
        return [INDENT * indent + label, *cells, n_pct(frame.height, total)]

    rows = [[("Enrolled" if data.single_arm else "Randomized"), *[str(n[a.id]) for a in arms], str(total)]]
    for flag, label in (("ittfl", "Intention-to-treat population"), ("saffl", "Safety population")):
        if flag in rand.columns and rand[flag].drop_nulls().len():
            rows.append(line(label, rand.filter(pl.col(flag) == "Y")))
    for r in T.participant_flow(data)[1:]:  # baseline, analysed, completed - shared with the HTML report
        rows.append(
            [r["stage"], *[n_pct(r["counts"].get(a.id, 0), n[a.id]) for a in arms], n_pct(r["total"], total)]
        )
    notes = []
    if "eosstt" in rand.columns and rand["eosstt"].drop_nulls().len():
        rows.append(["End-of-study status", *[""] * len(arms), ""])
        for status in sorted(rand["eosstt"].drop_nulls().unique().to_list()):
            rows.append(line(str(status).capitalize(), rand.filter(pl.col("eosstt") == status), 1))
    reason_col = next((c for c in ("dcsreas", "dcreascd", "dctreas") if c in rand.columns), None)
    if reason_col and rand[reason_col].drop_nulls().len():
        disc = rand.filter(pl.col(reason_col).is_not_null() & (pl.col(reason_col) != ""))
        rows.append(line("Discontinued the study", disc))
        counts = disc.group_by(reason_col).len().sort(["len", reason_col], descending=[True, False])
        for reason in counts[reason_col].to_list():
            rows.append(line(str(reason), disc.filter(pl.col(reason_col) == reason), 1))
    else:
        notes.append("ADSL carries no discontinuation reasons (DCSREAS): disposition DS data were not received.")
    cols = ["", *ctx.arm_headers("RANDFL"), f"Total (N={total})"]
    k = len(arms)
    return TableOut(cols, rows, [3.2] + [1.4] * (k + 1), notes=notes)


def demographics(ctx: Context) -> Built:
    if (a := _need(ctx, "analysis.adsl")):
        return a
    rows = T.baseline_characteristics(ctx.data)
    arms = ctx.data.arms
    out = [
        [(INDENT if r["indent"] else "") + r["label"], *[r["cells"].get(a.id, "") for a in arms], r["total"]]
        for r in rows[1:]
    ]
    n = ctx.data.adsl.filter(pl.col("randfl") == "Y").height if "randfl" in ctx.data.adsl.columns else ctx.data.adsl.height
    cols = ["Characteristic", *ctx.arm_headers("RANDFL"), f"Total (N={n})"]
    return TableOut(cols, out, [3.0] + [1.5] * (len(arms) + 1))


# ------------------------------------------------------------------------------------- 14.2
def _visits(data: StudyData) -> list:
    return sorted(data.visits, key=lambda v: v.order)


def by_visit(ctx: Context) -> Built:
    data = ctx.data
    if data.adqs is None or data.adqs.is_empty():
        return Absent("analysis.adqs has no analysis records for this study")
    adqs = data.adqs
    rows = []
    for pcd in data.paramcds():
        q = adqs.filter(pl.col("paramcd") == pcd)
        if q.is_empty():
            continue
        for v in _visits(data):
            qv = q.filter(pl.col("avisit") == v.id)
            if qv.is_empty():
                continue
            for a in data.arms:
                g = qv.filter(pl.col("trtp") == a.id)
                aval = desc_cells(g["aval"].to_list())
                chg = desc_cells(g["chg"].to_list()) if not v.is_baseline and g["chg"].drop_nulls().len() else ["", "", "", ""]
                rows.append(
                    [
                        data.param(pcd).full_label,
                        v.label,
                        a.label,
                        *aval,
                        *chg,
                    ]
                )
    if not rows:
        return Absent("analysis.adqs has no values")
    cols = ["Parameter", "Visit", "Treatment", "n", "Mean (SD)", "Median", "Min, Max", "n", "Mean (SD)", "Median", "Min, Max"]
    return TableOut(
        cols,
        rows,
        [1.9, 2.05, 1.95, 0.35, 1.0, 0.7, 0.8, 0.35, 1.0, 0.7, 0.8],
        justify=["l", "l", "l"] + ["c"] * 8,
        spanners=[("", 3), ("Observed value", 4), ("Change from baseline", 4)],
        group=2,
    )


def _covariance_notes(data: StudyData, codes: list[str]) -> list[str]:
    notes = []
    for pcd in codes:
        fit = data.model_fit(pcd) or {}
        cov = fit.get("covariance")
        if cov and cov != T.DEFAULT_COVARIANCE:
            notes.append(f"{data.param(pcd).full_label}: {T.covariance_text(cov)} covariance (fallback).")
        if T._falsy(fit.get("converged")):
            notes.append(f"{data.param(pcd).full_label}: the MMRM did not converge.")
    return notes


def mmrm(ctx: Context) -> Built:
    data = ctx.data
    if not data.has_rows("results.lsmeans"):
        return Absent("results.lsmeans has no rows for this study (the efficacy analysis has not run)")
    adqs = data.adqs
    codes = [c for c in data.paramcds() if data.param(c).is_total and data.rows("results.lsmeans", paramcd=c, model="mmrm")]
    if data.primary_parameter in codes:
        codes.remove(data.primary_parameter)
        codes.insert(0, data.primary_parameter)
    rows = []
    for pcd in codes:
        for v in _visits(data):
            if v.is_baseline:
                continue
            eff = data.effect(pcd, v.id) if not data.single_arm else None
            first_v = True
            for a in data.arms:
                ls = data.lsmean(pcd, a.id, v.id)
                if ls is None and eff is None:
                    continue
                n_obs = (
                    adqs.filter(
                        (pl.col("paramcd") == pcd) & (pl.col("avisit") == v.id) & (pl.col("trtp") == a.id) & pl.col("chg").is_not_null()
                    ).height
                    if adqs is not None
                    else None
                )
                ls = ls or {}
                diff = ["", "", ""]
                if first_v and eff:
                    diff = [fmt.est_se(eff.get("estimate"), eff.get("std_error")), fmt.ci(eff.get("conf_low"), eff.get("conf_high")), fmt.p_value(eff.get("p_value"))]
                rows.append(
                    [
                        data.param(pcd).full_label,
                        v.label + (" (primary)" if v.is_primary and pcd == data.primary_parameter else ""),
                        a.label,
                        str(n_obs) if n_obs is not None else DASH,
                        fmt.est_se(ls.get("estimate"), ls.get("std_error")),
                        fmt.ci(ls.get("conf_low"), ls.get("conf_high")),
                        *diff,
                    ]
                )
                first_v = False
    if not rows:
        return Absent("results.lsmeans has no MMRM rows for an instrument total")
    exp = data.experimental.label if data.experimental else ""
    ctl = data.control.label if data.control else ""
    cols = ["Parameter", "Visit", "Treatment", "n", "LS mean (SE)", f"{data.level:g}% CI", "Difference (SE)", f"{data.level:g}% CI", "p"]
    notes = [f"Difference = {exp} minus {ctl}."] if ctl else []
    return TableOut(
        cols,
        rows,
        [1.3, 2.0, 1.9, 0.4, 1.2, 1.3, 1.2, 1.3, 0.6],
        justify=["l", "l", "l"] + ["c"] * 6,
        notes=notes + _covariance_notes(data, codes),
        group=2,
    )


def clusters(ctx: Context) -> Built:
    data = ctx.data
    if data.single_arm:
        return Absent("single-arm study: no between-arm differences")
    if not data.has_rows("results.treatment_effects"):
        return Absent("results.treatment_effects has no rows for this study")
    rows = T.effect_rows(data)
    out = [
        [
            (INDENT if r.indent else "") + (data.param(r.paramcd).full_label if not r.indent else r.label),
            *[r.lsmeans.get(a.id, DASH) for a in data.arms],
            r.cells["estimate"],
            r.cells["ci"],
            r.cells["p"],
            r.cells["p_adj"],
            r.cells["d"],
        ]
        for r in rows
    ]
    cols = ["Parameter", *[f"{a.label} LS mean (SE)" for a in data.arms], "Difference", f"{data.level:g}% CI", "p", "Adjusted p", "Cohen's d"]
    notes = [T.multiplicity_note(data, rows)] + _covariance_notes(data, [r.paramcd for r in rows])
    return TableOut(cols, out, [2.6] + [1.4] * len(data.arms) + [1.0, 1.4, 0.7, 0.9, 0.8], notes=notes)


def responders(ctx: Context) -> Built:
    data = ctx.data
    groups = T.responder_groups(data)
    if not groups:
        return Absent("results.responders has no rows for this study")
    rows = []
    for g in groups:
        strategy = "Observed" if g["missing_data"] == "observed" else "Composite (NRI)"
        p = data.param(g["paramcd"] or "")
        rows.append(
            [
                f"{p.full_label}: {g['criterion'] or g['kind']}",
                strategy,
                g["rule"] or DASH,
                *[g["cells"].get(a.id, DASH) for a in data.arms],
                g["rd"],
                g["p"],
                (g["test"] or DASH).replace(" (two-sided)", ""),  # one line per row: sidedness in a footnote
            ]
        )
    cols = ["Endpoint", "Strategy", "Rule", *[f"{a.label} n/N (%) [CI]" for a in data.arms], "Risk difference, % [CI]", "p", "Test"]
    notes = ["NRI = non-responder imputation: a participant without a value at the primary visit counts as a non-responder."]
    if any("(two-sided)" in (g["test"] or "") for g in groups):
        notes.append("Tests are two-sided.")
    if not any(g["missing_data"] != "observed" for g in groups):
        notes.append("No composite (non-responder imputation) rows are stored in results.responders.")
    return TableOut(cols, rows, [2.0, 1.1, 1.7] + [1.9] * len(data.arms) + [1.5, 0.75, 1.0], justify=["l", "l", "l"] + ["c"] * (len(data.arms) + 3), notes=notes)


def sensitivity(ctx: Context) -> Built:
    data = ctx.data
    rows = []
    for r in T.sensitivity_rows(data):
        c = r["cells"]
        rows.append([r["label"], r["structure"], DASH, data.visit_label(data.primary_visit), c["estimate"], c["ci"], c["p"]])
    notes = []
    sens = ctx.table("results.sensitivity")
    if sens is not None:
        sens = sens.filter(pl.col("paramcd") == data.primary_parameter) if "paramcd" in sens.columns else sens
        if "avisit" in sens.columns and data.primary_visit and (sens["avisit"] == data.primary_visit).any():
            sens = sens.filter(pl.col("avisit") == data.primary_visit)
        order = {v.id: v.order for v in data.visits}
        sort_cols = [c for c in ("estimand_id", "method", "strategy", "delta") if c in sens.columns]
        recs = sens.sort(sort_cols, nulls_last=True).to_dicts() if sort_cols else sens.to_dicts()
        recs.sort(key=lambda r: (str(r.get("estimand_id")), str(r.get("method")), str(r.get("strategy")), r.get("delta") or 0, order.get(r.get("avisit"), 99)))
        for r in recs:
            label = " ".join(str(x) for x in (r.get("estimand_id"), r.get("method")) if x)
            rows.append(
                [
                    label or DASH,
                    str(r.get("strategy") or DASH),
                    fmt.num(r.get("delta"), 1) if fmt.is_num(r.get("delta")) else DASH,
                    data.visit_label(r.get("avisit")),
                    fmt.est_se(r.get("estimate"), r.get("std_error")),
                    fmt.ci(r.get("conf_low"), r.get("conf_high")),
                    fmt.p_value(r.get("p_value")),
                ]
            )
        n_imp = sorted({r.get("n_imputations") for r in recs if r.get("n_imputations")})
        if n_imp:
            how = "jackknife: leave-one-out samples"
            if any(r.get("method") == "condmean-grouped-jackknife" for r in recs):
                how += "; grouped jackknife: deleted random groups, t with groups - 1 df"
            notes.append(f"Imputations or resamples per analysis ({how}): {', '.join(map(str, n_imp))}; seeds are recorded in results.sensitivity.")
    else:
        notes.append("results.sensitivity is not in the warehouse: only the model-based sensitivity analyses are shown.")
    if not rows:
        return Absent("no sensitivity results (results.treatment_effects and results.sensitivity have no rows)")
    cols = ["Analysis", "Strategy / covariance", "Delta", "Visit", "Difference (SE)", f"{data.level:g}% CI", "p"]
    p = data.param(data.primary_parameter)
    notes.insert(0, f"Parameter: {p.full_label}. Difference = {data.experimental.label if data.experimental else ''} minus {data.control.label if data.control else ''}.")
    return TableOut(cols, rows, [2.8, 2.0, 0.7, 1.2, 1.4, 1.5, 0.7], justify=["l", "l", "c", "l", "c", "c", "c"], notes=notes)


def responder_estimands(ctx: Context) -> Built:
    data = ctx.data
    re_ = ctx.table("results.responder_estimands")
    if re_ is None:
        return Absent("results.responder_estimands is not in the warehouse for this study (no estimands analysis)")
    exp = data.experimental.label if data.experimental else "Experimental"
    ctl = data.control.label if data.control else "Control"
    order = {p: i for i, p in enumerate(data.paramcds())}
    recs = sorted(
        re_.to_dicts(),
        key=lambda r: (str(r.get("estimand_id")), order.get(r.get("paramcd"), 99), r.get("missing_data") != "composite"),
    )
    rows, warnings = [], []
    for r in recs:
        def arm(k, n):
            return fmt.count_pct(r.get(k), r.get(n)) if r.get(n) is not None else DASH

        rd = r.get("risk_difference")
        odds = (
            f"{fmt.num(r.get('odds_ratio'))} {fmt.ci(r.get('or_conf_low'), r.get('or_conf_high'))}"
            if fmt.is_num(r.get("odds_ratio"))
            else DASH
        )
        rows.append(
            [
                str(r.get("estimand_id") or DASH),
                data.param(r.get("paramcd") or "").full_label,
                ("Composite" if r.get("missing_data") == "composite" else "Observed") + (" (primary)" if r.get("is_primary") else ""),
                T.pretty_rule(data, str(r.get("criterion") or "")) or DASH,
                arm("n_responders_experimental", "n_experimental"),
                arm("n_responders_control", "n_control"),
                (f"{fmt.num(100 * rd, 1)} {fmt.ci(100 * r['conf_low'], 100 * r['conf_high'], 1)}" if fmt.is_num(rd) and fmt.is_num(r.get("conf_low")) and fmt.is_num(r.get("conf_high")) else fmt.num(100 * rd, 1) if fmt.is_num(rd) else DASH),
                fmt.p_value(r.get("p_value")),
                odds,
                str(r.get("or_method") or DASH),
            ]
        )
        if r.get("warning"):
            warnings.append(f"{r.get('estimand_id')} {r.get('paramcd')} {r.get('missing_data')}: {r['warning']}")
    if not rows:
        return Absent("results.responder_estimands has no rows for this study")
    cols = ["Estimand", "Parameter", "Strategy", "Criterion", f"{exp} n/N (%)", f"{ctl} n/N (%)", "Risk difference, % (CI)", "p (Fisher)", "Odds ratio (CI)", "OR method"]
    return TableOut(
        cols,
        rows,
        [1.0, 1.1, 1.1, 2.0, 1.3, 1.3, 1.5, 0.85, 1.65, 1.0],
        justify=["l", "l", "l", "l"] + ["c"] * 6,
        notes=warnings,
        group=2,
    )


# ---------------------------------------------------------------------------------- durability
def km_estimates(ctx: Context) -> tuple[dict, Absent | None]:
    """Per parameter and arm: times, status and statsmodels' SurvfuncRight; log-rank per parameter."""
    if (a := _need(ctx, "analysis.adtte")):
        return {}, a
    adtte = ctx.table("analysis.adtte")
    if (a := _need_cols(adtte, "analysis.adtte", "aval", "cnsr")):
        return {}, a
    from statsmodels.duration.survfunc import SurvfuncRight, survdiff

    tte = ctx.with_arm(adtte).filter(pl.col("aval").is_not_null())
    if "paramcd" not in tte.columns:
        tte = tte.with_columns(pl.lit("TTE").alias("paramcd"))
    out = {}
    for pcd in sorted(tte["paramcd"].drop_nulls().unique().to_list()):
        q = tte.filter(pl.col("paramcd") == pcd)
        label = q["param"].drop_nulls()[0] if "param" in q.columns and q["param"].drop_nulls().len() else pcd
        arms = {}
        for a in ctx.data.arms:
            g = q.filter(pl.col("_arm") == a.id)
            if g.is_empty():
                continue
            t = g["aval"].cast(pl.Float64).to_numpy()
            s = (1 - g["cnsr"].cast(pl.Int64)).to_numpy()
            sf = SurvfuncRight(t, s)
            arms[a.id] = {"time": t, "status": s, "sf": sf}
        logrank = None
        if len(arms) >= 2:
            g = q.filter(pl.col("_arm").is_in(list(arms)))
            try:
                chi2, p = survdiff(g["aval"].cast(pl.Float64).to_numpy(), (1 - g["cnsr"].cast(pl.Int64)).to_numpy(), g["_arm"].to_numpy())
                logrank = (float(chi2), float(p))
            except Exception:  # too few events for the test: leave it out
                logrank = None
        out[pcd] = {"label": label, "arms": arms, "logrank": logrank}
    if not out:
        return {}, Absent("analysis.adtte has no records with a time")
    return out, None


def durability(ctx: Context) -> Built:
    from pipelines.stats.durability import median_ci

    est, absent = km_estimates(ctx)
    if absent:
        return absent
    rows = []
    for pcd, e in est.items():
        first = True
        for a in ctx.data.arms:
            r = e["arms"].get(a.id)
            if r is None:
                continue
            # one convention with results.durability (log-transformed CI, R survfit default; reference-tested)
            med, lo, hi = median_ci(r["time"], r["status"])
            events = int(r["status"].sum())
            n = len(r["time"])
            rows.append(
                [
                    e["label"],
                    a.label,
                    str(n),
                    n_pct(events, n),
                    n_pct(n - events, n),
                    fmt.num(med, 1, "NE"),
                    f"({fmt.num(lo, 1, 'NE')}, {fmt.num(hi, 1, 'NE')})",
                    (fmt.p_value(e["logrank"][1]) if e["logrank"] else DASH) if first else "",
                ]
            )
            first = False
    cols = ["Parameter", "Treatment", "Responders", "Lost response, n (%)", "Censored, n (%)", "Median, days", "95% CI", "Log-rank p"]
    return TableOut(cols, rows, [3.0, 1.8, 0.9, 1.1, 1.0, 0.8, 1.1, 0.8], justify=["l", "l"] + ["c"] * 6, group=1)


# ------------------------------------------------------------------------------------- safety
SEVERITY_ORDER = ("MILD", "MODERATE", "SEVERE", "LIFE THREATENING", "DEATH")


def _teae(ctx: Context) -> tuple[pl.DataFrame | None, Absent | None]:
    if (a := _need(ctx, "analysis.adae")):
        return None, a
    adae = ctx.table("analysis.adae")
    if (a := _need_cols(adae, "analysis.adae", "usubjid", "aedecod", "aebodsys", "trtemfl")):
        return None, a
    return ctx.with_arm(adae.filter(pl.col("trtemfl") == "Y"), safety=True), None


def teae_soc_pt(ctx: Context) -> Built:
    te, absent = _teae(ctx)
    if absent:
        return absent
    arms = ctx.data.arms
    n, _ = ctx.arm_n("SAFFL")
    total = sum(n.values())

    def cells(frame: pl.DataFrame) -> list[str]:
        subj = frame.select("usubjid", "_arm").unique()
        per = dict(subj.group_by("_arm").len().iter_rows())
        return [n_pct(int(per.get(a.id, 0)), n.get(a.id, 0)) for a in arms] + [n_pct(subj.height, total)]

    rows = [["Participants with at least one TEAE", *cells(te)]]
    socs = te.group_by("aebodsys").agg(pl.col("usubjid").n_unique().alias("k")).sort(["k", "aebodsys"], descending=[True, False])
    for soc in socs["aebodsys"].to_list():
        s = te.filter(pl.col("aebodsys") == soc)
        rows.append([str(soc), *cells(s)])
        pts = s.group_by("aedecod").agg(pl.col("usubjid").n_unique().alias("k")).sort(["k", "aedecod"], descending=[True, False])
        for pt in pts["aedecod"].to_list():
            rows.append([INDENT + str(pt), *cells(s.filter(pl.col("aedecod") == pt))])
    cols = ["System organ class\n" + INDENT + "Preferred term", *ctx.arm_headers("SAFFL"), f"Total (N={total})"]
    return TableOut(cols, rows, [3.2] + [1.3] * (len(arms) + 1), notes=ctx.population_note("SAFFL"))


def teae_severity(ctx: Context) -> Built:
    te, absent = _teae(ctx)
    if absent:
        return absent
    if (a := _need_cols(te, "analysis.adae", "asev")):
        return a
    arms = ctx.data.arms
    n, _ = ctx.arm_n("SAFFL")
    te = te.with_columns(pl.col("asev").cast(pl.String).str.to_uppercase().fill_null("MISSING").alias("_sev"))
    present = set(te["_sev"].unique().to_list())
    levels = [s for s in SEVERITY_ORDER if s in present] + sorted(present - set(SEVERITY_ORDER))
    rank = {s: i for i, s in enumerate(levels)}
    te = te.with_columns(pl.col("_sev").replace_strict(rank, return_dtype=pl.Int64).alias("_rank"))

    def cells(frame: pl.DataFrame) -> list[str]:
        worst = frame.group_by("usubjid", "_arm").agg(pl.col("_rank").max())
        out = []
        for a in arms:
            w = worst.filter(pl.col("_arm") == a.id)
            for i in range(len(levels)):
                out.append(n_pct(w.filter(pl.col("_rank") == i).height, n.get(a.id, 0)))
        return out

    rows = [["Any TEAE", *cells(te)]]
    pts = te.group_by("aedecod").agg(pl.col("usubjid").n_unique().alias("k")).sort(["k", "aedecod"], descending=[True, False])
    for pt in pts["aedecod"].to_list():
        rows.append([INDENT + str(pt), *cells(te.filter(pl.col("aedecod") == pt))])
    cols = ["Preferred term", *[lev.capitalize() for _ in arms for lev in levels]]
    spanners = [("", 1)] + [(h, len(levels)) for h in ctx.arm_headers("SAFFL")]
    return TableOut(cols, rows, [2.6] + [1.0] * (len(arms) * len(levels)), spanners=spanners, notes=ctx.population_note("SAFFL"))


VS_LABEL = {
    "SYSBP": "Systolic blood pressure (mmHg)",
    "DIABP": "Diastolic blood pressure (mmHg)",
    "PULSE": "Heart rate (beats/min)",
    "HR": "Heart rate (beats/min)",
}


def vitals_peak(ctx: Context) -> Built:
    if (a := _need(ctx, "analysis.advs")):
        return a
    advs = ctx.table("analysis.advs")
    if (a := _need_cols(advs, "analysis.advs", "usubjid", "paramcd", "chg")):
        return a
    vs = ctx.with_arm(advs, safety=True).filter(pl.col("chg").is_not_null())
    if "ablfl" in vs.columns:
        vs = vs.filter(pl.col("ablfl").is_null() | (pl.col("ablfl") != "Y"))
    visit = "avisit" if "avisit" in vs.columns else None
    keys = ["usubjid", "_arm", "paramcd"] + ([visit] if visit else [])
    peak = vs.group_by(keys).agg(pl.col("chg").max().alias("peak"))
    labels = {}
    if "param" in advs.columns:
        labels = dict(advs.select("paramcd", "param").unique("paramcd").iter_rows())
    visit_order = {}
    if visit:
        vo = "avisitn" if "avisitn" in vs.columns else None
        visit_order = dict(vs.group_by(visit).agg(pl.col(vo).min() if vo else pl.len()).iter_rows()) if vo else {}
    rows = []
    for pcd in sorted(peak["paramcd"].unique().to_list(), key=lambda c: (list(VS_LABEL).index(c) if c in VS_LABEL else 99, c)):
        p = peak.filter(pl.col("paramcd") == pcd)
        infusions = sorted(p[visit].unique().to_list(), key=lambda v: (visit_order.get(v, 0), str(v))) if visit else [None]
        for inf in infusions:
            pi = p.filter(pl.col(visit) == inf) if visit else p
            for a in ctx.data.arms:
                g = pi.filter(pl.col("_arm") == a.id)
                if g.is_empty():
                    continue
                rows.append([labels.get(pcd) or VS_LABEL.get(pcd, pcd), str(inf) if inf else "All", a.label, *desc_cells(g["peak"].to_list())])
    if not rows:
        return Absent("analysis.advs has no post-infusion change")
    cols = ["Parameter", "Infusion", "Treatment", "n", "Mean (SD)", "Median", "Min, Max"]
    return TableOut(cols, rows, [2.6, 1.2, 2.0, 0.6, 1.3, 0.9, 1.2], justify=["l", "l", "l", "c", "c", "c", "c"], group=2)


def _dissociation_records(ctx: Context) -> tuple[pl.DataFrame | None, Absent | None]:
    if not has_table(ctx.con, "analysis.adqs"):
        return None, Absent("analysis.adqs is not in the warehouse")
    q = ctx.con.execute(
        "select * from analysis.adqs where study_id = ? and (paramcd like 'CADSS%' or paramcd like 'BPRS%')",
        [ctx.study_id],
    ).pl()
    if q.is_empty():
        return None, Absent("analysis.adqs has no CADSS or BPRS records (the study did not collect them)")
    if "anl02fl" in q.columns and (q["anl02fl"] == "Y").any():
        # time points around each infusion (ADQS rule A10): the per-infusion analysis records, their BASE
        # the same infusion's pre-infusion rating
        q = q.filter(pl.col("anl02fl") == "Y")
    elif "anl01fl" in q.columns and (q["anl01fl"] == "Y").any():
        q = q.filter(pl.col("anl01fl") == "Y")
    q = ctx.with_arm(q, safety=True)
    if "atpt" not in q.columns:
        q = q.with_columns(pl.lit("At the visit").alias("atpt"))  # no timepoints recorded
    if "atptn" not in q.columns:
        order = {t: i for i, t in enumerate(q.select("atpt").unique(maintain_order=True)["atpt"].to_list())}
        q = q.with_columns(pl.col("atpt").replace_strict(order, default=99, return_dtype=pl.Int64).alias("atptn"))
    return q, None


def _dissociation_order(codes: list[str]) -> list[str]:
    """CADSS first, then BPRS; within an instrument its total first (CADSSTOT, BPRSTOT, BPRSPOS)."""
    return sorted(codes, key=lambda c: (not c.startswith("CADSS"), not c.endswith("TOT"), c))


def dissociation(ctx: Context) -> Built:
    q, absent = _dissociation_records(ctx)
    if absent:
        return absent
    visit_order = {v.id: v.order for v in ctx.data.visits}
    per_infusion = "infno" in q.columns and q["infno"].is_not_null().any()
    rows = []
    for pcd in _dissociation_order(q["paramcd"].unique().to_list()):
        qp = q.filter(pl.col("paramcd") == pcd)
        label = qp["param"].drop_nulls()[0] if "param" in qp.columns and qp["param"].drop_nulls().len() else pcd
        label = label.split(" (")[0]  # the items scored are in the footnote; one line per row
        if per_infusion:  # one block per infusion, its time points in time order
            qp = qp.filter(pl.col("infno").is_not_null())
            groups = [(f"Infusion {k}", qp.filter(pl.col("infno") == k)) for k in sorted(qp["infno"].unique().to_list())]
        else:
            visits = sorted(qp["avisit"].unique().to_list(), key=lambda v: (visit_order.get(v, 0), str(v))) if "avisit" in qp.columns else [None]
            groups = [
                (ctx.data.visit_label(v) if v is not None else "All", qp.filter(pl.col("avisit") == v) if v is not None else qp)
                for v in visits
            ]
        for v_label, qv in groups:
            tps = qv.select("atpt", "atptn").unique().sort("atptn")["atpt"].to_list()
            for tp in tps:
                qt = qv.filter(pl.col("atpt") == tp)
                for a in ctx.data.arms:
                    g = qt.filter(pl.col("_arm") == a.id)
                    if g.is_empty():
                        continue
                    d = describe(g["aval"].to_list())
                    c = describe(g["chg"].to_list()) if "chg" in g.columns else {"n": 0}
                    rows.append(
                        [
                            label,
                            v_label,
                            str(tp),
                            a.label,
                            str(d["n"]),
                            fmt.mean_sd(d["mean"], d["sd"]),
                            fmt.num(d["max"], 0),
                            fmt.mean_sd(c.get("mean"), c.get("sd")) if c["n"] else DASH,
                        ]
                    )
    change = "Change from pre-infusion, mean (SD)" if per_infusion else "Change, mean (SD)"
    cols = ["Parameter", "Infusion", "Timepoint", "Treatment", "n", "Mean (SD)", "Max", change]
    return TableOut(cols, rows, [2.2, 1.3, 1.2, 2.0, 0.5, 1.1, 0.6, 1.3], justify=["l", "l", "l", "l", "c", "c", "c", "c"], group=3)


def exposure(ctx: Context) -> Built:
    if (a := _need(ctx, "analysis.adex")):
        return a
    adex = ctx.with_arm(ctx.table("analysis.adex"), safety=True)
    if (a := _need_cols(adex, "analysis.adex", "usubjid")):
        return a
    rows = []
    if "paramcd" in adex.columns and "aval" in adex.columns:
        labels = dict(adex.select("paramcd", "param").unique("paramcd").iter_rows()) if "param" in adex.columns else {}
        for pcd in sorted(adex["paramcd"].drop_nulls().unique().to_list()):
            for a in ctx.data.arms:
                g = adex.filter((pl.col("paramcd") == pcd) & (pl.col("_arm") == a.id))
                if g.is_empty():
                    continue
                rows.append([labels.get(pcd, pcd), a.label, *desc_cells(g["aval"].to_list())])
    else:
        per = adex.group_by("usubjid", "_arm").len()
        for a in ctx.data.arms:
            g = per.filter(pl.col("_arm") == a.id)
            rows.append(["Infusions received", a.label, *desc_cells(g["len"].to_list(), digits=1)])
        if "exdose" in adex.columns and adex["exdose"].drop_nulls().len():
            unit = adex["exdosu"].drop_nulls()[0] if "exdosu" in adex.columns and adex["exdosu"].drop_nulls().len() else ""
            dose = adex.group_by("usubjid", "_arm").agg(pl.col("exdose").cast(pl.Float64).sum())
            for a in ctx.data.arms:
                g = dose.filter(pl.col("_arm") == a.id)
                rows.append([f"Total dose{f' ({unit})' if unit else ''}", a.label, *desc_cells(g["exdose"].to_list(), digits=2)])
    if not rows:
        return Absent("analysis.adex has no records")
    cols = ["Parameter", "Treatment", "n", "Mean (SD)", "Median", "Min, Max"]
    return TableOut(cols, rows, [2.6, 2.0, 0.6, 1.3, 0.9, 1.2], justify=["l", "l", "c", "c", "c", "c"], group=1)


# ------------------------------------------------------------------------------------ figures
def change_figure(ctx: Context) -> Built:
    from pipelines.report.study import change_figure as draw

    fig = draw(ctx.data, ctx.data.primary_parameter)
    if fig is None:
        return Absent(f"results.lsmeans has no MMRM rows for {ctx.data.primary_parameter}")
    return FigureOut(fig, [f"Parameter: {ctx.data.param(ctx.data.primary_parameter).full_label}."])


def forest_figure(ctx: Context) -> Built:
    from pipelines.report.study import forest_figure as draw

    if ctx.data.single_arm:
        return Absent("single-arm study: no between-arm differences")
    fig = draw(ctx.data, T.effect_rows(ctx.data))
    if fig is None:
        return Absent("results.treatment_effects has no cluster differences for this study")
    return FigureOut(fig)


def km_figure(ctx: Context) -> Built:
    from pipelines.tlf.figures import km_plot
    from pipelines.report.study import arm_styles

    est, absent = km_estimates(ctx)
    if absent:
        return absent
    styles = arm_styles(ctx.data)
    panels = []
    for e in est.values():
        curves = [
            {"label": a.label, "style": styles[a.id], "time": e["arms"][a.id]["time"], "status": e["arms"][a.id]["status"]}
            for a in ctx.data.arms
            if a.id in e["arms"]
        ]
        note = f"log-rank {fmt.p_text(e['logrank'][1])}" if e["logrank"] else None
        panels.append({"title": e["label"], "curves": curves, "note": note})
    return FigureOut(km_plot(panels, xlabel="Days since the primary visit", ylabel="Proportion still responding"))


def _short_visit(v) -> str:
    """An axis label: the visit label before any bracket when short, else the visit id."""
    short = v.label.split(" (")[0]
    return short if len(short) <= 10 else v.id


def _short_tp(name: str) -> str:
    """An axis label for a time point: 'Pre' for PRE-INFUSION, '40 min' for 40 MIN."""
    return "Pre" if name.upper().startswith("PRE") else name.lower()


def cadss_figure(ctx: Context) -> Built:
    from scipy import stats

    from pipelines.report import figures as F
    from pipelines.report.study import arm_styles

    q, absent = _dissociation_records(ctx)
    if absent:
        return absent
    q = q.filter(pl.col("paramcd").str.starts_with("CADSS"))
    if q.is_empty():
        return Absent("analysis.adqs has no CADSS records")
    pcd = "CADSSTOT" if "CADSSTOT" in q["paramcd"].to_list() else sorted(q["paramcd"].unique().to_list())[0]
    q = q.filter(pl.col("paramcd") == pcd)
    by_visit = q["atpt"].unique().to_list() == ["At the visit"] and "avisit" in q.columns
    if by_visit:  # no timepoints relative to the infusion: the course over visits instead
        order = {v.id: v.order for v in ctx.data.visits}
        q = q.with_columns(
            pl.col("avisit").replace_strict({v.id: _short_visit(v) for v in ctx.data.visits}, default=pl.col("avisit")).alias("atpt"),
            pl.col("avisit").replace_strict(order, default=99, return_dtype=pl.Int64).alias("atptn"),
        )
    per_infusion = not by_visit and "infno" in q.columns and q["infno"].is_not_null().any()
    if per_infusion:  # the course over every infusion: its time points in order, infusion after infusion
        q = q.filter(pl.col("infno").is_not_null()).with_columns(
            (pl.col("infno").cast(pl.Int64) * 100_000 + pl.col("atptn").cast(pl.Int64)).alias("_x"),
            (pl.lit("Inf ") + pl.col("infno").cast(pl.String) + pl.lit("\n") + pl.col("atpt").map_elements(_short_tp, return_dtype=pl.String)).alias("_label"),
        )
        slots = q.select("_x", "_label").unique().sort("_x")
        keys, tps = slots["_x"].to_list(), slots["_label"].to_list()
        key_col = "_x"
    else:
        tps = q.select("atpt", "atptn").unique().sort("atptn")["atpt"].to_list()
        keys, key_col = tps, "atpt"
    styles = arm_styles(ctx.data)
    series = []
    for a in ctx.data.arms:
        pts = []
        for i, key in enumerate(keys):
            d = describe(q.filter((pl.col("_arm") == a.id) & (pl.col(key_col) == key))["aval"].to_list())
            if not d["n"]:
                continue
            half = stats.t.ppf(0.975, d["n"] - 1) * d["sd"] / math.sqrt(d["n"]) if d["sd"] is not None else None
            pts.append((i, d["mean"], d["mean"] - half if half else None, d["mean"] + half if half else None))
        if pts:
            series.append({"label": a.label, "style": styles[a.id], "points": pts})
    fig = F.change_over_visits(
        [
            {
                "title": f"{pcd}: mean by visit (no timepoints relative to the infusion recorded)"
                if by_visit
                else f"{pcd}: mean before and after each infusion"
                if per_infusion
                else f"{pcd}: mean by timepoint relative to infusion (infusions pooled)",
                "ylabel": "Mean score (95% CI)",
                "series": series,
            }
        ],
        xticklabels=[str(t) for t in tps],
        primary_index=None,
        panel_size=(10.0, 4.2) if per_infusion else (8.0, 4.0),
    )
    return FigureOut(fig)


BUILDERS: dict[str, Callable[[Context], Built]] = {
    f.__name__: f
    for f in (
        disposition,
        demographics,
        by_visit,
        mmrm,
        clusters,
        responders,
        responder_estimands,
        sensitivity,
        durability,
        teae_soc_pt,
        teae_severity,
        vitals_peak,
        dissociation,
        exposure,
        change_figure,
        forest_figure,
        km_figure,
        cadss_figure,
    )
}
