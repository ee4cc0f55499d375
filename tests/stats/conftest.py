from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

REFDATA = Path(__file__).resolve().parents[1] / "data" / "refdata"


@pytest.fixture(scope="session")
def refdata_dir() -> Path:
    return REFDATA


@pytest.fixture(scope="session")
def fev() -> pl.DataFrame:
    return pl.read_csv(REFDATA / "fev_data.csv", null_values=["NA"])


@pytest.fixture(scope="session")
def sleepstudy() -> pl.DataFrame:
    return pl.read_csv(REFDATA / "sleepstudy.csv")
