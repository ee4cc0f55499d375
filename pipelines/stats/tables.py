"""Results tables computed together: one dataclass field per ``results.*`` table."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import polars as pl


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
