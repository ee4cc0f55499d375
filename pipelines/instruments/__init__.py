"""Instrument definitions as data.

Each ``*.yaml`` file beside this module defines one rating scale: its items (number, code,
cluster), the item range, the scores (PARAMCD -> items summed), response/remission defaults,
diagnosis rules and how the scale appears in NDA and SDTM files. Readers and scoring SQL are
generic over these definitions: adding HAM-D-17 or IES-R is a new YAML file, not new code.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.core import yamlio

HERE = Path(__file__).parent


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int
    code: str
    label: str
    cluster: str | None = None
    optional: bool = False
    # this item's own rating range when it differs from the instrument's (HAM-D-17: 0-2 and 0-4 items)
    min: int | None = None
    max: int | None = None


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
    """A score (PARAMCD): the sum of its items' values, where each group in ``max_of`` counts once,
    by its largest item (QIDS-SR16: one value for the four sleep items). ``label`` is the short
    name tables and figures show ('Cluster B (Intrusion)'); a total defaults to '<instrument> total'."""

    model_config = ConfigDict(extra="forbid")
    paramcd: str = Field(max_length=8, pattern=r"^[A-Z][A-Z0-9]*$")
    param: str = Field(max_length=200)
    items: list[int]
    max_of: list[list[int]] = Field(default_factory=list)
    label: str | None = None
    primary_total: bool = False
    optional: bool = False

    @field_validator("items", mode="before")
    @classmethod
    def _items(cls, v: object) -> list[int]:
        return parse_item_range(v)  # type: ignore[arg-type]

    @field_validator("max_of", mode="before")
    @classmethod
    def _groups(cls, v: object) -> list[list[int]]:
        return [parse_item_range(g) for g in (v or [])]  # type: ignore[union-attr]

    @model_validator(mode="after")
    def _groups_within_items(self) -> Score:
        seen: set[int] = set()
        for g in self.max_of:
            if not set(g) <= set(self.items):
                raise ValueError(f"{self.paramcd}: max_of group {g} has items the score does not list")
            if seen & set(g):
                raise ValueError(f"{self.paramcd}: max_of groups overlap ({sorted(seen & set(g))})")
            seen |= set(g)
        return self

    def components(self) -> list[list[int]]:
        """The parts the score sums, in item order: each max_of group, every other item alone."""
        grouped = {n: g for g in self.max_of for n in g}
        out: list[list[int]] = []
        for n in self.items:
            g = grouped.get(n, [n])
            if g not in out:
                out.append(g)
        return out

    def component_of(self) -> dict[int, int]:
        """item -> 1-based number of the component it belongs to."""
        return {n: k for k, g in enumerate(self.components(), start=1) for n in g}


class ResponseRule(BaseModel):
    """Response: a reduction from baseline of at least ``min_pct_reduction`` percent, or (for a
    scale that rates change itself, such as CGI-I) a value in ``values``."""

    model_config = ConfigDict(extra="forbid")
    paramcd: str
    min_pct_reduction: float | None = None
    values: list[float] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> ResponseRule:
        if (self.min_pct_reduction is None) == (self.values is None):
            raise ValueError(f"response for {self.paramcd}: give exactly one of min_pct_reduction or values")
        return self


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


class Criterion(BaseModel):
    """One criterion of a diagnostic rule: at least ``min_count`` of ``items`` rated at or above
    ``min_value`` (DSM-5 PTSD on CAPS-5: B >= 1 of items 1-5 at >= 2; F item 22 = 1 (yes))."""

    model_config = ConfigDict(extra="forbid")
    criterion: str = Field(pattern=r"^[A-Za-z0-9]{1,8}$")
    label: str
    items: list[int]
    min_value: float
    min_count: int = Field(1, ge=1)

    @field_validator("items", mode="before")
    @classmethod
    def _items(cls, v: object) -> list[int]:
        return parse_item_range(v)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _enough_items(self) -> Criterion:
        if self.min_count > len(self.items):
            raise ValueError(f"criterion {self.criterion}: min_count {self.min_count} exceeds its {len(self.items)} items")
        return self


class DiagnosticRule(BaseModel):
    """A categorical diagnosis judged per assessment from items, as data: met when every criterion is
    met. It is carried as the flag DSMDXFL on the records of score ``paramcd`` (the total) and gives the
    responder criterion "loss of diagnosis" (diagnosis at baseline, not at the visit). ``requires``
    lists the items whose presence in an assessment makes it a diagnostic assessment (CAPS-5: the
    duration and distress/impairment items 22-25, which a symptom-severity-only administration lacks);
    an assessment without any of them has no flag (NULL)."""

    model_config = ConfigDict(extra="forbid")
    paramcd: str
    label: str = Field(max_length=200)
    requires: list[int]
    criteria: list[Criterion]

    @field_validator("requires", mode="before")
    @classmethod
    def _requires(cls, v: object) -> list[int]:
        return parse_item_range(v)  # type: ignore[arg-type]


class Diagnosis(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symptom_rule: SymptomRule | None = None
    cutoff: CutoffRule | None = None
    rule: DiagnosticRule | None = None


class NdaFormat(BaseModel):
    structure: str
    # element names in the order of the definition's items; null where the set has no element for
    # that item (the CAPS-5 past-week version rates no onset/duration)
    item_sets: dict[str, list[str | None]]
    totals: dict[str, str] = Field(default_factory=dict)
    missing_codes: list[str] = Field(default_factory=list)
    free_text: list[str] = Field(default_factory=list)


class SdtmFormat(BaseModel):
    domain: str
    categories: list[str]
    testcd_pattern: str
    total_testcds: list[str] = Field(default_factory=list)


class Calibration(BaseModel):
    """What a scale's simulation constants marked *calibrated* were solved for (``python -m
    pipelines.simulate.calibrate``): the constants it solves, and the target of each summary
    statistic (``pipelines.simulate.calibrate.summary``)."""

    model_config = ConfigDict(extra="forbid")
    solve: list[str]
    targets: dict[str, float]


class Simulation(BaseModel):
    """How the simulator draws this scale (``pipelines/simulate``). Every key but ``calibration`` is a
    constant of the model that draws it: for the calibrated scales (CAPS-5, PCL-5, MADRS) every
    constant of the calibrated latent model (``pipelines.simulate.model.LatentParams``), for any other
    scale overrides of the generic model's defaults (``pipelines.simulate.generic.GenericParams``).
    That model's params type names the keys it knows (:meth:`Instrument.simulation_params`)."""

    model_config = ConfigDict(extra="allow")
    calibration: Calibration | None = None

    @property
    def constants(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


P = TypeVar("P")


class Formats(BaseModel):
    nda: NdaFormat | None = None
    sdtm: SdtmFormat | None = None


class Instrument(BaseModel):
    """One rating scale. ``order`` places it among instruments in tables and results (lower first);
    ``reference`` cites the publication its scoring follows; ``role`` efficacy or safety;
    ``change_scale`` marks a scale that rates change itself (CGI-I): it is not rated at baseline and
    has no BASE/CHG/PCHG, so its value is analysed as it is."""

    model_config = ConfigDict(extra="forbid")
    id: str
    instrument: str
    title: str
    order: int = 100
    reference: str | None = None
    role: Literal["efficacy", "safety"] = "efficacy"
    change_scale: bool = False
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
    simulation: Simulation = Field(default_factory=Simulation)

    @model_validator(mode="after")
    def _consistent(self) -> Instrument:
        numbers = self.item_numbers
        for sc in self.scores:
            unknown = sorted(set(sc.items) - set(numbers))
            if unknown:
                raise ValueError(f"score {sc.paramcd}: items {unknown} are not items of {self.instrument}")
        for rule in (self.response, self.remission):
            if rule is not None and rule.paramcd not in {sc.paramcd for sc in self.scores}:
                raise ValueError(f"{rule.paramcd}: a response/remission rule names an unknown score")
        dx = self.diagnosis.rule if self.diagnosis else None
        if dx is not None:
            if dx.paramcd not in {sc.paramcd for sc in self.scores}:
                raise ValueError(f"diagnosis.rule: {dx.paramcd} is not a score of {self.instrument}")
            used = sorted({n for c in dx.criteria for n in c.items} | set(dx.requires))
            unknown = sorted(set(used) - set(numbers))
            if unknown:
                raise ValueError(f"diagnosis.rule: items {unknown} are not items of {self.instrument}")
        for it in self.items:
            lo, hi = self.item_range(it.n)
            if lo > hi:
                raise ValueError(f"item {it.n}: min {lo} is above max {hi}")
        return self

    def simulation_params(self, cls: type[P]) -> P:
        """The ``simulation:`` constants as ``cls``, a dataclass of one simulator model's constants:
        a key it has no field for is an error; numbers are floats, lists tuples."""
        given = self.simulation.constants
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"{self.id}: unknown simulation keys {unknown}; known: {sorted(known)}")

        def value(v: Any) -> Any:
            if isinstance(v, list):
                return tuple(value(x) for x in v)
            return v if isinstance(v, str) else float(v)

        return cls(**{k: value(v) for k, v in given.items()})

    def item_range(self, n: int) -> tuple[int, int]:
        """(lowest, highest) valid rating of item n."""
        it = self.item(n)
        return (self.item_min if it.min is None else it.min, self.item_max if it.max is None else it.max)

    def score_range(self, sc: Score) -> tuple[float, float]:
        """(lowest, highest) possible value of a score: each component's lowest and highest item."""
        ranges = [[self.item_range(n) for n in g] for g in sc.components()]
        return (
            float(sum(max(lo for lo, _ in r) for r in ranges)),
            float(sum(max(hi for _, hi in r) for r in ranges)),
        )

    def score_label(self, sc: Score) -> str:
        return sc.label or (f"{self.instrument} total" if sc.primary_total else sc.param)

    @property
    def subscales(self) -> list[Score]:
        """The scores that are neither the total nor optional: one multiplicity family when 2+."""
        return [s for s in self.scores if not s.primary_total and not s.optional]

    def score_cluster(self, sc: Score) -> str | None:
        """The cluster every item of a subscale belongs to (CAPS-5 B..E), else None."""
        if sc not in self.subscales:
            return None
        found = {self.item(n).cluster for n in sc.items}
        return found.pop() if len(found) == 1 and None not in found else None

    @property
    def total(self) -> Score:
        return next((s for s in self.scores if s.primary_total), self.scores[0])

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
            name: {el: n for el, n in zip(elements, self.item_numbers, strict=False) if el}
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


def load_instrument_file(path: Path) -> Instrument:
    with path.open(encoding="utf-8") as fh:
        inst = Instrument.model_validate(yamlio.safe_load(fh))
    if inst.id != path.stem:
        raise ValueError(f"{path.name}: id {inst.id!r} must equal the file stem")
    return inst


def load_instrument_dir(folder: Path) -> dict[str, Instrument]:
    """Every ``*.yaml`` definition in a folder, keyed by id, in ``order`` (then id)."""
    found = [load_instrument_file(p) for p in sorted(folder.glob("*.yaml"))]
    out = {inst.id: inst for inst in sorted(found, key=lambda i: (i.order, i.id))}
    paramcds = [s.paramcd for inst in out.values() for s in inst.scores]
    dup = sorted({p for p in paramcds if paramcds.count(p) > 1})
    if dup:
        raise ValueError(f"PARAMCD defined by two instruments: {', '.join(dup)}")
    return out


@functools.cache
def load_instruments() -> dict[str, Instrument]:
    """All instrument definitions, keyed by id (``caps5``, ``pcl5``, ``madrs``, ...), in ``order``."""
    return load_instrument_dir(HERE)


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
    """Every defined PARAMCD in display order: instruments by ``order``, scores as listed."""
    return [s.paramcd for inst in load_instruments().values() for s in inst.scores]


def parameter_order(paramcds) -> list[str]:
    """``paramcds`` in display order; codes no instrument defines go last, alphabetically."""
    codes = {c for c in paramcds if c}
    known = [p for p in all_paramcds() if p in codes]
    return known + sorted(codes - set(known))


def instrument_of_paramcd(paramcd: str) -> Instrument | None:
    for inst in load_instruments().values():
        if any(s.paramcd == paramcd for s in inst.scores):
            return inst
    return None


def score_of_paramcd(paramcd: str) -> tuple[Instrument, Score] | None:
    for inst in load_instruments().values():
        for s in inst.scores:
            if s.paramcd == paramcd:
                return inst, s
    return None
