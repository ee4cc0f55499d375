"""What ingestion and validation did to a study, for people: a console summary and an HTML page."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.core import warehouse


@dataclass
class FileSummary:
    file: str
    status: str
    message: str | None
    rows_read: int | None
    accepted: int = 0
    quarantined: int = 0
    skipped: int = 0
    skip_reasons: list = field(default_factory=list)  # (reason, rows) of every skipped row
    reasons: list[tuple[str, int]] = field(default_factory=list)
    unmapped: str = ""
    decided: bool = True  # False when the run stopped before rows were accepted or quarantined


@dataclass
class ValidationSummary:
    study_id: str
    run_id: str
    files: list[FileSummary]
    checks: list[dict]  # check_name, table, success, rules: [(rule, success, unexpected)]

    @property
    def blocking_failures(self) -> list[str]:
        out = [f"{f.file}: {f.message}" for f in self.files if f.status != "loaded"]
        for c in self.checks:
            if not c["success"]:
                bad = [r for r in c["rules"] if not r[1]]
                out.append(f"check {c['check_name']} ({c['table']}): " + "; ".join(
                    f"{r[0]}" + (f" - {r[2]} rows" if r[2] else "") + (f" ({r[3]})" if r[3] else "") for r in bad))
        return out


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return warehouse.table_exists(con, table)


def _short(reason: str) -> str:
    # "PCL-5 item 5 (pcl5_5): value 5 is outside 0-4" -> keep; cut lists of copies
    return reason if len(reason) <= 160 else reason[:157] + "..."


def summarize(con: duckdb.DuckDBPyConnection, study_id: str, run_id: str) -> ValidationSummary:
    files: list[FileSummary] = []
    decided_this_run = _has(con, "qc.quarantine") and con.execute(
        "select count(*) = 0 or bool_and(run_id = ?) from qc.quarantine", [run_id]).fetchone()[0]
    for f, status, msg, read, skipped, unmapped, skip_json in con.execute(
        "select _source_file, any_value(status), any_value(message), max(rows_read), max(rows_skipped), "
        "any_value(unmapped_columns), any_value(skip_reasons) from qc.source_files "
        "where study_id = ? and run_id = ? group by 1 order by 1", [study_id, run_id]
    ).fetchall():
        fs = FileSummary(f, status, msg, read, skipped=skipped or 0, unmapped=unmapped or "", decided=bool(decided_this_run))
        # every skipped row with its reason: file-level skips (qc.source_files.skip_reasons) and rows
        # decided 'skipped' in staging (a REDCap event where the form was not filled in; a repeated
        # row of a longitudinal randomization file)
        fs.skip_reasons = sorted(json.loads(skip_json or "{}").items())
        if status == "loaded" and decided_this_run and _has(con, "staging.assessment_rows"):
            decided = ["staging.assessment_rows", "staging.randomization_rows"] + [
                t for t in ("staging.ae_rows", "staging.vs_rows", "staging.ex_rows", "staging.ds_rows") if _has(con, t)
            ]
            union = " union all ".join(f"select _source_file, status from {t}" for t in decided)
            counts = dict(con.execute(
                f"select status, count(*) from ({union}) where _source_file = ? group by 1", [f]
            ).fetchall())
            fs.accepted, fs.quarantined = counts.get("accepted", 0), counts.get("quarantined", 0)
            fs.skipped += counts.get("skipped", 0)
            fs.skip_reasons += con.execute(
                "select 'no ' || instrument || ' cell filled in (form not administered at this visit)', count(*) "
                "from staging.assessment_rows where _source_file = ? and status = 'skipped' group by instrument "
                "union all select any_value(regexp_replace(skip_reason, 'subject .* already', 'subject already')), "
                "count(*) from staging.randomization_rows where _source_file = ? and status = 'skipped' "
                "group by all having count(*) > 0",
                [f, f],
            ).fetchall()
            fs.reasons = con.execute(
                "select reason, count(*) from qc.quarantine where _source_file = ? group by 1 order by 2 desc, 1 limit 10",
                [f],
            ).fetchall()
        files.append(fs)
    checks: list[dict] = []
    if _has(con, "qc.validation_results"):
        rows = con.execute(
            "select check_name, table_name, expectation, rule, success, unexpected_count, details "
            "from qc.validation_results where run_id = ? order by check_name, success, rule", [run_id]
        ).fetchall()
        by: dict[str, dict] = {}
        for name, table, _exp, rule, ok, unexpected, details in rows:
            c = by.setdefault(name, {"check_name": name, "table": table, "success": True, "rules": []})
            c["success"] = c["success"] and bool(ok)
            examples = json.loads(details or "{}").get("examples") or []
            c["rules"].append((rule, bool(ok), unexpected, "; ".join(map(str, examples[:3]))))
        checks = list(by.values())
    return ValidationSummary(study_id, run_id, files, checks)


def print_summary(summary: ValidationSummary, console) -> None:
    for f in summary.files:
        if f.status != "loaded":
            console.print(f"  [red]{f.file}: {f.status}[/] - {f.message}")
            continue
        if not f.decided:
            console.print(f"  {f.file}: {f.rows_read} rows read (the run stopped before rows were accepted or quarantined)")
            continue
        console.print(
            f"  {f.file}: {f.rows_read} rows read, {f.accepted} accepted, {f.quarantined} quarantined"
            + (f", {f.skipped} skipped" if f.skipped else "")
        )
        for reason, n in f.reasons[:5]:
            console.print(f"      {n} x {_short(reason)}", highlight=False)
        for reason, n in getattr(f, "skip_reasons", [])[:5]:
            console.print(f"      {n} skipped: {_short(reason)}", highlight=False)
    for line in summary.blocking_failures:
        if not line.startswith("check "):
            continue
        console.print(f"  [red]blocking:[/] {line}")


def write_html(summary: ValidationSummary, path: Path) -> Path:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    page = env.get_template("validation.html.j2").render(
        s=summary, generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), esc=html.escape
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
