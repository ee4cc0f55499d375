"""Markdown tables and figures for the Dagster UI, one helper per results table.

Each helper returns ``(markdown_table, image | None)`` for one study's key rows, the image an SVG
data URI; an asset puts them in its materialization with :func:`md_with_image`::

    md, image = lsmeans_metadata(con, study_id)
    context.add_output_metadata({"preview": MetadataValue.md(md_with_image(md, image))})

``con`` holds the study's tables (contract names); pass ``frame`` (the rows the asset just computed,
contract columns) to describe them before they are written. Nothing here raises for missing tables
or rows: the markdown says what is missing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import duckdb
import polars as pl

from pipelines.report import fmt
from pipelines.report import tables as T
from pipelines.report.data import CONTRACT_COLUMNS, MODEL_LABEL, StudyData, load_study, with_columns
from pipelines.report.study import change_figure, forest_figure, responder_figure, svg_uri

def md_with_image(markdown: str, image: str | None, alt: str = "plot") -> str:
    """The markdown followed by the image (a data: URI) inline (Dagster's MetadataValue.md renders it)."""
    return markdown if not image else f"{markdown}\n\n![{alt}]({image})"


def md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A GitHub-style pipe table; ``align`` per column 'l' or 'r'. Pipes in cells are escaped."""

    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    align = align or ["l"] + ["r"] * (len(header) - 1)
    lines = [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _data(con: duckdb.DuckDBPyConnection, study_id: str, table: str, frame: pl.DataFrame | None,
          data: StudyData | None = None) -> StudyData:
    data = data if data is not None else load_study(con, study_id)
    if frame is not None:
        if "study_id" in frame.columns:
            frame = frame.filter(pl.col("study_id") == study_id)
        data.results[table] = with_columns(frame, CONTRACT_COLUMNS[table])
    return data


# results table -> its helper, called as helper(con, study_id, frame=None, data=None) -> (markdown, SVG data URI or None)
HELPERS: dict[str, Callable[..., tuple[str, str | None]]] = {}


def _summarises(table: str):
    """Register ``fn(data, table)`` as the helper of ``table``; the helper is called with a connection,
    the study id and, optionally, the table's rows just computed (``frame``, used instead of the
    warehouse's) and the study already loaded (``data``: one load for all of a step's tables)."""

    def register(fn):
        @functools.wraps(fn)
        def helper(con: duckdb.DuckDBPyConnection, study_id: str, frame: pl.DataFrame | None = None,
                   data: StudyData | None = None):
            return fn(_data(con, study_id, table, frame, data), table)

        HELPERS[table] = helper
        return helper

    return register


def _arm_names(data: StudyData) -> str:
    if data.single_arm or not data.control:
        return ""
    return f"{data.experimental.label} \u2212 {data.control.label}"


@_summarises("results.treatment_effects")
def treatment_effects_metadata(data: StudyData, table: str) -> tuple[str, str | None]:
    """Primary-visit MMRM rows per parameter: difference, CI, p, adjusted p, Cohen's d; forest plot of
    the clusters."""
    if not data.has_rows(table):
        return f"No rows in {table} for {data.study_id}.", None
    rows = [r for r in T.effect_rows(data) if data.effect(r.paramcd)]
    if not rows:
        return (
            f"{table} has no mmrm rows at the primary visit ({data.visit_label(data.primary_visit)}).",
            None,
        )
    body = []
    for r in rows:
        c = r.cells
        label = (
            ("\u2003" if r.indent else "")
            + data.param(r.paramcd).full_label
            + (" \u2605" if r.is_primary else "")
        )
        body.append([label, c["estimate"], c["ci"], c["p"], c["p_adj"], c["d"], "; ".join(r.notes)])
    md = (
        f"**{_arm_names(data)} in LS-mean change from baseline at {data.visit_label(data.primary_visit)}** "
        f"(model mmrm; negative favours {data.experimental.label})\n\n"
        + md_table(
            ["Parameter", "Difference", f"{data.level:g}% CI", "p", "Adjusted p", "Cohen's d", "Note"],
            body,
            ["l", "r", "r", "r", "r", "r", "l"],
        )
        + f"\n\n{T.multiplicity_note(data, rows)}"
    )
    return md, svg_uri(forest_figure, data, rows)


@_summarises("results.lsmeans")
def lsmeans_metadata(data: StudyData, table: str) -> tuple[str, str | None]:
    """The primary parameter's MMRM LS-mean change by arm and visit, with the mean-change plot."""
    pcd = data.primary_parameter
    rows = data.rows(table, paramcd=pcd, model="mmrm")
    if not rows:
        return f"No mmrm LS means for {pcd} in {table} ({data.study_id}).", None
    order = {v.id: v.order for v in data.visits}
    visits = sorted({r["avisit"] for r in rows}, key=lambda v: (order.get(v, 99), str(v)))
    header = (
        ["Visit"]
        + [f"{a.label}: LS mean (SE)" for a in data.arms]
        + [f"{a.label}: {data.level:g}% CI" for a in data.arms]
    )
    body = []
    for v in visits:
        ls = [data.lsmean(pcd, a.id, v) or {} for a in data.arms]
        body.append(
            [data.visit_label(v) + (" (primary)" if v == data.primary_visit else "")]
            + [fmt.est_se(x.get("estimate"), x.get("std_error")) for x in ls]
            + [fmt.ci(x.get("conf_low"), x.get("conf_high")) for x in ls]
        )
    md = (
        f"**LS-mean change from baseline in {data.param(pcd).full_label} by arm and visit** (model mmrm; "
        "lower = fewer symptoms)\n\n" + md_table(header, body)
    )
    return md, svg_uri(change_figure, data, pcd)


@_summarises("results.responders")
def responders_metadata(data: StudyData, table: str) -> tuple[str, str | None]:
    """Response and remission by arm at the primary visit, risk difference and test p, with the chart."""
    groups = T.responder_groups(data)
    if not groups:
        return f"No rows in {table} for {data.study_id}.", None
    header = ["Criterion"] + [f"{a.label} n/N (%)" for a in data.arms]
    if not data.single_arm:
        header += ["Risk difference, % (CI)", "p", "Test"]
    body = []
    for g in groups:
        body.append(
            [g["label"]]
            + [g["cells"][a.id] for a in data.arms]
            + ([g["rd"], g["p"], g["test"]] if not data.single_arm else [])
        )
    md = f"**Responders at {data.visit_label(data.primary_visit)}**\n\n" + md_table(
        header, body, ["l"] + ["r"] * (len(header) - 2) + ["l"] if not data.single_arm else None
    )
    return md, svg_uri(responder_figure, data, groups)


@_summarises("results.model_fits")
def model_fits_metadata(data: StudyData, table: str) -> tuple[str, str | None]:
    """One row per fitted model: covariance used (fallbacks marked), converged, -2 log L, AIC, warnings."""
    fits = T.model_rows(data, data.options.get("covariance") or T.DEFAULT_COVARIANCE)
    if not fits:
        return f"No rows in {table} for {data.study_id}.", None
    body = [
        [
            f["param"],
            MODEL_LABEL.get(f["model"], f["model"]),
            f["covariance"] + (" (fallback)" if f["fallback"] else ""),
            f["converged"],
            f["neg2_loglik"],
            f["aic"],
            f["n"],
            f["warnings"],
        ]
        for f in fits
    ]
    n_bad = sum(f["not_converged"] for f in fits)
    md = (
        f"**Model fits** ({len(fits)} models; {n_bad} not converged; "
        f"{sum(f['fallback'] for f in fits)} MMRM covariance fallbacks)\n\n"
        + md_table(
            [
                "Parameter",
                "Model",
                "Covariance",
                "Converged",
                "-2 log L",
                "AIC",
                "Subjects / obs.",
                "Warnings",
            ],
            body,
            ["l", "l", "l", "l", "r", "r", "r", "l"],
        )
    )
    return md, None


def results_metadata(
    con: duckdb.DuckDBPyConnection, study_id: str, table: str, frame: pl.DataFrame | None = None,
    data: StudyData | None = None,
) -> tuple[str, str | None]:
    """Dispatch on the contract table name (``results.lsmeans`` ...); ``data``: the study as
    ``load_study`` gives it, when the caller has loaded it already."""
    return HELPERS[table](con, study_id, frame, data)
