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

import json
import logging
from dataclasses import dataclass, field

import duckdb
import polars as pl

from pipelines.core import gx, helper, warehouse
from pipelines.core.manifest import Manifest

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
# GX itself is imported only by pipelines.core.gx, in this process or in the GX helper process


suite_path = gx.suite_path
load_suite_json = gx.load_suite_json


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


# Rows per GX batch of a suite that may be validated in parts (``meta.partition_by``). GX holds a
# pandas copy of its batch per expectation, so the batch, not the table, sets the step's memory:
# one batch of a 50,000-subject item_responses (13 M rows) was the run's peak (5.1 GB). Each batch
# also reads the table once more, so batches that are too small cost time: on that study (in
# process, quiet machine) 500,000 rows took 24.2 s at 766 MB peak RSS, 2,000,000 rows 15.5 s at 1005 MB.
CHUNK_ROWS = 2_000_000

# How each expectation's result combines over batches that split the rows by the partition key.
_ROWWISE = {  # each row passes or fails on its own: counts add up
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_between",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_be_of_type",
    "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_column_pair_values_to_be_equal",
}
_UNIQUE = {  # duplicates can only be found within a batch when the key holds the partition column
    "expect_column_values_to_be_unique": lambda kw: [kw.get("column")],
    "expect_compound_columns_to_be_unique": lambda kw: list(kw.get("column_list") or []),
}
_SCHEMA = gx.SCHEMA_TYPES  # the same in every batch (one query)
_ROW_COUNT = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}


def chunk_problems(data: dict) -> list[str]:
    """Why a suite that declares ``meta.partition_by`` cannot be validated in parts (empty: it can).

    Row-wise expectations add up over batches; a uniqueness expectation is exact only when its key
    includes the partition column (every row of one subject is in the same batch); the columns are
    the same in every batch; the row count is judged on the total. Anything else (a mean, a set of
    distinct values) needs the whole table."""
    key = (data.get("meta") or {}).get("partition_by")
    if not key:
        return ["the suite has no meta.partition_by"]
    problems = []
    query = (data.get("meta") or {}).get("query")
    if query and "{rows}" not in query:
        problems.append("meta.query does not say where the table's rows ({rows}) are read")
    for e in data["expectations"]:
        t, kw = e["type"], e.get("kwargs", {})
        if t in _ROWWISE or t in _SCHEMA or t in _ROW_COUNT:
            continue
        if t in _UNIQUE:
            if key not in _UNIQUE[t](kw):
                problems.append(f"{t}({kw}) does not include the partition column {key}")
            continue
        problems.append(f"{t} is not evaluated row by row")
    return problems


def _frame(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame:
    """The rows to validate, as the polars frame whose pandas copy GX validates."""
    # text columns become pandas categoricals: ids, visits and file names repeat millions of times
    # in a large study, and Python string objects made validation the run's memory peak
    pframe = con.execute(query).pl()
    # and integers in the smallest type that holds them (item numbers, days, row numbers): GX
    # copies the frame per expectation
    pframe = pframe.with_columns(pl.col(pl.String).cast(pl.Categorical))
    return pframe.with_columns([pframe[c].shrink_dtype() for c, t in pframe.schema.items() if t.is_integer()])


def _validate(name: str, part: str, frame: pl.DataFrame, params: dict) -> list[gx.Result]:
    """GX's results of suite ``name`` (or its ``part``) on ``frame``, in GX's order: from the GX
    helper process when there is one and the frame is small, else from this process."""
    worker = helper.current()
    if worker is not None and frame.height <= helper.MAX_ROWS:
        results = worker.validate(name, part, frame, params)
        if results is not None:
            return results
    return gx.validate(name, part, frame, params)


def _referenced_columns(data: dict) -> list[str]:
    cols: list[str] = []
    for e in data["expectations"]:
        kw = e.get("kwargs", {})
        for c in [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *(kw.get("column_list") or [])]:
            if c and c not in cols:
                cols.append(c)
    return cols


def _batches(con: duckdb.DuckDBPyConnection, data: dict, key: str, chunk_rows: int):
    """The rows of a partitioned suite as frames of about ``chunk_rows`` rows, disjoint by a
    hash of ``key`` (every row of one subject in the same frame), holding only the columns its
    expectations name. The partition filter goes where the query says ``{rows}``: on the table's
    rows, before the query's joins and windows (around the query, DuckDB evaluated all of it for
    every batch)."""
    table, query = data["meta"]["table"], data["meta"].get("query") or "select * from {rows}"
    columns = [r[0] for r in con.execute(f"select * from ({query.replace('{rows}', table)}) as q limit 0").description]
    wanted = ", ".join(f'q."{c}"' for c in _referenced_columns(data) if c in columns) or "1 as _row"
    total = con.execute(f"select count(*) from {table}").fetchone()[0]
    n = max(1, -(-total // chunk_rows))
    for i in range(n):
        rows = table if n == 1 else f'(select * from {table} where hash("{key}") % {n} = {i})'
        yield _frame(con, f"select {wanted} from ({query.replace('{rows}', rows)}) as q")


def _merge(cfg, parts: list, total_rows: int) -> tuple[bool, dict, str | None]:
    """One expectation's success, result and error over the batches (``parts``: its result per
    batch, in batch order), as GX would report them on the whole table."""
    errors = [
        (r.exception_info or {}).get("exception_message") for r in parts if isinstance(r.exception_info, dict)
    ]
    error = next((e for e in errors if e), None)
    results = [r.result or {} for r in parts]
    if len(parts) == 1:
        return bool(parts[0].success), results[0], error
    kw = cfg.kwargs
    if cfg.type in _ROW_COUNT:
        lo, hi = kw.get("min_value"), kw.get("max_value")
        if cfg.type == "expect_table_row_count_to_equal":
            lo = hi = kw.get("value")
        ok = (lo is None or total_rows >= lo) and (hi is None or total_rows <= hi)
        return ok and not error, {"observed_value": total_rows}, error
    if cfg.type in _SCHEMA:
        return all(r.success for r in parts), results[0], error
    # map expectations (row-wise and uniqueness within the partition): GX's own arithmetic
    # (great_expectations.expectations.expectation._format_map_output and _mostly_success) on the sums
    element = sum(r.get("element_count") or 0 for r in results)
    unexpected = sum(r.get("unexpected_count") or 0 for r in results)
    has_missing = any("missing_count" in r for r in results)
    nonnull = element - sum(r.get("missing_count") or 0 for r in results) if has_missing else element
    if element == 0 or nonnull == 0:
        ok = True
    else:
        ok = (float(nonnull) - float(unexpected)) / float(nonnull) >= kw.get("mostly", 1.0)
    pct = None
    if element > 0:
        pct = (unexpected / nonnull * 100 if nonnull > 0 else None) if has_missing else unexpected / element * 100
    examples = [x for r in results for x in r.get("partial_unexpected_list", [])]
    merged = {"element_count": element, "unexpected_count": unexpected, "unexpected_percent": pct,
              "partial_unexpected_list": examples[:20]}
    return ok and not error, merged, error


def suite_query(data: dict) -> str:
    """The rows a suite validates, as one query: ``meta.query`` with ``{rows}`` read as its table,
    or the whole table."""
    return (data.get("meta", {}).get("query") or "select * from {rows}").replace("{rows}", data["meta"]["table"])


def run_suite(
    con: duckdb.DuckDBPyConnection, name: str, params: dict, chunk_rows: int = CHUNK_ROWS
) -> CheckOutcome:
    """Run a GX suite on its table (or on ``meta.query``, where ``{rows}`` stands for the table).

    A suite whose ``meta.partition_by`` names a column, and whose every expectation allows it
    (:func:`chunk_problems`), is validated in parts with the same outcome as in one piece: its
    expectations on the table's columns on the query's columns (no rows), the others on batches of
    about ``chunk_rows`` rows split by that column, holding only the columns they name. A query with
    ``{rows}`` must keep each row's derived values within its partition (windows partitioned by
    the column, joins to reference tables), as adqs.json and item_responses.json do."""
    data = load_suite_json(name)
    table = data["meta"]["table"]  # the table the suite validates (pipelines.core.rules)
    query = suite_query(data)
    key = data["meta"].get("partition_by")
    if key and (problems := chunk_problems(data)):
        log.warning("suite %s validated in one batch: %s", name, "; ".join(problems))
        key = None

    if not key:
        frame = _frame(con, query)
        total_rows = frame.height
        per_batch = [_validate(name, "all", frame, params)]
        del frame
    else:
        def placed(results):  # GX returns results in its own order; each says its place in the file
            return {r.index: r for r in results}

        schema_results = placed(_validate(name, "schema", _frame(con, f"select * from ({query}) as q limit 0"), params))
        total_rows, row_results = 0, []
        for frame in _batches(con, data, key, chunk_rows):
            total_rows += frame.height
            row_results.append(placed(_validate(name, "rows", frame, params)))
            del frame
        # in the suite's order, the schema part's results in every batch
        per_batch = [[{**schema_results, **batch}[i] for i in range(len(data["expectations"]))] for batch in row_results]
    outcomes = []
    for parts in zip(*per_batch):
        cfg = parts[0].expectation_config
        success, result, exc = _merge(cfg, list(parts), total_rows)
        outcomes.append(
            ExpectationOutcome(
                expectation=_describe(cfg),
                rule=(cfg.meta or {}).get("rule", cfg.type),
                success=success,
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
        f"{len(outcomes) - len(failed)}/{len(outcomes)} expectations met on {total_rows} rows"
        + ("" if not failed else "; failed: " + "; ".join(f"{o.rule} ({o.unexpected_count or 0} rows)" for o in failed))
    )
    return CheckOutcome(name=f"gx_{name}", table=table, success=not failed, summary=summary, expectations=outcomes)


# -- cross-table SQL rules ------------------------------------------------------------------


def check_rows_reconcile(con: duckdb.DuckDBPyConnection) -> CheckOutcome:
    """Every source's rows are accounted for: rows read = accepted + quarantined + skipped. Counted per
    manifest source and file, so one file feeding several sources (a REDCap export read as the
    randomization list and as each instrument) is reconciled once per source, never double-counted."""
    rows = con.execute(
        """
        with decided as (
            select source, _source_file, instrument_id as raw_table, status from staging.assessment_rows
            union all
            select source, _source_file, 'randomization', status from staging.randomization_rows
            union all
            select source, _source_file, 'ae', status from staging.ae_rows
            union all
            select source, _source_file, 'vs', status from staging.vs_rows
            union all
            select source, _source_file, 'ex', status from staging.ex_rows
            union all
            select source, _source_file, 'ds', status from staging.ds_rows
        ),
        per_table as (
            select
                source, _source_file, raw_table,
                count(*) as raw_rows,
                count(*) filter (where status = 'accepted') as accepted,
                count(*) filter (where status = 'quarantined') as quarantined,
                count(*) filter (where status = 'skipped') as skipped
            from decided group by all
        ),
        per_file as (
            select
                f.source, f._source_file, f.layout, f.kind, f.rows_read, f.rows_skipped,
                coalesce(sum(p.raw_rows), 0) as raw_rows,
                coalesce(max(p.raw_rows), 0) as max_table_rows,
                count(p.raw_table) as n_tables,
                coalesce(sum(p.accepted), 0) as accepted,
                coalesce(sum(p.quarantined), 0) as quarantined,
                coalesce(sum(p.skipped), 0) as skipped,
                string_agg(p.raw_table, ', ' order by p.raw_table) as tables
            from qc.source_files as f
            left join per_table as p on p._source_file = f._source_file and p.source = f.source
            where f.status = 'loaded'
            group by all
        ),
        shared as (
            select _source_file, string_agg(source, ', ' order by source) as sources, count(*) as n_sources
            from qc.source_files where status = 'loaded' group by _source_file
        )
        select
            p.source, p._source_file, rows_read, rows_skipped, raw_rows, accepted, quarantined, skipped, n_tables,
            case
                -- a wide file with several instruments puts every row in each instrument's table
                when layout = 'wide' and kind not in ('randomization', 'ae', 'vs', 'ex', 'ds') then raw_rows = n_tables * (rows_read - rows_skipped)
                else raw_rows + rows_skipped = rows_read
            end
            and raw_rows = accepted + quarantined + skipped as ok,
            s.sources, s.n_sources, p.tables
        from per_file as p
        left join shared as s on s._source_file = p._source_file
        order by p._source_file, p.source
        """
    ).fetchall()
    outcomes = []
    for src, f, read, rsk, raw, acc, q, sk, nt, ok, sources, n_sources, tables in rows:
        claimed = f" (this file also feeds {', '.join(x for x in sources.split(', ') if x != src)})" if n_sources > 1 else ""
        rule = (
            f"source {src} ({f}{claimed}): {read} rows read = {acc} accepted + {q} quarantined + {sk + rsk} skipped"
            + (f" (x{nt} instruments: {tables})" if nt > 1 else "")
        )
        if not ok:
            rule += (
                "; the counts do not add up - check that no two sources read the same file for the same "
                "instrument (list the instrument under one source) and see qc.quarantine"
            )
        outcomes.append(
            ExpectationOutcome(
                expectation=f"reconcile({src}: {f})",
                rule=rule,
                success=bool(ok),
                unexpected_count=0 if ok else abs((read or 0) * max(nt, 1) - acc - q - sk - rsk),
                details={"source": src, "rows_read": read, "raw_rows": raw, "accepted": acc, "quarantined": q,
                         "skipped": sk + rsk, "tables": tables},
            )
        )
    failed = [o for o in outcomes if not o.success]
    return CheckOutcome(
        name="rows_reconcile",
        table="qc.quarantine",
        success=not failed,
        summary="every row of every source accounted for" if not failed else "; ".join(o.rule for o in failed),
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
    """Most randomized subjects have a scoreable baseline total of the primary parameter: every item
    of the total answered at the baseline visit, or few enough missing for the study's proration
    rule, or a total reported by the source. Subjects with ratings but no scoreable total are named
    (a baseline item or two missing removes a subject from every model)."""
    from pipelines.instruments import load_instruments

    primary = manifest.analysis.primary_parameter
    inst = next((i for i in load_instruments().values() if any(s.paramcd == primary for s in i.scores)), None)
    present = {r[0] for r in con.execute("select distinct instrument from staging.item_responses").fetchall()}
    if inst is None or inst.instrument not in present:
        inst_name = next(iter(sorted(present)), None)
        inst_obj = next((i for i in load_instruments().values() if i.instrument == inst_name), None)
        paramcd = next((s.paramcd for s in inst_obj.scores if s.primary_total), None) if inst_obj else None
    else:
        inst_name, paramcd = inst.instrument, primary
    mi = manifest.analysis.missing_items
    allowed = mi.max_missing if mi.method == "prorate" and mi.scope == "scale" else 0
    rows = con.execute(
        """
        with items as (select item from ref.scores where paramcd = ?),
        per_assessment as (
            select r.usubjid, r.study_day,
                   count(*) filter (where r.value is not null and r.item in (select item from items)) as n_answered,
                   (select count(*) from items)
                   - count(*) filter (where r.value is not null and r.item in (select item from items)) as n_missing
            from staging.item_responses as r
            where r.instrument = ? and r.visit = ?
            group by all
        ),
        reported as (
            select usubjid, study_day from staging.reported_totals
            where instrument = ? and visit = ? and reported_total is not null
        ),
        per_subject as (
            select s.usubjid,
                   exists (select 1 from per_assessment a where a.usubjid = s.usubjid)
                   or exists (select 1 from reported t where t.usubjid = s.usubjid) as rated,
                   exists (select 1 from per_assessment a where a.usubjid = s.usubjid
                           and a.n_answered > 0 and a.n_missing <= ?)
                   or exists (select 1 from reported t where t.usubjid = s.usubjid and not exists (
                           select 1 from per_assessment a where a.usubjid = t.usubjid
                           and a.study_day = t.study_day and a.n_answered > 0)) as scoreable
            from staging.subjects s
        )
        select usubjid, rated, scoreable from per_subject order by usubjid
        """,
        [paramcd, inst_name, manifest.baseline_visit.id, inst_name, manifest.baseline_visit.id, allowed],
    ).fetchall()
    n = len(rows)
    with_base = sum(1 for _, _, ok in rows if ok)
    lost = [u for u, rated, ok in rows if rated and not ok]
    absent = [u for u, rated, _ in rows if not rated]
    frac = (with_base / n) if n else 0.0
    need = manifest.analysis.min_baseline_fraction
    ok = n > 0 and frac >= need
    label = f"{inst_name} total ({paramcd})" if paramcd else (inst_name or "rating")
    rule = f"at least {need:.0%} of randomized subjects have a scoreable baseline {label}"
    summary = f"{with_base}/{n} subjects ({frac:.0%}) have a scoreable baseline {label}; required {need:.0%}"
    if lost:
        summary += f"; rated but lost to missing items: {', '.join(lost[:10])}" + (" ..." if len(lost) > 10 else "")
    if absent:
        summary += f"; no baseline rating: {', '.join(absent[:10])}" + (" ..." if len(absent) > 10 else "")
    return CheckOutcome(
        "baseline_coverage", "staging.item_responses", ok, summary,
        [ExpectationOutcome(
            "baseline_fraction", rule, ok, n - with_base,
            {"fraction": round(frac, 4), "lost_to_missing_items": lost, "no_baseline_rating": absent},
        )],
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
