"""The MixedLM wrapper's contract: tidy columns, z tests, captured convergence problems."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.core.errors import ModelSpecError
from pipelines.stats.lmm import TIDY, fit_lmm


def test_tidy_columns_and_z_tests(sleepstudy):
    res = fit_lmm(sleepstudy, "Reaction ~ Days", groups="Subject", re_formula="~Days")
    assert res.coefficients.columns == TIDY
    row = res.coefficients.row(1, named=True)
    assert np.isnan(row["df"])
    assert row["statistic"] == pytest.approx(row["estimate"] / row["std_error"])
    assert res.summary()["n_groups"] == 18 and res.n_obs == 180


def test_degenerate_random_slope_is_flagged():
    """No between-subject slope variation at all: statsmodels warns (boundary), we say so."""
    rng = np.random.default_rng(0)
    rows = [(f"S{s}", t, 3.0 + rng.normal(scale=0.01)) for s in range(6) for t in range(3)]
    d = pd.DataFrame(rows, columns=["id", "t", "y"])
    res = fit_lmm(d, "y ~ t", groups="id", re_formula="~t")
    assert res.converged is False or res.warnings


def test_unknown_group_column_is_an_error(sleepstudy):
    with pytest.raises(ModelSpecError):
        fit_lmm(sleepstudy, "Reaction ~ Days", groups="Nope")
