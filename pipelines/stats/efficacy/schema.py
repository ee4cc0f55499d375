"""Column order and types of the four ``results.*`` efficacy tables. The columns (the contract's
first, docs contract.md, then ours) and their descriptions are ``sql/results/_schema.yml``; this
module adds only each column's type."""

from __future__ import annotations

import math

import polars as pl

from pipelines.core.warehouse import table_docs

S, F, I, B = pl.Utf8, pl.Float64, pl.Int64, pl.Boolean

# The type of every column of the efficacy results tables, by name (a name means one thing in every
# table). Which columns each table has, and in what order, is the contract in sql/results/_schema.yml
# (with each column's description): read from there, never restated here.
TYPES: dict[str, pl.DataType] = {
    "study_id": S, "run_id": S, "paramcd": S, "model": S, "trtp": S, "avisit": S, "avisitn": I,
    "covariance": S, "estimation": S, "df_method": S, "converged": B, "neg2_loglik": F, "aic": F, "bic": F,
    "n_subjects": I, "n_obs": I, "warnings": S, "formula": S, "fallback_from": S, "n_attempts": I,
    "estimate": F, "std_error": F, "df": F, "conf_low": F, "conf_high": F, "is_primary": B,
    "p_value": F, "p_adjusted": F, "adjust_method": S, "cohens_d": F, "contrast": S, "statistic": F,
    "family": S, "cohens_d_conf_low": F, "cohens_d_conf_high": F, "effect_size_sd": F,
    "effect_size_method": S, "criterion": S, "n_responders": I, "n_evaluable": I, "proportion": F,
    "risk_difference": F, "test": S, "criterion_text": S, "missing_data": S, "ci_method": S,
    "odds_ratio": F, "odds_ratio_conf_low": F, "odds_ratio_conf_high": F, "warning": S,
    "singular": B, "instrument": S, "is_baseline": B, "n_assessed": I, "n_scored": I, "n_lost": I,
    "pct_lost": F, "n_prorated": I, "subjects_lost": S,
}  # fmt: skip


def contract_columns(table: str) -> list[str]:
    """The columns of a results table, in order, from sql/results/_schema.yml."""
    return list(table_docs()[table]["columns"])


def _schema(table: str) -> dict[str, pl.DataType]:
    return {c: TYPES[c] for c in contract_columns(table)}


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
