"""Small analysis.adsl / analysis.adqs tables in an in-memory DuckDB, for efficacy tests that need
exact inputs (hand-computed expectations, engineered failures) without building a whole study."""

from __future__ import annotations

import duckdb
import polars as pl

from pipelines.core.manifest import parse_manifest

VISITS = ("BL", "D1", "W1", "W2")
DAYS = {"BL": 0, "D1": 1, "W1": 7, "W2": 14}


def manifest(arms: str = "two", primary: str = "W2", multiplicity: str = "holm"):
    arm_block = (
        "  - {id: KET, role: experimental}\n  - {id: MID, role: control}\n"
        if arms == "two"
        else "  - {id: KET, role: experimental}\n"
    )
    visits = "\n".join(
        f"  - {{id: {v}, day: {DAYS[v]}{', baseline: true' if v == 'BL' else ''}"
        f"{', primary: true' if v == primary else ''}}}"
        for v in VISITS
    )
    text = f"""\
study_id: TINY
arms:
{arm_block}visits:
{visits}
sources:
  - {{file: x.csv, kind: pcl5}}
analysis: {{multiplicity: {multiplicity}}}
"""
    return parse_manifest(text)


def connection(values: list[tuple[str, str, str, str, float]]) -> duckdb.DuckDBPyConnection:
    """``values``: (usubjid, arm, paramcd, visit, aval). BASE, CHG, ABLFL and ANL01FL are derived
    as ADQS does (baseline = the BL value; CHG on post-baseline visits)."""
    d = pl.DataFrame(values, schema=["usubjid", "trtp", "paramcd", "avisit", "aval"], orient="row")
    base = d.filter(pl.col("avisit") == "BL").select("usubjid", "paramcd", pl.col("aval").alias("base"))
    d = d.join(base, on=["usubjid", "paramcd"], how="left").with_columns(
        pl.lit("TINY").alias("study_id"),
        pl.col("avisit").replace_strict({v: i for i, v in enumerate(VISITS)}, return_dtype=pl.Int32).alias("avisitn"),
        pl.col("avisit").replace_strict(DAYS, return_dtype=pl.Int32).alias("ady"),
        pl.when(pl.col("avisit") != "BL").then(pl.col("aval") - pl.col("base")).alias("chg"),
        pl.lit(None, dtype=pl.Float64).alias("pchg"),
        pl.when(pl.col("avisit") == "BL").then(pl.lit("Y")).alias("ablfl"),
        pl.lit("Y").alias("anl01fl"),
        pl.lit(None, dtype=pl.Utf8).alias("crit1"),
        pl.lit(None, dtype=pl.Utf8).alias("crit1fl"),
        pl.lit(None, dtype=pl.Utf8).alias("crit2"),
        pl.lit(None, dtype=pl.Utf8).alias("crit2fl"),
    )
    adsl = d.select("study_id", "usubjid", pl.col("trtp").alias("trt01p")).unique().with_columns(
        pl.lit("Y").alias("randfl")
    )
    con = duckdb.connect()
    con.execute("create schema analysis")
    con.register("_adqs", d.to_arrow())
    con.register("_adsl", adsl.to_arrow())
    con.execute("create table analysis.adqs as select * from _adqs")
    con.execute("create table analysis.adsl as select * from _adsl")
    return con
