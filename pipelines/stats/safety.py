"""Safety tables as tidy frames: treatment-emergent adverse events by system organ class and preferred
term (subjects n and % per arm), for the TLF package and the report.

Counting rules (ICH E3 / the usual CSR TEAE table): the denominator N of an arm is its safety
population (ADSL-style SAFFL: subjects who received at least one infusion, from ADAE/ADEX); a subject
is counted once per row however often the term was reported (ADAE's first-occurrence flags AOCCFL,
AOCCSFL, AOCCPFL); ``n_events`` counts every treatment-emergent record. Percentages are 100 * n / N.
"""

from __future__ import annotations

import duckdb
import polars as pl

TEAE_QUERY = """
with
safety as (
    select trta, count(distinct usubjid) as n_safety from analysis.adex where study_id = $study group by trta
),
teae as (
    select * from analysis.adae where study_id = $study and trtemfl = 'Y'
),
rows_ as (
    select 'ANY' as level, null as aebodsys, null as aedecod, trta,
           count(*) filter (where aoccfl = 'Y') as n, count(*) as n_events
    from teae group by trta
    union all
    select 'SOC', aebodsys, null, trta, count(*) filter (where aoccsfl = 'Y'), count(*)
    from teae group by aebodsys, trta
    union all
    select 'PT', aebodsys, aedecod, trta, count(*) filter (where aoccpfl = 'Y'), count(*)
    from teae group by aebodsys, aedecod, trta
),
grid as (
    select distinct r.level, r.aebodsys, r.aedecod, s.trta, s.n_safety from rows_ as r cross join safety as s
)
select
    g.level, g.aebodsys, g.aedecod, g.trta,
    coalesce(r.n, 0) as n, g.n_safety as big_n,
    100.0 * coalesce(r.n, 0) / g.n_safety as pct,
    coalesce(r.n_events, 0) as n_events
from grid as g
left join rows_ as r
    on r.level = g.level and r.trta = g.trta
    and r.aebodsys is not distinct from g.aebodsys and r.aedecod is not distinct from g.aedecod
order by
    case g.level when 'ANY' then 0 else 1 end, g.aebodsys nulls first,
    case g.level when 'SOC' then 0 else 1 end, g.aedecod, g.trta
"""


def teae_by_soc_pt(con: duckdb.DuckDBPyConnection, study_id: str) -> pl.DataFrame:
    """One row per (ANY | SOC | SOC x PT) x arm: level, aebodsys, aedecod, trta, n (subjects), big_n
    (safety population of the arm), pct, n_events. Every arm of the safety population has a row for
    every term (n 0 when the arm had none)."""
    return con.execute(TEAE_QUERY, {"study": study_id}).pl()


PEAK_QUERY = """
select
    trta, paramcd, any_value(param) as param, count(*) as n_infusions, count(distinct usubjid) as n_subjects,
    avg(base) as mean_base, avg(chg) as mean_peak_chg, stddev_samp(chg) as sd_peak_chg, max(chg) as max_peak_chg
from analysis.advs
where study_id = $study and dtype = 'MAXIMUM' and chg is not null
group by trta, paramcd
order by paramcd, trta
"""


def vital_sign_peaks(con: duckdb.DuckDBPyConnection, study_id: str) -> pl.DataFrame:
    """Per arm x parameter: infusions and subjects with a peak record, mean pre-infusion baseline,
    mean / SD / maximum of the peak post-infusion change (ADVS DTYPE 'MAXIMUM')."""
    return con.execute(PEAK_QUERY, {"study": study_id}).pl()


def teae_markdown(con: duckdb.DuckDBPyConnection, study_id: str) -> str:
    """TEAE table as markdown: rows ANY / SOC / PT, one 'n (%)' column per arm."""
    t = teae_by_soc_pt(con, study_id)
    if t.height == 0:
        return "_(no treatment-emergent adverse events)_"
    arms = list(dict.fromkeys(t["trta"].to_list()))
    big_n = {r["trta"]: r["big_n"] for r in t.iter_rows(named=True)}
    head = "| System organ class / preferred term | " + " | ".join(f"{a} (N={big_n[a]})" for a in arms) + " |"
    lines = [head, "|:---|" + "---:|" * len(arms)]
    keys = list(dict.fromkeys((r["level"], r["aebodsys"], r["aedecod"]) for r in t.iter_rows(named=True)))
    cells = {(r["level"], r["aebodsys"], r["aedecod"], r["trta"]): f"{r['n']} ({r['pct']:.0f}%)" for r in t.iter_rows(named=True)}
    for level, soc, pt in keys:
        label = "Any TEAE" if level == "ANY" else (f"**{soc}**" if level == "SOC" else f"&nbsp;&nbsp;{pt}")
        lines.append(f"| {label} | " + " | ".join(cells.get((level, soc, pt, a), "0") for a in arms) + " |")
    return "\n".join(lines)


def peaks_markdown(con: duckdb.DuckDBPyConnection, study_id: str) -> str:
    p = vital_sign_peaks(con, study_id)
    if p.height == 0:
        return "_(no post-infusion vital signs with a pre-infusion baseline)_"
    lines = ["| parameter | arm | infusions | mean baseline | mean peak change (SD) | max |", "|:---|:---|---:|---:|---:|---:|"]
    for r in p.iter_rows(named=True):
        sd = "" if r["sd_peak_chg"] is None else f" ({r['sd_peak_chg']:.1f})"
        lines.append(
            f"| {r['param']} | {r['trta']} | {r['n_infusions']} | {r['mean_base']:.1f} | {r['mean_peak_chg']:.1f}{sd} "
            f"| {r['max_peak_chg']:.0f} |"
        )
    return "\n".join(lines)
