"""The MMRM engine's data: named numpy columns, no pandas.

``trialpipe mmrm`` is a short process, and importing pandas was 40% of it; the engine works on
:class:`Frame` (columns of numpy values) and pandas appears only at the boundary: a pandas or
polars frame given to ``fit_mmrm`` is converted here (:func:`as_frame`), and formulaic, which needs
pandas, gets :meth:`Frame.to_pandas` (formulas beyond plain column names, Type III tests).

A :class:`Column` is one of

* ``number`` -- int or float values (NaN missing);
* ``bool``   -- booleans (object values when some are missing);
* ``text``   -- object values (str, or anything else a pandas object column held), None missing;
* ``factor`` -- integer codes into ``categories`` (-1 missing): a pandas Categorical, or a factor
  built by the engine.

The semantics are pandas' where the engine relied on them: missing is what ``isna`` says,
:meth:`Column.factorize` is ``pd.factorize`` (codes in order of first appearance), a numeric
column's mean is pandas' (the same pairwise sum over the same contiguous values).
"""

from __future__ import annotations

import math
import re
import sys

import numpy as np

from pipelines.core.errors import ModelSpecError

# A number as pandas' to_numeric reads one from text: decimal or scientific, optional sign and
# surrounding spaces, inf/infinity; not nan, not hex, not digit separators, ASCII digits only.
NUMBER = r"[ \t]*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity))[ \t]*"
_NUMBER_RE = re.compile(NUMBER)


def parse_number(value) -> float | None:
    """float of a value pandas' to_numeric accepts (numbers as numbers, text by :data:`NUMBER`), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value):
        return float(value)
    return None


class Column:
    __slots__ = ("categories", "kind", "na", "values")

    def __init__(
        self, values: np.ndarray, kind: str, categories: list | None = None, na: np.ndarray | None = None
    ):
        self.values = values
        self.kind = kind
        self.categories = categories
        if na is None:
            if kind == "number" and values.dtype.kind == "f":
                na = np.isnan(values)
            elif kind == "factor":
                na = values < 0
            elif kind == "text" or values.dtype == object:
                na = np.fromiter((_missing(v) for v in values), dtype=bool, count=len(values))
            else:
                na = np.zeros(len(values), dtype=bool)
        self.na = na

    @classmethod
    def from_values(cls, values) -> Column:
        """A column from a numpy array or a list: numbers, booleans, or text (None/NaN missing)."""
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ModelSpecError(f"a data column must be one-dimensional, got shape {arr.shape}")
        k = arr.dtype.kind
        if k in "iuf":
            return cls(arr, "number")
        if k == "b":
            return cls(arr, "bool")
        arr = arr.astype(object)
        col = cls(arr, "text")
        if col.na.any():
            arr = arr.copy()
            arr[col.na] = None
            col.values = arr
        return col

    @classmethod
    def from_pandas(cls, series) -> Column:
        import pandas as pd

        dtype = series.dtype
        na = series.isna().to_numpy()
        if isinstance(dtype, pd.CategoricalDtype):
            return cls(series.cat.codes.to_numpy(dtype=np.int64), "factor", list(dtype.categories), na)
        if pd.api.types.is_bool_dtype(dtype):
            if na.any():
                vals = series.to_numpy(dtype=object)
                vals[na] = None
                return cls(vals, "bool", na=na)
            return cls(series.to_numpy(dtype=bool), "bool", na=na)
        if pd.api.types.is_numeric_dtype(dtype):
            if isinstance(dtype, np.dtype):
                return cls(series.to_numpy(), "number", na=na)
            # nullable extension types (Int64, Float64): NaN for missing, as astype(float) gives
            vals = (
                series.to_numpy(dtype=float, na_value=np.nan)
                if na.any()
                else series.to_numpy(dtype=dtype.numpy_dtype)
            )
            return cls(vals, "number", na=na)
        vals = series.to_numpy(dtype=object, copy=True)
        vals[na] = None
        return cls(vals, "text", na=na)

    # ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.values)

    @property
    def is_number(self) -> bool:
        """Numeric and not boolean (pandas: is_numeric_dtype and not is_bool_dtype)."""
        return self.kind == "number"

    def take(self, idx) -> Column:
        return Column(self.values[idx], self.kind, self.categories, self.na[idx])

    def to_float(self) -> np.ndarray:
        """Values as float64 (number and bool columns; missing -> NaN)."""
        if self.kind == "bool" and self.values.dtype == object:
            out = np.full(len(self.values), np.nan)
            out[~self.na] = self.values[~self.na].astype(bool)
            return out
        return self.values.astype(float)

    def mean(self) -> float:
        """pandas' Series.astype(float).mean() of a column without missing values."""
        x = np.ascontiguousarray(self.to_float())
        return float(x.sum() / len(x))

    def labels(self) -> np.ndarray:
        """A factor's category of every row (None missing)."""
        cats = np.array(list(self.categories) + [None], dtype=object)
        return cats[self.values]

    def factorize(self) -> tuple[np.ndarray, list]:
        """``pd.factorize``: integer codes in order of first appearance (-1 missing) and the unique values."""
        n = len(self.values)
        if self.kind == "factor":
            codes, uniq_codes = _first_appearance(self.values[~self.na], self.na, n)
            return codes, [self.categories[c] for c in uniq_codes]
        if self.values.dtype != object:
            codes, uniq = _first_appearance(self.values[~self.na], self.na, n)
            return codes, list(uniq)
        lut: dict = {}
        codes = np.full(n, -1, dtype=np.int64)
        for i, (v, miss) in enumerate(zip(self.values.tolist(), self.na.tolist())):
            if not miss:
                codes[i] = lut.setdefault(v, len(lut))
        return codes, list(lut)

    def to_pandas(self):
        import pandas as pd

        if self.kind == "factor":
            return pd.Categorical.from_codes(
                self.values, categories=pd.Index(self.categories, dtype=object), validate=False
            )
        return self.values


def _missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    pd = sys.modules.get("pandas")  # only an object column from a pandas user holds pd.NA / NaT
    return pd is not None and (v is pd.NA or v is pd.NaT)


def _first_appearance(present: np.ndarray, na: np.ndarray, n: int):
    uniq, first, inv = np.unique(present, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = np.full(n, -1, dtype=np.int64)
    codes[~na] = rank[inv.reshape(-1)]
    return codes, uniq[order]


class Frame:
    """Named columns of equal length; ``index`` holds each row's position in the data as given
    (for error messages after rows were dropped)."""

    __slots__ = ("_cols", "index")

    def __init__(self, columns: dict[str, Column], index: np.ndarray | None = None):
        self._cols = dict(columns)
        lengths = {len(c) for c in self._cols.values()}
        if len(lengths) > 1:
            raise ModelSpecError(
                f"the data's columns have different lengths ({', '.join(map(str, sorted(lengths)))})"
            )
        n = lengths.pop() if lengths else 0
        self.index = np.arange(n) if index is None else index

    @property
    def columns(self) -> list[str]:
        return list(self._cols)

    def __contains__(self, name) -> bool:
        return name in self._cols

    def __getitem__(self, name) -> Column:
        return self._cols[name]

    def __setitem__(self, name, col: Column):
        self._cols[name] = col

    def __len__(self) -> int:
        return len(self.index)

    def take(self, idx, names=None) -> Frame:
        """Rows ``idx`` (a boolean mask or positions) of the columns ``names`` (default all)."""
        names = self.columns if names is None else names
        return Frame({k: self._cols[k].take(idx) for k in names}, self.index[idx])

    def to_pandas(self):
        """The frame as pandas (factors as Categorical with object categories) for formulaic."""
        import pandas as pd

        return pd.DataFrame({k: c.to_pandas() for k, c in self._cols.items()}, index=pd.RangeIndex(len(self)))


def as_frame(data) -> Frame:
    """A :class:`Frame` from a Frame, a dict of columns (numpy arrays or lists), a pandas or a polars
    DataFrame (polars goes through pandas, as the engine always read it)."""
    if isinstance(data, Frame):
        return data
    if isinstance(data, dict):
        return Frame({str(k): Column.from_values(v) for k, v in data.items()})
    top = type(data).__module__.split(".")[0]
    if top == "polars":  # polars and pandas are imported only if the caller uses them
        import polars as pl

        if isinstance(data, pl.DataFrame):
            data = data.to_pandas()
            top = "pandas"
    if top == "pandas":
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return Frame({k: Column.from_pandas(data[k]) for k in data.columns})
    raise ModelSpecError(
        f"data must be a polars or pandas DataFrame or a dict of columns, got {type(data).__name__}"
    )


def as_column(series) -> Column:
    """A :class:`Column` from a Column, a pandas Series, or a numpy array / list."""
    if isinstance(series, Column):
        return series
    if type(series).__module__.split(".")[0] == "pandas":
        return Column.from_pandas(series)
    return Column.from_values(series)
