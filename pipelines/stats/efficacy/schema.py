"""Column order and types of the ``results.*`` efficacy tables. The columns (the contract's
first, docs contract.md, then ours) and their descriptions are ``sql/results/_schema.yml``; the
types are ``pipelines.stats.tables.TYPES``."""

from __future__ import annotations

import math

import polars as pl

from pipelines.stats import tables

# The column types (one map for every results table) and the contract's columns live in
# pipelines.stats.tables; this module keeps the efficacy tables' schemas and the row-to-frame step.
TYPES = tables.TYPES
contract_columns = tables.contract_columns
_schema = tables.results_schema


MODEL_FITS = _schema("results.model_fits")
LSMEANS = _schema("results.lsmeans")
TREATMENT_EFFECTS = _schema("results.treatment_effects")
RESPONDERS = _schema("results.responders")
MISSING_ITEMS = _schema("results.missing_items")

TABLES = {
    "results.model_fits": MODEL_FITS,
    "results.lsmeans": LSMEANS,
    "results.treatment_effects": TREATMENT_EFFECTS,
    "results.responders": RESPONDERS,
    "results.missing_items": MISSING_ITEMS,
}


def _clean(v):
    """NaN and infinities become nulls (SQL NULL = not estimable / not applicable)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # numpy scalars
        v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
    return v


def frame(rows: list[dict], schema: dict[str, pl.DataType], **constant) -> pl.DataFrame:
    """A frame with exactly ``schema``'s columns in order; missing keys are null."""
    data = {name: [] for name in schema}
    for row in rows:
        full = {**row, **constant}
        unknown = set(full) - set(schema)
        if unknown:
            raise KeyError(f"columns not in the results schema: {sorted(unknown)}")
        for name in schema:
            data[name].append(_clean(full.get(name)))
    return pl.DataFrame(data, schema=schema)
