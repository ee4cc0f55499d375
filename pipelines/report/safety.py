"""The study report's "Safety and durability" section: a short, data-driven summary of what the CSR
package (pipelines/tlf) tabulates in full, with links to those outputs.

Every number is read from the warehouse of the run: treatment-emergent adverse events (analysis.adae,
through pipelines.stats.safety.teae_by_soc_pt, the function behind Table 14.3.1), the peak
post-infusion CADSS total (analysis.adqs time-point records, ANL02FL, rule A10), the peak post-infusion
systolic blood pressure change (analysis.advs DTYPE MAXIMUM, pipelines.stats.safety.vital_sign_peaks)
and the Kaplan-Meier medians of the time to loss of response (results.durability). A part whose table
is missing or empty is left out; with none of them the section is not shown.
"""

from __future__ import annotations

import duckdb
import polars as pl

from pipelines.report import fmt
from pipelines.report.data import StudyData, columns


def _has(con, table: str, *cols: str) -> bool:
    """The table exists with these columns (a warehouse from an older build may lack some)."""
    present = set(columns(con, table))
    return bool(present) and set(cols) <= present


def _rows(con, sql: str, params: list) -> list[dict]:
    return con.execute(sql, params).pl().to_dicts()


def _teae(con, data: StudyData) -> dict | None:
    if not (
        _has(con, "analysis.adae", "trta", "trtemfl", "aoccfl", "aoccsfl", "aoccpfl", "aeser", "asev")
        and _has(con, "analysis.adex", "trta")
    ):
        return None
    from pipelines.stats.safety import teae_by_soc_pt

    t = teae_by_soc_pt(con, data.study_id)
    if t.is_empty():
        return None
    arms = [a for a in data.arms if a.id in set(t["trta"].to_list())]
    any_row = {r["trta"]: r for r in t.filter(pl.col("level") == "ANY").to_dicts()}
    big_n = {r["trta"]: r["big_n"] for r in t.to_dicts()}
    extra = {
        r["trta"]: r
        for r in _rows(
            con,
            "select trta, count(distinct usubjid) filter (where aeser = 'Y') as n_serious, "
            "count(distinct usubjid) filter (where asev = 'SEVERE') as n_severe "
            "from analysis.adae where study_id = ? and trtemfl = 'Y' group by trta",
            [data.study_id],
        )
    }
    pts = t.filter(pl.col("level") == "PT")
    top = (
        pts.group_by("aedecod").agg(pl.col("n").sum().alias("total")).sort(["total", "aedecod"], descending=[True, False]).head(5)
    )["aedecod"].to_list()

    def cell(arm: str, n: int | None) -> str:
        return fmt.count_pct(n or 0, big_n.get(arm))

    rows = [
        {"label": "Participants with at least one TEAE", "indent": False, "cells": {a.id: cell(a.id, (any_row.get(a.id) or {}).get("n")) for a in arms}},
        {"label": "Participants with a severe TEAE", "indent": False, "cells": {a.id: cell(a.id, (extra.get(a.id) or {}).get("n_severe")) for a in arms}},
        {"label": "Participants with a serious TEAE", "indent": False, "cells": {a.id: cell(a.id, (extra.get(a.id) or {}).get("n_serious")) for a in arms}},
    ]
    for pt in top:
        by_arm = {r["trta"]: r["n"] for r in pts.filter(pl.col("aedecod") == pt).to_dicts()}
        rows.append({"label": pt, "indent": True, "cells": {a.id: cell(a.id, by_arm.get(a.id)) for a in arms}})
    return {"arms": arms, "big_n": big_n, "rows": rows}


def _peaks(con, data: StudyData) -> dict | None:
    """Per arm: the participant's largest post-infusion CADSS total (any infusion) and largest change from
    an infusion's pre-infusion rating; the peak systolic blood pressure change per infusion."""
    out: dict = {"cadss": [], "sbp": []}
    if _has(con, "analysis.adqs", "anl02fl", "atptn", "chg"):
        rows = _rows(
            con,
            """
            with per as (
                select trtp, usubjid, max(aval) as peak, max(chg) as peak_chg
                from analysis.adqs
                where study_id = ? and paramcd = 'CADSSTOT' and anl02fl = 'Y' and atptn > 0 and aval is not null
                group by trtp, usubjid
            )
            select trtp, count(*) as n, avg(peak) as mean, stddev_samp(peak) as sd, max(peak) as max,
                   avg(peak_chg) as mean_chg, stddev_samp(peak_chg) as sd_chg
            from per group by trtp
            """,
            [data.study_id],
        )
        out["cadss"] = rows
    if _has(con, "analysis.advs", "trta", "paramcd", "dtype", "chg", "base"):
        from pipelines.stats.safety import vital_sign_peaks

        out["sbp"] = vital_sign_peaks(con, data.study_id).filter(pl.col("paramcd") == "SYSBP").to_dicts()
    if not out["cadss"] and not out["sbp"]:
        return None
    order = {a.id: i for i, a in enumerate(data.arms)}
    label = {a.id: a.label for a in data.arms}
    cadss = [
        {
            "arm": label.get(r["trtp"], r["trtp"]),
            "n": r["n"],
            "peak": fmt.mean_sd(r["mean"], r["sd"]),
            "max": fmt.num(r["max"], 0),
            "chg": fmt.mean_sd(r["mean_chg"], r["sd_chg"]),
        }
        for r in sorted(out["cadss"], key=lambda r: order.get(r["trtp"], 9))
    ]
    sbp = [
        {
            "arm": label.get(r["trta"], r["trta"]),
            "n": r["n_subjects"],
            "infusions": r["n_infusions"],
            "chg": fmt.mean_sd(r["mean_peak_chg"], r["sd_peak_chg"]),
            "max": fmt.num(r["max_peak_chg"], 0),
        }
        for r in sorted(out["sbp"], key=lambda r: order.get(r["trta"], 9))
    ]
    return {"cadss": cadss, "sbp": sbp}


def _durability(con, data: StudyData) -> dict | None:
    if not _has(con, "results.durability", "trtp", "arm_label", "n_subjects", "n_events", "n_censored", "median"):
        return None
    rows = _rows(con, "select * from results.durability where study_id = ?", [data.study_id])
    if not rows:
        return None
    order = {a.id: i for i, a in enumerate(data.arms)}
    arms = sorted((r for r in rows if r["trtp"] != "COMPARISON"), key=lambda r: order.get(r["trtp"], 9))
    test = next((r for r in rows if r["trtp"] == "COMPARISON"), None)

    def med(r) -> str:
        if r["median"] is None:
            return "not reached"
        lo = fmt.num(r["conf_low"], 1) if r["conf_low"] is not None else "NE"
        hi = fmt.num(r["conf_high"], 1) if r["conf_high"] is not None else "NE"
        return f"{fmt.num(r['median'], 1)} ({lo}, {hi})"

    return {
        "rows": [
            {"arm": r["arm_label"] or r["trtp"], "n": r["n_subjects"], "events": r["n_events"], "censored": r["n_censored"], "median": med(r)}
            for r in arms
        ],
        "level": int(round(100 * (arms[0]["conf_level"] or 0.95))) if arms else 95,
        "ci_method": arms[0]["ci_method"] if arms else None,
        "test": (
            f"{test['test'][:1].upper()}{test['test'][1:]} chi-square {fmt.num(test['statistic'], 2)} ({test['df']} df), "
            f"{fmt.p_text(test['p_value'])}"
            if test and test.get("statistic") is not None
            else (test or {}).get("note")
        ),
    }


def safety_section(con: duckdb.DuckDBPyConnection, data: StudyData) -> dict | None:
    """The section's content, or None when the study has no safety or durability data."""
    teae, peaks, dur = _teae(con, data), _peaks(con, data), _durability(con, data)
    if teae is None and peaks is None and dur is None:
        return None
    return {
        "teae": teae,
        "peaks": peaks,
        "durability": dur,
        "package": f"{data.study_id}-tlf",  # the CSR package next to the report (assets/tlf.py)
    }
