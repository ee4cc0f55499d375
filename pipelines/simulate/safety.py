"""Simulated safety and exposure data: infusions (EX), vital signs around each infusion (VS), adverse
events (AE) and disposition (DS), written as SDTM (SAS XPORT v5) or as REDCap-style CSV.

Everything is drawn from the trial's own ``safety`` random stream, so adding these files changes no
value of the efficacy data. Sources: "Feder 2021" = Feder et al., Am J Psychiatry 2021;178:193-202 as
summarised in shared/docs/domain.md section 1; "assumption" = our choice (domain.md has no safety
numbers: the Feder 2021 abstract is truncated at "well tolerated overall, without serious ..."),
labelled where used.

* EX (Feder 2021): six infusions, three a week over two consecutive weeks (study days 0, 2, 4, 7, 9,
  11 - Monday/Wednesday/Friday: assumption), ketamine 0.5 mg/kg or midazolam 0.045 mg/kg IV, 40 min
  each (40 min confirmed for Feder 2014, UNCONFIRMED for 2021). A subject who leaves before week 2
  receives the infusions up to the day of their last attended visit.
* VS (assumption, following the issue's account of Feder 2021: blood pressure peaks around each
  infusion and settles within hours): systolic/diastolic pressure and pulse 15 min before the start
  (PRE-INFUSION), at 40 min (end of infusion, the peak), 80 min, 2 h and 4 h. Ketamine raises
  SBP/DBP/pulse by 16/9/7 at the peak (subject-specific multiplier, log-normal SD 0.3), 45 % of it
  at 80 min, 20 % at 2 h, 3 % at 4 h; midazolam lowers SBP/DBP by 4/3 and raises pulse by 2.
* AE (assumption: typical ketamine-infusion events; per-subject incidence over the course, ketamine vs
  midazolam, in ``AE_TERMS``): each infusion may bring each event with the per-infusion probability
  that gives that incidence over six infusions, so a subject can report a term more than once.
  About 10 % of subjects report an event in the days before the first infusion (not treatment-emergent).
* DS (Feder 2021): ketamine 14/15 completed, 1 discontinued for "Physician Decision"; simulated
  dropouts before week 2 get that reason. With weekly follow-up, a FOLLOW-UP epoch record says
  COMPLETED or LOST TO FOLLOW-UP.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

INFUSION_DAYS = (0, 2, 4, 7, 9, 11)
INFUSION_MINUTES = 40
DOSE = {"KET": ("KETAMINE", 0.5), "MID": ("MIDAZOLAM", 0.045)}

# (VSTPT, VSTPTNUM, VSELTM, minutes, fraction of the peak effect)
TIMEPOINTS = (
    ("PRE-INFUSION", 1, "-PT15M", -15, 0.0),
    ("40 MIN (END OF INFUSION)", 2, "PT40M", 40, 1.0),
    ("80 MIN", 3, "PT1H20M", 80, 0.45),
    ("2 H", 4, "PT2H", 120, 0.20),
    ("4 H", 5, "PT4H", 240, 0.03),
)
# test -> (label, unit, subject mean, subject SD, day-to-day SD, measurement SD, KET peak, MID peak)
VITALS = {
    "SYSBP": ("Systolic Blood Pressure", "mmHg", 122.0, 12.0, 4.0, 5.0, 16.0, -4.0),
    "DIABP": ("Diastolic Blood Pressure", "mmHg", 78.0, 8.0, 3.0, 4.0, 9.0, -3.0),
    "PULSE": ("Pulse Rate", "beats/min", 72.0, 9.0, 4.0, 4.0, 7.0, 2.0),
}
PEAK_MULTIPLIER_SD = 0.3


@dataclass(frozen=True)
class AeTerm:
    verbatim: str
    decod: str  # MedDRA preferred term
    bodsys: str  # MedDRA system organ class
    p_ket: float  # per-subject incidence over the six infusions (assumption)
    p_mid: float


AE_TERMS = (
    AeTerm("felt detached from body", "Dissociation", "Psychiatric disorders", 0.33, 0.00),
    AeTerm("dizzy", "Dizziness", "Nervous system disorders", 0.40, 0.13),
    AeTerm("headache", "Headache", "Nervous system disorders", 0.33, 0.20),
    AeTerm("sleepy", "Somnolence", "Nervous system disorders", 0.13, 0.40),
    AeTerm("nauseous", "Nausea", "Gastrointestinal disorders", 0.27, 0.07),
    AeTerm("threw up", "Vomiting", "Gastrointestinal disorders", 0.07, 0.00),
    AeTerm("blurry vision", "Vision blurred", "Eye disorders", 0.33, 0.07),
    AeTerm("anxious", "Anxiety", "Psychiatric disorders", 0.13, 0.07),
    AeTerm("tired", "Fatigue", "General disorders and administration site conditions", 0.20, 0.27),
    AeTerm("blood pressure up", "Blood pressure increased", "Investigations", 0.13, 0.00),
)
PRE_TREATMENT_AE = (
    AeTerm("headache", "Headache", "Nervous system disorders", 0.05, 0.05),
    AeTerm("cold", "Nasopharyngitis", "Infections and infestations", 0.05, 0.05),
)
SEVERITY = (("MILD", 0.75), ("MODERATE", 0.22), ("SEVERE", 0.03))
CAUSALITY = (("POSSIBLY RELATED", 0.5), ("PROBABLY RELATED", 0.3), ("NOT RELATED", 0.2))


@dataclass
class SafetyData:
    ex: pd.DataFrame
    vs: pd.DataFrame
    ae: pd.DataFrame
    ds: pd.DataFrame


def _sdtm_day(day: int) -> int:
    return day + 1 if day >= 0 else day


def received_infusions(trial) -> list[list[int]]:
    """Per subject, the numbers (1..6) of the infusions received: all six for a subject who attended the
    primary visit, else those on or before the day of their last attended treatment-phase visit."""
    ids = [v.id for v in trial.visits]
    primary = ids.index(trial.primary_visit)
    out = []
    for i in range(trial.n):
        last = max(trial.days[i, j] for j in range(primary + 1) if trial.observed[i, j])
        out.append([k for k, d in enumerate(INFUSION_DAYS, start=1) if trial.observed[i, primary] or d <= last])
    return out


def simulate_safety(trial) -> SafetyData:
    """The four domains for ``trial`` (SDTM variable names, study days as SDTM --DY)."""
    rng = trial.safety_rng
    assert rng is not None
    subj = trial.subjects
    n = trial.n
    usubjid = subj["usubjid"].to_list()
    arm = subj["arm"].to_list()
    ids = [v.id for v in trial.visits]
    primary = ids.index(trial.primary_visit)
    # the last attended treatment-phase visit's day bounds the infusions received
    last_tx_day = np.array(
        [max(trial.days[i, j] for j in range(primary + 1) if trial.observed[i, j]) for i in range(n)]
    )
    completed = trial.observed[:, primary]
    received = received_infusions(trial)

    ex_rows, vs_rows, ae_rows, ds_rows = [], [], [], []
    # vital-sign subject levels and peak multipliers (drawn for every subject, in a fixed order)
    levels = {t: rng.normal(v[2], v[3], size=n) for t, v in VITALS.items()}
    multiplier = np.exp(rng.normal(0.0, PEAK_MULTIPLIER_SD, size=n))
    for i in range(n):
        trt, dose = DOSE[arm[i]]
        days = [INFUSION_DAYS[k - 1] for k in received[i]]
        day_noise = {t: rng.normal(0.0, v[4], size=len(INFUSION_DAYS)) for t, v in VITALS.items()}
        meas = {t: rng.normal(0.0, v[5], size=(len(INFUSION_DAYS), len(TIMEPOINTS))) for t, v in VITALS.items()}
        for k, day in enumerate(days):
            ex_rows.append(
                {
                    "USUBJID": usubjid[i], "EXSEQ": float(k + 1), "EXTRT": trt, "EXDOSE": dose, "EXDOSU": "mg/kg",
                    "EXROUTE": "INTRAVENOUS", "VISIT": f"INFUSION {k + 1}", "EXSTDY": float(_sdtm_day(day)),
                    "EXENDY": float(_sdtm_day(day)), "EXDUR": f"PT{INFUSION_MINUTES}M",
                }
            )
            for t, (label, unit, *_rest, peak_ket, peak_mid) in VITALS.items():
                peak = (peak_ket * multiplier[i]) if arm[i] == "KET" else peak_mid
                for m, (tpt, tptnum, eltm, _mins, frac) in enumerate(TIMEPOINTS):
                    value = levels[t][i] + day_noise[t][k] + frac * peak + meas[t][k, m]
                    vs_rows.append(
                        {
                            "USUBJID": usubjid[i], "VSTESTCD": t, "VSTEST": label, "VSORRES": f"{value:.0f}",
                            "VSORRESU": unit, "VSSTRESN": float(round(value)), "VSSTRESU": unit,
                            "VISIT": f"INFUSION {k + 1}", "VSTPT": tpt, "VSTPTNUM": float(tptnum),
                            "VSELTM": eltm, "VSTPTREF": "START OF INFUSION", "VSDY": float(_sdtm_day(day)),
                        }
                    )
        # adverse events: per infusion and term, with the per-infusion probability for the incidence
        for term in AE_TERMS:
            p_subject = term.p_ket if arm[i] == "KET" else term.p_mid
            p_inf = 1.0 - (1.0 - p_subject) ** (1.0 / len(INFUSION_DAYS))
            hits = rng.random(len(INFUSION_DAYS)) < p_inf
            sev = rng.choice(len(SEVERITY), size=len(INFUSION_DAYS), p=[p for _, p in SEVERITY])
            rel = rng.choice(len(CAUSALITY), size=len(INFUSION_DAYS), p=[p for _, p in CAUSALITY])
            lasts = rng.integers(0, 2, size=len(INFUSION_DAYS))
            for k, day in enumerate(days):
                if hits[k]:
                    ae_rows.append(_ae(usubjid[i], term, SEVERITY[sev[k]][0], CAUSALITY[rel[k]][0], day, day + lasts[k]))
        for term in PRE_TREATMENT_AE:
            hit = rng.random() < term.p_ket
            day = int(rng.integers(-5, 0))
            if hit:
                ae_rows.append(_ae(usubjid[i], term, "MILD", "NOT RELATED", day, day + 1))
        # disposition
        if completed[i]:
            ds_rows.append(_ds(usubjid[i], "COMPLETED", "Completed treatment phase", int(trial.days[i, primary]), "TREATMENT"))
        else:
            ds_rows.append(_ds(usubjid[i], "PHYSICIAN DECISION", "Physician decision", int(last_tx_day[i]), "TREATMENT"))
        if trial.follow_up_weeks and completed[i]:
            last = max(j for j in range(len(ids)) if trial.observed[i, j])
            if trial.observed[i, -1]:
                ds_rows.append(_ds(usubjid[i], "COMPLETED", "Completed follow-up", int(trial.days[i, last]), "FOLLOW-UP"))
            else:
                ds_rows.append(_ds(usubjid[i], "LOST TO FOLLOW-UP", "Did not return", int(trial.days[i, last]), "FOLLOW-UP"))

    def frame(rows, domain, seq):
        df = pd.DataFrame(rows)
        if df.empty:
            return df
        df.insert(0, "DOMAIN", domain)
        df.insert(0, "STUDYID", trial.study_id)
        if seq not in df.columns:
            df.insert(3, seq, df.groupby("USUBJID").cumcount().astype(float) + 1)
        else:
            df[seq] = df.groupby("USUBJID").cumcount().astype(float) + 1
        return df

    ae = pd.DataFrame(ae_rows)
    if not ae.empty:
        ae = ae.sort_values(["USUBJID", "AESTDY", "AEDECOD"], kind="stable").reset_index(drop=True)
    return SafetyData(
        ex=frame(ex_rows, "EX", "EXSEQ"),
        vs=frame(vs_rows, "VS", "VSSEQ"),
        ae=frame(ae.to_dict("records"), "AE", "AESEQ"),
        ds=frame(ds_rows, "DS", "DSSEQ"),
    )


def _ae(usubjid, term: AeTerm, sev: str, rel: str, start: int, end: int) -> dict:
    return {
        "USUBJID": usubjid, "AETERM": term.verbatim, "AEDECOD": term.decod, "AEBODSYS": term.bodsys,
        "AESEV": sev, "AESER": "N", "AEREL": rel, "AEOUT": "RECOVERED/RESOLVED",
        "AESTDY": float(_sdtm_day(start)), "AEENDY": float(_sdtm_day(end)),
    }


def _ds(usubjid, decod: str, term: str, day: int, epoch: str) -> dict:
    return {
        "USUBJID": usubjid, "DSTERM": term, "DSDECOD": decod, "DSCAT": "DISPOSITION EVENT", "EPOCH": epoch,
        "DSSTDY": float(_sdtm_day(day)),
    }


LABELS = {
    "STUDYID": "Study Identifier", "DOMAIN": "Domain Abbreviation", "USUBJID": "Unique Subject Identifier",
    "EXSEQ": "Sequence Number", "EXTRT": "Name of Treatment", "EXDOSE": "Dose", "EXDOSU": "Dose Units",
    "EXROUTE": "Route of Administration", "VISIT": "Visit Name", "EXSTDY": "Study Day of Start of Treatment",
    "EXENDY": "Study Day of End of Treatment", "EXDUR": "Duration of Treatment",
    "VSSEQ": "Sequence Number", "VSTESTCD": "Vital Signs Test Short Name", "VSTEST": "Vital Signs Test Name",
    "VSORRES": "Result or Finding in Original Units", "VSORRESU": "Original Units",
    "VSSTRESN": "Numeric Result/Finding in Standard Units", "VSSTRESU": "Standard Units",
    "VSTPT": "Planned Time Point Name", "VSTPTNUM": "Planned Time Point Number",
    "VSELTM": "Planned Elapsed Time from Time Point Ref", "VSTPTREF": "Time Point Reference",
    "VSDY": "Study Day of Vital Signs",
    "AESEQ": "Sequence Number", "AETERM": "Reported Term for the Adverse Event",
    "AEDECOD": "Dictionary-Derived Term", "AEBODSYS": "Body System or Organ Class", "AESEV": "Severity/Intensity",
    "AESER": "Serious Event", "AEREL": "Causality", "AEOUT": "Outcome of Adverse Event",
    "AESTDY": "Study Day of Start of Adverse Event", "AEENDY": "Study Day of End of Adverse Event",
    "DSSEQ": "Sequence Number", "DSTERM": "Reported Term for the Disposition Event",
    "DSDECOD": "Standardized Disposition Term", "DSCAT": "Category for Disposition Event", "EPOCH": "Epoch",
    "DSSTDY": "Study Day of Start of Disposition Event",
}
DATASET_LABELS = {"AE": "Adverse Events", "VS": "Vital Signs", "EX": "Exposure", "DS": "Disposition"}


def write_sdtm(df: pd.DataFrame, domain: str, path: Path) -> None:
    from pipelines.simulate.formats import SDTM_DATASET_LABELS, _write_xpt

    SDTM_DATASET_LABELS.setdefault(domain, DATASET_LABELS[domain])
    _write_xpt(df, path, domain, {c: LABELS[c] for c in df.columns})


# REDCap-style CSV: lower-case field names; vital signs wide (one row per subject x infusion x time point)
def write_csv(data: SafetyData, domain: str, path: Path) -> None:
    if domain == "vs":
        vs = data.vs
        wide = (
            vs.pivot_table(
                index=["USUBJID", "VISIT", "VSDY", "VSTPTNUM", "VSTPT", "VSELTM"],
                columns="VSTESTCD", values="VSSTRESN", aggfunc="first", sort=False,
            )
            .reset_index()
            .sort_values(["USUBJID", "VSDY", "VSTPTNUM"], kind="stable")
        )
        out = pd.DataFrame(
            {
                "record_id": wide["USUBJID"],
                "redcap_event_name": [v.lower().replace(" ", "_") + "_arm_1" for v in wide["VISIT"]],
                "vs_day": (wide["VSDY"] - 1).astype(int),
                "vs_tptnum": wide["VSTPTNUM"].astype(int),
                "vs_timepoint": wide["VSTPT"],
                "vs_eltm": wide["VSELTM"],
                "vs_sbp": wide["SYSBP"].astype(int),
                "vs_dbp": wide["DIABP"].astype(int),
                "vs_hr": wide["PULSE"].astype(int),
            }
        )
    else:
        df = {"ae": data.ae, "ex": data.ex, "ds": data.ds}[domain].copy()
        df = df.drop(columns=["STUDYID", "DOMAIN"])
        for c in [c for c in df.columns if c.endswith("DY")]:
            df[c] = [int(d) - 1 if d >= 1 else int(d) for d in df[c]]  # CSV exports: day 0 = first infusion
        for c in [c for c in df.columns if c.endswith("SEQ")]:
            df[c] = df[c].astype(int)
        df.columns = [("record_id" if c == "USUBJID" else c.lower()) for c in df.columns]
        out = df
    out.to_csv(path, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


CSV_FIELDS = {
    "ae": "{subject: record_id, aeseq: aeseq, aeterm: aeterm, aedecod: aedecod, aebodsys: aebodsys, aesev: aesev, "
    "aerel: aerel, aeser: aeser, aestdy: aestdy, aeendy: aeendy, aeout: aeout}",
    "vs": "{subject: record_id, visit: redcap_event_name, vsdy: vs_day, vstptnum: vs_tptnum, vstpt: vs_timepoint, "
    "vseltm: vs_eltm, sysbp: vs_sbp, diabp: vs_dbp, pulse: vs_hr}",
    "ex": "{subject: record_id, extrt: extrt, exdose: exdose, exdosu: exdosu, exroute: exroute, exstdy: exstdy, "
    "exendy: exendy, exdur: exdur}",
    "ds": "{subject: record_id, dscat: dscat, dsdecod: dsdecod, dsterm: dsterm, dsstdy: dsstdy, epoch: epoch}",
}
DOMAIN_WORDS = {
    "ae": "adverse events (MedDRA preferred term and system organ class as given, no coding)",
    "vs": "vital signs around each infusion (time points relative to the start of the infusion)",
    "ex": "exposure: one record per infusion (dose, start/end study day, duration)",
    "ds": "disposition with reasons",
}


def plan(formats: tuple[str, ...]) -> dict[str, str]:
    """Where each domain goes: SDTM XPT when sdtm is asked for (vital signs as a REDCap-style wide CSV
    when wide is asked for too, so both readers are exercised), else CSV."""
    fmt = "sdtm" if "sdtm" in formats else "wide"
    out = {d: fmt for d in ("ae", "vs", "ex", "ds")}
    if "wide" in formats:
        out["vs"] = "wide"
    return out


def file_name(domain: str, fmt: str) -> str:
    return f"sdtm/{domain}.xpt" if fmt == "sdtm" else f"safety/{domain}.csv"


def manifest_blocks(where: dict[str, str]) -> str:
    out = []
    for domain in ("ex", "ae", "vs", "ds"):
        fmt = where[domain]
        f = file_name(domain, fmt)
        if fmt == "sdtm":
            out.append(
                f"""\
  # SDTM {domain.upper()} (SAS XPORT v5): {DOMAIN_WORDS[domain]}; study days as SDTM --DY (day 1 = first infusion).
  - file: {f}
    kind: sdtm
    layout: sdtm
    sdtm: {{domain: {domain.upper()}}}
"""
            )
        else:
            out.append(
                f"""\
  # {domain.upper()} as a REDCap-style CSV: {DOMAIN_WORDS[domain]}; study days with day 0 = first infusion.
  - file: {f}
    kind: {domain}
    layout: {"wide" if domain == "vs" else "long"}
    fields: {CSV_FIELDS[domain]}
"""
            )
    return "".join(out)


def write_safety(trial, formats: tuple[str, ...], target) -> dict[str, str]:
    """Write the four domains; ``target(rel)`` returns the path to write (and records the file)."""
    data = simulate_safety(trial)
    where = plan(formats)
    for domain in ("ex", "ae", "vs", "ds"):
        rel = file_name(domain, where[domain])
        if where[domain] == "sdtm":
            write_sdtm(getattr(data, domain), domain.upper(), target(rel))
        else:
            write_csv(data, domain, target(rel))
    return where
