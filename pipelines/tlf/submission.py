"""ADaM submission datasets: warehouse tables -> SAS XPORT v5 files (pyreadstat), with checked metadata.

The rules of a version 5 transport file are checked before anything is written, with an error
naming the dataset, variable (and row) at fault: dataset and variable names at most 8 characters,
upper-case letters, digits and underscores, starting with a letter; labels at most 40 characters;
character values at most 200 bytes; text is ASCII (the FDA's conformance guide asks for ASCII in
XPT files - common typographic characters are spelled in ASCII first, anything else is an error).
Column names are mapped to ADaM names by ``adam.yaml``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from pipelines.core import yamlio
from pipelines.core.errors import SubmissionError
from pipelines.report.data import read_table

SPEC_PATH = Path(__file__).parent / "adam.yaml"
NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
MAX_LABEL = 40
MAX_CHAR = 200
SAS_EPOCH = dt.date(1960, 1, 1)
ASCII_SPELLING = {
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
    "\u2265": ">=", "\u2264": "<=", "\u00d7": "x", "\u00a0": " ", "\u2026": "...", "\u00b5": "u", "\u03bc": "u",
}



@dataclass
class Variable:
    name: str  # ADaM name
    column: str  # warehouse column
    label: str
    type: str  # "char" | "num"
    length: int  # bytes for char; 8 for num
    kind: str = "num"  # num | int | date | datetime | char - what the numbers mean
    display_format: str | None = None
    order: int = 0


@dataclass
class Dataset:
    name: str
    label: str
    source: str
    klass: str
    structure: str
    keys: list[str]
    variables: list[Variable]
    frame: pl.DataFrame  # ADaM-named columns, values as written
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it is not submitted

    @property
    def file_name(self) -> str:
        return f"{self.name.lower()}.xpt"


@cache
def spec() -> dict:
    return yamlio.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def _comment_label(table: str, column: str) -> str | None:
    from pipelines.core.warehouse import table_docs

    text = (table_docs().get(table, {}).get("columns", {}) or {}).get(column)
    if not text:
        return None
    text = re.split(r" - |; |, |\(", str(text).strip(), maxsplit=1)[0].strip()
    if len(text) > MAX_LABEL:  # shorten at a word boundary
        text = text[: MAX_LABEL + 1].rsplit(" ", 1)[0]
    return text


def ascii_expr(text: pl.Expr) -> pl.Expr:
    """The text with ASCII_SPELLING's characters spelt in ASCII (each key is one character that no
    value holds, so replacing all at once is replacing them one after another)."""
    return text.str.replace_many(list(ASCII_SPELLING), list(ASCII_SPELLING.values()))


def _num_kind(dtype: pl.DataType) -> str | None:
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.Boolean:
        return "int"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "num"
    return None


def map_columns(table: str, columns: list[str]) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """[(column, ADaM name, label)] in the table's order, and the columns left out with the reason."""
    sp = spec()
    names: dict[str, list[str]] = sp["variables"]
    out, skipped = [], {}
    for col in columns:
        if col in sp["not_submitted"]:
            skipped[col] = "lineage/internal column"
            continue
        if col in names:
            name, label = names[col]
        else:
            name = col.upper().replace("_", "")
            label = _comment_label(table, col) or name
            if len(name) > 8:
                skipped[col] = f"no ADaM name of at most 8 characters (add it to {SPEC_PATH.name})"
                continue
        out.append((col, name, label))
    return out, skipped


def visit_labels(con: duckdb.DuckDBPyConnection, study_id: str) -> dict[str, str]:
    """Manifest visit id -> its label (visits[].label), for the visits that have one."""
    labels = read_table(con, "ref.visits", study_id)
    if labels is None or "visit_label" not in labels.columns:
        return {}
    return {
        str(v): str(lab)
        for v, lab in labels.select("visit", "visit_label").iter_rows()
        if lab is not None and str(lab).strip()
    }


def descriptive_avisit(con: duckdb.DuckDBPyConnection, study_id: str, df: pl.DataFrame) -> pl.DataFrame:
    """ADaM IG: AVISIT is the analysis visit's description, AVISITN its number. The warehouse keeps
    AVISIT = the manifest's visit id (a stable key users query); the submission dataset carries the
    manifest's label instead where the visit has one (ids without a label stay as they are)."""
    if "avisit" not in df.columns:
        return df
    labels = visit_labels(con, study_id)
    if not labels:
        return df
    return df.with_columns(
        pl.col("avisit").cast(pl.String).replace(labels).alias("avisit")
    )


def build_dataset(con: duckdb.DuckDBPyConnection, study_id: str, name: str) -> Dataset | None:
    """The dataset ``name`` of adam.yaml from the warehouse (None when its table is absent or empty)."""
    d = spec()["datasets"][name]
    df = read_table(con, d["source"], study_id)
    if df is None or df.is_empty():
        return None
    df = descriptive_avisit(con, study_id, df)
    mapped, skipped = map_columns(d["source"], df.columns)
    variables, exprs = [], []
    for i, (col, vname, label) in enumerate(mapped, start=1):
        dtype = df.schema[col]
        kind = _num_kind(dtype)
        if kind == "date":
            exprs.append(((pl.col(col) - pl.lit(SAS_EPOCH)).dt.total_days().cast(pl.Float64)).alias(vname))
            variables.append(Variable(vname, col, label, "num", 8, "date", "DATE9.", i))
        elif kind == "datetime":
            exprs.append(
                ((pl.col(col).dt.replace_time_zone(None) - pl.lit(dt.datetime(1960, 1, 1))).dt.total_microseconds() / 1e6).alias(vname)
            )
            variables.append(Variable(vname, col, label, "num", 8, "datetime", "DATETIME20.", i))
        elif kind in ("int", "num"):
            exprs.append(pl.col(col).cast(pl.Float64).alias(vname))
            variables.append(Variable(vname, col, label, "num", 8, kind, None, i))
        else:
            exprs.append(ascii_expr(pl.col(col).cast(pl.String)).alias(vname))
            variables.append(Variable(vname, col, label, "char", 1, "char", None, i))
    frame = df.select(exprs)
    for v in variables:
        if v.type == "char":
            lengths = frame[v.name].drop_nulls().str.len_bytes()
            v.length = max(int(lengths.max()) if lengths.len() else 1, 1)
    keys = [k for k in d.get("keys", []) if k in {v.name for v in variables}]
    ds = Dataset(name, d["label"], d["source"], d["class"], d["structure"], keys, variables, frame, skipped)
    check_dataset(ds)
    return ds


def check_dataset(ds: Dataset) -> None:
    """Every XPORT v5 rule, with an error naming the dataset, variable and row at fault."""
    where = f"dataset {ds.name} (from {ds.source})"
    if not NAME_RE.match(ds.name):
        raise SubmissionError(f"{where}: dataset name {ds.name!r} must be 1-8 upper-case letters, digits or underscores")
    if len(ds.label) > MAX_LABEL or not ds.label.isascii():
        raise SubmissionError(f"{where}: dataset label {ds.label!r} is longer than {MAX_LABEL} characters or not ASCII")
    seen: dict[str, str] = {}
    for v in ds.variables:
        if not NAME_RE.match(v.name):
            raise SubmissionError(
                f"{where}: variable name {v.name!r} (column {v.column}) must be 1-8 upper-case letters, digits or underscores, starting with a letter"
            )
        if v.name in seen:
            raise SubmissionError(f"{where}: columns {seen[v.name]} and {v.column} both map to variable {v.name}")
        seen[v.name] = v.column
        if not v.label or len(v.label) > MAX_LABEL or not v.label.isascii():
            raise SubmissionError(
                f"{where}: label of {v.name} {v.label!r} must be 1-{MAX_LABEL} ASCII characters (it has {len(v.label)})"
            )
        if v.type == "char":
            col = ds.frame[v.name]
            bad_ascii = col.drop_nulls().map_elements(lambda s: not s.isascii(), return_dtype=pl.Boolean)
            if bad_ascii.any():
                row = int(col.map_elements(lambda s: s is not None and not s.isascii(), return_dtype=pl.Boolean).arg_true()[0])
                raise SubmissionError(
                    f"{where}: variable {v.name} row {row + 1} has a non-ASCII character that XPT v5 cannot carry",
                    value=col[row],
                )
            if v.length > MAX_CHAR:
                lengths = col.str.len_bytes().fill_null(0)
                row = int(lengths.arg_max())
                raise SubmissionError(
                    f"{where}: variable {v.name} row {row + 1} is {int(lengths[row])} bytes long; XPT v5 allows {MAX_CHAR}"
                )


def write_xpt(ds: Dataset, out_dir: Path) -> Path:
    import pyreadstat

    path = out_dir / ds.file_name
    formats = {v.name: v.display_format for v in ds.variables if v.display_format}
    # the polars frame itself (pyreadstat reads it through narwhals): the same bytes as from pandas,
    # where pandas 3's Arrow-backed strings, iterated a value at a time, took 3x as long
    pyreadstat.write_xport(
        ds.frame,
        str(path),
        file_label=ds.label,
        column_labels={v.name: v.label for v in ds.variables},
        table_name=ds.name,
        file_format_version=5,
        variable_format=formats or None,
    )
    return path
