"""The study report: one self-contained HTML file per study (figures inline as SVG data URIs).

>>> build_report(con, "FEDERSIM-7", run_id, Path("reports/FEDERSIM-7.html"))

``con`` holds the study's tables under their contract names (the working database of a run or
the published warehouse). Every section degrades to a sentence saying what is missing; the report
never fails because a results table, a parameter, an instrument or a converged model is absent.
Where each number comes from is stated in the section's note and in :mod:`pipelines.report.tables`.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import jinja2
import polars as pl
from matplotlib.figure import Figure

from pipelines.core.helper import Later
from pipelines.report import figures as F
from pipelines.report import fmt
from pipelines.report import tables as T
from pipelines.stats.efficacy.fits import mmrm_formula
from pipelines.report.data import MODEL_LABEL, StudyData, content_digest, input_hashes, load_study

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def arm_styles(data: StudyData) -> dict[str, dict]:
    """Arm id -> colour/marker/line style; the experimental arm (or the only arm) is first."""
    return {a.id: F.arm_style(i) for i, a in enumerate(data.arms)}


def _draw(build, *args, **kwargs):
    """Call a figure builder; a figure that cannot be drawn is left out (logged), never fatal."""
    try:
        return build(*args, **kwargs)
    except Exception:  # a broken figure must not stop the report or the asset
        log.exception("figure %s failed", getattr(build, "__name__", build))
        return None


@dataclass
class Img:
    """A figure as an SVG data URI with its natural size in CSS px. The SVG may still be being drawn
    (in the helper process, :func:`pipelines.report.figures.drawing`) until ``uri`` is read: the
    report asks for every figure first and reads them when the page is rendered."""

    drawing: Later  # the SVG's bytes
    width: int
    height: int

    @functools.cached_property
    def uri(self) -> str:
        return F.svg_uri_of(self.drawing.result())


# Figures drawn in this process, by builder and a digest of what it was given: a run's efficacy step
# draws the forest plot, mean-change and responder charts for the Dagster UI, and its report step
# draws them again from the same rows (0.5 s of a Feder-size report).
_DRAWN: OrderedDict[tuple, Img | None] = OrderedDict()
_DRAWN_MAX = 64


def svg(build, *args, **kwargs) -> Img | None:
    """A figure builder's figure as an SVG data URI with its natural size (None when there is nothing
    to draw). The same builder given the same contents again (:func:`content_digest`) gets the
    figure it drew then."""
    digest = content_digest(args, kwargs)
    key = (build.__module__, build.__qualname__, digest) if digest is not None else None
    if key is not None and key in _DRAWN:
        _DRAWN.move_to_end(key)
        return _DRAWN[key]
    fig = _draw(build, *args, **kwargs)
    img = None
    if fig is not None:
        img = Img(F.drawing(fig, "svg"), round(fig.get_figwidth() * 96), round(fig.get_figheight() * 96))
    if key is not None:
        _DRAWN[key] = img
        while len(_DRAWN) > _DRAWN_MAX:
            _DRAWN.popitem(last=False)
    return img


def svg_uri(build, *args, **kwargs) -> str | None:
    """A figure builder's figure as an SVG data URI (None when there is nothing to draw): the Dagster
    UI's images. SVG, not PNG: it is drawn in 0.06-0.14 s where a PNG of at most 100 kB took 0.08-0.43 s
    (the responders chart was drawn three times before it fitted), it is half the size, and it stays
    sharp when the UI scales it. Shown at 72 px per inch, the size the PNGs had: the metadata column
    is narrow."""
    img = svg(build, *args, **kwargs)
    return F.svg_sized(img.uri, px_per_inch=72) if img is not None else None


def _favours(data: StudyData) -> tuple[str, str] | None:
    if data.single_arm or not data.control:
        return None
    return (f"favours {data.experimental.label}", f"favours {data.control.label}")


def direction_text(param_label: str = "") -> str:
    return "lower = fewer symptoms"


# ------------------------------------------------------------------------------------ figures
def forest_figure(data: StudyData, rows: list[T.EffectRow]) -> Figure | None:
    """Cluster differences (experimental - control) with CIs, one panel per instrument."""
    panels = []
    for inst in data.instruments_present():
        clusters = [
            r for r in rows if data.param(r.paramcd).instrument == inst and data.param(r.paramcd).cluster
        ]
        if not any(fmt.is_num(r.estimate) for r in clusters):
            continue
        panels.append(
            {
                "title": f"{inst} clusters, {data.visit_label(data.primary_visit)}",
                "rows": [
                    {
                        "key": r.paramcd,
                        "label": r.label,
                        "estimate": r.estimate,
                        "conf_low": r.conf_low,
                        "conf_high": r.conf_high,
                        "note": "; ".join(r.notes) or None,
                    }
                    for r in clusters
                ],
            }
        )
    if not panels:
        return None
    exp, ctl = data.experimental.label, data.control.label
    return _draw(
        F.forest,
        panels,
        level=data.level,
        favours=_favours(data),
        xlabel=f"Difference in LS-mean change from baseline, {exp} \u2212 {ctl} (points)",
    )


def _visit_axis(data: StudyData) -> tuple[list, list[str], int | None]:
    """Treatment-phase visits from baseline on (pre-baseline visits are not plotted; follow-up visits and
    time points around an infusion have no LS means), tick labels, primary index."""
    visits = [
        v
        for v in data.visits
        if (data.baseline_visit is None
            or v.order >= (data.visit(data.baseline_visit).order if data.visit(data.baseline_visit) else 0))
        and v.phase == "treatment"
    ]
    short = [v.label.split(" (")[0] for v in visits]
    labels = [s if len(s) <= 12 else v.id for s, v in zip(short, visits, strict=True)]
    labels = [
        f"{lab}\n(nominal day {v.day})" if v.day is not None else lab for lab, v in zip(labels, visits, strict=True)
    ]
    prim = next((i for i, v in enumerate(visits) if v.id == data.primary_visit), None)
    return visits, labels, prim


def _lsmean_series(data: StudyData, paramcd: str, visits) -> list[dict]:
    styles = arm_styles(data)
    series = []
    for a in data.arms:
        pts = []
        for i, v in enumerate(visits):
            if v.id == data.baseline_visit:
                pts.append((i, 0.0, None, None))
                continue
            r = data.lsmean(paramcd, a.id, v.id)
            if r:
                pts.append((i, r.get("estimate"), r.get("conf_low"), r.get("conf_high")))
        if len(pts) > 1:
            series.append({"label": a.label, "style": styles[a.id], "points": pts})
    return series


def change_figure(data: StudyData, paramcd: str) -> Figure | None:
    visits, labels, prim = _visit_axis(data)
    series = _lsmean_series(data, paramcd, visits)
    if not series:
        return None
    p = data.param(paramcd)
    panel = {
        "title": f"{p.instrument} {'total' if p.is_total else p.label}: LS-mean change from baseline",
        "ylabel": f"LS-mean change from baseline, points ({data.level:g}% CI)\nlower = fewer symptoms",
        "series": series,
    }
    return _draw(F.change_over_visits, [panel], xticklabels=labels, primary_index=prim, panel_size=(7.0, 4.0))


def small_multiples_figure(data: StudyData) -> Figure | None:
    """LS-mean change by visit for every other parameter, in report order, five panels a row."""
    visits, labels, prim = _visit_axis(data)
    labels = [lab.split("\n")[0] for lab in labels]
    codes = [c for c in data.paramcds() if c != data.primary_parameter and _lsmean_series(data, c, visits)]
    if not codes:
        return None
    ncols = min(5, len(codes))
    panels = []
    for i, c in enumerate(codes):
        p = data.param(c)
        title = (
            f"{p.instrument} total"
            if p.is_total
            else f"{p.instrument} cluster {p.cluster}\n"
            + (p.label.split("(", 1)[-1].rstrip(")") if p.cluster else p.label)
        )
        panels.append(
            {
                "title": title,
                "series": _lsmean_series(data, c, visits),
                "ylabel": "LS-mean change, points" if i % ncols == 0 else None,
            }
        )
    return _draw(
        F.change_over_visits,
        panels,
        xticklabels=labels,
        primary_index=prim,
        ncols=ncols,
        panel_size=(2.3, 2.3),
    )


SPAGHETTI_MAX_LINES = 200
SPAGHETTI_SEED = 20210105


def _spread_ticks(days: list, parts: int = 16) -> list:
    """Visit days as axis ticks, leaving out a day closer than 1/parts of the range to the tick
    before it (days 0, 1, 2, 4, 7, 9, 11, 14 ... 70 ran into each other: 0, 7, 14 ... 70 are kept)."""
    gap = (days[-1] - days[0]) / parts if len(days) > 1 else 0
    kept: list = []
    for d in days:
        if not kept or d - kept[-1] >= gap:
            kept.append(d)
    return kept


def spaghetti_figure(data: StudyData, paramcd: str, value: str = "aval") -> Figure | None:
    adqs = data.adqs
    if adqs is None or adqs.is_empty():
        return None
    q = adqs.filter(
        (pl.col("paramcd") == paramcd) & pl.col(value).is_not_null() & pl.col("ady").is_not_null()
    )
    if q.is_empty():
        return None
    styles = arm_styles(data)
    day_of = {v.id: v.day for v in data.visits}
    panels = []
    for a in data.arms:
        qa = q.filter(pl.col("trtp") == a.id).sort(["usubjid", "ady"])
        if qa.is_empty():
            continue
        ids = qa.get_column("usubjid").unique(maintain_order=True)
        shown = ids
        if ids.len() > SPAGHETTI_MAX_LINES:
            # beyond a few hundred lines a panel is an ink blot (and an SVG of megabytes): a seeded
            # random sample is drawn, the arm mean uses everyone, and the title says so
            shown = ids.sample(SPAGHETTI_MAX_LINES, seed=SPAGHETTI_SEED)
        qs = qa.filter(pl.col("usubjid").is_in(shown.implode()))
        subjects = [
            list(zip(g["ady"].to_list(), g[value].to_list(), strict=True))
            for _, g in qs.group_by("usubjid", maintain_order=True)
        ]
        means = (
            qa.group_by("avisit")
            .agg(pl.col(value).mean().alias("m"), pl.col("avisitn").first())
            .sort("avisitn")
            .to_dicts()
        )
        mean_pts = [(day_of.get(m["avisit"]), m["m"]) for m in means]
        panels.append(
            {
                "title": f"{a.label} (n = {ids.len()})"
                + (f", {shown.len()} random lines" if shown.len() < ids.len() else ""),
                "style": styles[a.id],
                "subjects": subjects,
                "mean": mean_pts,
                "xticks": _spread_ticks(sorted({d for d in day_of.values() if d is not None})),
            }
        )
    if not panels:
        return None
    p = data.param(paramcd)
    ylim = (0, p.max_score) if value == "aval" and p.max_score else None
    ylabel = (
        f"{p.axis_label}, points"
        if value == "aval"
        else f"Change from baseline in {p.instrument} {'total' if p.is_total else p.label}, points"
    ) + "\nlower = fewer symptoms"
    return _draw(F.spaghetti, panels, xlabel="Study day (days since baseline)", ylabel=ylabel, ylim=ylim)


def responder_figure(data: StudyData, groups: list[dict]) -> Figure | None:
    styles = arm_styles(data)
    fig_groups = []
    for g in groups:
        bars = []
        for a in data.arms:
            r = g["arms"].get(a.id)
            if r is None:
                continue
            bars.append(
                {
                    "label": a.label,
                    "style": styles[a.id],
                    "proportion": r.get("_prop"),
                    "conf_low": r.get("conf_low"),
                    "conf_high": r.get("conf_high"),
                    "text": f"{r.get('n_responders')}/{r.get('n_evaluable')} ({fmt.pct(r.get('_prop'), 0)})",
                }
            )
        if not bars:
            continue
        sub = []
        if g["rd"] != fmt.DASH:
            sub.append(f"RD {g['rd']}")
        if g["p"] != fmt.DASH:
            sub.append(fmt.p_text(g["comp"].get("p_value"), name=_test_name(g["test"])))
        fig_groups.append({"label": g["label"], "sublabel": ", ".join(sub), "bars": bars})
    if not fig_groups:
        return None
    return _draw(F.responders, fig_groups, level=data.level)


def _test_name(test: str) -> str:
    t = (test or "").lower()
    return "Fisher p" if "fisher" in t else ("p" if not t else f"{test} p")


def sensitivity_figure(data: StudyData, rows: list[dict]) -> Figure | None:
    if len(rows) < 2 or data.single_arm:
        return None
    p = data.param(data.primary_parameter)
    panel = {
        "title": f"{p.instrument} {'total' if p.is_total else p.label}, {data.visit_label(data.primary_visit)}",
        "rows": [
            {
                "key": r["model"],
                "label": r["label"],
                "estimate": r["estimate"],
                "conf_low": r["conf_low"],
                "conf_high": r["conf_high"],
                "note": "; ".join(r["notes"]) or None,
            }
            for r in rows
        ],
    }
    return _draw(
        F.forest,
        [panel],
        level=data.level,
        favours=_favours(data),
        gid_prefix="sensitivity-row",
        xlabel=f"Difference in change from baseline, {data.experimental.label} \u2212 "
        f"{data.control.label} (points)",
    )


def flow_figure(data: StudyData, flow: list[dict]) -> Figure | None:
    if not flow or not data.arms:
        return None
    styles = arm_styles(data)
    arms = [
        {
            "label": a.label,
            "style": styles[a.id],
            "counts": [r["counts"].get(a.id, 0) for r in flow],
            "details": [
                "; ".join(f"{why}: {n[a.id]}" for why, n in (r.get("reasons") or {}).items() if n.get(a.id))
                for r in flow
            ],
        }
        for a in data.arms
    ]
    return _draw(F.flow_diagram, [r["short"] for r in flow], arms, [r["total"] for r in flow])


# ----------------------------------------------------------------------------------- context
def _model_section(data: StudyData, provenance: dict | None) -> dict:
    requested = data.options.get("covariance") or (provenance or {}).get("covariance")
    requested_source = "study manifest" if requested else "contract default"
    requested = requested or T.DEFAULT_COVARIANCE
    fits = T.model_rows(data, requested)
    mmrm_fits = [f for f in fits if f["model"] == "mmrm"]
    used_by = {
        r.get("paramcd"): r.get("covariance")
        for r in data.rows("results.model_fits", model="mmrm")
        if r.get("covariance")
    }
    used = sorted(set(used_by.values()))
    common = max(used, key=lambda c: (list(used_by.values()).count(c), c == requested)) if used else None
    exceptions = [f"{data.param(p).full_label}: {c}" for p, c in used_by.items() if c != common]
    used_text = (
        f"{common} for all parameters" + (f" except {'; '.join(exceptions)}" if exceptions else "")
        if common
        else ""
    )
    df_methods = sorted(
        {
            str(r.get("df_method"))
            for r in data.rows("results.treatment_effects", model="mmrm")
            if r.get("df_method")
        }
        | {
            str(r.get("df_method"))
            for r in data.rows("results.model_fits", model="mmrm")
            if r.get("df_method")
        }
    )
    estimation = sorted(
        {
            str(r.get("estimation"))
            for r in data.rows("results.model_fits", model="mmrm")
            if r.get("estimation")
        }
    )
    # The requested structure; a parameter that needed another one is listed as a fallback.
    formula = mmrm_formula(common if len(used) == 1 else requested, with_arm=not data.single_arm)
    fitted = data.model_fit(data.primary_parameter, "mmrm") or {}
    if fitted.get("formula"):
        formula = fitted["formula"]  # the formula actually fitted (results.model_fits.formula)
    return {
        "formula": formula,
        "requested": T.covariance_text(requested),
        "requested_source": requested_source,
        "used": used_text,
        "df_methods": df_methods,
        "estimation": estimation,
        "fits": fits,
        "fallbacks": [f for f in mmrm_fits if f["fallback"]],
        "not_converged": [f for f in fits if f["not_converged"]],
        "has_lmm": any(f["model"] != "mmrm" for f in fits),
    }


def _validation(con, data: StudyData, validation) -> tuple[object | None, str | None]:
    if validation is not None:
        return validation, None
    if not data.run_id:
        return None, "No run id: the validation summary cannot be selected."
    try:
        from pipelines.report.validation import summarize

        return summarize(con, data.study_id, data.run_id), None
    except Exception as exc:  # noqa: BLE001 - the qc tables may be absent in an ad-hoc warehouse
        log.info("validation summary unavailable: %s", exc)
        return None, f"No validation records for run {data.run_id} (qc tables missing or unreadable)."


def _validated_at(con: duckdb.DuckDBPyConnection, data: StudyData):
    """When the run's checks ran: the analysis date of a run not yet in meta.runs (reports are written
    before the publish step records the run)."""
    from pipelines.report.data import columns, has_table

    if not data.run_id or not has_table(con, "qc.validation_results"):
        return None
    if "validated_at" not in columns(con, "qc.validation_results"):
        return None
    return con.execute(
        "select max(validated_at) from qc.validation_results where run_id = ?", [data.run_id]
    ).fetchone()[0]


def _safety(con, data):
    from pipelines.report.safety import safety_section

    return safety_section(con, data)


def _estimands(con, data):
    from pipelines.report.estimands import estimand_sections

    return estimand_sections(con, data, svg=svg)  # passed in: estimands.py does not import study.py back


def context(
    con: duckdb.DuckDBPyConnection, data: StudyData, *, validation=None, provenance: dict | None = None
) -> dict:
    """Everything the template shows (strings and data URIs)."""
    from pipelines.core.provenance import code_version

    rows = T.effect_rows(data) if not data.single_arm else []
    primary_row = next((r for r in rows if r.is_primary), None)
    groups = T.responder_groups(data)
    sens = T.sensitivity_rows(data)
    flow = T.participant_flow(data)
    model = _model_section(data, provenance)
    val, val_note = _validation(con, data, validation)
    prov = dict(provenance or {})
    run = data.run or {}
    analysis_date = run.get("finished_at") or prov.get("finished_at") or _validated_at(con, data)
    primary = data.param(data.primary_parameter)
    missing_instruments = [
        i for i in data.instruments_expected() if i not in data.instruments_present() and i not in data.timepoint_instruments
    ]
    no_results = [r.label for r in rows if "no model results" in r.notes]
    visits_shown = data.visits
    return {
        "d": data,
        "fmt": fmt,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "analysis_date": analysis_date.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if hasattr(analysis_date, "strftime")
        else (str(analysis_date) if analysis_date else None),
        "primary": primary,
        "primary_visit_label": data.visit_label(data.primary_visit),
        "visits": visits_shown,
        "styles": {
            a.id: s["color"]
            for a, s in zip(data.arms, [F.arm_style(i) for i in range(len(data.arms))], strict=True)
        },
        "flow": flow,
        "flow_fig": svg(flow_figure, data, flow),
        "by_visit": T.by_visit_descriptives(data),
        "baseline": T.baseline_characteristics(data),
        "rows": rows,
        "primary_row": primary_row,
        "multiplicity": T.multiplicity_note(data, rows) if rows else "",
        "forest_fig": svg(forest_figure, data, rows) if rows else None,
        "change_fig": svg(change_figure, data, data.primary_parameter),
        "multiples_fig": svg(small_multiples_figure, data),
        "spaghetti_fig": svg(spaghetti_figure, data, data.primary_parameter),
        "groups": groups,
        "responder_fig": svg(responder_figure, data, groups),
        "observed_props": T.observed_proportions(data) if (data.single_arm or not groups) else [],
        "within": T.within_arm_rows(data) if data.single_arm else [],
        "sens": sens,
        "missing_groups": T.missing_item_groups(data),
        "missing_rule": data.options.get("missing_items_method"),
        "sens_fig": svg(sensitivity_figure, data, sens),
        "estimands": _estimands(con, data),
        "model": model,
        "model_labels": MODEL_LABEL,
        "validation": val,
        "validation_note": val_note,
        "hashes": input_hashes(data, prov),
        "code_version_report": code_version(),
        "code_version_run": run.get("code_version") or prov.get("code_version"),
        "run": run,
        "missing_instruments": missing_instruments,
        "no_results": no_results,
        "direction": direction_text(),
        "safety": _safety(con, data),
    }


def render(
    con: duckdb.DuckDBPyConnection,
    study_id: str,
    run_id: str | None = None,
    *,
    validation=None,
    provenance: dict | None = None,
) -> str:
    data = load_study(con, study_id, run_id)
    return (
        _env()
        .get_template("study.html.j2")
        .render(**context(con, data, validation=validation, provenance=provenance))
    )


def build_report(
    con: duckdb.DuckDBPyConnection,
    study_id: str,
    run_id: str | None,
    out_path: str | Path,
    *,
    validation=None,
    provenance: dict | None = None,
) -> Path:
    """Write the study report to ``out_path`` (a directory gets ``<study_id>.html``); returns the file.

    ``validation``: a ``ValidationSummary`` (else ``validation.summarize(con, study_id, run_id)``);
    ``provenance``: optional overrides - ``input_sha256s`` ({file: sha256}), ``code_version``,
    ``finished_at``, ``covariance`` (the requested MMRM structure when ``ref.study`` does not carry it).
    """
    out = Path(out_path)
    if out.is_dir() or out.suffix.lower() not in (".html", ".htm"):
        out = out / f"{study_id}.html"
    page = render(con, study_id, run_id, validation=validation, provenance=provenance)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)  # readers never see half a report
    return out
