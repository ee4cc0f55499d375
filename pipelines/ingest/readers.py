"""Readers: one manifest source -> rows in the raw layer's fixed shapes.

``pipelines.ingest.source.read_source`` picks the reader for a source and never raises for a problem with the user's data: a file that cannot be used at all
(missing, empty, undecodable, a column the manifest names is absent, the wrong NDA structure ...)
comes back as a ``SourceRead`` with ``error`` set and no rows, so the rest of the study still
loads and the failure is reported with the file, row, column and value. Row-level problems (an
item value out of range, an unknown visit) are not the readers' business: every row goes to raw
as received and the staging rules decide (see ``sql/staging``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import polars as pl

from pipelines.core.errors import InputFileError, TrialpipeError
from pipelines.core.masking import show
from pipelines.ingest import files
from pipelines.ingest.schema import ASSESSMENT_COLUMNS, RANDOMIZATION_COLUMNS, item_column, raw_tables
from pipelines.instruments import Instrument, load_instruments, resolve_instrument
from pipelines.core.manifest import Items, Manifest, Source

log = logging.getLogger(__name__)

SUBJECT_CANDIDATES = ["subject", "subject_id", "usubjid", "src_subject_id", "record_id", "subjid", "participant_id", "id"]
VISIT_CANDIDATES = ["visit", "redcap_event_name", "avisit", "timepoint", "timepoint_label", "event", "visit_name"]
ARM_CANDIDATES = ["arm", "armcd", "treatment", "trt", "group", "trt01p"]


@dataclass
class ItemCode:
    instrument: str
    code: str
    item: int | None  # None: the code is the instrument's total


@dataclass
class SourceRead:
    source: Source
    file: str
    sha256: str | None = None
    rows_read: int = 0
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows deliberately not loaded
    unmapped_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    item_codes: list[ItemCode] = field(default_factory=list)
    source_items: dict[str, dict[int, str]] = field(default_factory=dict)  # instrument -> {item: file column}
    missing_codes: list[str] = field(default_factory=list)
    error: TrialpipeError | None = None

    @property
    def rows_loaded(self) -> dict[str, int]:
        return {t: f.height for t, f in self.frames.items()}


class _Cols:
    """Case-insensitive lookup of the file's columns."""

    def __init__(self, names: list[str], label: str):
        self.names = names
        self.by_lower = {n.lower(): n for n in names}
        self.label = label
        self.used: set[str] = set()

    def find(self, name: str | None) -> str | None:
        if name is None:
            return None
        hit = self.by_lower.get(name.strip().lower())
        if hit:
            self.used.add(hit)
        return hit

    def need(self, name: str, what: str) -> str:
        hit = self.find(name)
        if hit is None:
            raise InputFileError(
                f"has no column {name!r} ({what}); its columns are: {_preview(self.names)}",
                file=self.label,
                column=name,
            )
        return hit

    def pick(self, mapped: str | None, candidates: list[str], what: str, key: str, required: bool) -> str | None:
        if mapped is not None:
            return self.need(mapped, f"mapped as columns.{key}, the {what}")
        for cand in candidates:
            hit = self.find(cand)
            if hit:
                return hit
        if required:
            raise InputFileError(
                f"has no {what} column; map it with columns.{key} in study.yaml (columns are: {_preview(self.names)})",
                file=self.label,
            )
        return None

    def unmapped(self) -> list[str]:
        return [n for n in self.names if n not in self.used]


def _preview(names: list[str], k: int = 12) -> str:
    return ", ".join(names[:k]) + (f", ... ({len(names)} in all)" if len(names) > k else "")


# ---------------------------------------------------------------------------------------------
# entry point


def skip_blank_lines(table: files.TextTable, out: SourceRead) -> files.TextTable:
    """A line whose every cell is empty (",,,," or a spreadsheet's blank row) carries no data: it is
    skipped with its reason (qc.source_files.skip_reasons), never quarantined."""
    cells = [c for c in table.frame.columns if c != files.ROW_COL]
    if not cells or not table.frame.height:
        return table
    # cells come stripped (files.TextTable), so a blank cell is an empty one: no strip per cell
    # (which was 50 ms of the 4 files of a 10,000-subject study; this is 8 ms)
    blank = table.frame.select(
        pl.all_horizontal([pl.col(c).str.len_bytes().fill_null(0) == 0 for c in cells])
    ).to_series()
    n_blank = int(blank.sum())
    if not n_blank:
        return table
    out.skipped["blank line (every cell empty)"] = n_blank
    return files.TextTable(frame=table.frame.filter(~blank), columns=table.columns, header_lines=table.header_lines)


# ---------------------------------------------------------------------------------------------
# helpers shared by the readers


def finish_frame(frame: pl.DataFrame, table: str, manifest: Manifest, source: Source, sha256: str) -> pl.DataFrame:
    """Add study/source/lineage columns and every missing raw column (NULL) in the table's order."""
    cols = raw_tables()[table]
    exprs = [pl.lit(manifest.study_id).alias("study_id"), pl.lit(source.name).alias("source")]
    for c in cols:
        exprs.append(pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, dtype=pl.String).alias(c))
    exprs += [
        pl.lit(source.file).alias("_source_file"),
        pl.col(files.ROW_COL).cast(pl.Int64).alias("_source_row"),
        pl.lit(sha256).alias("_source_sha256"),
    ]
    return frame.select(exprs)


def add_frame(out: SourceRead, table: str, frame: pl.DataFrame, manifest: Manifest) -> None:
    frame = finish_frame(frame, table, manifest, out.source, out.sha256 or "")
    if table in out.frames:
        out.frames[table] = pl.concat([out.frames[table], frame])
    else:
        out.frames[table] = frame


DATE_FORMATS = ["%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y", "%Y%m%d", "%m/%d/%y"]


def study_days_from_dates(
    frame: pl.DataFrame, subject: str, visit: str | None, date: str, manifest: Manifest, source: Source
) -> pl.Series:
    """Study day of each row from declared-shifted dates: days since the subject's baseline-visit
    date (the earliest such date; the subject's earliest date when no baseline row exists), so the
    baseline visit is day 0. The dates themselves are not kept."""
    parsed = None
    for fmt in DATE_FORMATS:
        attempt = frame[date].str.strptime(pl.Date, fmt, strict=False)
        if parsed is None:
            parsed = attempt
        else:
            parsed = parsed.fill_null(attempt)
    assert parsed is not None
    df = pl.DataFrame({"subject": frame[subject], "d": parsed})
    if visit is not None:
        codes = manifest.visit_codes(source)
        base_codes = {c.strip().lower() for c, v in codes.items() if v == manifest.baseline_visit.id}
        is_base = frame[visit].str.strip_chars().str.to_lowercase().is_in(list(base_codes))
    else:
        is_base = pl.Series([False] * frame.height)
    df = df.with_columns(is_base.alias("is_base"))
    ref = df.group_by("subject").agg(
        pl.col("d").filter(pl.col("is_base")).min().alias("base_d"), pl.col("d").min().alias("min_d")
    ).with_columns(pl.coalesce("base_d", "min_d").alias("ref_d"))
    joined = df.join(ref.select("subject", "ref_d"), on="subject", how="left", maintain_order="left")
    days = (joined["d"] - joined["ref_d"]).dt.total_days()
    return days.cast(pl.String).fill_null("")


def resolve_items(
    cols: _Cols, inst: Instrument, spec: Items | None, label: str, *, totals_only_ok: bool = False
) -> dict[int, str]:
    """item number -> the file's column, for a wide layout. With ``totals_only_ok`` (the source maps
    a total and names no items), a file without item columns is a totals-only source: {}."""
    spec = spec or Items()
    if spec.codes:
        raise InputFileError(f"items.codes is for long layouts; for a wide {inst.instrument} file give items.columns or items.pattern", file=label)
    if spec.columns:
        n_core = len(inst.core_items)
        # the core items, then optional ones in definition order (CAPS-5: 29-30, then 21-25)
        if not n_core <= len(spec.columns) <= len(inst.items):
            raise InputFileError(
                f"items.columns lists {len(spec.columns)} columns but {inst.instrument} has {n_core} items"
                + (f" ({len(inst.items)} with the optional ones, in the order {', '.join(map(str, inst.item_numbers))})"
                   if len(inst.items) != n_core else ""),
                file=label,
            )
        numbers = inst.item_numbers[: len(spec.columns)]
        return {n: cols.need(c, f"{inst.instrument} item {n} in items.columns") for n, c in zip(numbers, spec.columns)}
    patterns = [spec.pattern] if spec.pattern else inst.wide_patterns
    for pattern in patterns:
        found: dict[int, str] = {}
        for it in inst.items:
            name = pattern.format(n=it.n, code=it.code, code_lower=it.code.lower())
            hit = cols.by_lower.get(name.lower())
            if hit:
                found[it.n] = hit
        if all(n in found for n in inst.core_items):
            for c in found.values():
                cols.used.add(c)
            return found
        if spec.pattern:
            missing = [n for n in inst.core_items if n not in found]
            it = inst.item(missing[0])
            name = spec.pattern.format(n=it.n, code=it.code, code_lower=it.code.lower())
            raise InputFileError(
                f"has no column {name!r} for {inst.instrument} item {it.n} ({it.code}) named by the pattern "
                f"{spec.pattern!r}; {len(missing)} of {len(inst.core_items)} item columns are missing",
                file=label,
                column=name,
            )
    if totals_only_ok and not (spec.columns or spec.pattern):
        return {}
    raise InputFileError(
        f"no {inst.instrument} item columns found; give items.pattern (e.g. 'pcl5_{{n}}') or items.columns "
        f"in study.yaml (columns are: {_preview(cols.names)})",
        file=label,
    )


def long_item_codes(inst: Instrument, spec: Items | None, total_code: str | None) -> list[ItemCode]:
    """Codes a long file may use for each item: explicit codes, a pattern, or the defaults
    (plain item number, the item code such as B1, and the instrument's usual column names)."""
    spec = spec or Items()
    codes: list[ItemCode] = []
    if spec.codes:
        codes = [ItemCode(inst.id, str(c), int(n)) for c, n in spec.codes.items()]
    elif spec.pattern:
        codes = [ItemCode(inst.id, spec.pattern.format(n=it.n, code=it.code, code_lower=it.code.lower()), it.n) for it in inst.items]
    else:
        seen = set()
        for it in inst.items:
            cands = [str(it.n), it.code, *inst.wide_column_candidates(it.n)]
            if inst.formats.sdtm:
                cands.append(inst.sdtm_testcd(it.n))
            for c in cands:
                if c.lower() not in seen:
                    seen.add(c.lower())
                    codes.append(ItemCode(inst.id, c, it.n))
    totals = [total_code] if total_code else []
    if inst.formats.sdtm and not spec.codes and not spec.pattern:
        totals += inst.formats.sdtm.total_testcds
    totals += ["total", f"{inst.id}_total", f"{inst.id}tot"]
    have = {c.code.lower() for c in codes}
    for t in totals:
        if t.lower() not in have:
            have.add(t.lower())
            codes.append(ItemCode(inst.id, t, None))
    return codes


# ---------------------------------------------------------------------------------------------
# wide / long / randomization (CSV, TSV, Parquet)


def read_randomization(table: files.TextTable, manifest: Manifest, source: Source, out: SourceRead) -> None:
    cols = _Cols(table.columns, source.file)
    m = source.columns
    subject = cols.pick(m.subject, SUBJECT_CANDIDATES, "subject id", "subject", required=True)
    arm = cols.pick(m.arm, ARM_CANDIDATES, "randomized arm", "arm", required=True)
    sel = {"subject": subject, "arm": arm}
    for key in ("site", "sex", "age", "age_band", "race", "ethnicity", "visit", "discontinuation_reason"):
        got = getattr(m, key)
        if got is not None:
            sel["dcsreas" if key == "discontinuation_reason" else key] = cols.need(got, f"mapped as columns.{key}")
    frame = table.frame.select([pl.col(files.ROW_COL), *[pl.col(c).alias(k) for k, c in sel.items()]])
    if source.covariates:
        cov_cols = {name: cols.need(col, f"covariate {name!r}") for name, col in source.covariates.items()}
        covs = table.frame.select([pl.col(c).alias(n) for n, c in cov_cols.items()])
        frame = frame.with_columns(
            pl.Series("covariates", [json.dumps(r, sort_keys=True) for r in covs.iter_rows(named=True)], dtype=pl.String)
        )
    out.unmapped_columns = cols.unmapped()
    add_frame(out, "randomization", frame, manifest)


def _assessment_base(table: files.TextTable, cols: _Cols, manifest: Manifest, source: Source) -> dict[str, pl.Expr]:
    m = source.columns
    subject = cols.pick(m.subject, SUBJECT_CANDIDATES, "subject id", "subject", required=True)
    visit = cols.pick(m.visit, VISIT_CANDIDATES, "visit", "visit", required=True)
    exprs: dict[str, pl.Expr] = {"subject": pl.col(subject), "visit": pl.col(visit)}
    if m.arm:
        exprs["arm"] = pl.col(cols.need(m.arm, "mapped as columns.arm"))
    for key in ("predose", "time_from_dose"):
        got = getattr(m, key)
        if got is not None:
            exprs[key] = pl.col(cols.need(got, f"mapped as columns.{key}"))
    if m.study_day:
        exprs["study_day"] = pl.col(cols.need(m.study_day, "mapped as columns.study_day"))
    elif m.date:
        date_col = cols.need(m.date, "mapped as columns.date")
        if not manifest.dates.shifted:
            raise InputFileError(
                "maps a calendar-date column but the manifest does not declare dates as shifted; "
                "full dates are identifiers and are not loaded",
                file=source.file,
                column=date_col,
                hint="shift dates per subject before export and set dates.shifted: true, or map a study-day column",
            )
        exprs["study_day"] = pl.lit(study_days_from_dates(table.frame, subject, visit, date_col, manifest, source))
    return exprs


SUBJECT_LEVEL = ("site", "sex", "age", "age_band", "race", "ethnicity")


def add_subject_columns(table: files.TextTable, cols: _Cols, manifest: Manifest, source: Source, out: SourceRead,
                        subject_col: str) -> None:
    """Subject-level columns declared on a longitudinal file (columns.site/sex/age/... and
    covariates): one raw.subject_columns row per file row; staging.subject_columns keeps one value
    per subject and quarantines conflicting rows."""
    m = source.columns
    sel = {k: cols.need(getattr(m, k), f"mapped as columns.{k}") for k in SUBJECT_LEVEL if getattr(m, k)}
    if not sel and not source.covariates:
        return
    frame = table.frame.select(
        [pl.col(files.ROW_COL), pl.col(subject_col).alias("subject"), *[pl.col(c).alias(k) for k, c in sel.items()]]
    )
    if source.covariates:
        cov_cols = {name: cols.need(col, f"covariate {name!r}") for name, col in source.covariates.items()}
        covs = table.frame.select([pl.col(c).alias(n) for n, c in cov_cols.items()])
        frame = frame.with_columns(
            pl.Series("covariates", [json.dumps(r, sort_keys=True) for r in covs.iter_rows(named=True)], dtype=pl.String)
        )
    add_frame(out, "subject_columns", frame, manifest)


def read_wide(table: files.TextTable, manifest: Manifest, source: Source, out: SourceRead) -> None:
    cols = _Cols(table.columns, source.file)
    base = _assessment_base(table, cols, manifest, source)
    add_subject_columns(table, cols, manifest, source, out, cols.pick(
        source.columns.subject, SUBJECT_CANDIDATES, "subject id", "subject", required=True))
    instruments = load_instruments()
    claimed: dict[str, str] = {}  # file column -> "instrument item n"
    for inst_key, imap in source.instruments.items():
        inst = resolve_instrument(inst_key) or instruments[inst_key]
        item_cols = resolve_items(cols, inst, imap.items, source.file, totals_only_ok=bool(imap.total))
        for n, c in item_cols.items():
            here = f"{inst.instrument} item {n}"
            if c in claimed:
                raise InputFileError(
                    f"column {c!r} is claimed twice, by {claimed[c]} and by {here}; each item needs its own column "
                    "(check the item lists and patterns in study.yaml)", file=source.file, column=c,
                )
            claimed[c] = here
        if not item_cols:
            out.notes.append(f"{inst.instrument}: totals only (no item columns)")
        exprs = [pl.col(files.ROW_COL), *[e.alias(k) for k, e in base.items()]]
        exprs += [pl.col(c).alias(item_column(n)) for n, c in item_cols.items()]
        if imap.total:
            exprs.append(pl.col(cols.need(imap.total, f"{inst.instrument} total (mapped as total)")).alias("total"))
        out.source_items[inst.id] = dict(sorted(item_cols.items()))
        add_frame(out, inst.id, table.frame.select(exprs), manifest)
    out.unmapped_columns = cols.unmapped()


def read_long(table: files.TextTable, manifest: Manifest, source: Source, out: SourceRead) -> None:
    cols = _Cols(table.columns, source.file)
    base = _assessment_base(table, cols, manifest, source)
    add_subject_columns(table, cols, manifest, source, out, cols.pick(
        source.columns.subject, SUBJECT_CANDIDATES, "subject id", "subject", required=True))
    m = source.columns
    item = cols.need(m.item or "item", "mapped as columns.item, the item code")
    value = cols.need(m.value or "value", "mapped as columns.value, the item value")
    frame = table.frame.select(
        [pl.col(files.ROW_COL), *[e.alias(k) for k, e in base.items()], pl.col(item).alias("item"), pl.col(value).alias("value")]
    )
    inst_ids = [resolve_instrument(k).id for k in source.instruments]  # type: ignore[union-attr]
    if m.instrument:
        inst_col = cols.need(m.instrument, "mapped as columns.instrument")
        recode = {k.strip().lower(): v for k, v in source.recode.instrument.items()}
        names = table.frame[inst_col].to_list()
        resolved = []
        for name in names:
            key = (name or "").strip().lower()
            target = recode.get(key, name)
            inst = resolve_instrument(target) if target else None
            resolved.append(inst.id if inst and (not inst_ids or inst.id in inst_ids) else None)
        frame = frame.with_columns(pl.Series("_inst", resolved, dtype=pl.String))
        unknown = frame.filter(pl.col("_inst").is_null())
        if unknown.height:
            vals = sorted({show(v) for v in table.frame.filter(frame["_inst"].is_null())[inst_col].to_list()})
            out.skipped[f"instrument not mapped ({', '.join(vals[:5])})"] = unknown.height
        groups = {i: frame.filter(pl.col("_inst") == i).drop("_inst") for i in sorted(set(r for r in resolved if r))}
    else:
        if len(inst_ids) != 1:
            raise InputFileError(
                "a long file holding several instruments needs columns.instrument to tell them apart", file=source.file
            )
        groups = {inst_ids[0]: frame}
    by_id = {resolve_instrument(k).id: v for k, v in source.instruments.items()}  # type: ignore[union-attr]
    for inst_id, part in groups.items():
        imap = by_id.get(inst_id)
        out.item_codes += long_item_codes(load_instruments()[inst_id], imap.items if imap else None, imap.total if imap else None)
        add_frame(out, inst_id, part, manifest)
    out.unmapped_columns = cols.unmapped()


__all__ = [
    "ASSESSMENT_COLUMNS",
    "RANDOMIZATION_COLUMNS",
    "ItemCode",
    "SourceRead",
]
