"""One output -> one self-contained HTML page; the package index links every output and dataset."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from pipelines.tlf.builders import Absent, FigureOut, TableOut
from pipelines.tlf.rtf import footnote_lines, source_line, title_lines
from pipelines.tlf.shells import Shell

CSS = """
body{font-family:'DejaVu Serif',Georgia,serif;font-size:13px;margin:2em auto;max-width:1150px;color:#111}
h1{font-size:15px;text-align:center;margin:.2em 0} p.t{text-align:center;margin:.15em 0}
table{border-collapse:collapse;margin:1em auto;width:100%} th,td{padding:3px 8px;vertical-align:top}
thead tr:last-child th{border-bottom:1px solid #000} thead tr:first-child th{border-top:2px solid #000}
tbody tr:last-child td{border-bottom:2px solid #000} th.span{border-bottom:1px solid #000}
td.l,th.l{text-align:left} td.c,th.c{text-align:center} td.r,th.r{text-align:right}
td:first-child{white-space:pre-wrap} .fn{font-size:11.5px;margin:.2em 0} .absent{color:#a00;margin:1em 0}
img{display:block;margin:1em auto;max-width:100%} a{color:#0050a0}
.idx td{border-bottom:1px solid #ddd} .idx th{text-align:left}
"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def _table_html(out: TableOut) -> str:
    parts = ["<table><thead>"]
    if out.spanners:
        parts.append("<tr>" + "".join(
            f"<th colspan='{k}' class='c{' span' if t else ''}'>{html.escape(t)}</th>" for t, k in out.spanners
        ) + "</tr>")
    parts.append("<tr>" + "".join(
        f"<th class='{j}'>{html.escape(c)}</th>" for c, j in zip(out.columns, out.justify, strict=True)
    ) + "</tr></thead><tbody>")
    prev: list[str] = []
    for r in out.rows:
        shown = list(r)
        for i in range(out.group):  # a grouped value shows once, like the RTF
            if prev[: i + 1] == r[: i + 1]:
                shown[i] = ""
        prev = r
        r = shown
        parts.append("<tr>" + "".join(
            f"<td class='{j}'>{html.escape(c)}</td>" for c, j in zip(r, out.justify, strict=True)
        ) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def write_html(shell: Shell, out, path: Path, study_id: str, run_id: str | None, png: Path | None = None) -> Path:
    lines = title_lines(shell, study_id)
    body = [f"<h1>{html.escape(lines[0])}<br>{html.escape(lines[1])}</h1>", f"<p class='t'>{html.escape(lines[2])}</p>"]
    notes: list[str] = []
    if isinstance(out, TableOut):
        body.append(_table_html(out))
        notes = out.notes
    elif isinstance(out, FigureOut):
        notes = out.notes
        if png is not None and png.exists():
            b64 = base64.b64encode(png.read_bytes()).decode("ascii")
            body.append(f"<img alt='{html.escape(shell.title)}' src='data:image/png;base64,{b64}'>")
    elif isinstance(out, Absent):
        body.append(f"<p class='absent'>No data: {html.escape(out.reason)}.</p>")
    body += [f"<p class='fn'>{html.escape(n)}</p>" for n in footnote_lines(shell, notes)]
    body.append(f"<p class='fn'>{html.escape(source_line(shell, study_id, run_id))}</p>")
    body.append(f"<p class='fn'><a href='index.html'>All outputs</a> &middot; <a href='{path.with_suffix('.rtf').name}'>RTF</a></p>")
    path.write_text(_page(f"{shell.label} {shell.title}", "".join(body)), encoding="utf-8")
    return path


def write_index(path: Path, study_id: str, run_id: str | None, outputs: list[dict], datasets: list[dict], define: str | None) -> Path:
    """``outputs``: [{label, title, status, reason, rtf, html}]; ``datasets``: [{name, label, rows, vars, file}]."""
    rows = []
    for o in outputs:
        status = "" if o["status"] == "written" else f"no data: {o['reason']}"
        rows.append(
            f"<tr><td>{html.escape(o['label'])}</td><td>{html.escape(o['title'])}</td>"
            f"<td><a href='{o['html']}'>HTML</a> &middot; <a href='{o['rtf']}'>RTF</a></td>"
            f"<td>{html.escape(status)}</td></tr>"
        )
    ds = [
        f"<tr><td>{html.escape(d['name'])}</td><td>{html.escape(d['label'])}</td><td>{d['rows']}</td>"
        f"<td>{d['vars']}</td><td><a href='{d['file']}'>{d['file']}</a></td></tr>"
        for d in datasets
    ]
    body = [
        f"<h1>Tables, listings and figures - study {html.escape(study_id)}</h1>",
        f"<p class='t'>run {html.escape(run_id or 'n/a')}</p>",
        "<table class='idx'><thead><tr><th>Output</th><th>Title</th><th>Files</th><th>Status</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
        "<h1>Submission datasets (SAS XPORT v5)</h1>",
        "<table class='idx'><thead><tr><th>Dataset</th><th>Label</th><th>Records</th><th>Variables</th><th>File</th></tr></thead><tbody>",
        *ds,
        "</tbody></table>",
    ]
    if define:
        body.append(f"<p class='t'>Define-XML 2.1: <a href='{define}'>{define}</a></p>")
    path.write_text(_page(f"{study_id} TLF package", "".join(body)), encoding="utf-8")
    return path
