"""Validation rules: Great Expectations suites over tables, and cross-table SQL rules.

Suites live in ``expectations/<table>.json`` (file stem = suite name = asset name; each
expectation's ``meta.rule`` says the rule in words). A suite's ``meta.query`` may say which rows to
validate (default ``select * from <schema>.<table>``), so a rule that needs a derived column (CHG
minus AVAL-BASE) or a joined range stays a plain expectation. Suites are loaded into an
*ephemeral* GX context and run on pandas frames pulled from DuckDB; GX's SQL datasource is not
used on DuckDB (it fails upstream: GX issues #10738 / #11579). Study-specific values (visit ids,
arm ids) are GX suite parameters (``{"$PARAMETER": "visit_ids"}``) filled from the manifest.

Cross-table rules (reconciliation of every file's rows, one arm per subject, baseline coverage)
are SQL, with the same outcome shape. Every outcome is written to ``qc.validation_results``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass, field

import duckdb
import polars as pl

from pipelines.core import warehouse
from pipelines.core.manifest import Manifest
from pipelines.core.paths import EXPECTATIONS_DIR

log = logging.getLogger(__name__)

@dataclass
class ExpectationOutcome:
    expectation: str  # type plus its column(s)
    rule: str  # the rule in words
    success: bool
    unexpected_count: int | None = None
    details: dict = field(default_factory=dict)


@dataclass
class CheckOutcome:
    name: str
    table: str
    success: bool
    summary: str
    expectations: list[ExpectationOutcome] = field(default_factory=list)

    def markdown(self) -> str:
        lines = ["| rule | ok | unexpected | expectation |", "| --- | --- | --- | --- |"]
        for e in self.expectations:
            lines.append(
                f"| {e.rule} | {'✅' if e.success else '❌'} | {'' if e.unexpected_count is None else e.unexpected_count} "
                f"| `{e.expectation}` |"
            )
        return "\n".join(lines)


# -- Great Expectations ---------------------------------------------------------------------


@functools.cache
def _gx_context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bars in run logs
    batch = context.data_sources.add_pandas(name="trialpipe").add_dataframe_asset(name="frame")
    return context, batch.add_batch_definition_whole_dataframe("whole")


def suite_path(name: str):
    return EXPECTATIONS_DIR / f"{name}.json"


def load_suite_json(name: str) -> dict:
    return json.loads(suite_path(name).read_text(encoding="utf-8"))


@functools.cache
def _validation_definition(name: str):
    import great_expectations as gx

    context, batch_def = _gx_context()
    data = load_suite_json(name)
    suite = context.suites.add(gx.ExpectationSuite(**{k: v for k, v in data.items() if k != "id"}))
    return context.validation_definitions.add(gx.ValidationDefinition(name=f"vd_{name}", data=batch_def, suite=suite))


def suite_parameters(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> dict:
    """Values the suites refer to as $PARAMETER, from the manifest and the instrument definitions."""
    from pipelines.instruments import load_instruments

    return {
        "visit_ids": [v.id for v in manifest.visits],
        "arm_ids": [a.id for a in manifest.arms],
        "instrument_names": [i.instrument for i in load_instruments().values()],
        "paramcds": [s.paramcd for i in load_instruments().values() for s in i.scores],
        "min_baseline_fraction": manifest.analysis.min_baseline_fraction,
    }


def _describe(cfg) -> str:
    kw = cfg.kwargs
    target = kw.get("column") or kw.get("column_list") or (
        f"{kw.get('column_A')},{kw.get('column_B')}" if kw.get("column_A") else ""
    )
    return f"{cfg.type}({target})" if target else cfg.type


def run_suite(con: duckdb.DuckDBPyConnection, name: str, params: dict) -> CheckOutcome:
    data = load_suite_json(name)
    table = data["meta"]["table"]  # the table the suite validates (pipelines.core.rules)
    query = data.get("meta", {}).get("query") or f"select * from {table}"
    # text columns as pandas categoricals: ids, visits and file names repeat millions of times in a
    # large study, and Python string objects made validation the run's memory peak
    pframe = con.execute(query).pl()
    pframe = pframe.with_columns(pl.col(pl.String).cast(pl.Categorical))
    frame = pframe.to_pandas()
    vd = _validation_definition(name)
    res = vd.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=params,
        result_format={"result_format": "SUMMARY"},
    )
    outcomes = []
    for r in res.results:
        cfg = r.expectation_config
        result = r.result or {}
        exc = (r.exception_info or {}).get("exception_message") if isinstance(r.exception_info, dict) else None
        outcomes.append(
            ExpectationOutcome(
                expectation=_describe(cfg),
                rule=(cfg.meta or {}).get("rule", cfg.type),
                success=bool(r.success),
                unexpected_count=result.get("unexpected_count"),
                details={
                    k: v
                    for k, v in {
                        "observed_value": result.get("observed_value"),
                        "unexpected_percent": result.get("unexpected_percent"),
                        "examples": result.get("partial_unexpected_list", [])[:5],
                        "error": exc,
                    }.items()
                    if v not in (None, [], "")
                },
            )
        )
    failed = [o for o in outcomes if not o.success]
    summary = (
        f"{len(outcomes) - len(failed)}/{len(outcomes)} expectations met on {len(frame)} rows"
        + ("" if not failed else "; failed: " + "; ".join(f"{o.rule} ({o.unexpected_count or 0} rows)" for o in failed))
    )
    return CheckOutcome(name=f"gx_{name}", table=table, success=not failed, summary=summary, expectations=outcomes)


# -- cross-table SQL rules ------------------------------------------------------------------


def check_rows_reconcile(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """Every file's rows are accounted for: rows read = accepted + quarantined + skipped."""
    rows = con.execute(
        """
        with decided as (
            select _source_file, instrument_id as raw_table, status from staging.assessment_rows
            union all
            select _source_file, 'randomization', status from staging.randomization_rows
            union all
            select _source_file, 'ae', status from staging.ae_rows
            union all
            select _source_file, 'vs', status from staging.vs_rows
            union all
            select _source_file, 'ex', status from staging.ex_rows
            union all
            select _source_file, 'ds', status from staging.ds_rows
        ),
        per_table as (
            select
                _source_file, raw_table,
                count(*) as raw_rows,
                count(*) filter (where status = 'accepted') as accepted,
                count(*) filter (where status = 'quarantined') as quarantined,
                count(*) filter (where status = 'skipped') as skipped
            from decided group by all
        ),
        per_file as (
            select
                f._source_file, f.layout, f.kind, f.rows_read, f.rows_skipped,
                coalesce(sum(p.raw_rows), 0) as raw_rows,
                coalesce(max(p.raw_rows), 0) as max_table_rows,
                count(p.raw_table) as n_tables,
                coalesce(sum(p.accepted), 0) as accepted,
                coalesce(sum(p.quarantined), 0) as quarantined,
                coalesce(sum(p.skipped), 0) as skipped
            from qc.source_files as f
            left join per_table as p on p._source_file = f._source_file
            where f.status = 'loaded'
            group by all
        )
        select
            _source_file, rows_read, rows_skipped, raw_rows, accepted, quarantined, skipped, n_tables,
            case
                -- a wide file with several instruments puts every row in each instrument's table
                when layout = 'wide' and kind not in ('randomization', 'ae', 'vs', 'ex', 'ds') then raw_rows = n_tables * rows_read
                else raw_rows + rows_skipped = rows_read
            end
            and raw_rows = accepted + quarantined + skipped as ok
        from per_file
        order by 1
        """
    ).fetchall()
    outcomes = [
        ExpectationOutcome(
            expectation=f"reconcile({f})",
            rule=f"{f}: {read} rows read = {acc} accepted + {q} quarantined + {sk + rsk} skipped"
            + (f" (x{nt} instruments)" if nt > 1 else ""),
            success=bool(ok),
            unexpected_count=0 if ok else abs((read or 0) - acc - q - sk - rsk),
            details={"rows_read": read, "raw_rows": raw, "accepted": acc, "quarantined": q, "skipped": sk + rsk},
        )
        for f, read, rsk, raw, acc, q, sk, nt, ok in rows
    ]
    failed = [o for o in outcomes if not o.success]
    return CheckOutcome(
        name="rows_reconcile",
        table="qc.quarantine",
        success=not failed,
        summary="every row of every file accounted for" if not failed else "; ".join(o.rule for o in failed),
        expectations=outcomes,
    )


def check_subject_one_arm(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """Each subject is in exactly one arm across all sources (randomization lists and the arm
    columns of assessment files)."""
    twice = con.execute(
        """
        select usubjid, string_agg(distinct arm, ', ' order by arm) as arms,
               string_agg(distinct _source_file || ' row ' || _source_row, '; ') as where_
        from staging.randomization_rows
        where usubjid is not null and arm is not null
        group by usubjid having count(distinct arm) > 1
        order by usubjid
        """
    ).fetchall()
    from pipelines.instruments import load_instruments

    raw_arms = " union all ".join(
        f"select source, _source_file, _source_row, trim(subject) as usubjid, lower(trim(arm)) as arm_code "
        f"from raw.{i} where arm is not null and trim(arm) <> ''"
        for i in load_instruments()
    )
    disagree = con.execute(
        f"""
        select i.usubjid, s.arm as randomized, ac.arm as in_file, min(i._source_file || ' row ' || i._source_row) as where_
        from ({raw_arms}) as i
        join staging.subjects as s on s.usubjid = i.usubjid
        join ref.arm_codes as ac on ac.source = i.source and ac.code = i.arm_code
        where ac.arm <> s.arm
        group by all order by 1
        """
    ).fetchall()
    unknown = con.execute(
        "select count(*) from staging.subjects where arm is null"
    ).fetchone()[0]
    outcomes = [
        ExpectationOutcome(
            "randomized_once", "a subject is randomized to one arm only", not twice, len(twice),
            {"examples": [f"subject {u}: arms {a} ({w})" for u, a, w in twice[:5]]},
        ),
        ExpectationOutcome(
            "assessment_arm_matches", "the arm column of an assessment file agrees with the randomization",
            not disagree, len(disagree),
            {"examples": [f"subject {u}: randomized {r}, {f} in {w}" for u, r, f, w in disagree[:5]]},
        ),
        ExpectationOutcome("arm_known", "every subject has an arm", unknown == 0, int(unknown)),
    ]
    failed = [o for o in outcomes if not o.success]
    summary = "each subject in exactly one arm" if not failed else "; ".join(
        f"{o.rule}: " + "; ".join(o.details.get("examples", [])) if o.details.get("examples") else f"{o.rule}: {o.unexpected_count} subjects"
        for o in failed
    )
    return CheckOutcome("subject_one_arm", "staging.subjects", not failed, summary, outcomes)


def check_arms_present(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> CheckOutcome:
    """Every arm of the manifest has randomized subjects (a two-arm study without its control
    arm cannot be analysed)."""
    counts = dict(con.execute("select arm, count(*) from staging.subjects where arm is not null group by 1").fetchall())
    outcomes = [
        ExpectationOutcome(
            f"arm_present({a.id})", f"arm {a.id} ({a.role}) has randomized subjects", counts.get(a.id, 0) > 0,
            None, {"subjects": counts.get(a.id, 0)},
        )
        for a in manifest.arms
    ]
    failed = [o for o in outcomes if not o.success]
    return CheckOutcome(
        "arms_present", "staging.subjects", not failed,
        ", ".join(f"{a}: {n}" for a, n in sorted(counts.items())) if not failed
        else "no randomized subjects in " + ", ".join(o.expectation[12:-1] for o in failed),
        outcomes,
    )


def check_baseline_coverage(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> CheckOutcome:
    """Most randomized subjects have a baseline rating of the primary instrument."""
    from pipelines.instruments import load_instruments

    primary = manifest.analysis.primary_parameter
    inst = next((i for i in load_instruments().values() if any(s.paramcd == primary for s in i.scores)), None)
    present = {r[0] for r in con.execute("select distinct instrument from staging.item_responses").fetchall()}
    if inst is None or inst.instrument not in present:
        inst_name = next(iter(sorted(present)), None)
    else:
        inst_name = inst.instrument
    n, with_base = con.execute(
        """
        select count(*), count(*) filter (where exists (
            select 1 from staging.item_responses r
            where r.usubjid = s.usubjid and r.instrument = ? and r.visit = ? and r.value is not null))
        from staging.subjects s
        """,
        [inst_name, manifest.baseline_visit.id],
    ).fetchone()
    frac = (with_base / n) if n else 0.0
    need = manifest.analysis.min_baseline_fraction
    ok = n > 0 and frac >= need
    rule = f"at least {need:.0%} of randomized subjects have a baseline {inst_name or 'rating'}"
    return CheckOutcome(
        "baseline_coverage", "staging.item_responses", ok,
        f"{with_base}/{n} subjects ({frac:.0%}) have a baseline {inst_name}; required {need:.0%}",
        [ExpectationOutcome("baseline_fraction", rule, ok, n - with_base, {"fraction": round(frac, 4)})],
    )


# -- recording ------------------------------------------------------------------------------


def record(con: duckdb.DuckDBPyConnection, outcome: CheckOutcome, study_id: str, run_id: str) -> None:
    warehouse.ensure_schemas(con)
    con.execute(
        "create table if not exists qc.validation_results (study_id varchar, run_id varchar, table_name varchar, "
        "check_name varchar, expectation varchar, rule varchar, success boolean, unexpected_count bigint, "
        "details varchar, validated_at timestamptz)"
    )
    con.execute(
        "delete from qc.validation_results where run_id = ? and check_name = ?", [run_id, outcome.name]
    )
    rows = [
        (study_id, run_id, outcome.table, outcome.name, e.expectation, e.rule, e.success, e.unexpected_count,
         json.dumps(e.details, default=str, sort_keys=True))
        for e in outcome.expectations
    ]
    if rows:
        con.executemany(
            "insert into qc.validation_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, now())", rows
        )
    warehouse.document(con, "qc.validation_results")
