"""One output -> one RTF file with rtflite (the Python port of r2rtf).

Layout of every output: title block (``Table 14.2.1`` / title / population), column headers
(with an optional spanning row), the body, footnotes (the shell's, then the data's, then the
derivation), and the source line naming the datasets and the study. Figures are embedded PNGs.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import rtflite as rtf

from pipelines.tlf.builders import Absent, FigureOut, TableOut
from pipelines.tlf.shells import Shell

FONT_SIZE = 8
TITLE_SIZE = 10
# Usable width (inches) inside the margins rtflite uses for each orientation.
COL_WIDTH = {"portrait": 6.25, "landscape": 9.0}


def _page(shell: Shell, nrow: int | None = None) -> rtf.RTFPage:
    if shell.orientation == "landscape":
        return rtf.RTFPage(
            orientation="landscape",
            margin=[0.8, 0.8, 1.0, 0.8, 0.6, 0.5],
            col_width=COL_WIDTH["landscape"],
            nrow=nrow or 44,
        )
    return rtf.RTFPage(
        orientation="portrait", margin=[1.0, 1.0, 1.0, 0.9, 0.6, 0.5], col_width=COL_WIDTH["portrait"], nrow=nrow or 60
    )


def title_lines(shell: Shell, study_id: str) -> list[str]:
    return [f"{shell.label}", shell.title, shell.population]


def footnote_lines(shell: Shell, notes: list[str]) -> list[str]:
    return [*shell.footnotes, *notes, f"Derivation: {shell.derivation}"]


def source_line(shell: Shell, study_id: str, run_id: str | None) -> str:
    run = f"; run {run_id}" if run_id else ""
    return f"Source: {', '.join(shell.source)} (study {study_id}{run}). Output {shell.file_stem}.rtf"


def _page_header(study_id: str) -> rtf.RTFPageHeader:
    # rtflite's default "Page \\chpgn of" loses the space after the page number (it ends the control
    # word); a group keeps it.
    return rtf.RTFPageHeader(
        text=[esc(f"Study {study_id}") + "    Page {\\chpgn} of {\\field{\\*\\fldinst NUMPAGES }{\\fldrslt {\\fs16 1}}}"],
        text_font_size=[FONT_SIZE],
    )


def _title(shell: Shell, study_id: str) -> rtf.RTFTitle:
    return rtf.RTFTitle(
        text=[esc(t) for t in title_lines(shell, study_id)],
        text_format=["b", "b", ""],
        text_font_size=[TITLE_SIZE],
        text_convert=[False],
        text_space_before=[6],
        text_space_after=[6],
    )


def _footnote(lines: list[str]) -> rtf.RTFFootnote:
    return rtf.RTFFootnote(text=[esc(x) for x in lines], text_convert=[[False]], text_font_size=[[FONT_SIZE - 1]], as_table=False)


def _source(text: str) -> rtf.RTFSource:
    return rtf.RTFSource(text=[esc(text)], text_convert=[[False]], text_font_size=[[FONT_SIZE - 1]], text_justification=[["l"]])


def esc(s: str) -> str:
    """Text for rtflite with text conversion off: RTF specials escaped, and characters 128-255 as
    \\u escapes (rtflite writes those raw into a UTF-8 file, which RTF readers take as ANSI)."""
    s = s.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")
    return "".join(f"\\uc1\\u{ord(c)}*" if 127 < ord(c) <= 255 else c for c in s)


def _clean(s: str) -> str:
    return esc(s.replace("\n", " "))


def _doc_table(shell: Shell, out: TableOut, study_id: str, run_id: str | None) -> rtf.RTFDocument:
    import polars as pl

    ncol = len(out.columns)
    names = [f"c{i}" for i in range(ncol)]
    df = pl.DataFrame({n: [esc(r[i]) for r in out.rows] for i, n in enumerate(names)}, schema={n: pl.String for n in names})
    headers = []
    widths = list(out.widths)
    if out.spanners:
        span_widths = []
        i = 0
        for _, k in out.spanners:
            span_widths.append(sum(widths[i : i + k]))
            i += k
        headers.append(
            rtf.RTFColumnHeader(
                text=[esc(t) for t, _ in out.spanners],
                col_rel_width=span_widths,
                text_font_size=[FONT_SIZE],
                text_format=["b"],
                text_convert=[False],
                border_bottom=["single" if t else "" for t, _ in out.spanners],
            )
        )
    headers.append(
        rtf.RTFColumnHeader(
            text=[_clean(c) for c in out.columns],
            col_rel_width=widths,
            text_font_size=[FONT_SIZE],
            text_format=["b"],
            text_justification=list(out.justify),
            text_convert=[False],
            border_bottom=["single"] * ncol,
        )
    )
    body = rtf.RTFBody(
        col_rel_width=widths,
        text_justification=[list(out.justify)],
        text_font_size=[[FONT_SIZE]],
        text_convert=[[False]],
        border_left=[[""] * ncol],
        border_right=[[""] * ncol],
        border_top=[[""] * ncol],
        border_bottom=[[""] * ncol],
        border_first=[["single"] * ncol],
        border_last=[["single"] * ncol],
        text_space_before=[[4]],
        text_space_after=[[4]],
        cell_vertical_justification=[["top"]],
        group_by=names[: out.group] or None,
    )
    for h in headers:
        h.border_left = [""] * len(h.text)
        h.border_right = [""] * len(h.text)
    return rtf.RTFDocument(
        df=df,
        rtf_page=_page(shell),
        rtf_page_header=_page_header(study_id),
        rtf_title=_title(shell, study_id),
        rtf_column_header=headers,
        rtf_body=body,
        rtf_footnote=_footnote(footnote_lines(shell, out.notes)),
        rtf_source=_source(source_line(shell, study_id, run_id)),
    )


def _doc_absent(shell: Shell, out: Absent, study_id: str, run_id: str | None) -> rtf.RTFDocument:
    import polars as pl

    df = pl.DataFrame({"c0": [esc(f"No data: {out.reason}.")]})
    return rtf.RTFDocument(
        df=df,
        rtf_page=_page(shell),
        rtf_page_header=_page_header(study_id),
        rtf_title=_title(shell, study_id),
        rtf_column_header=[rtf.RTFColumnHeader(text=[""], text_convert=[False], border_bottom=[""], border_left=[""], border_right=[""], border_top=[""])],
        rtf_body=rtf.RTFBody(col_rel_width=[1], text_justification=[["l"]], text_font_size=[[FONT_SIZE + 1]], text_convert=[[False]], border_left=[[""]], border_right=[[""]], border_first=[[""]], border_last=[[""]]),
        rtf_footnote=_footnote(footnote_lines(shell, [])),
        rtf_source=_source(source_line(shell, study_id, run_id)),
    )


FIGURE_DPI = 200


def figure_png(fig, path: Path, dpi: int = FIGURE_DPI, drawing=None) -> tuple[float, float]:
    """Write the figure as a PNG (``drawing``: its bytes under way, :func:`pipelines.report.figures.drawing`);
    its size in inches."""
    from pipelines.report import figures as F

    path.write_bytes(drawing.result() if drawing is not None else F.figure_bytes(fig, "png", dpi=dpi))
    return fig.get_figwidth(), fig.get_figheight()


def _doc_figure(shell: Shell, out: FigureOut, png: Path, size: tuple[float, float], study_id: str, run_id: str | None) -> rtf.RTFDocument:
    w, h = size
    max_w = COL_WIDTH[shell.orientation]
    max_h = 4.4 if shell.orientation == "landscape" else 6.5
    scale = min(max_w / w, max_h / h, 1.6)
    return rtf.RTFDocument(
        rtf_page=_page(shell),
        rtf_page_header=_page_header(study_id),
        rtf_title=_title(shell, study_id),
        rtf_figure=rtf.RTFFigure(figures=str(png), fig_width=round(w * scale, 2), fig_height=round(h * scale, 2)),
        rtf_footnote=_footnote(footnote_lines(shell, out.notes)),
        rtf_source=_source(source_line(shell, study_id, run_id)),
    )


def load_fonts_once() -> None:
    """Make rtflite load each font file once per process instead of once per string it measures.

    rtflite's pagination measures every cell with ``rtflite.strwidth.get_string_width``, which opens
    the font with ``PIL.ImageFont.truetype`` on every call: 4,700 loads for the demo's package, about
    0.2 s of its 2.5 s. Its module name ``ImageFont`` now holds the same function behind a cache; a
    loaded font is only read (``getlength``), so the widths are the same (tests/tlf/test_rtf_fonts.py)."""
    from rtflite import strwidth

    if getattr(strwidth.ImageFont, "trialpipe_cached", False):
        return
    from PIL import ImageFont

    class CachedImageFont:
        trialpipe_cached = True
        truetype = staticmethod(functools.lru_cache(maxsize=32)(ImageFont.truetype))

    strwidth.ImageFont = CachedImageFont


def write_rtf(shell: Shell, out, path: Path, study_id: str, run_id: str | None, png: Path | None = None, drawing=None) -> Path:
    """Render one built output to ``path`` (a figure's PNG is written beside it unless given;
    ``drawing``: the figure's PNG being drawn, :func:`figure_png`)."""
    load_fonts_once()
    if isinstance(out, TableOut):
        doc = _doc_table(shell, out, study_id, run_id)
    elif isinstance(out, FigureOut):
        png = png or path.with_suffix(".png")
        size = figure_png(out.figure, png, drawing=drawing)
        doc = _doc_figure(shell, out, png, size, study_id, run_id)
    else:
        doc = _doc_absent(shell, out, study_id, run_id)
    doc.write_rtf(str(path))
    return path


# ------------------------------------------------------------------------------- reading back
_TOKEN = re.compile(r"\\u(-?\d+)\*?|\\'([0-9a-fA-F]{2})|\\([a-zA-Z]+)(-?\d+)? ?|\\([\\{}])|[{}]")
_BREAKS = {"par": "\n", "line": "\n", "row": "\n", "cell": " | ", "tab": "\t"}


def _plain(raw: str) -> str:
    def sub(m: re.Match) -> str:
        if m.group(1) is not None:
            return chr(int(m.group(1)) % 65536)
        if m.group(2) is not None:
            return bytes.fromhex(m.group(2)).decode("cp1252")
        if m.group(3) is not None:
            return _BREAKS.get(m.group(3), "")
        if m.group(5) is not None:
            return m.group(5)
        return ""

    return _TOKEN.sub(sub, raw)


def _body(path: Path) -> str:
    raw = Path(path).read_text(encoding="utf-8")
    raw = re.sub(r"\{\\pict.*?\}", "", raw, flags=re.S)
    raw = re.sub(r"\{\\fonttbl.*?\}\s*\}", "", raw, flags=re.S)
    raw = re.sub(r"\{\\(?:header|footer)[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", "", raw, flags=re.S)
    return raw


def rtf_text(path: Path) -> str:
    """The visible text of an RTF file (control words stripped, pictures, page headers and footers
    dropped; a cell ends with ' | ') - to check titles and contents in tests."""
    return _plain(_body(path))


def rtf_table_rows(path: Path) -> list[list[str]]:
    """Every table row of an RTF file as its cells' text (header rows included, in file order)."""
    rows = []
    for chunk in re.split(r"\\row(?![a-z])", _body(path)):
        cells = re.split(r"\\cell(?![a-z])", chunk)[:-1]
        if not cells:
            continue
        rows.append([_plain(c).strip().replace("\u00a0", " ").strip() for c in cells])
    return rows
