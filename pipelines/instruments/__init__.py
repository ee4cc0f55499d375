"""Instrument definitions as data.

Each ``*.yaml`` file beside this module defines one rating scale: its items (number, code,
cluster), the item range, the scores (PARAMCD -> items summed), response/remission defaults,
diagnosis rules and how the scale appears in NDA and SDTM files. Readers and scoring SQL are
generic over these definitions: adding HAM-D-17 or IES-R is a new YAML file, not new code.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

HERE = Path(__file__).parent


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int
    code: str
    label: str
    cluster: str | None = None
    optional: bool = False


def parse_item_range(spec: str | int | list[int]) -> list[int]:
    """'1-5' -> [1..5]; '1-5,8' -> [1,2,3,4,5,8]; 7 -> [7]; lists pass through."""
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, list):
        return [int(x) for x in spec]
    out: list[int] = []
    for part in str(spec).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            out.extend(range(lo, hi + 1))
        elif part:
            out.append(int(part))
    return out


class Score(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paramcd: str
    param: str
    items: list[int]
    primary_total: bool = False
    optional: bool = False

    @field_validator("items", mode="before")
    @classmethod
    def _items(cls, v: object) -> list[int]:
        return parse_item_range(v)  # type: ignore[arg-type]


class ResponseRule(BaseModel):
    paramcd: str
    min_pct_reduction: float


class RemissionRule(BaseModel):
    paramcd: str
    op: Literal["<", "<=", ">", ">="]
    value: float


class SymptomRule(BaseModel):
    item_threshold: int
    min_items: dict[str, int]


class CutoffRule(BaseModel):
    paramcd: str
    value: float


class Diagnosis(BaseModel):
    symptom_rule: SymptomRule | None = None
    cutoff: CutoffRule | None = None


class NdaFormat(BaseModel):
    structure: str
    item_sets: dict[str, list[str]]
    totals: dict[str, str] = Field(default_factory=dict)
    missing_codes: list[str] = Field(default_factory=list)
    free_text: list[str] = Field(default_factory=list)


class SdtmFormat(BaseModel):
    domain: str
    categories: list[str]
    testcd_pattern: str
    total_testcds: list[str] = Field(default_factory=list)


class Formats(BaseModel):
    nda: NdaFormat | None = None
    sdtm: SdtmFormat | None = None


class Instrument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    instrument: str
    title: str
    item_min: int
    item_max: int
    anchors: dict[int, str] = Field(default_factory=dict)
    items: list[Item]
    clusters: dict[str, str] = Field(default_factory=dict)
    scores: list[Score]
    response: ResponseRule | None = None
    remission: RemissionRule | None = None
    diagnosis: Diagnosis | None = None
    wide_patterns: list[str] = Field(default_factory=list)
    formats: Formats = Field(default_factory=Formats)

    @property
    def item_numbers(self) -> list[int]:
        return [i.n for i in self.items]

    @property
    def core_items(self) -> list[int]:
        """Items every administration has (not optional)."""
        return [i.n for i in self.items if not i.optional]

    def item(self, n: int) -> Item:
        for it in self.items:
            if it.n == n:
                return it
        raise KeyError(n)

    def nda_item_map(self) -> dict[str, dict[str, int]]:
        """NDA item set name -> {element name: item number}, in item order."""
        if self.formats.nda is None:
            return {}
        return {
            name: dict(zip(elements, self.item_numbers, strict=False))
            for name, elements in self.formats.nda.item_sets.items()
        }

    def sdtm_testcd(self, n: int) -> str:
        assert self.formats.sdtm is not None
        return self.formats.sdtm.testcd_pattern.format(n=n)

    def wide_column_candidates(self, n: int) -> list[str]:
        it = self.item(n)
        return [
            p.format(n=n, code=it.code, code_lower=it.code.lower()) for p in self.wide_patterns
        ]


@functools.cache
def load_instruments() -> dict[str, Instrument]:
    """All instrument definitions, keyed by id (``pcl5``, ``caps5``, ``madrs``)."""
    out: dict[str, Instrument] = {}
    for path in sorted(HERE.glob("*.yaml")):
        with path.open(encoding="utf-8") as fh:
            inst = Instrument.model_validate(yaml.safe_load(fh))
        if inst.id != path.stem:
            raise ValueError(f"{path.name}: id {inst.id!r} must equal the file stem")
        out[inst.id] = inst
    return out


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def resolve_instrument(name: str) -> Instrument | None:
    """Find an instrument by id or display name, ignoring case and punctuation ('PCL-5', 'pcl5')."""
    key = _norm(name)
    for inst in load_instruments().values():
        if key in (_norm(inst.id), _norm(inst.instrument)):
            return inst
    return None


def all_paramcds() -> list[str]:
    return [s.paramcd for inst in load_instruments().values() for s in inst.scores]
