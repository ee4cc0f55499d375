"""A figure is drawn once per content in a process: the efficacy step's Dagster figures are the
report's, and a change in what a figure shows draws it again."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from pipelines.report import figures as F
from pipelines.report import study as S
from pipelines.report import tables as T
from pipelines.report.data import content_digest, load_study
from tests.report.fixtures import STUDY


@pytest.fixture
def con(built):
    c = duckdb.connect(str(built["two"]), read_only=True)
    yield c
    c.close()


@pytest.fixture
def counted(monkeypatch):
    """The figure builders S._draw calls, by name, with an empty figure memo."""
    monkeypatch.setattr(S, "_DRAWN", type(S._DRAWN)())
    calls: list[str] = []
    real = S._draw

    def draw(build, *args, **kwargs):
        calls.append(build.__name__)
        return real(build, *args, **kwargs)

    monkeypatch.setattr(S, "_draw", draw)
    return calls


def test_content_digest_is_by_content_not_by_object_or_row_order():
    a = pl.DataFrame({"x": [1, 2, 3], "y": ["a", "b", None]})
    assert content_digest(a) == content_digest(a.reverse()) == content_digest(a.clone())
    assert content_digest(a) != content_digest(a.with_columns(pl.col("x") * 2))
    assert content_digest(a) != content_digest(a.head(2))
    assert content_digest(a) != content_digest(a.cast({"x": pl.Float64}))  # the schema counts
    assert content_digest([1, "a"], {"k": 1.5}) == content_digest([1, "a"], {"k": 1.5})
    assert content_digest({"k": 1}) != content_digest({"k": 2})
    assert content_digest(object()) is None  # no content to compare: never cached


def test_the_same_rows_loaded_twice_draw_once(con, counted):
    first = load_study(con, STUDY)
    second = load_study(con, STUDY)  # another load: other objects, rows maybe in another order
    assert content_digest(first) == content_digest(second)
    rows = [r for r in T.effect_rows(first) if first.effect(r.paramcd)]
    uri = S.svg_uri(S.forest_figure, first, rows)  # as the efficacy step's metadata draws it
    img = S.svg(S.forest_figure, second, [r for r in T.effect_rows(second) if second.effect(r.paramcd)])  # the report
    assert uri.startswith("data:image/svg+xml;base64,") and F.svg_sized(img.uri, px_per_inch=72) == uri
    assert counted.count("forest_figure") == 1


def test_ui_figures_are_shown_at_72_px_per_inch():
    import base64

    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4))
    fig.add_subplot().plot([1, 2])
    uri = F.svg_sized(F.svg_data_uri(fig), px_per_inch=72)
    text = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert '<svg xmlns:xlink="http://www.w3.org/1999/xlink" width="576" height="288" viewBox="0 0 576 288"' in text


def test_other_numbers_draw_again(con, counted):
    data = load_study(con, STUDY)
    rows = [r for r in T.effect_rows(data) if data.effect(r.paramcd)]
    before = S.svg(S.forest_figure, data, rows)
    te = data.results["results.treatment_effects"]
    data.results["results.treatment_effects"] = te.with_columns(pl.col("estimate") - 1.0)
    after = S.svg(S.forest_figure, data, [r for r in T.effect_rows(data) if data.effect(r.paramcd)])
    assert counted.count("forest_figure") == 2 and after.uri != before.uri
    S.svg(S.change_figure, data, data.primary_parameter)
    S.svg(S.change_figure, data, "PCL5TOT")  # another argument, another figure
    assert counted.count("change_figure") == 2
