"""Figures the HTML report does not have: the Kaplan-Meier plot with numbers at risk.

Same conventions as :mod:`pipelines.report.figures` (Okabe-Ito colours, an arm keeps its colour,
marker and line style; ``Figure`` objects, no pyplot state)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from pipelines.report import figures as F


def km_steps(time, status) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier step function (times from 0, survival) by the product-limit formula."""
    from statsmodels.duration.survfunc import SurvfuncRight

    sf = SurvfuncRight(np.asarray(time, float), np.asarray(status, int))
    return np.r_[0.0, sf.surv_times], np.r_[1.0, sf.surv_prob]


def at_risk(time, ticks) -> list[int]:
    t = np.asarray(time, float)
    return [int((t >= x).sum()) for x in ticks]


def km_plot(panels: list[dict], *, xlabel: str, ylabel: str, width: float = 8.5) -> Figure:
    """``panels``: [{title, note, curves: [{label, style, time, status}]}]. One row of axes per
    panel plus a numbers-at-risk strip under each."""
    with F.style():
        n_arms = max(len(p["curves"]) for p in panels)
        fig = F.new_figure(width, len(panels) * (3.6 + 0.28 * n_arms))
        grid = fig.add_gridspec(2 * len(panels), 1, height_ratios=[3.6, 0.28 * n_arms + 0.35] * len(panels))
        for k, panel in enumerate(panels):
            ax = fig.add_subplot(grid[2 * k])
            tmax = max(float(np.max(c["time"])) for c in panel["curves"]) if panel["curves"] else 1.0
            for c in panel["curves"]:
                st = c["style"]
                x, y = km_steps(c["time"], c["status"])
                x = np.r_[x, tmax]
                y = np.r_[y, y[-1]]
                ax.step(x, y, where="post", color=st["color"], linestyle=st["linestyle"], lw=1.8, label=f"{c['label']} (n = {len(c['time'])})")
                cens = np.asarray(c["time"], float)[np.asarray(c["status"]) == 0]
                if len(cens):
                    ys = [y[np.searchsorted(x, t, side="right") - 1] for t in cens]
                    ax.plot(cens, ys, linestyle="none", marker="|", ms=9, mew=1.4, color=st["color"])
            ax.set_ylim(-0.02, 1.05)
            ax.set_xlim(0, tmax * 1.02)
            ax.axhline(0.5, color=F.LIGHT, lw=0.8, zorder=0)
            ax.set_ylabel(ylabel)
            ax.set_title(panel["title"], loc="left", fontweight="bold")
            ax.grid(color=F.LIGHT, lw=0.6)
            ax.set_axisbelow(True)
            ax.legend(loc="upper right", frameon=False)
            if panel.get("note"):
                ax.text(0.01, 0.04, panel["note"], transform=ax.transAxes, color=F.GREY, fontsize=8.5)
            ticks = [t for t in ax.get_xticks() if 0 <= t <= tmax * 1.02]
            ax.set_xticks(ticks)
            ax.set_xlabel(xlabel)
            risk = fig.add_subplot(grid[2 * k + 1], sharex=ax)
            risk.set_axis_off()
            risk.set_ylim(-0.5, len(panel["curves"]) + 0.2)
            risk.text(0, len(panel["curves"]) - 0.1, "Number at risk", fontsize=8.5, fontweight="bold", ha="left", transform=risk.transData)
            for i, c in enumerate(panel["curves"]):
                yrow = len(panel["curves"]) - 1 - i - 0.2
                risk.annotate(
                    c["label"], xy=(0, yrow), xycoords=("axes fraction", "data"), xytext=(-8, 0),
                    textcoords="offset points", ha="right", va="center", fontsize=8.5, color=c["style"]["color"],
                )
                for t, nrisk in zip(ticks, at_risk(c["time"], ticks), strict=True):
                    risk.text(t, yrow, str(nrisk), ha="center", va="center", fontsize=8.5, color=c["style"]["color"])
    return fig
