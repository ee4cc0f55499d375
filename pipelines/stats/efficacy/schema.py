"""Column order and types of the four ``results.*`` efficacy tables: the contract's columns first
(docs contract.md), then ours. Every column is documented in ``sql/results/_schema.yml``."""

from __future__ import annotations

import math

import polars as pl

S, F, I, B = pl.Utf8, pl.Float64, pl.Int64, pl.Boolean

MODEL_FITS: dict[str, pl.DataType] = {
    # contract
    "study_id": S,
    "paramcd": S,
    "model": S,
    "covariance": S,
    "estimation": S,
    "df_method": S,
    "converged": B,
    "neg2_loglik": F,
    "aic": F,
    "n_subjects": I,
    "n_obs": I,
    "warnings": S,
    # ours
    "run_id": S,
    "bic": F,
    "formula": S,
    "fallback_from": S,
    "n_attempts": I,
    "singular": B,
}

LSMEANS: dict[str, pl.DataType] = {
    "study_id": S,
    "paramcd": S,
    "model": S,
    "trtp": S,
    "avisit": S,
    "estimate": F,
    "std_error": F,
    "df": F,
    "conf_low": F,
    "conf_high": F,
    "run_id": S,
    "avisitn": I,
    "n_obs": I,
}

TREATMENT_EFFECTS: dict[str, pl.DataType] = {
    "study_id": S,
    "paramcd": S,
    "model": S,
    "avisit": S,
    "is_primary": B,
    "estimate": F,
    "std_error": F,
    "df": F,
    "df_method": S,
    "conf_low": F,
    "conf_high": F,
    "p_value": F,
    "p_adjusted": F,
    "adjust_method": S,
    "cohens_d": F,
    "run_id": S,
    "avisitn": I,
    "contrast": S,
    "statistic": F,
    "family": S,
    "cohens_d_conf_low": F,
    "cohens_d_conf_high": F,
    "effect_size_sd": F,
    "effect_size_method": S,
    "n_obs": I,
}

RESPONDERS: dict[str, pl.DataType] = {
    "study_id": S,
    "paramcd": S,
    "criterion": S,
    "trtp": S,
    "n_responders": I,
    "n_evaluable": I,
    "proportion": F,
    "risk_difference": F,
    "conf_low": F,
    "conf_high": F,
    "p_value": F,
    "test": S,
    "run_id": S,
    "avisit": S,
    "criterion_text": S,
    "missing_data": S,
    "ci_method": S,
    "odds_ratio": F,
    "odds_ratio_conf_low": F,
    "odds_ratio_conf_high": F,
    "warning": S,
}

MISSING_ITEMS: dict[str, pl.DataType] = {
    "study_id": S,
    "run_id": S,
    "instrument": S,
    "paramcd": S,
    "trtp": S,
    "avisit": S,
    "avisitn": I,
    "is_baseline": B,
    "n_assessed": I,
    "n_scored": I,
    "n_lost": I,
    "pct_lost": F,
    "n_prorated": I,
    "subjects_lost": S,
}

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
