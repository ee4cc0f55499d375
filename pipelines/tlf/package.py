"""The whole package for one study: every shell to RTF and HTML, the ADaM datasets to XPT, Define-XML
and an index page linking them all."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.report.data import load_study
from pipelines.tlf.builders import BUILDERS, Absent, Context, FigureOut
from pipelines.tlf.define import write_define
from pipelines.tlf.html import write_html, write_index
from pipelines.tlf.rtf import write_rtf
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
    data = load_study(con, study_id, run_id)
    run_id = run_id or data.run_id
    ctx = Context(con, data)
    pkg = Package(study_id, out)
    for shell in load_shells():
        built = BUILDERS[shell.builder](ctx)
        rtf_path = out / f"{shell.file_stem}.rtf"
        png = out / f"{shell.file_stem}.png" if isinstance(built, FigureOut) else None
        with contextlib.redirect_stdout(io.StringIO()):  # rtflite prints the path it wrote
            write_rtf(shell, built, rtf_path, study_id, run_id, png=png)
        html_path = write_html(shell, built, out / f"{shell.file_stem}.html", study_id, run_id, png=png)
        absent = isinstance(built, Absent)
        pkg.outputs.append(
            Output(
                shell,
                "absent" if absent else "written",
                built.reason if absent else "",
                rtf_path,
                html_path,
                png,
                len(built.rows) if hasattr(built, "rows") else None,
                built.figure if isinstance(built, FigureOut) else None,
            )
        )
        say(f"{shell.label:<13} {'no data: ' + built.reason if absent else shell.title}")
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
