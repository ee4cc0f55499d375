"""Hand-built safety, exposure, time-to-event and dissociation records added to a built study, with
the counts a reader works out by hand (the expected values of the TLF tests).

Subjects are picked by position among each arm's sorted USUBJIDs: K1, K2, K3 (ketamine), M1, M2, M3
(midazolam). M3 is not in the safety population (SAFFL = 'N'), so the safety N is 15 ketamine, 14
midazolam, 29 in total.

Adverse events (AEBODSYS / AEDECOD, TRTEMFL, ASEV):
  K1 Nervous system disorders / Dizziness  Y MILD
  K1 Nervous system disorders / Dizziness  Y MODERATE   (same PT twice: K1 counted once)
  K1 Nervous system disorders / Headache   Y MILD
  K2 Nervous system disorders / Dizziness  Y SEVERE
  K2 Gastrointestinal disorders / Nausea   Y MILD
  K3 Gastrointestinal disorders / Nausea   N MILD       (before the first dose: not a TEAE)
  M1 Nervous system disorders / Headache   Y MILD
  M2 Psychiatric disorders / Anxiety       N MILD       (not a TEAE: the SOC does not appear)
By hand, n (%) of 15 / 14 / 29:
  any TEAE                 K 2 (13.3)  M 1 (7.1)  total 3 (10.3)
  Nervous system disorders K 2 (13.3)  M 1 (7.1)  total 3 (10.3)
    Dizziness              K 2 (13.3)  M 0 (0.0)  total 2 (6.9)
    Headache               K 1 (6.7)   M 1 (7.1)  total 2 (6.9)
  Gastrointestinal         K 1 (6.7)   M 0 (0.0)  total 1 (3.4)
    Nausea                 K 1 (6.7)   M 0 (0.0)  total 1 (3.4)
  Maximum severity, any TEAE: K mild 0 (0.0), moderate 1 (6.7) [K1], severe 1 (6.7) [K2]; M mild 1 (7.1).

Vital signs (SYSBP, infusion 1): K1 pre 120, +40 min 150 (chg 30), +240 min 125 (5); K2 pre 110,
130 (20), 115 (5); M1 pre 118, 122 (4). Peak change: K n 2, mean 25.0, SD 7.07, median 25.0, min 20,
max 30; M n 1, mean 4.0.

Time to loss of response (days, CNSR): K1..K6 10, 20, 25 (censored), 30, 40, 50 (censored): the
Kaplan-Meier estimate is 5/6 after day 10, 4/6 after day 20, 4/6 x 2/3 = 0.444 after day 30, so the
median is 30 days; 4 events, 2 censored. M1, M2, M4: 5, 12, 20 (censored): S = 2/3 after day 5,
1/3 after day 12, so the median is 12 days (no time where S is exactly 0.5, where conventions differ).
"""

from __future__ import annotations

import datetime as dt

import duckdb

STUDY = "FEDERSIM-7"


def subjects(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute("select usubjid, trt01p from analysis.adsl order by usubjid").fetchall()
    ket = [u for u, a in rows if a == "KET"]
    mid = [u for u, a in rows if a == "MID"]
    return {f"K{i + 1}": u for i, u in enumerate(ket)} | {f"M{i + 1}": u for i, u in enumerate(mid)}


def add_safety(con: duckdb.DuckDBPyConnection) -> None:
    s = subjects(con)
    # ADSL may already derive SAFFL / EOSSTT / DCSREAS (issue 12): these literal values replace them
    con.execute("alter table analysis.adsl add column if not exists saffl varchar")
    con.execute("alter table analysis.adsl add column if not exists eosstt varchar")
    con.execute("alter table analysis.adsl add column if not exists dcsreas varchar")
    con.execute("update analysis.adsl set saffl = 'Y', eosstt = 'COMPLETED', dcsreas = null")
    con.execute("update analysis.adsl set saffl = 'N' where usubjid = ?", [s["M3"]])
    for key, reason in (("M2", "Lost to follow-up"), ("M4", "Lost to follow-up"), ("K4", "Withdrawal by subject")):
        con.execute("update analysis.adsl set eosstt = 'DISCONTINUED', dcsreas = ? where usubjid = ?", [reason, s[key]])

    con.execute(
        "create or replace table analysis.adae (study_id varchar, usubjid varchar, aeseq integer, aebodsys varchar, "
        "aedecod varchar, trtemfl varchar, asev varchar, aerel varchar, astdt date)"
    )
    ae = [
        ("K1", "Nervous system disorders", "Dizziness", "Y", "MILD", "RELATED"),
        ("K1", "Nervous system disorders", "Dizziness", "Y", "MODERATE", "RELATED"),
        ("K1", "Nervous system disorders", "Headache", "Y", "MILD", "NOT RELATED"),
        ("K2", "Nervous system disorders", "Dizziness", "Y", "SEVERE", "RELATED"),
        ("K2", "Gastrointestinal disorders", "Nausea", "Y", "MILD", "RELATED"),
        ("K3", "Gastrointestinal disorders", "Nausea", "N", "MILD", "NOT RELATED"),
        ("M1", "Nervous system disorders", "Headache", "Y", "MILD", "NOT RELATED"),
        ("M2", "Psychiatric disorders", "Anxiety", "N", "MILD", "NOT RELATED"),
    ]
    for i, (k, soc, pt, te, sev, rel) in enumerate(ae, start=1):
        con.execute(
            "insert into analysis.adae values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [STUDY, s[k], i, soc, pt, te, sev, rel, dt.date(2021, 1, 4) + dt.timedelta(days=i)],
        )

    con.execute(
        "create or replace table analysis.advs (study_id varchar, usubjid varchar, paramcd varchar, param varchar, avisit varchar, "
        "avisitn integer, atpt varchar, atptn integer, aval double, base double, chg double, ablfl varchar)"
    )
    vs = {"K1": (120, 150, 125), "K2": (110, 130, 115), "M1": (118, 122, None)}
    for k, (pre, p40, p240) in vs.items():
        for tp, n, v in (("Pre-infusion", 0, pre), ("40 min", 1, p40), ("240 min", 2, p240)):
            if v is None:
                continue
            con.execute(
                "insert into analysis.advs values (?, ?, 'SYSBP', 'Systolic Blood Pressure (mmHg)', 'INF1', 1, ?, ?, ?, ?, ?, ?)",
                [STUDY, s[k], tp, n, v, pre, None if n == 0 else v - pre, "Y" if n == 0 else None],
            )

    con.execute("create or replace table analysis.adex (study_id varchar, usubjid varchar, astdt date, exdose double, exdosu varchar)")
    for k, n in (("K1", 6), ("K2", 6), ("M1", 5)):
        for i in range(n):
            con.execute(
                "insert into analysis.adex values (?, ?, ?, 0.5, 'mg/kg')", [STUDY, s[k], dt.date(2021, 1, 4) + dt.timedelta(days=2 * i)]
            )

    con.execute(
        "create or replace table analysis.adtte (study_id varchar, usubjid varchar, paramcd varchar, param varchar, "
        "aval double, cnsr integer, startdt date)"
    )
    tte = [("K1", 10, 0), ("K2", 20, 0), ("K3", 25, 1), ("K4", 30, 0), ("K5", 40, 0), ("K6", 50, 1), ("M1", 5, 0), ("M2", 12, 0), ("M4", 20, 1)]
    for k, t, c in tte:
        con.execute(
            "insert into analysis.adtte values (?, ?, 'LOSSRESP', 'Time to loss of response (days)', ?, ?, ?)",
            [STUDY, s[k], t, c, dt.date(2021, 1, 18)],
        )

    con.execute("alter table analysis.adqs add column if not exists atpt varchar")
    con.execute("alter table analysis.adqs add column if not exists atptn integer")
    cadss = {"K1": (0, 20, 2), "K2": (2, 30, 4), "M1": (1, 3, 1)}
    for k, vals in cadss.items():
        for (tp, n), v in zip((("Pre-infusion", 0), ("40 min", 1), ("240 min", 2)), vals, strict=True):
            con.execute(
                "insert into analysis.adqs (study_id, usubjid, trtp, paramcd, param, parcat1, avisit, avisitn, aval, anl01fl, atpt, atptn) "
                "values (?, ?, ?, 'CADSSTOT', 'CADSS total score', 'CADSS', 'BL', 0, ?, 'Y', ?, ?)",
                [STUDY, s[k], "KET" if k.startswith("K") else "MID", v, tp, n],
            )
