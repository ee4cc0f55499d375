"""The helper process draws figures and writes RTF tables to the same bytes as the run's process, and
the run never depends on it: an unpicklable figure, a dead helper, or a call the helper has not begun
when the run's process would wait - each is done in the run's process."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import duckdb
import pytest
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from pipelines.core import helper
from pipelines.report import figures as F
from pipelines.report import study as S
from pipelines.tlf.package import build_package
from pipelines.tlf.shells import load_shells

STUDY = "FEDERSIM-7"
STAMPED = {".xpt", ".xml"}  # creation times inside


def _calls(w, monkeypatch) -> list[str]:
    """What went to the helper (function names), as it is sent."""
    sent: list[str] = []
    real = type(w).call

    def counted(self, func, args, kwargs, fallback=None):
        ticket = real(self, func, args, kwargs, fallback)
        sent.append(func.__qualname__ if ticket is not None else f"{func.__qualname__}: not sent")
        return ticket

    monkeypatch.setattr(type(w), "call", counted)
    return sent


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix not in STAMPED}


def test_the_package_through_the_helper_is_the_package_built_here(tlf_studies, tmp_path, worker, monkeypatch):
    sent = _calls(worker, monkeypatch)
    with duckdb.connect(str(tlf_studies["safety"]), read_only=True) as con:
        by_helper = build_package(con, STUDY, tmp_path / "helper")
        helper.stop()
        here = build_package(con, STUDY, tmp_path / "here")
    # the helper got the preparation, every figure's PNG and every table's RTF file
    assert sent[0] == "_prepare" and sent.count("figure_bytes") == sum(o.png is not None for o in here.outputs) >= 3
    assert sent.count("_write_rtf") == sum(o.png is None for o in here.outputs) >= 10, sent
    mine, theirs = _files(tmp_path / "helper"), _files(tmp_path / "here")
    assert sorted(mine) == sorted(theirs) and not [n for n in mine if n.endswith(".part")]
    assert [n for n in mine if mine[n] != theirs[n]] == []
    assert [o.as_dict() for o in by_helper.outputs] == [o.as_dict() for o in here.outputs]  # in shell order
    assert [o.shell.label for o in here.outputs] == [sh.label for sh in load_shells()]


def test_the_report_through_the_helper_is_the_report_drawn_here(tlf_studies, worker, monkeypatch):
    sent = _calls(worker, monkeypatch)
    with duckdb.connect(str(tlf_studies["safety"]), read_only=True) as con:
        S._DRAWN.clear()
        by_helper = S.render(con, STUDY)
        helper.stop()
        S._DRAWN.clear()
        here = S.render(con, STUDY)
    assert sent.count("figure_bytes") >= 5, sent

    def without_clock(html: str) -> str:  # the page says when it was generated, to the minute
        import re

        return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "", html)

    assert without_clock(by_helper) == without_clock(here)


def _figure(formatter=None) -> Figure:
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [3, 1, 2])
    if formatter is not None:
        ax.yaxis.set_major_formatter(formatter)
    return fig


def test_a_figure_that_does_not_pickle_is_drawn_here(worker, monkeypatch):
    sent = _calls(worker, monkeypatch)
    fig = _figure(FuncFormatter(lambda v, _pos: f"{v:.1f}"))  # a lambda: not picklable
    with pytest.raises(Exception):
        pickle.dumps(fig)
    later = F.drawing(fig, "png", dpi=50)
    assert not later.sent and sent == ["figure_bytes: not sent"]
    assert later.result() == F.figure_bytes(fig, "png", dpi=50)


def test_a_dead_helper_means_drawing_here(worker):
    figs = [_figure() for _ in range(3)]
    laters = [F.drawing(f, "svg") for f in figs]
    assert all(x.sent for x in laters)
    worker.proc.kill()
    worker.proc.wait()
    assert [x.result() for x in laters] == [F.figure_bytes(f, "svg") for f in figs]
    assert helper.current() is None  # not tried again
    assert not F.drawing(figs[0], "svg").sent


def test_the_run_process_takes_over_what_the_helper_has_not_begun(worker):
    """A slow call at the head of the queue: while waiting for it, this process does the later
    calls itself (and the helper skips them); answers still go to the right requests. A call the
    helper has not begun is done here rather than waited for."""
    import time

    assert worker.answer(worker.call(os.getpid, (), {})) == worker.proc.pid  # ready (GX imported)
    slow = helper.Later(time.sleep, 1.0)
    figs = [_figure() for _ in range(4)]
    laters = [F.drawing(f, "png", dpi=40) for f in figs]
    waited = time.perf_counter()
    slow.result()
    waited = time.perf_counter() - waited
    # the four figures were drawn here while the helper slept, so they are done already
    assert all(x._ticket.status == "ok" for x in laters), [x._ticket.status for x in laters]
    assert [x.result() for x in laters] == [F.figure_bytes(f, "png", dpi=40) for f in figs]
    assert waited < 5
    # the helper skipped them, and the next request gets its own answer
    assert worker.answer(worker.call(os.getpid, (), {})) == worker.proc.pid


def test_answers_larger_than_a_pipe_do_not_stop_either_process(worker):
    """Many large answers unread while more requests go out (the helper writes answers from a
    thread of its own; this process reads while it sends)."""
    big = b"x" * (3 << 20)
    tickets = [worker.call(bytes, (big,), {}) for _ in range(6)]
    assert all(t is not None for t in tickets)
    assert all(worker.answer(t) == big for t in tickets)


def test_a_call_the_helper_has_not_begun_is_done_here_not_waited_for(worker):
    import time

    assert worker.answer(worker.call(os.getpid, (), {})) == worker.proc.pid  # ready (GX imported)
    busy = helper.Later(time.sleep, 1.0)
    mine = helper.Later(os.getpid)
    time.sleep(0.2)
    t = time.perf_counter()
    assert mine.result() == os.getpid()  # done here: the helper would have answered with its own pid
    assert time.perf_counter() - t < 0.5
    busy.result()
    assert worker.answer(worker.call(os.getpid, (), {})) == worker.proc.pid  # still in step
