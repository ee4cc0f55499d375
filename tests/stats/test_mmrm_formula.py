"""Formula parsing, variable typing, level order and the fixed-effects design."""

from __future__ import annotations

import formulaic
import numpy as np
import pandas as pd
import pytest

from pipelines.core.errors import ModelSpecError
from pipelines.stats.mmrm import fit_mmrm
from pipelines.stats.mmrm.formula import (
    DesignBuilder,
    factor_levels,
    full_rank_columns,
    parse_formula,
    r_column_name,
)


def test_parse_plain_formula():
    p = parse_formula("FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID)")
    assert (p.response, p.cov_type, p.time, p.subject, p.group) == ("FEV1", "us", ["AVISIT"], "USUBJID", None)
    assert p.fixed_rhs == "RACE + SEX + ARMCD * AVISIT"


def test_parse_grouped_and_spatial_terms():
    g = parse_formula("y ~ a + toeph(visit | arm / id)")
    assert (g.cov_type, g.group, g.subject) == ("toeph", "arm", "id")
    s = parse_formula("y ~ sp_exp(t1, t2 | id) + a")
    assert (s.cov_type, s.time, s.fixed_rhs) == ("sp_exp", ["t1", "t2"], "a")
    assert parse_formula("y ~ sp_exp(t1 + t2 | id)").time == ["t1", "t2"]
    assert parse_formula("y ~ ar1h(visit | id)").fixed_rhs == "1"


def test_factor_wrappers_are_recorded_and_stripped():
    p = parse_formula("y ~ factor(dose) + C(site):visit + us(visit | id)")
    assert p.forced_factors == {"dose", "site"}
    assert p.fixed_rhs == "dose + site:visit"


@pytest.mark.parametrize(
    "formula, fragment",
    [
        ("y + z ~ a + us(v | id)", "single column"),
        ("y ~ a", "covariance term"),
        ("y ~ us(v | id) + cs(v | id)", "exactly one"),
        ("y ~ us(v)", "TIME | SUBJECT"),
        ("y ~ ar1(v, w | id)", "one time variable"),
        ("y a", "no '~'"),
    ],
)
def test_parse_errors(formula, fragment):
    with pytest.raises(ModelSpecError) as info:
        parse_formula(formula)
    assert fragment in str(info.value)


def test_r_column_names():
    assert r_column_name("Intercept") == "(Intercept)"
    assert r_column_name("ARMCD[T.TRT]:AVISIT[T.VIS2]") == "ARMCDTRT:AVISITVIS2"
    assert r_column_name("RACE[T.Black or African American]") == "RACEBlack or African American"
    assert r_column_name("BASVAL:VISIT[4]") == "BASVAL:VISIT4"


def test_levels_follow_r_order_and_reference_goes_first():
    assert factor_levels(pd.Series([10, 4, 5, 4]), "v", None, None, None) == ["4", "5", "10"]
    assert factor_levels(pd.Series(["b", "a", "C"]), "v", None, None, None) == ["C", "a", "b"]
    assert factor_levels(pd.Series(["Male", "Female"]), "SEX", None, "Male", None) == ["Male", "Female"]
    assert factor_levels(pd.Series(["x", "y"]), "v", ["y", "x"], None, None) == ["y", "x"]


def test_full_rank_sweep_drops_later_dependent_columns():
    x = np.arange(6.0)
    X = np.column_stack([np.ones(6), x, 2 * x + 1, x**2])
    assert full_rank_columns(X).tolist() == [True, True, False, True]


@pytest.mark.parametrize(
    "rhs", ["A*B", "B*A", "x*A + B", "A:x + A", "A*B*x", "x:z + x + z", "1", "A + log(z)"]
)
def test_design_builder_equals_formulaic(rhs):
    rng = np.random.default_rng(1)
    d = pd.DataFrame(
        {
            "A": pd.Categorical(rng.choice(list("abc"), 40), categories=list("abc")),
            "B": pd.Categorical(rng.choice(list("xyz"), 40), categories=list("xyz")),
            "x": rng.normal(size=40),
            "z": rng.uniform(1, 2, size=40),
        }
    )
    b = DesignBuilder(rhs, d, {"A", "B"})
    mm = formulaic.model_matrix(rhs, d)
    assert b.columns == list(mm.columns)
    assert np.allclose(b.matrix(d), mm.values)


def test_numeric_column_is_continuous_unless_time_or_factor():
    rng = np.random.default_rng(2)
    rows = [(f"S{s}", v, s % 3, rng.normal()) for s in range(30) for v in (1, 2, 3)]
    d = pd.DataFrame(rows, columns=["id", "visit", "dose", "y"])
    cont = fit_mmrm(d, "y ~ dose + visit + cs(visit | id)")
    assert cont.coefficients["term"].to_list() == ["(Intercept)", "dose", "visit2", "visit3"]
    fac = fit_mmrm(d, "y ~ factor(dose) + visit + cs(visit | id)")
    assert fac.coefficients["term"].to_list() == ["(Intercept)", "dose1", "dose2", "visit2", "visit3"]


@pytest.mark.parametrize(
    "rhs",
    [
        "1",
        "A",
        "A + B",
        "RACE + SEX + ARMCD * AVISIT",
        "BCVA_BL + RACE + ARMCD * AVISIT",
        "A*B*C",
        "A:B + A",
        "X + A*B + C",
        "A + 1",
        "1 + A*B",
        "A*B + A:B",
        "A:B:C + A*B",
        "A*B:C",
        "A + A + B",
        "x.y + z_1*A",
    ],
)
def test_simple_formula_terms_match_formulaic(rhs):
    """The formulaic-free parser of plain formulas gives formulaic's terms in formulaic's order."""
    import formulaic

    from pipelines.stats.mmrm.formula import simple_terms

    ours = simple_terms(rhs)
    assert ours is not None
    theirs = [[str(f) for f in t.factors if str(f) != "1"] for t in formulaic.Formula(rhs)]
    assert ours == theirs


@pytest.mark.parametrize("rhs", ["0 + A", "A - 1", "log(x)", "A*(B + C)", "I(x**2)", "B:A + A*B", "A +"])
def test_other_formulas_are_left_to_formulaic(rhs):
    from pipelines.stats.mmrm.formula import simple_terms

    assert simple_terms(rhs) is None
