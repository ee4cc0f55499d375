"""A tiny given/expected harness for the analysis SQL models (sqlmesh/dbt unit-test style).

Given: a literal manifest (its ``ref.*`` tables are inputs, built with ``reference_frames``) and
literal staging rows; the staging tables are created empty by the real staging models over empty
raw tables, so their columns and types are the real ones. Then one model runs with
``pipelines.core.sql.run_model`` and the test compares selected columns with hand-computed rows.
"""

from __future__ import annotations

import functools
import textwrap

import duckdb
import polars as pl

from pipelines.core import sql, warehouse
from pipelines.core.masking import SQL_MACROS
from pipelines.ingest.load import reference_frames, source_frames
from pipelines.ingest.schema import create_raw_table_sql, raw_tables
from pipelines.core.manifest import parse_manifest

from pipelines.instruments import load_instruments

INSTRUMENT = {i.id: i.instrument for i in load_instruments().values()}  # id -> name (PCL-5, ...)

BASE_MANIFEST = """\
study_id: T1
arms:
  - {id: KET, label: Ketamine, role: experimental}
  - {id: MID, label: Midazolam, role: control}
visits:
  - {id: SCR, day: -7}
  - {id: BL, day: 0, baseline: true}
  - {id: W1, day: 7}
  - {id: W2, day: 14, primary: true}
sources:
  - {file: x.csv, kind: pcl5}
"""


def manifest_text(analysis: str = "") -> str:
    """The base manifest plus an ``analysis:`` block (YAML text, dedented)."""
    text = BASE_MANIFEST
    if analysis.strip():
        text += "analysis:\n" + textwrap.indent(textwrap.dedent(analysis).strip() + "\n", "  ")
    return text


@functools.cache
def _staging_ddl_cached(manifest_text_: str) -> tuple[str, ...]:
    con = duckdb.connect()
    con.execute(SQL_MACROS)  # the SQL helpers warehouse.connect installs (tp_quote, ...)
    warehouse.ensure_schemas(con)
    manifest = parse_manifest(manifest_text_)
    frames = {**reference_frames(manifest), **source_frames(manifest, [], "test")}
    for table, frame in frames.items():
        warehouse.write_frame(con, table, frame)
    for table in raw_tables():
        con.execute(create_raw_table_sql(table))
    for model in sql.ordered_models(("staging",)):
        sql.run_model(con, model)
    tables = dict(con.execute("select schema_name || '.' || table_name, sql from duckdb_tables() where schema_name = 'staging'").fetchall())
    # and the staging views over those tables alone (staging.item_responses = item_values x assessment_rows)
    views = [
        con.execute("select sql from duckdb_views() where schema_name || '.' || view_name = ?", [m]).fetchone()[0]
        for m in sql.ordered_models(("staging",))
        if sql.materialization(m) == "view" and sql.model_inputs(m) <= set(tables)
    ]
    return (*tables.values(), *views)


def _staging_ddl(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """Empty staging tables with the real columns: the staging models run once over empty raw tables."""
    return _staging_ddl_cached(BASE_MANIFEST)


class Given:
    """An in-memory warehouse with ref tables from a manifest and empty staging tables."""

    def __init__(self, manifest: str | None = None):
        self.manifest = parse_manifest(manifest or manifest_text())
        self.con = duckdb.connect()
        self.con.execute(SQL_MACROS)
        warehouse.ensure_schemas(self.con)
        warehouse.set_context(self.con, study_id=self.manifest.study_id, run_id="test")
        frames = {**reference_frames(self.manifest), **source_frames(self.manifest, [], "test")}
        for table, frame in frames.items():
            self.con.register("_ref", frame.to_arrow())
            self.con.execute(f"create table {table} as select * from _ref")
            self.con.unregister("_ref")
        for ddl in _staging_ddl(self.con):
            self.con.execute(ddl)
        self._avisitn = {v.id: i for i, v in enumerate(self.manifest.visits)}
        self._row = 1
        self._items: list[dict] = []
        self._totals: list[dict] = []
        self._subjects: list[dict] = []
        self._rows: list[dict] = []

    # -- literal rows -------------------------------------------------------------------
    def subject(self, usubjid: str, arm: str | None, **covariates) -> Given:
        arms = {a.id: (n, a) for n, a in enumerate(self.manifest.arms, start=1)}
        n, a = arms[arm] if arm else (None, None)
        self._subjects.append({
            "study_id": self.manifest.study_id, "usubjid": usubjid, "arm": arm,
            "arm_label": a.display if a else None, "arm_role": a.role if a else None, "armn": n,
            "source": "rand", "_source_file": "rand.csv", "_source_row": len(self._subjects) + 2, **covariates,
        })
        return self

    def assessment(self, usubjid: str, instrument_id: str, visit: str, day: int, items: dict[int, float | None] | list,
                   *, total: float | None = None, total_given: bool = False, file: str = "x.csv",
                   predose: str | None = None) -> Given:
        """One assessment: ``items`` maps item number -> value (None = received but missing; absent =
        not received); a list means items 1..len in order. ``total`` adds a reported total row.
        ``predose`` ('Y' / 'N') marks the row pre- or post-dose (staging.assessment_rows.predose)."""
        if isinstance(items, list):
            items = {n: v for n, v in enumerate(items, start=1)}
        self._row += 1
        row = self._row
        self._rows.append({
            "study_id": self.manifest.study_id, "instrument_id": instrument_id, "instrument": INSTRUMENT[instrument_id],
            "source": file.split(".")[0], "_source_file": file, "_source_row": row, "usubjid": usubjid,
            "visit": visit, "avisitn": self._avisitn[visit], "study_day": day, "day_recorded": True,
            "predose": predose, "status": "accepted", "row_id": row,
        })
        for n, v in items.items():  # staging.item_responses is these joined to the row above
            self._items.append({"row_id": row, "item": n, "value": None if v is None else float(v), "is_missing": v is None})
        if total is not None or total_given:
            self._totals.append({
                "study_id": self.manifest.study_id, "usubjid": usubjid, "instrument": INSTRUMENT[instrument_id],
                "instrument_id": instrument_id, "visit": visit, "avisitn": self._avisitn[visit], "study_day": day,
                "reported_total": None if total is None else float(total),
                "source": file.split(".")[0], "_source_file": file, "_source_row": row,
            })
        return self

    # -- running ------------------------------------------------------------------------
    def _insert(self, table: str, rows: list[dict]) -> None:
        if not rows:
            return
        schema = dict(self.con.execute(
            "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
            table.split("."),
        ).fetchall())
        frame = pl.DataFrame(rows, infer_schema_length=None)
        self.con.register("_given", frame.to_arrow())
        cols = ", ".join(f"cast({c} as {schema[c]}) as {c}" for c in frame.columns)
        self.con.execute(f"insert into {table} by name select {cols} from _given")
        self.con.unregister("_given")

    def run(self, *models: str) -> duckdb.DuckDBPyConnection:
        self._insert("staging.item_values", self._items)
        self._insert("staging.reported_totals", self._totals)
        self._insert("staging.subjects", self._subjects)
        self._insert("staging.assessment_rows", self._rows)
        self._items, self._totals, self._subjects, self._rows = [], [], [], []
        for model in models:
            sql.run_model(self.con, model)
        return self.con


def rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple]:
    return con.execute(query).fetchall()
