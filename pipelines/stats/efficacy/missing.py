"""Missing-item transparency and the prorated-score sensitivity data.

M1 ``results.missing_items``: per instrument total x arm x visit, from ADQS: subjects assessed (any
   record of the total at the visit), scored (a record with AVAL), lost (assessed, no AVAL, and a
   record with missing items - the score was lost to missing items under analysis.missing_items),
   prorated (a valued record with AVALMETH PRORATED), and the subjects who lost a score. By-visit
   records only: time-point records of an infusion (ADQS INFNO, e.g. CADSS around each dose) are safety
   records analysed per infusion, not efficacy visits.
M2 Prorated-score sensitivity: when the study's rule is ``missing_items.method: none`` and any score
   of the primary parameter was lost to missing items, the primary parameter's ADQS is re-derived
   with the same SQL models (analysis.scores, analysis.adqs) under
   ``analysis.prorated_sensitivity`` (default: prorate when at most 2 of the total's items are
   missing, over the whole scale, no rounding) inside a transaction that is rolled back, and the
   primary MMRM is fitted to it as model ``mmrm_prorated``. No official PCL-5/CAPS-5 proration rule
   exists (docs: domain notes); the rule is the study's choice and is stated in the notes.
"""

from __future__ import annotations

import duckdb
import polars as pl

from pipelines.core import warehouse
from pipelines.instruments import load_instruments


def _has_columns(con, table: str, cols: list[str]) -> bool:
    return set(cols) <= set(warehouse.column_names(con, table))


def total_paramcds() -> dict[str, str]:
    """PARAMCD of each instrument total -> instrument name."""
    return {s.paramcd: i.instrument for i in load_instruments().values() for s in i.scores if s.primary_total}


def missing_item_rows(con: duckdb.DuckDBPyConnection, study_id: str, arms: list[str], baseline_visit: str) -> list[dict]:
    if not _has_columns(con, "analysis.adqs", ["n_items_missing", "avalmeth"]):
        return []
    totals = total_paramcds()
    by_visit = "and infno is null" if _has_columns(con, "analysis.adqs", ["infno"]) else ""
    frame = con.execute(
        f"""
        with per as (
            select usubjid, trtp, paramcd, avisit, any_value(avisitn) as avisitn,
                   bool_or(aval is not null) as scored,
                   bool_or(aval is null and n_items_missing > 0) as had_missing,
                   bool_or(avalmeth = 'PRORATED' and aval is not null) as prorated
            from analysis.adqs
            where study_id = ? and dtype is null {by_visit}
            group by all
        )
        select trtp, paramcd, avisit, any_value(avisitn) as avisitn,
               count(*) as n_assessed,
               count(*) filter (where scored) as n_scored,
               count(*) filter (where not scored and had_missing) as n_lost,
               count(*) filter (where prorated) as n_prorated,
               string_agg(usubjid, ', ' order by usubjid) filter (where not scored and had_missing) as subjects_lost
        from per
        group by all
        order by paramcd, avisitn, trtp
        """,
        [study_id],
    ).pl()
    out = []
    for r in frame.iter_rows(named=True):
        if r["paramcd"] not in totals or r["trtp"] not in arms:
            continue
        out.append(
            {
                **r,
                "instrument": totals[r["paramcd"]],
                "is_baseline": r["avisit"] == baseline_visit,
                "pct_lost": 100.0 * r["n_lost"] / r["n_assessed"] if r["n_assessed"] else None,
            }
        )
    order = {p: i for i, p in enumerate(totals)}
    arm_order = {a: i for i, a in enumerate(arms)}
    out.sort(key=lambda r: (order.get(r["paramcd"], 99), r["avisitn"] or 0, arm_order.get(r["trtp"], 9)))
    return out


def prorated_adqs(con: duckdb.DuckDBPyConnection, study_id: str, paramcd: str, max_missing: int, scope: str) -> pl.DataFrame | None:
    """The primary parameter's ADQS re-derived with proration (rule M2), or None when the working
    database lacks the staging tables (e.g. an analysis-only connection). Nothing is kept: the
    re-derivation runs inside a transaction that is rolled back."""
    from pipelines.core import sql

    needed = ["staging.item_responses", "staging.reported_totals", "ref.study", "ref.scores"]
    if not all(warehouse.table_exists(con, t) for t in needed):
        return None
    con.execute("begin transaction")
    try:
        con.execute(
            "update ref.study set missing_items_method = 'prorate', missing_items_max = ?, "
            "missing_items_scope = ?, missing_items_rounding = 'none'",
            [int(max_missing), scope],
        )
        con.execute(f"create or replace table analysis.scores as\n{sql.render('analysis.scores')}")
        frame = con.execute(
            f"""
            select usubjid, trtp, paramcd, avisit, avisitn, ady, aval, base, chg, ablfl, anl01fl, avalmeth, infno
            from ({sql.render('analysis.adqs')}) as a
            where study_id = ? and paramcd = ?
            """,
            [study_id, paramcd],
        ).pl()
    finally:
        con.execute("rollback")
    return frame
