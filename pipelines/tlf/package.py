"""The whole package for one study: every shell to RTF and HTML, the ADaM datasets to XPT, Define-XML
and an index page linking them all."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.core.helper import Later
from pipelines.report.data import load_study
from pipelines.report.figures import drawing
from pipelines.tlf.builders import BUILDERS, Absent, Context, FigureOut
from pipelines.tlf.define import write_define
from pipelines.tlf.html import write_html, write_index
from pipelines.tlf.rtf import FIGURE_DPI, load_fonts_once, write_rtf
from pipelines.tlf.shells import Shell, load_shells
from pipelines.tlf.submission import Dataset, SubmissionError, build_dataset, spec, write_xpt

log = logging.getLogger(__name__)


@dataclass
class Output:
    shell: Shell
    status: str  # written | absent
    reason: str
    rtf: Path
    html: Path
    png: Path | None = None
    rows: int | None = None
    figure: object | None = None  # the matplotlib Figure of a figure output (for previews)

    def as_dict(self) -> dict:
        return {
            "label": self.shell.label,
            "title": self.shell.title,
            "status": self.status,
            "reason": self.reason,
            "rtf": self.rtf.name,
            "html": self.html.name,
        }


@dataclass
class Package:
    study_id: str
    out_dir: Path
    outputs: list[Output] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    xpt: list[Path] = field(default_factory=list)
    define: Path | None = None
    index: Path | None = None
    # datasets that break an XPORT v5 rule: not written, the reason says what to change
    problems: list[str] = field(default_factory=list)

    @property
    def written(self) -> list[Output]:
        return [o for o in self.outputs if o.status == "written"]

    @property
    def absent(self) -> list[Output]:
        return [o for o in self.outputs if o.status != "written"]


def build_package(
    con: duckdb.DuckDBPyConnection,
    study_id: str,
    out_dir: str | Path,
    *,
    run_id: str | None = None,
    progress: Callable[[str], None] | None = None,
    code_version: str = "",
) -> Package:
    """Write the TLF package of ``study_id`` into ``out_dir``; absent data make 'no data' outputs, not errors.
    A dataset that breaks an XPORT v5 rule is not written; the reason goes to ``Package.problems``
    (the tables, figures and every conforming dataset are still written)."""
    say = progress or (lambda _m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The figures' PNGs and the tables' RTF files are made in the helper process when there is one
    # (matplotlib and rtflite are 1.5 s of a Feder-size package), while this process writes the HTML
    # and the datasets, and takes over what the helper has not begun when it would otherwise wait;
    # the figures' RTF files, which embed their PNGs, come last. The helper imports rtflite while
    # the outputs are built.
    ready = Later(_prepare)
    data = load_study(con, study_id, run_id)
    run_id = run_id or data.run_id
    ctx = Context(con, data)
    pkg = Package(study_id, out)
    built = [(shell, BUILDERS[shell.builder](ctx)) for shell in load_shells()]
    drawings = {
        shell.file_stem: drawing(b.figure, "png", dpi=FIGURE_DPI) for shell, b in built if isinstance(b, FigureOut)
    }
    rtfs = {
        shell.file_stem: Later(_write_rtf, shell, b, out / f"{shell.file_stem}.rtf", study_id, run_id)
        for shell, b in built
        if shell.file_stem not in drawings
    }
    outputs: dict[str, Output] = {}

    def write(shell: Shell, b) -> None:
        rtf_path = out / f"{shell.file_stem}.rtf"
        png = out / f"{shell.file_stem}.png" if isinstance(b, FigureOut) else None
        html_path = write_html(shell, b, out / f"{shell.file_stem}.html", study_id, run_id, png=png)
        absent = isinstance(b, Absent)
        outputs[shell.file_stem] = Output(
            shell,
            "absent" if absent else "written",
            b.reason if absent else "",
            rtf_path,
            html_path,
            png,
            len(b.rows) if hasattr(b, "rows") else None,
            b.figure if isinstance(b, FigureOut) else None,
        )

    for shell, b in built:
        if shell.file_stem in rtfs:
            write(shell, b)
    for name in spec()["datasets"]:
        try:
            ds = build_dataset(con, study_id, name)
            if ds is None:
                continue
            pkg.xpt.append(write_xpt(ds, out))
        except SubmissionError as exc:
            pkg.problems.append(str(exc))
            (out / f"{name.lower()}.xpt").unlink(missing_ok=True)
            say(f"{name:<13} NOT written: {exc}")
            continue
        pkg.datasets.append(ds)
        say(f"{ds.name:<13} {ds.file_name}: {ds.frame.height} records, {len(ds.variables)} variables")
    for shell, b in built:
        if shell.file_stem in rtfs:
            rtfs[shell.file_stem].result()
        else:
            _write_rtf(shell, b, out / f"{shell.file_stem}.rtf", study_id, run_id, png=out / f"{shell.file_stem}.png",
                       drawing=drawings[shell.file_stem])
            write(shell, b)
        o = outputs[shell.file_stem]
        say(f"{shell.label:<13} {shell.title if o.status == 'written' else 'no data: ' + o.reason}")
    ready.result()
    pkg.outputs = [outputs[shell.file_stem] for shell, _ in built]
    if pkg.datasets:
        pkg.define = write_define(pkg.datasets, out / "define.xml", study_id, study_title=data.title, code_version=code_version)
        say(f"{'Define-XML':<13} define.xml: {len(pkg.datasets)} datasets")
    pkg.index = write_index(
        out / "index.html",
        study_id,
        run_id,
        [o.as_dict() for o in pkg.outputs],
        [{"name": d.name, "label": d.label, "rows": d.frame.height, "vars": len(d.variables), "file": d.file_name} for d in pkg.datasets],
        pkg.define.name if pkg.define else None,
    )
    return pkg


def _prepare() -> None:
    """Import what writing an RTF file needs (in the helper process, ahead of its first file)."""
    load_fonts_once()


def _write_rtf(shell: Shell, built, path: Path, study_id: str, run_id: str | None, png: Path | None = None, drawing=None) -> Path:
    """:func:`pipelines.tlf.rtf.write_rtf`, without rtflite's print of the path it wrote, and whole or
    not at all: the file appears by a rename (this process and the helper both write it, the same
    bytes, when this process took over a call the helper began a moment later)."""
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            write_rtf(shell, built, part, study_id, run_id, png=png, drawing=drawing)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path
