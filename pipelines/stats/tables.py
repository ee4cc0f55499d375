"""The ``results.*`` tables in Python: each column's type (one map for every table: a name means one
thing everywhere), each table's schema from the contract in ``sql/results/_schema.yml``, and
``ResultTables`` for results computed together (one dataclass field per table)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import polars as pl

from pipelines.core.warehouse import table_docs

S, F, I, B = pl.Utf8, pl.Float64, pl.Int64, pl.Boolean

# The type of every column of the results tables, by name. Which columns each table has, and in
# what order, is the contract in sql/results/_schema.yml (with each column's description): read
# from there, never restated here.
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
    # estimands (pipelines.stats.estimands)
    "estimand_id": S, "label": S, "population": S, "treatment": S, "intercurrent_events": S,
    "strategies": S, "summary_measure": S, "description": S, "primary_strategy": S, "n_ice": I,
    "tipping_delta_experimental": F, "tipping_delta_control": F, "method": S, "strategy": S, "delta": F,
    "delta_arm": S, "n_imputations": I, "seed": I, "delta_experimental": F, "delta_control": F,
    "n_responders_experimental": I, "n_experimental": I, "n_responders_control": I, "n_control": I,
    "or_conf_low": F, "or_conf_high": F, "or_p_value": F, "or_method": S,
}  # fmt: skip


def contract_columns(table: str) -> list[str]:
    """The columns of a results table, in order, from sql/results/_schema.yml."""
    return list(table_docs()[table]["columns"])


def results_schema(table: str) -> dict[str, pl.DataType]:
    """``table``'s columns in the contract's order, with their types."""
    return {c: TYPES[c] for c in contract_columns(table)}


class ResultTables:
    """Mixin for a dataclass whose DataFrame fields are results tables, each ``results.<field>``
    unless ``TABLE_NAMES`` names it otherwise; a field left None is no table."""

    TABLE_NAMES: ClassVar[dict[str, str]] = {}

    def tables(self) -> dict[str, pl.DataFrame]:
        """``results.<name>`` -> frame, in field order, for writing to the warehouse."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, pl.DataFrame):
                out[f"results.{self.TABLE_NAMES.get(f.name, f.name)}"] = value
        return out
