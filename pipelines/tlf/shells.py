"""Output shells: one YAML file per numbered table or figure in ``pipelines/tlf/shells/``.

A shell is data, not code: its number, title, analysis population, source datasets, the derivation
in words, footnotes, page orientation and the name of the builder (``pipelines.tlf.builders``) that
turns the warehouse into rows or a figure. Adding an output = adding a YAML file (and a builder when
no existing one fits). Shells are study-independent (no manifest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from pipelines.core import yamlio
from pipelines.core.errors import TrialpipeError

SHELL_DIR = Path(__file__).parent / "shells"
REQUIRED = ("number", "kind", "title", "population", "source", "builder", "derivation")
KINDS = ("table", "figure", "listing")


@dataclass(frozen=True)
class Shell:
    id: str  # file stem, e.g. t14_2_1_by_visit
    number: str  # 14.2.1
    kind: str  # table | figure | listing
    title: str
    population: str
    source: tuple[str, ...]
    builder: str
    derivation: str
    orientation: str = "portrait"
    footnotes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        """'Table 14.2.1', 'Figure 14.2.2'."""
        return f"{self.kind.capitalize()} {self.number}"

    @property
    def sort_key(self) -> tuple:
        return (
            tuple(int(x) for x in self.number.split(".")),
            KINDS.index(self.kind),
        )

    @property
    def file_stem(self) -> str:
        """'t14_2_1', 'f14_2_2' - the output's file name without extension."""
        return f"{self.kind[0]}{self.number.replace('.', '_')}"


def _parse(path: Path) -> Shell:
    try:
        raw = yamlio.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TrialpipeError(f"output shell is not valid YAML: {exc}", file=str(path)) from None
    missing = [k for k in REQUIRED if not raw.get(k)]
    if missing:
        raise TrialpipeError(f"output shell lacks {', '.join(missing)}", file=path.name)
    unknown = set(raw) - set(REQUIRED) - {"orientation", "footnotes"}
    if unknown:
        raise TrialpipeError(f"output shell has unknown keys {sorted(unknown)}", file=path.name)
    if raw["kind"] not in KINDS:
        raise TrialpipeError(f"kind must be one of {KINDS}", file=path.name, column="kind", value=raw["kind"])
    if raw.get("orientation", "portrait") not in ("portrait", "landscape"):
        raise TrialpipeError("orientation must be portrait or landscape", file=path.name, value=raw["orientation"])
    number = str(raw["number"])
    if not all(p.isdigit() for p in number.split(".")):
        raise TrialpipeError("number must be dotted integers such as 14.2.1", file=path.name, value=number)
    source = raw["source"]
    return Shell(
        id=path.stem,
        number=number,
        kind=raw["kind"],
        title=" ".join(str(raw["title"]).split()),
        population=" ".join(str(raw["population"]).split()),
        source=tuple([source] if isinstance(source, str) else source),
        builder=raw["builder"],
        derivation=" ".join(str(raw["derivation"]).split()),
        orientation=raw.get("orientation", "portrait"),
        footnotes=tuple(" ".join(str(f).split()) for f in raw.get("footnotes") or ()),
    )


@cache
def load_shells(directory: Path = SHELL_DIR) -> tuple[Shell, ...]:
    """Every shell in number order; two outputs of one kind may not share a number."""
    shells = sorted((_parse(p) for p in sorted(directory.glob("*.yaml"))), key=lambda s: s.sort_key)
    seen: dict[str, str] = {}
    for s in shells:
        if s.label in seen:
            raise TrialpipeError(f"{s.label} is defined twice ({seen[s.label]} and {s.id})", file=str(directory))
        seen[s.label] = s.id
    return tuple(shells)
