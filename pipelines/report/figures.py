"""Matplotlib figures for the study report and the Dagster metadata.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state, safe in Dagster's threads) from
plain inputs (lists of dicts), so the report and the metadata helpers share them. Colours are the
Okabe-Ito colour-blind-safe palette; an arm keeps its colour, marker and line style in every figure
(experimental blue circles, solid; control vermillion squares, dashed), so the figures also read
in greyscale. Symptom scales: lower = fewer symptoms, so a negative difference favours the
experimental arm.
"""

from __future__ import annotations

import base64
import io
import math
import re
from contextlib import contextmanager

import matplotlib
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

OKABE_ITO = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "green": "#009E73",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
ARM_STYLES = [
    {"color": OKABE_ITO["blue"], "marker": "o", "linestyle": "-"},
    {"color": OKABE_ITO["vermillion"], "marker": "s", "linestyle": "--"},
    {"color": OKABE_ITO["green"], "marker": "^", "linestyle": ":"},
]
GREY = "#555555"
LIGHT = "#DDDDDD"
RC = {
    # Text stays text in the SVGs (svg.fonttype none): a third of the bytes of glyph outlines and
    # 35% less time to save (the report's 8 figures: 1.33 -> 0.87 s, 847 -> 298 kB), and it can be
    # searched and read aloud. Laid out with DejaVu Sans metrics; a viewer without DejaVu Sans
    # draws it in the next font of the stack, narrower, so labels still fit.
    "font.family": ["DejaVu Sans", "sans-serif"],
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "trialpipe-report",
    "svg.fonttype": "none",
}


def arm_style(index: int) -> dict:
    return ARM_STYLES[index % len(ARM_STYLES)]


@contextmanager
def style():
    with matplotlib.rc_context(RC):
        yield


def new_figure(w: float, h: float) -> Figure:
    return Figure(figsize=(w, h), layout="constrained")


# ------------------------------------------------------------------------------------------ output
_SVG_URI = "data:image/svg+xml;base64,"


def _sized(svg: str, px_per_inch: float) -> str:
    """The SVG with its width and height in px at ``px_per_inch`` (matplotlib writes them in points,
    which a browser shows at 96 px per inch); the viewBox keeps the drawing."""
    scale = px_per_inch / 72
    return re.sub(r'<svg([^>]*?) width="([\d.]+)pt" height="([\d.]+)pt"',
                  lambda m: f'<svg{m[1]} width="{float(m[2]) * scale:g}" height="{float(m[3]) * scale:g}"', svg, count=1)


def svg_sized(uri: str, px_per_inch: float) -> str:
    """An SVG data URI from :func:`svg_data_uri` shown at ``px_per_inch`` instead."""
    svg = base64.b64decode(uri.removeprefix(_SVG_URI)).decode("utf-8")
    return _SVG_URI + base64.b64encode(_sized(svg, px_per_inch).encode("utf-8")).decode("ascii")


_NO_METADATA = {"svg": {"Date": None}, "png": {"Software": None}}  # the same bytes from the same figure


def figure_bytes(fig: Figure, fmt: str, **options) -> bytes:
    """The figure saved as ``fmt`` ("svg" or "png"; ``options`` such as ``dpi`` go to savefig), in
    the house style. The run's process and its helper process draw with this same call."""
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format=fmt, metadata=_NO_METADATA[fmt], **options)
    return buf.getvalue()


def drawing(fig: Figure, fmt: str, **options):
    """:func:`figure_bytes` under way, in the helper process when there is one
    (:class:`pipelines.core.helper.Later`; ``.result()`` waits for the bytes, the same either way)."""
    from pipelines.core.helper import Later

    return Later(figure_bytes, fig, fmt, **options)


def svg_uri_of(svg: bytes, px_per_inch: float | None = None) -> str:
    """SVG bytes from :func:`figure_bytes` as a data URI; ``px_per_inch``: shown at that size
    (default: the browser's, 96 px per inch)."""
    if px_per_inch is not None:
        svg = _sized(svg.decode("utf-8"), px_per_inch).encode("utf-8")
    return _SVG_URI + base64.b64encode(svg).decode("ascii")


def svg_data_uri(fig: Figure, px_per_inch: float | None = None) -> str:
    """The figure as an SVG data URI; ``px_per_inch``: shown at that size (default: the browser's,
    96 px per inch)."""
    return svg_uri_of(figure_bytes(fig, "svg"), px_per_inch)


def _legend_above(fig: Figure, handles: dict) -> None:
    """One legend for the figure, in a row above the panels (label -> artist, in drawing order)."""
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside upper left", ncols=len(handles), frameon=False)


def _gridlines(ax, axis: str) -> None:
    """Light grid lines across ``axis`` ("x", "y" or "both"), drawn behind the data."""
    ax.grid(axis=axis, color=LIGHT, lw=0.6)
    ax.set_axisbelow(True)


def _right_of_axes(ax, y: float, text: str, **kw) -> None:
    """``text`` in the right margin of ``ax``, level with data height ``y``."""
    ax.annotate(
        text, xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points",
        va="center", fontsize=8.5, **kw,
    )


def _finite(*xs) -> bool:
    return all(x is not None and isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


# -------------------------------------------------------------------------------------- forest
def forest(
    panels: list[dict],
    *,
    xlabel: str,
    favours: tuple[str, str] | None,
    level: float = 95,
    width: float = 9.0,
    gid_prefix: str = "forest-row",
) -> Figure:
    """One panel per instrument. ``panels``: [{title, rows: [{key, label, estimate, conf_low,
    conf_high, note}]}]. Each drawn row gets the SVG id ``<gid_prefix>-<key>``; the estimate and CI
    are printed at the right; ``favours`` = (left label, right label) under the axis."""
    with style():
        heights = [max(len(p["rows"]), 1) * 0.36 + 0.9 + (0.3 if favours else 0) for p in panels]
        fig = new_figure(width, sum(heights))
        axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
        for ax, panel in zip(axes, panels, strict=True):
            rows = panel["rows"]
            ys = list(range(len(rows)))[::-1]
            lims = []
            for y, r in zip(ys, rows, strict=True):
                ok = _finite(r.get("estimate"), r.get("conf_low"), r.get("conf_high"))
                if ok:
                    line = ax.plot(
                        [r["conf_low"], r["conf_high"]], [y, y], color=GREY, lw=1.6, solid_capstyle="butt"
                    )[0]
                    line.set_gid(f"{gid_prefix}-{r['key']}")
                    ax.plot(
                        [r["estimate"]],
                        [y],
                        marker="s",
                        ms=6.5,
                        color=r.get("color") or OKABE_ITO["blue"],
                        mec="white",
                        mew=0.6,
                        zorder=3,
                    )
                    lims += [r["conf_low"], r["conf_high"]]
                    text = f"{r['estimate']:.2f} ({r['conf_low']:.2f}, {r['conf_high']:.2f})"
                else:
                    mark = ax.plot([], [])[0]
                    mark.set_gid(f"{gid_prefix}-{r['key']}")
                    text = r.get("note") or "not estimable"
                _right_of_axes(ax, y, text, ha="left", color="black" if ok else GREY)
            ax.axvline(0, color="black", lw=0.8, zorder=1)
            ax.set_yticks(ys, [r["label"] for r in rows])
            ax.set_ylim(-0.7, len(rows) - 0.3)
            if lims:
                lo, hi = min(lims + [0]), max(lims + [0])
                pad = 0.08 * (hi - lo or 1)
                ax.set_xlim(lo - pad, hi + pad)
            ax.set_title(panel["title"], loc="left", fontweight="bold")
            ax.spines["left"].set_visible(False)
            ax.tick_params(axis="y", length=0)
            _gridlines(ax, "x")
            ax.annotate(
                f"Difference ({level:g}% CI)",
                xy=(1.0, 1.0),
                xycoords="axes fraction",
                xytext=(6, 4),
                textcoords="offset points",
                ha="left",
                va="bottom",
                fontsize=8,
                color=GREY,
            )
        axes[-1].set_xlabel(xlabel)
        if favours:
            # Inside each panel, under its rows, anchored at zero: the two labels never overlap and
            # never collide with tick labels, whatever the axis range.
            for ax in axes:
                ax.set_ylim(-1.5, ax.get_ylim()[1])
                for side, (text, dx, ha) in enumerate(
                    (("\u2190 " + favours[0], -4, "right"), (favours[1] + " \u2192", 4, "left"))
                ):
                    ax.annotate(
                        text,
                        xy=(0, -1.05),
                        xycoords="data",
                        xytext=(dx, 0),
                        textcoords="offset points",
                        ha=ha,
                        va="center",
                        fontsize=8,
                        color=arm_style(side)["color"],
                        annotation_clip=False,
                    )
        fig.get_layout_engine().set(w_pad=0.1, h_pad=0.12)
    return fig


# ----------------------------------------------------------------------------- change over visits
def change_over_visits(
    panels: list[dict],
    *,
    xticklabels: list[str],
    primary_index: int | None,
    ncols: int = 1,
    panel_size: tuple[float, float] = (6.5, 3.6),
    legend: bool = True,
) -> Figure:
    """Mean change by visit and arm with CI bars. ``panels``: [{title, ylabel, series: [{label, style,
    points: [(x_index, estimate, lo, hi)]}]}] (None panel = empty grid cell). The baseline point (0 at
    index 0) is drawn without a CI."""
    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    with style():
        fig = new_figure(panel_size[0] * ncols, panel_size[1] * nrows + (0.3 if legend else 0))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        handles = {}
        for i, panel in enumerate(panels):
            ax = axes[i // ncols][i % ncols]
            if panel is None:
                ax.set_axis_off()
                continue
            k = len(panel["series"])
            for j, s in enumerate(panel["series"]):
                st = s["style"]
                off = (j - (k - 1) / 2) * 0.08
                pts = [p for p in s["points"] if _finite(p[1])]
                if not pts:
                    continue
                xs = [p[0] + off for p in pts]
                ys = [p[1] for p in pts]
                h = ax.plot(
                    xs,
                    ys,
                    color=st["color"],
                    marker=st["marker"],
                    linestyle=st["linestyle"],
                    lw=1.6,
                    ms=5,
                    label=s["label"],
                )[0]
                handles.setdefault(s["label"], h)
                bars = [(x, p[2], p[3]) for x, p in zip(xs, pts, strict=True) if _finite(p[2], p[3])]
                if bars:  # CI bar and its two caps, one artist for the series
                    ax.add_collection(LineCollection(
                        [seg for x, lo, hi in bars for seg in (
                            [(x, lo), (x, hi)], [(x - 0.03, lo), (x + 0.03, lo)], [(x - 0.03, hi), (x + 0.03, hi)])],
                        colors=st["color"], linewidths=[1.2, 1.0, 1.0] * len(bars),
                    ))
            ax.axhline(0, color=GREY, lw=0.7)
            if primary_index is not None:
                ax.axvspan(primary_index - 0.4, primary_index + 0.4, color="#F2F2F2", zorder=0)
            ax.set_xticks(range(len(xticklabels)), xticklabels)
            ax.set_xlim(-0.4, len(xticklabels) - 0.6)
            ax.set_title(
                panel["title"],
                loc="left",
                fontweight="bold" if n == 1 else None,
                fontsize=None if n == 1 else 9,
            )
            if panel.get("ylabel"):
                ax.set_ylabel(panel["ylabel"])
            _gridlines(ax, "y")
            if panel.get("note"):
                ax.text(0.5, 0.5, panel["note"], transform=ax.transAxes, ha="center", va="center", color=GREY)
        if legend and handles:
            _legend_above(fig, handles)
    return fig


# ---------------------------------------------------------------------------------- spaghetti
def spaghetti(
    panels: list[dict],
    *,
    xlabel: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
    panel_size: tuple[float, float] = (3.9, 3.4),
) -> Figure:
    """One panel per arm: each subject's values over study day (thin lines), the arm's mean by
    visit (thick line, markers). ``panels``: [{title, style, subjects: [[(day, value), ...]],
    mean: [(day, value)]}]."""
    with style():
        fig = new_figure(panel_size[0] * len(panels), panel_size[1])
        axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
        for ax, panel in zip(axes, panels, strict=True):
            st = panel["style"]
            for pts in panel["subjects"]:
                pts = [p for p in pts if _finite(p[0], p[1])]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=st["color"], alpha=0.35, lw=0.9)
            m = [p for p in panel["mean"] if _finite(p[0], p[1])]
            if m:
                ax.plot([p[0] for p in m], [p[1] for p in m], color="black", lw=3.2, zorder=3)
                ax.plot(
                    [p[0] for p in m],
                    [p[1] for p in m],
                    color=st["color"],
                    lw=2.0,
                    marker=st["marker"],
                    ms=5,
                    linestyle=st["linestyle"],
                    zorder=4,
                    label="arm mean",
                )
            ax.set_title(panel["title"], loc="left", fontweight="bold")
            ax.set_xlabel(xlabel)
            _gridlines(ax, "both")
            if panel.get("xticks"):
                ax.set_xticks(panel["xticks"])
        axes[0].set_ylabel(ylabel)
        if ylim:
            axes[0].set_ylim(*ylim)
    return fig


# --------------------------------------------------------------------------------- responders
def responders(groups: list[dict], *, level: float = 95, width: float = 7.5) -> Figure:
    """Horizontal bars: proportion (%) per arm with CI, one group per criterion, the risk difference
    and p printed under the group label. ``groups``: [{label, sublabel, bars: [{label, style,
    proportion (0-1), conf_low, conf_high, text}]}]."""
    with style():
        nbars = sum(len(g["bars"]) for g in groups)
        fig = new_figure(width, 0.3 * nbars + 0.3 * len(groups) + 0.9)
        ax = fig.subplots()
        y = 0.0
        yt, yl = [], []
        handles = {}
        for g in groups:
            top = y
            for b in g["bars"]:
                st = b["style"]
                p = b.get("proportion")
                if _finite(p):
                    h = ax.barh(
                        y,
                        100 * p,
                        height=0.75,
                        color=st["color"],
                        alpha=0.85,
                        label=b["label"],
                        hatch=None if st["linestyle"] == "-" else "///",
                        edgecolor="white",
                        lw=0,
                    )
                    handles.setdefault(b["label"], h)
                    if _finite(b.get("conf_low"), b.get("conf_high")):
                        ax.plot([100 * b["conf_low"], 100 * b["conf_high"]], [y, y], color="black", lw=1.1)
                        for x in (100 * b["conf_low"], 100 * b["conf_high"]):
                            ax.plot([x, x], [y - 0.15, y + 0.15], color="black", lw=1.1)
                _right_of_axes(ax, y, b.get("text", ""))
                y += 1
            yt.append((top + y - 1) / 2)
            yl.append(g["label"] + ("\n" + g["sublabel"] if g.get("sublabel") else ""))
            y += 0.6
        ax.set_yticks(yt, yl)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel(f"Participants meeting the criterion, %\n(bars: {level:g}% CI)")  # one line overran a narrow axis
        _gridlines(ax, "x")
        ax.tick_params(axis="y", length=0)
        if handles:
            _legend_above(fig, handles)
    return fig


# -------------------------------------------------------------------------------------- flow
def flow_diagram(stages: list[str], arms: list[dict], total: list[int | None]) -> Figure:
    """CONSORT-like boxes: a 'Randomized N' box splitting into one column per arm, each with a box per
    stage. ``arms``: [{label, style, counts: [n per stage]}]; ``total``: N per stage. A stage's boxes
    are as tall as its longest text (a discontinuation box listing reasons has four lines)."""
    from matplotlib.patches import FancyBboxPatch

    texts = []  # texts[stage][arm]
    for i, stage in enumerate(stages):
        row = []
        for arm in arms:
            detail = (arm.get("details") or [""] * len(stages))[i]
            label = arm["label"] if i == 0 else _short_stage(stage)
            row.append(f"{label}\nn = {arm['counts'][i]}" + (f"\n{_short_stage(detail)}" if detail else ""))
        texts.append(row)
    # data units: a two-line box is 0.66 tall, each further line adds 0.2; 0.29 between boxes
    heights = [max(0.66, 0.26 + 0.2 * max((t.count("\n") + 1 for t in row), default=2)) for row in texts]
    tops = [-0.57]
    for h in heights[:-1]:
        tops.append(tops[-1] - h - 0.29)
    bottom = tops[-1] - heights[-1] - 0.07
    with style():
        ncol = max(len(arms), 1)
        fig = new_figure(max(2.9 * ncol, 3.6) + 0.2, 0.1 + 0.84 * (0.95 - bottom))
        ax = fig.subplots()
        ax.set_axis_off()
        ax.set_xlim(-0.1 if ncol == 1 else 0, ncol + (0.1 if ncol == 1 else 0))

        def box(x, y, text, color, height=0.66):
            ax.add_patch(
                FancyBboxPatch(
                    (x - 0.44, y - height / 2),
                    0.88,
                    height,
                    boxstyle="round,pad=0.02,rounding_size=0.06",
                    fc="white",
                    ec=color,
                    lw=1.4,
                )
            )
            ax.text(x, y, text, ha="center", va="center", fontsize=9)

        box(
            ncol / 2, 0.55, f"{stages[0]}\nN = {total[0] if total and total[0] is not None else '?'}", "black"
        )
        for j, arm in enumerate(arms):
            x = j + 0.5
            color = arm["style"]["color"]
            ax.annotate(
                "",
                xy=(x, tops[0]),
                xytext=(ncol / 2, 0.25),
                arrowprops={"arrowstyle": "-|>", "color": GREY, "lw": 0.9},
            )
            for i in range(len(stages)):
                box(x, tops[i] - heights[i] / 2, texts[i][j], color, heights[i])
                if i:
                    ax.annotate(
                        "",
                        xy=(x, tops[i]),
                        xytext=(x, tops[i - 1] - heights[i - 1]),
                        arrowprops={"arrowstyle": "-|>", "color": GREY, "lw": 0.9},
                    )
        ax.set_ylim(bottom, 0.95)
    return fig


def _short_stage(stage: str) -> str:
    import textwrap

    return textwrap.fill(stage, 30)


# ------------------------------------------------------------------------------- Kaplan-Meier
def kaplan_meier(
    arms: list[dict], *, xlabel: str = "Days since the primary visit", ylabel: str = "Still responding",
    width: float = 7.0, risk_times: list[float] | None = None,
) -> Figure:
    """Kaplan-Meier step curves per arm with censoring ticks, pointwise CI bands and the numbers at
    risk under the axis. ``arms``: ``{"label", "steps": [{"time", "n_risk", "n_events", "n_censored",
    "survival", "conf_low", "conf_high"}, ...], "median": float | None}`` in display order."""
    fig = new_figure(width, 3.2 + 0.25 * len(arms))
    gs = fig.add_gridspec(2, 1, height_ratios=[5, 0.45 + 0.3 * len(arms)])
    ax = fig.add_subplot(gs[0])
    table = fig.add_subplot(gs[1], sharex=ax)
    t_max = max((s["time"] for a in arms for s in a["steps"]), default=1.0) or 1.0
    if risk_times is None:
        step = 7.0 if t_max <= 120 else 28.0
        risk_times = [step * k for k in range(int(t_max // step) + 1)]
    with style():
        for i, a in enumerate(arms):
            st = arm_style(i)
            steps = a["steps"]
            xs = [s["time"] for s in steps]
            ys = [s["survival"] for s in steps]
            ax.step(xs, ys, where="post", color=st["color"], linestyle=st["linestyle"], linewidth=1.6,
                    label=f"{a['label']} (n = {steps[0]['n_risk'] if steps else 0})")
            lo = [s["conf_low"] if s["conf_low"] is not None else 0.0 for s in steps]
            hi = [s["conf_high"] if s["conf_high"] is not None else ys[k] for k, s in enumerate(steps)]
            ax.fill_between(xs, lo, hi, step="post", color=st["color"], alpha=0.12, linewidth=0)
            cx = [s["time"] for s in steps if s["n_censored"]]
            cy = [s["survival"] for s in steps if s["n_censored"]]
            ax.plot(cx, cy, linestyle="none", marker="|", markersize=8, color=st["color"])
            for k, t in enumerate(risk_times):
                n = next((s["n_risk"] for s in steps if s["time"] >= t), 0)
                table.text(t, len(arms) - 1 - i, str(n), ha="center", va="center", color=st["color"], fontsize=8)
            table.text(-0.05 * t_max, len(arms) - 1 - i, a["label"], ha="right", va="center", color=st["color"],
                       fontsize=8)
        ax.axhline(0.5, color=LIGHT, linewidth=0.8, zorder=0)
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, t_max * 1.03)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper right", frameon=False)
        ax.tick_params(labelbottom=True)
        ax.set_xlabel(xlabel)
        table.set_ylim(-0.6, len(arms) - 0.4)
        table.set_yticks([])
        table.set_xticks(risk_times)
        table.tick_params(axis="x", labelbottom=False, length=0)
        for side in ("top", "right", "left", "bottom"):
            table.spines[side].set_visible(False)
        table.set_title("Number at risk", fontsize=8, loc="left", color=GREY)
    return fig
