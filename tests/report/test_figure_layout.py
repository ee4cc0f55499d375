"""Figure layout a reader would notice: flow-diagram text inside its boxes, trajectory ticks that do
not run into each other."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import FancyBboxPatch

from pipelines.report import figures as F
from pipelines.report.study import _spread_ticks


def test_every_flow_box_holds_its_text_however_many_lines():
    stages = ["Randomized", "Received treatment", "Discontinued before Week 2", "Analysed (MMRM)"]
    arms = [
        {"label": "Ketamine", "style": F.arm_style(0), "counts": [15, 15, 4, 15],
         "details": ["", "", "LOST TO FOLLOW-UP: 3; PHYSICIAN DECISION: 1", ""]},
        {"label": "Midazolam", "style": F.arm_style(1), "counts": [15, 15, 4, 15],
         "details": ["", "", "LOST TO FOLLOW-UP: 4", ""]},
    ]
    fig = F.flow_diagram(stages, arms, [30, 30, 8, 30])
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, FancyBboxPatch)]
    texts = [t for t in ax.texts if t.get_text()]
    assert len(boxes) == len(texts) == 1 + len(stages) * len(arms)
    for t in texts:
        tb = t.get_window_extent(renderer)
        x, y = (tb.x0 + tb.x1) / 2, (tb.y0 + tb.y1) / 2
        box = next(b for b in boxes if b.x0 <= x <= b.x1 and b.y0 <= y <= b.y1)
        assert box.y0 <= tb.y0 and tb.y1 <= box.y1, t.get_text()  # no line over the box's edges
    heights = sorted({round(b.height) for b in boxes})
    assert len(heights) > 1  # the discontinuation boxes are taller than the two-line ones


def test_visit_day_ticks_are_spread_out():
    demo = [0, 1, 2, 4, 7, 9, 11, 14, 21, 28, 35, 42, 49, 56, 63, 70]
    assert _spread_ticks(demo) == [0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70]
    assert _spread_ticks([0, 1, 7, 14]) == [0, 1, 7, 14]  # Feder's visits all stay
    assert _spread_ticks([3]) == [3]
    assert _spread_ticks([]) == []
