"""The one module that imports Great Expectations: a suite run on one frame, with a plain result.

:func:`validate` runs a suite (or the ``schema`` / ``rows`` part of a suite validated in batches)
on a polars frame and returns :class:`Result` objects made of builtins, numpy and pandas values
only, never GX's classes. So the same call can run here or in the GX helper process
(:mod:`pipelines.core.helper`), and :mod:`pipelines.core.validation` reads either answer the
same way, without importing GX to read it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass, field

from pipelines.core.paths import EXPECTATIONS_DIR

# expectations on the table's columns, not its rows: the same in every batch of a suite validated
# in batches (pipelines.core.validation), so they run once, on a frame with no rows
SCHEMA_TYPES = frozenset({
    "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
    "expect_column_to_exist",
})


def suite_path(name: str):
    return EXPECTATIONS_DIR / f"{name}.json"


def load_suite_json(name: str) -> dict:
    return json.loads(suite_path(name).read_text(encoding="utf-8"))


def part_of(data: dict, part: str) -> dict:
    """The suite, or (``part``) only its expectations on the table's columns (``schema``) or only the
    others (``rows``), in the order of the file."""
    if part == "all":
        return data
    return {**data, "name": f"{data['name']}__{part}",
            "expectations": [e for e in data["expectations"] if (e["type"] in SCHEMA_TYPES) == (part == "schema")]}


@dataclass(frozen=True)
class Config:
    """What GX's ExpectationConfiguration says of one expectation (kwargs as GX filled them)."""

    type: str
    kwargs: dict
    meta: dict


@dataclass(frozen=True)
class Result:
    """One expectation's outcome on one frame: GX's ``success``, ``result`` and ``exception_info``.
    ``index`` is the expectation's place in the suite file (whichever part was run)."""

    expectation_config: Config
    success: bool
    result: dict = field(default_factory=dict)
    exception_info: dict | None = None
    index: int = 0


@functools.cache
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bars in run logs
    batch = context.data_sources.add_pandas(name="trialpipe").add_dataframe_asset(name="frame")
    return context, batch.add_batch_definition_whole_dataframe("whole")


@functools.cache
def _validation_definition(name: str, part: str = "all"):
    """The suite (or its ``part``) as a GX validation definition in the ephemeral context."""
    import great_expectations as gx

    context, batch_def = _context()
    data = part_of(load_suite_json(name), part)
    suite = context.suites.add(gx.ExpectationSuite(**{k: v for k, v in data.items() if k != "id"}))
    return context.validation_definitions.add(
        gx.ValidationDefinition(name=f"vd_{data['name']}", data=batch_def, suite=suite)
    )


def import_gx() -> None:
    """Import GX and set up its context (what the first validation in a process waits for)."""
    _context()


def validate(name: str, part: str, frame, params: dict) -> list[Result]:
    """Run suite ``name`` (``part``: all, schema or rows) on a polars ``frame`` (as pandas, which is
    what GX validates), with suite parameters ``params``. Results come in GX's order; each says its
    place in the file."""
    vd = _validation_definition(name, part)
    full = load_suite_json(name)["expectations"]
    in_part = [i for i, e in enumerate(full) if part == "all" or (e["type"] in SCHEMA_TYPES) == (part == "schema")]
    place = {e.id: in_part[i] for i, e in enumerate(vd.suite.expectations)}
    results = vd.run(batch_parameters={"dataframe": frame.to_pandas()}, expectation_parameters=params,
                     result_format={"result_format": "SUMMARY"}).results
    out = []
    for r in results:
        cfg = r.expectation_config
        info = r.exception_info
        out.append(Result(
            expectation_config=Config(type=cfg.type, kwargs=dict(cfg.kwargs), meta=dict(cfg.meta or {})),
            success=bool(r.success),
            result=dict(r.result or {}),
            exception_info=dict(info) if isinstance(info, dict) else None,
            index=place[cfg.id],
        ))
    return out
