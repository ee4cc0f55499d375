"""Estimand section of the report: the estimand in words, the primary MMRM beside the imputation
sensitivity analyses (MAR, J2R, CR, CIR), and the tipping-point heat map (p over the delta grid)."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl

from pipelines.report import figures as F
from pipelines.report import fmt
from pipelines.report.data import has_table

STRATEGY_LABEL = {
    "MAR": "MAR (missing at random)",
    "J2R": "J2R (jump to reference)",
    "CR": "CR (copy reference)",
    "CIR": "CIR (copy increments in reference)",
    "LMCF": "LMCF (last mean carried forward)",
}


def tipping_figure(
    grid: pl.DataFrame, *, alpha: float = 0.05, exp_label="experimental", ctl_label="control", param_label=""
):
    """Heat map of the two-sided p over (delta_control, delta_experimental); the alpha contour marked."""
    from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm

    de = sorted(set(grid["delta_experimental"].to_list()))
    dc = sorted(set(grid["delta_control"].to_list()))
    P = np.full((len(de), len(dc)), np.nan)
    ie = {v: i for i, v in enumerate(de)}
    ic = {v: i for i, v in enumerate(dc)}
    for r in grid.iter_rows(named=True):
        P[ie[r["delta_experimental"]], ic[r["delta_control"]]] = r["p_value"]
    fig = F.new_figure(6.4, 4.6)
    ax = fig.add_subplot(111)
    cmap = LinearSegmentedColormap.from_list("p", ["#1b7837", "#a6dba0", "#f7f7f7", "#f4a582", "#b2182b"])
    ext = [min(dc), max(dc), min(de), max(de)] if len(dc) > 1 and len(de) > 1 else None
    # colours turn from green to red at p = alpha (significant vs not)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=alpha, vmax=1.0)
    im = ax.imshow(P, origin="lower", aspect="auto", cmap=cmap, norm=norm, extent=ext)
    if len(dc) > 1 and len(de) > 1:
        ax.contour(dc, de, P, levels=[alpha], colors="black", linewidths=1.2)
    fig.colorbar(im, ax=ax, label="two-sided p")
    ax.set_xlabel(f"shift of imputed values, {ctl_label}")
    ax.set_ylabel(f"shift of imputed values, {exp_label}")
    ax.set_title(
        f"Tipping point{': ' + param_label if param_label else ''} (black line: p = {alpha:g})", fontsize=10
    )
    return fig


def tipping_svg(
    con: duckdb.DuckDBPyConnection, study_id: str, estimand_id: str, alpha: float = 0.05
) -> str | None:
    """An estimand's tipping-point grid as an SVG data URI (None without one)."""
    if not has_table(con, "results.tipping_point"):
        return None
    grid = con.execute(
        "select * from results.tipping_point where study_id = ? and estimand_id = ?", [study_id, estimand_id]
    ).pl()
    if grid.height == 0:
        return None
    return F.svg_data_uri(tipping_figure(grid, alpha=alpha), px_per_inch=72)


def estimand_sections(con: duckdb.DuckDBPyConnection, data, *, svg) -> list[dict]:
    """One dict per estimand for the template: words, comparison rows, tipping-point figure (drawn with
    ``svg``, the report's figure-to-SVG helper, passed in so this module does not import study.py)."""
    if data.single_arm or not has_table(con, "results.estimands"):
        return []
    sid = data.study_id
    est = con.execute("select * from results.estimands where study_id = ? order by estimand_id", [sid]).pl()
    sens = (
        con.execute("select * from results.sensitivity where study_id = ?", [sid]).pl()
        if has_table(con, "results.sensitivity")
        else pl.DataFrame()
    )
    tip = (
        con.execute("select * from results.tipping_point where study_id = ?", [sid]).pl()
        if has_table(con, "results.tipping_point")
        else pl.DataFrame()
    )
    alpha = data.alpha
    out = []
    for e in est.iter_rows(named=True):
        rows = []
        primary = data.effect(e["paramcd"], e["avisit"])
        if primary:
            rows.append(
                _row(
                    "Primary MMRM (MAR; chg ~ base + trtp*avisit, observed data)",
                    primary,
                    "results.treatment_effects",
                )
            )
        if sens.height:
            s = sens.filter((pl.col("estimand_id") == e["estimand_id"]) & (pl.col("avisit") == e["avisit"]))
            for r in s.filter(pl.col("delta") == 0).iter_rows(named=True):
                rows.append(
                    _row(
                        f"{STRATEGY_LABEL.get(r['strategy'], r['strategy'])}, {r['method']}",
                        r,
                        "results.sensitivity",
                    )
                )
            for r in s.filter(pl.col("delta") != 0).iter_rows(named=True):
                rows.append(
                    _row(
                        f"{r['strategy']} + shift {fmt.num(r['delta'])} of {r['delta_arm']} imputed values (tipping point)",
                        r,
                        "results.sensitivity",
                    )
                )
        g = tip.filter(pl.col("estimand_id") == e["estimand_id"]) if tip.height else tip
        fig = None
        if g.height:
            p = data.param(e["paramcd"])
            fig = svg(
                tipping_figure,
                g,
                alpha=alpha,
                exp_label=data.experimental.label,
                ctl_label=data.control.label,
                param_label=p.full_label,
            )
        tips = []
        for arm, lab in (("experimental", data.experimental.label), ("control", data.control.label)):
            d = e.get(f"tipping_delta_{arm}")
            if d is None:
                tips.append(
                    f"{lab}: no shift of its imputed values tips the result (no imputed post-event values or too few)"
                )
            elif d == 0:
                tips.append(f"{lab}: not significant without any shift")
            else:
                tips.append(f"{lab}: a shift of {fmt.num(d)} points makes p reach {alpha:g}")
        out.append(
            {"e": e, "rows": rows, "fig": fig, "tips": tips, "visit_label": data.visit_label(e["avisit"])}
        )
    return out


def _row(label, r, source):
    return {
        "label": label,
        "estimate": fmt.num(r.get("estimate")),
        "se": fmt.num(r.get("std_error")),
        "ci": fmt.ci(r.get("conf_low"), r.get("conf_high")),
        "p": fmt.p_value(r.get("p_value")),
        "source": source,
    }
