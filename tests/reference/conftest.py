"""Shared inputs of the reference tests: the public datasets and reference numbers copied from
../shared/refdata into tests/data/refdata (see SOURCES.md there), so CI needs no ../shared."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

REFDATA = Path(__file__).resolve().parents[1] / "data" / "refdata"


@pytest.fixture(scope="session")
def fev() -> pl.DataFrame:
    return pl.read_csv(REFDATA / "fev_data.csv", null_values=["NA"])


@pytest.fixture(scope="session")
def antidepressant() -> pl.DataFrame:
    return pl.read_csv(
        REFDATA / "antidepressant_data.csv", null_values=["NA"], schema_overrides={"POOLINV": pl.Utf8}
    )


@pytest.fixture(scope="session")
def sleepstudy() -> pl.DataFrame:
    return pl.read_csv(REFDATA / "sleepstudy.csv")


@pytest.fixture(scope="session")
def reference_cases() -> dict:
    """reference_cases.json by case id; every case names its source listing (repo, path, commit)."""
    data = json.loads((REFDATA / "reference_cases.json").read_text())
    return {c["id"]: c for c in data["cases"]}
