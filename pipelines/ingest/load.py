"""Load a study folder into its working DuckDB: reference tables from the manifest, raw tables
from the files, and one ``qc.source_files`` row per file saying what happened to it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from pipelines.core import warehouse
from pipelines.core.errors import InputFileError
from pipelines.ingest.guard import IdentifiableDataError
from pipelines.ingest.readers import SourceRead
from pipelines.ingest.source import read_source
from pipelines.ingest.schema import create_raw_table_sql, raw_tables
from pipelines.instruments import load_instruments
from pipelines.core.manifest import Manifest

log = logging.getLogger(__name__)


def _norm(code: str) -> str:
    return " ".join(str(code).strip().lower().split())


# the columns that key every ref.* table about an instrument
INSTRUMENT_KEYS = {"study_id": pl.String, "instrument_id": pl.String, "instrument": pl.String}


def reference_frames(manifest: Manifest) -> dict[str, pl.DataFrame]:
    """The manifest and the instrument definitions as tables SQL can join."""
    sid = manifest.study_id
    ref: dict[str, pl.DataFrame] = {}
    a = manifest.analysis
    ref["ref.study"] = pl.DataFrame(
        {
            "study_id": [sid],
            "title": [manifest.title],
            "n_arms": [len(manifest.arms)],
            "baseline_visit": [manifest.baseline_visit.id],
            "primary_visit": [manifest.primary_visit.id],
            "primary_parameter": [a.primary_parameter],
            "baseline_rule": [a.baseline],
            "repeated_rule": [a.repeated_assessments],
            "missing_items_method": [a.missing_items.method],
            "missing_items_max": [a.missing_items.max_missing],
            "missing_items_scope": [a.missing_items.scope],
            "missing_items_rounding": [a.missing_items.rounding],
            "alpha": [a.alpha],
            "multiplicity": [a.multiplicity],
            "dates_shifted": [manifest.dates.shifted],
            "covariance": [a.model.covariance],
            "df_method": [a.model.df_method],
            "fallbacks": [", ".join(a.model.fallbacks)],
            "reml": [a.model.reml],
            "durability_paramcd": [a.durability.paramcd or a.primary_parameter],
            "durability_consecutive": [a.durability.consecutive],
            "teae_window_days": [a.safety.teae_window_days],
            "loss_of_diagnosis": [a.loss_of_diagnosis],
        },
        schema_overrides={"teae_window_days": pl.Int32, "durability_consecutive": pl.Int32},
    )
    ref["ref.arms"] = pl.DataFrame(
        {
            "study_id": [sid] * len(manifest.arms),
            "arm": [x.id for x in manifest.arms],
            "arm_label": [x.display for x in manifest.arms],
            "arm_role": [x.role for x in manifest.arms],
            "armn": list(range(1, len(manifest.arms) + 1)),
        }
    )
    ref["ref.visits"] = pl.DataFrame(
        {
            "study_id": [sid] * len(manifest.visits),
            "visit": [v.id for v in manifest.visits],
            "visit_label": [v.label or v.id for v in manifest.visits],
            "avisitn": list(range(len(manifest.visits))),
            "nominal_day": [v.day for v in manifest.visits],
            "is_baseline": [v.baseline for v in manifest.visits],
            "is_primary": [v.primary for v in manifest.visits],
            "phase": [v.phase for v in manifest.visits],
            "infusion": [v.infusion for v in manifest.visits],
            "timepoint": [v.timepoint for v in manifest.visits],
            "elapsed_min": [v.elapsed_min for v in manifest.visits],
        },
        schema_overrides={"avisitn": pl.Int32, "nominal_day": pl.Int32, "infusion": pl.Int32, "timepoint": pl.String,
                          "elapsed_min": pl.Int32},
    )
    # code tables: one row per (source, normalised code)
    vc, ac, mc = [], [], []
    for s in manifest.sources:
        for code, visit in manifest.visit_codes(s).items():
            vc.append((sid, s.name, _norm(code), visit))
        for code, arm_id in manifest.arm_codes(s).items():
            ac.append((sid, s.name, _norm(code), arm_id))
        for code in s.missing_codes:
            mc.append((sid, s.name, _norm(code)))
    ref["ref.visit_codes"] = pl.DataFrame(vc, schema=["study_id", "source", "code", "visit"], orient="row").unique(["source", "code"], keep="last", maintain_order=True)
    ref["ref.arm_codes"] = pl.DataFrame(ac, schema=["study_id", "source", "code", "arm"], orient="row").unique(["source", "code"], keep="last", maintain_order=True)
    ref["ref.missing_codes"] = pl.DataFrame(mc, schema={"study_id": pl.String, "source": pl.String, "code": pl.String}, orient="row")
    # instruments
    named = set(manifest.named_instruments())
    rows_i, rows_items, rows_scores, rows_anchor, rows_sx, rows_dx = [], [], [], [], [], []
    for inst in load_instruments().values():
        dx = inst.diagnosis
        if dx and dx.symptom_rule:
            for cluster, need in dx.symptom_rule.min_items.items():
                rows_sx.append((sid, inst.id, inst.instrument, cluster, dx.symptom_rule.item_threshold, need))
        if dx and dx.rule:
            for c in dx.rule.criteria:
                for n in c.items:
                    rows_dx.append((sid, inst.id, inst.instrument, dx.rule.paramcd, dx.rule.label, c.criterion,
                                    c.label, n, float(c.min_value), c.min_count, n in dx.rule.requires))
            for n in sorted(set(dx.rule.requires) - {n for c in dx.rule.criteria for n in c.items}):
                rows_dx.append((sid, inst.id, inst.instrument, dx.rule.paramcd, dx.rule.label, None, None, n,
                                None, None, True))
        rows_i.append(
            (sid, inst.id, inst.instrument, inst.title, inst.item_min, inst.item_max, len(inst.core_items),
             inst.order, inst.role, inst.change_scale, inst.id in named, inst.reference)
        )
        for it in inst.items:
            lo, hi = inst.item_range(it.n)
            rows_items.append((sid, inst.id, inst.instrument, it.n, it.code, it.cluster, it.label, it.optional, lo, hi))
        for k, text in inst.anchors.items():
            rows_anchor.append((sid, inst.id, int(k), text))
        for order, sc in enumerate(inst.scores):
            rule = _score_rules(manifest, inst, sc)
            lo, hi = inst.score_range(sc)
            component = sc.component_of()
            for n in sc.items:
                rows_scores.append(
                    (sid, inst.id, inst.instrument, sc.paramcd, sc.param, order, sc.primary_total, sc.optional,
                     len(sc.items), n, inst.item(n).cluster, *rule, component[n], lo, hi, inst.change_scale,
                     inst.score_label(sc))
                )
    ref["ref.instruments"] = pl.DataFrame(
        rows_i, orient="row",
        schema={
            **INSTRUMENT_KEYS, "title": pl.String, "item_min": pl.Int64, "item_max": pl.Int64, "n_core_items": pl.Int64, "instrument_order": pl.Int32,
            "role": pl.String, "change_scale": pl.Boolean, "in_manifest": pl.Boolean, "reference": pl.String,
        },
    )
    ref["ref.instrument_items"] = pl.DataFrame(
        rows_items, orient="row",
        schema={
            **INSTRUMENT_KEYS, "item": pl.Int64, "item_code": pl.String, "cluster": pl.String,
            "item_label": pl.String, "optional": pl.Boolean, "item_min": pl.Int64, "item_max": pl.Int64,
        },
    )
    ref["ref.item_anchors"] = pl.DataFrame(rows_anchor, orient="row", schema=["study_id", "instrument_id", "value", "anchor"])
    ref["ref.scores"] = pl.DataFrame(
        rows_scores, orient="row",
        schema={
            **INSTRUMENT_KEYS, "paramcd": pl.String, "param": pl.String, "paramn": pl.Int32, "is_total": pl.Boolean, "optional": pl.Boolean,
            "n_items": pl.Int32, "item": pl.Int32, "cluster": pl.String, "response_pct": pl.Float64,
            "remission_op": pl.String, "remission_value": pl.Float64, "cutoff_value": pl.Float64,
            "response_values": pl.List(pl.Float64), "component": pl.Int32, "score_min": pl.Float64,
            "score_max": pl.Float64, "change_scale": pl.Boolean, "label": pl.String,
        },
    )
    ref["ref.symptom_rules"] = pl.DataFrame(
        rows_sx, orient="row",
        schema={**INSTRUMENT_KEYS, "cluster": pl.String, "item_threshold": pl.Float64, "min_items": pl.Int32},
    )
    ref["ref.diagnosis_criteria"] = pl.DataFrame(
        rows_dx, orient="row",
        schema={
            "study_id": pl.String, "instrument_id": pl.String, "instrument": pl.String, "paramcd": pl.String,
            "rule_label": pl.String, "criterion": pl.String, "criterion_label": pl.String, "item": pl.Int32,
            "min_value": pl.Float64, "min_count": pl.Int32, "requires": pl.Boolean,
        },
    )
    return ref


def _score_rules(manifest: Manifest, inst, sc) -> tuple:
    """(response_pct, remission_op, remission_value, cutoff_value, response_values) of a score: the
    manifest's analysis options first, then the instrument definition's."""
    a = manifest.analysis
    own = inst.response if inst.response and inst.response.paramcd == sc.paramcd else None
    pct = a.response.get(sc.paramcd)
    values = None
    if pct is None and own is not None:
        pct, values = own.min_pct_reduction, own.values
    rem = a.remission.get(sc.paramcd) or (
        inst.remission if inst.remission and inst.remission.paramcd == sc.paramcd else None
    )
    dx = inst.diagnosis
    cutoff = dx.cutoff.value if dx and dx.cutoff and dx.cutoff.paramcd == sc.paramcd else None
    cutoff = a.cutoffs.get(sc.paramcd, cutoff)
    return (
        pct,
        rem.op if rem else None,
        rem.value if rem else None,
        None if cutoff is None else float(cutoff),
        None if values is None else [float(v) for v in values],
    )


def source_frames(manifest: Manifest, reads: list[SourceRead], run_id: str) -> dict[str, pl.DataFrame]:
    """What each file supplied: item columns, item codes, missing codes, and the file outcome."""
    sid = manifest.study_id
    items, codes, missing, files = [], [], [], []
    for r in reads:
        name = r.source.name
        for inst_id, numbers in r.source_items.items():
            for n, column in numbers.items():
                items.append((sid, name, inst_id, n, column))
        for c in r.item_codes:
            codes.append((sid, name, c.instrument, _norm(c.code), c.item))
        for code in r.missing_codes:
            missing.append((sid, name, _norm(code)))
        files.append(
            {
                "study_id": sid,
                "run_id": run_id,
                "source": name,
                "_source_file": r.file,
                "_source_sha256": r.sha256,
                "kind": r.source.kind,
                "layout": r.source.layout,
                "status": ("blocked" if isinstance(r.error, IdentifiableDataError) else "failed") if r.error else "loaded",
                "message": str(r.error) if r.error else None,
                "rows_read": r.rows_read if not r.error else None,
                "rows_loaded": json.dumps(r.rows_loaded, sort_keys=True),
                "rows_skipped": sum(r.skipped.values()),
                "skip_reasons": json.dumps(r.skipped, sort_keys=True),
                "unmapped_columns": ", ".join(r.unmapped_columns),
                "notes": "; ".join(r.notes),
            }
        )
    out = {
        "ref.source_items": pl.DataFrame(items, orient="row", schema={"study_id": pl.String, "source": pl.String, "instrument_id": pl.String, "item": pl.Int32, "column_name": pl.String}),
        "ref.item_codes": pl.DataFrame(codes, orient="row", schema={"study_id": pl.String, "source": pl.String, "instrument_id": pl.String, "code": pl.String, "item": pl.Int32}).unique(["source", "instrument_id", "code"], keep="first", maintain_order=True),
        "ref.source_missing_codes": pl.DataFrame(missing, orient="row", schema={"study_id": pl.String, "source": pl.String, "code": pl.String}).unique(),
        "qc.source_files": pl.DataFrame(
            files,
            schema={
                "study_id": pl.String, "run_id": pl.String, "source": pl.String, "_source_file": pl.String,
                "_source_sha256": pl.String, "kind": pl.String, "layout": pl.String, "status": pl.String,
                "message": pl.String, "rows_read": pl.Int64, "rows_loaded": pl.String, "rows_skipped": pl.Int64,
                "skip_reasons": pl.String, "unmapped_columns": pl.String, "notes": pl.String,
            },
        ),
    }
    return out


@dataclass
class IngestResult:
    reads: list[SourceRead]

    @property
    def failed(self) -> list[SourceRead]:
        return [r for r in self.reads if r.error]

    def rows_by_table(self) -> dict[str, int]:
        totals: dict[str, int] = {t: 0 for t in raw_tables()}
        for r in self.reads:
            for t, n in r.rows_loaded.items():
                totals[t] += n
        return totals


def write_reference(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> None:
    warehouse.ensure_schemas(con)
    # one commit for the dozen small tables and their comments (each commit writes and syncs the WAL)
    with warehouse.transaction(con):
        for table, frame in reference_frames(manifest).items():
            warehouse.write_frame(con, table, frame)


def ingest(
    con: duckdb.DuckDBPyConnection,
    study_dir: Path,
    manifest: Manifest,
    run_id: str,
    *,
    on_file: Callable[[SourceRead], None] | None = None,
    blocked: dict[str, str] | None = None,
) -> IngestResult:
    """Read every source into the raw tables (replacing the study's previous raw data).

    ``blocked`` maps source names to a reason (e.g. from the identifier guard): those files are
    not read at all and are recorded as blocked.
    """
    sources = list(manifest.sources)

    def read(i: int) -> Future[tuple[SourceRead, dict[str, pa.Table]]] | None:
        if i >= len(sources) or (blocked and sources[i].name in blocked):
            return None
        return reader.submit(_read, study_dir, manifest, sources[i])

    # The next file is read (parsed, screened, mapped and turned into Arrow: polars, in a thread)
    # while DuckDB makes the raw tables, then appends and commits the file before; one file ahead at
    # most, so two files' rows are in memory, not the whole study's. Raw layer at 10,000 subjects
    # (4 files): 1.17 -> 0.87 s, as the reading hides behind DuckDB's appends and commits.
    reads: list[SourceRead] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="trialpipe-read") as reader:
        ahead = read(0)
        warehouse.ensure_schemas(con)
        with warehouse.transaction(con):  # one commit for the 16 tables
            for table in raw_tables():
                con.execute(create_raw_table_sql(table))
        # Each file: its own commit, on one DuckDB thread, written to the database file at the
        # commit. One thread: a file's rows split over threads become partial row groups, each
        # compressed at the commit (appends and commits of the 4 files of 10,000 subjects: 0.58 s of
        # CPU on one thread, 1.1-1.3 s on two). A low checkpoint threshold: a file's commit
        # checkpoints at once (its rows compressed once, while the next file is read) instead of
        # going to the WAL first and being compressed at a later checkpoint. No FSST for the raw
        # text: at a checkpoint it trains a symbol table for every text column of every file (0.09 s
        # of the 0.42 s the four commits take at 10,000 subjects) and, for these codes, numbers and
        # ids, wins only on the subject id (the raw rows take 8% more bytes in the working database
        # without it; the published warehouse compresses them afresh, FSST included).
        with warehouse.settings(con, threads=1, checkpoint_threshold="1MB", disabled_compression_methods="fsst"):
            for i, source in enumerate(sources):
                current, ahead = ahead, read(i + 1)
                if current is None:
                    r = SourceRead(source=source, file=source.file)
                    r.error = InputFileError(blocked[source.name], file=source.file)
                    reads.append(r)
                    if on_file:
                        on_file(r)
                    continue
                r, arrow = current.result()
                with warehouse.transaction(con):
                    for table, frame in arrow.items():
                        warehouse.write_frame(con, f"raw.{table}", frame, mode="append")
                if r.unmapped_columns:
                    log.info("%s: columns not mapped (not loaded): %s", r.file, ", ".join(r.unmapped_columns))
                reads.append(r)
                if on_file:
                    on_file(r)
    with warehouse.transaction(con):  # one commit for qc.source_files and the ref tables of the files
        for table, frame in source_frames(manifest, reads, run_id).items():
            warehouse.write_frame(con, table, frame)
    return IngestResult(reads)


def _read(study_dir: Path, manifest: Manifest, source) -> tuple[SourceRead, dict[str, pa.Table]]:
    r = read_source(study_dir, manifest, source)
    return r, {table: warehouse.to_arrow(frame) for table, frame in r.frames.items()}
