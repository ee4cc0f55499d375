"""The rule registry: every blocking or warning validation rule of a study run, declared once.

A rule guards one table (``<schema>.<name>``, which is also its Dagster asset key). It becomes

* the Dagster asset check of that asset (:mod:`pipelines.orchestration.checks` reads ``RULES``),
* its rows in ``qc.validation_results`` (one per expectation, written by :func:`validation.record`),
* its lines in ``trialpipe validate`` (which prints those rows).

Two kinds. A **GX suite** is a file ``expectations/<name>.json`` whose ``meta.table`` names the table
it validates; it needs no declaration here: every suite file is a rule ``gx_<name>``. The "one name in
four places" convention holds for suites: ``sql/<layer>/<name>.sql`` = table ``<layer>.<name>`` =
asset ``<layer>/<name>`` = ``expectations/<name>.json`` (:func:`registry_problems` checks it, and a
test runs it). A **SQL/Python rule** is declared in ``SQL_RULES`` with the function that evaluates it;
a few rules are evaluated inside the step that builds their table (``evaluated_in``): the ingest step
(every file loaded), the efficacy step (the primary model converged, a warning) and the CSR
package (the ADaM datasets fit XPORT v5, a warning).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.core import validation
from pipelines.core.manifest import Manifest
from pipelines.core.paths import EXPECTATIONS_DIR

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


@dataclass(frozen=True)
class Rule:
    name: str  # the check name (gx_<suite> for a suite)
    table: str  # the table it guards = the asset key
    description: str
    blocking: bool = True  # False: a warning (the run goes on)
    suite: str | None = None  # expectations/<suite>.json
    evaluate: Callable[[duckdb.DuckDBPyConnection, Manifest], validation.CheckOutcome] | None = None
    evaluated_in: str | None = None  # the step that evaluates it itself (ingest, efficacy)

    @property
    def asset_path(self) -> list[str]:
        return self.table.split(".")

    @property
    def layer(self) -> str:
        return self.table.split(".")[0]


SQL_RULES: tuple[Rule, ...] = (
    Rule("all_sources_loaded", "qc.source_files",
         "Every file named in study.yaml was found, read and mapped; a file that failed blocks the study",
         evaluated_in="ingest"),
    Rule("rows_reconcile", "qc.quarantine",
         "Every source's rows are accounted for: read = accepted + quarantined + skipped, per source and file",
         evaluate=lambda con, m: validation.check_rows_reconcile(con)),
    Rule("subject_one_arm", "staging.subjects", "Each subject is in exactly one arm across all sources",
         evaluate=lambda con, m: validation.check_subject_one_arm(con)),
    Rule("arms_present", "staging.subjects",
         "Every arm of the manifest (experimental and control) has randomized subjects",
         evaluate=validation.check_arms_present),
    # guards reported_totals: a scoreable baseline total may be a reported total, so it reads both tables
    Rule("baseline_coverage", "staging.reported_totals",
         "Most randomized subjects have a scoreable baseline total of the primary parameter "
         "(analysis.min_baseline_fraction); names the subjects who lost theirs to missing items",
         evaluate=validation.check_baseline_coverage),
    Rule("primary_model_converged", "results.model_fits",
         "The primary MMRM of the primary parameter converged (possibly after a documented fallback)",
         blocking=False, evaluated_in="efficacy"),
    Rule("xpt_v5_conformant", "report.submission_datasets",
         "Every ADaM dataset fits SAS XPORT v5 (names <= 8, labels <= 40, ASCII text, values <= 200 bytes); "
         "one that does not is not written and the reason names the variable and row",
         blocking=False, evaluated_in="csr_package"),
)  # fmt: skip


def suite_rules(folder: Path = EXPECTATIONS_DIR) -> tuple[Rule, ...]:
    """One rule per ``expectations/*.json``, guarding the table its ``meta.table`` names."""
    out = []
    for path in sorted(folder.glob("*.json")):
        meta = json.loads(path.read_text(encoding="utf-8")).get("meta", {})
        out.append(
            Rule(
                f"gx_{path.stem}",
                meta.get("table", ""),
                f"GX suite expectations/{path.name}: {meta.get('description', '')}".rstrip(": "),
                suite=path.stem,
            )
        )
    return tuple(out)


def all_rules(folder: Path = EXPECTATIONS_DIR) -> dict[str, Rule]:
    return {r.name: r for r in (*suite_rules(folder), *SQL_RULES)}


RULES: dict[str, Rule] = all_rules()


def evaluate(name: str, con: duckdb.DuckDBPyConnection, manifest: Manifest) -> validation.CheckOutcome:
    """Run one registered rule (not the ones a step evaluates itself) on a study's working database."""
    rule = RULES[name]
    if rule.suite:
        return validation.run_suite(con, rule.suite, validation.suite_parameters(con, manifest))
    if rule.evaluate is None:
        raise KeyError(f"{name} is evaluated in the {rule.evaluated_in} step, not on its own")
    return rule.evaluate(con, manifest)


def validate_tables(
    con: duckdb.DuckDBPyConnection, manifest: Manifest, layers: tuple[str, ...] = ("staging", "qc"), run_id: str = "local"
) -> list[validation.CheckOutcome]:
    """Every rule on tables of ``layers`` that can run on its own, Dagster-free, recorded in
    qc.validation_results (tests and benchmarks; a run gets the same from its asset checks)."""
    outcomes = [
        evaluate(r.name, con, manifest)
        for r in RULES.values()
        if r.layer in layers and r.evaluated_in is None
    ]
    for o in outcomes:
        validation.record(con, o, manifest.study_id, run_id)
    return outcomes


def registry_problems(
    folder: Path = EXPECTATIONS_DIR,
    sql_dir: Path = SQL_DIR,
    assets: set[str] | None = None,
    checks: set[tuple[str, str]] | None = None,
) -> list[str]:
    """What breaks "one name in four places" and "every rule is a check": a suite without
    ``meta.table``, whose table is not ``<layer>.<suite>``, without ``sql/<layer>/<suite>.sql``, a
    rule whose table is not an asset, a rule that is not a check on its asset, a check that is not a
    rule. ``assets`` ('schema/name') and ``checks`` (asset, check name) come from the asset graph."""
    problems = []
    rules = all_rules(folder)
    for r in rules.values():
        if r.suite is not None:
            if not r.table:
                problems.append(f"expectations/{r.suite}.json: meta.table is missing")
                continue
            layer, _, name = r.table.partition(".")
            if name != r.suite:
                problems.append(f"expectations/{r.suite}.json validates {r.table}: the suite must be named {name}.json")
            if not (sql_dir / layer / f"{name}.sql").is_file():
                problems.append(f"expectations/{r.suite}.json: no sql/{layer}/{name}.sql builds {r.table}")
        if assets is not None and "/".join(r.asset_path) not in assets:
            problems.append(f"rule {r.name}: its table {r.table} is not an asset")
        if checks is not None and ("/".join(r.asset_path), r.name) not in checks:
            problems.append(f"rule {r.name}: not an asset check on {'/'.join(r.asset_path)}")
    if checks is not None:
        for asset, name in sorted(checks):
            if name not in rules:
                problems.append(f"asset check {asset}:{name} is not a registered rule (pipelines/core/rules.py)")
    return problems
