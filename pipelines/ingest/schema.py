"""The raw layer's fixed shapes.

``raw.<kind>`` holds one row per data row received, for the mapped columns only, values as text
exactly as received (no code mapping applied), plus lineage. Column names are ours, not the
file's: the manifest maps them. Instrument tables carry both shapes a file can have: wide
(``item_<n>`` columns) and long (``item`` code + ``value``); the unused shape is NULL.
"""

from __future__ import annotations

from pipelines.instruments import load_instruments

LINEAGE = ["_source_file", "_source_row", "_source_sha256"]

RANDOMIZATION_COLUMNS = [
    "subject", "arm", "site", "sex", "age", "age_band", "race", "ethnicity", "covariates", "visit", "dcsreas",
]

# Subject-level columns carried by a longitudinal (assessment) file: one row per file row.
SUBJECT_COLUMNS = ["subject", "site", "sex", "age", "age_band", "race", "ethnicity", "covariates"]

# Row-identifying and long-layout columns of every instrument table.
ASSESSMENT_COLUMNS = [
    "subject",
    "visit",
    "visitnum",
    "study_day",
    "predose",
    "time_from_dose",
    "arm",
    "item",
    "value",
    "status",
    "derived",
    "total",
]

COLUMN_COMMENTS = {
    "study_id": "Study identifier from study.yaml",
    "source": "Name of the manifest source entry this row was read through",
    "subject": "Subject identifier as received",
    "arm": "Treatment arm code as received (mapped to arms in staging)",
    "site": "Site as received",
    "sex": "Sex as received",
    "age": "Age in years as received",
    "age_band": "Age band as received",
    "race": "Race as received",
    "ethnicity": "Ethnicity as received",
    "covariates": "Other declared baseline covariates, JSON object of text values",
    "dcsreas": "Reason the subject discontinued, as received (mapped as columns.discontinuation_reason)",
    "visit": "Visit label as received (REDCap event, NDA visit, SDTM VISIT)",
    "visitnum": "Visit number as received (SDTM VISITNUM)",
    "study_day": "Study day as received, or derived from declared-shifted dates (dates are not stored)",
    "predose": "Pre-dose flag as received (mapped as columns.predose)",
    "time_from_dose": "Minutes from the dose as received (mapped as columns.time_from_dose; <= 0 is pre-dose)",
    "item": "Long layouts: item or test code as received (e.g. QSTESTCD)",
    "value": "Long layouts: the item's value as received",
    "status": "Long layouts: completion status as received (e.g. QSSTAT = NOT DONE)",
    "derived": "Long layouts: derived-record flag as received (e.g. QSDRVFL)",
    "total": "Wide layouts: the total score reported by the source, as received",
    "_source_file": "File the row came from, relative to the study folder",
    "_source_row": "Row number in that file as a person sees it (header lines counted; XPT/Parquet from 1)",
    "_source_sha256": "SHA-256 of the file the row came from",
}


def item_column(n: int) -> str:
    return f"item_{n}"


def instrument_columns(instrument_id: str) -> list[str]:
    inst = load_instruments()[instrument_id]
    return ASSESSMENT_COLUMNS + [item_column(n) for n in inst.item_numbers]


SAFETY_TABLES = ("ae", "vs", "ex", "ds")
SAFETY_DESCRIPTIONS = {
    "ae": "Adverse-event records as received (SDTM AE or an export mapped through fields), one row per file row",
    "vs": "Vital-sign records as received (SDTM VS one test per row, or wide rows with systolic/diastolic/pulse), "
    "one row per file row",
    "ex": "Exposure (infusion) records as received (SDTM EX or an export), one row per file row",
    "ds": "Disposition records as received (SDTM DS or an export), one row per file row",
}
SAFETY_COMMENTS = {
    "aeseq": "AE sequence number as received (AESEQ)",
    "aeterm": "Verbatim AE term (AETERM) - loaded only when cleared in deidentification.allow_columns, else NULL",
    "aedecod": "MedDRA preferred term as received (AEDECOD; not coded by trialpipe)",
    "aebodsys": "MedDRA primary system organ class as received (AEBODSYS)",
    "aesev": "Severity as received (AESEV: MILD, MODERATE, SEVERE)",
    "aerel": "Causality as received (AEREL)",
    "aeser": "Serious event flag as received (AESER)",
    "aestdy": "Onset study day (day 0 = first infusion; SDTM AESTDY shifted down by one for days >= 1)",
    "aeendy": "End study day (same convention as aestdy)",
    "aeout": "Outcome as received (AEOUT)",
    "vstestcd": "Long layouts: vital-sign test code as received (VSTESTCD)",
    "vsorres": "Long layouts: result as received (VSSTRESN, else VSORRES)",
    "vsorresu": "Long layouts: unit as received",
    "vsstat": "Completion status as received (VSSTAT)",
    "vstpt": "Planned time point name as received (VSTPT, e.g. PRE-INFUSION)",
    "vstptnum": "Planned time point number as received (VSTPTNUM)",
    "vseltm": "Planned elapsed time from the start of the infusion as received (VSELTM, ISO 8601 e.g. PT40M, -PT15M)",
    "vsdy": "Study day of the measurement (day 0 = first infusion; SDTM VSDY shifted down by one for days >= 1)",
    "sysbp": "Wide layouts: systolic blood pressure as received",
    "diabp": "Wide layouts: diastolic blood pressure as received",
    "pulse": "Wide layouts: pulse (heart rate) as received",
    "extrt": "Name of treatment as received (EXTRT)",
    "exdose": "Dose as received (EXDOSE)",
    "exdosu": "Dose unit as received (EXDOSU)",
    "exroute": "Route as received (EXROUTE)",
    "exstdy": "Infusion start study day (day 0 = first infusion; SDTM EXSTDY shifted down by one for days >= 1)",
    "exendy": "Infusion end study day (same convention)",
    "exdur": "Infusion duration as received (EXDUR, ISO 8601 e.g. PT40M)",
    "dscat": "Disposition category as received (DSCAT)",
    "dsdecod": "Standardized disposition term as received (DSDECOD, e.g. COMPLETED, PHYSICIAN DECISION)",
    "dsterm": "Reported disposition term / reason as received (DSTERM)",
    "dsstdy": "Disposition study day (day 0 = first infusion)",
    "epoch": "Epoch as received (EPOCH)",
}


# Safety domains: our field -> the column names a file may spell it with (SDTM first). Kept here,
# with the raw schema, so the manifest, the readers and the guard read them without import loops.
SUBJECT = ["USUBJID", "subject", "record_id", "subject_id"]
VISIT = ["VISIT", "redcap_event_name"]
FIELDS: dict[str, dict[str, list[str]]] = {
    "ae": {
        "subject": SUBJECT,
        "aeseq": ["AESEQ", "redcap_repeat_instance"],
        "aeterm": ["AETERM"],
        "aedecod": ["AEDECOD", "ae_pt", "meddra_pt", "preferred_term"],
        "aebodsys": ["AEBODSYS", "AESOC", "ae_soc", "meddra_soc", "system_organ_class"],
        "aesev": ["AESEV", "ae_severity", "severity"],
        "aerel": ["AEREL", "ae_relationship", "relationship", "causality"],
        "aeser": ["AESER", "ae_serious", "serious"],
        "aestdy": ["AESTDY", "ae_onset_day", "onset_day"],
        "aeendy": ["AEENDY", "ae_end_day", "end_day"],
        "aeout": ["AEOUT", "ae_outcome", "outcome"],
    },
    "vs": {
        "subject": SUBJECT,
        "visit": VISIT,
        "vstestcd": ["VSTESTCD"],
        "vsorres": ["VSSTRESN", "VSORRES", "VSSTRESC"],
        "vsorresu": ["VSORRESU", "VSSTRESU"],
        "vsstat": ["VSSTAT"],
        "vstpt": ["VSTPT", "timepoint", "vs_timepoint"],
        "vstptnum": ["VSTPTNUM", "timepoint_num", "vs_tptnum"],
        "vseltm": ["VSELTM", "elapsed", "vs_eltm"],
        "vsdy": ["VSDY", "study_day", "days_from_baseline", "vs_day"],
        "sysbp": ["SYSBP", "sbp", "vs_sbp", "systolic"],
        "diabp": ["DIABP", "dbp", "vs_dbp", "diastolic"],
        "pulse": ["PULSE", "hr", "vs_hr", "heart_rate"],
    },
    "ex": {
        "subject": SUBJECT,
        "visit": VISIT,
        "extrt": ["EXTRT", "ex_treatment", "treatment"],
        "exdose": ["EXDOSE", "ex_dose", "dose"],
        "exdosu": ["EXDOSU", "ex_dose_unit", "dose_unit"],
        "exroute": ["EXROUTE", "ex_route", "route"],
        "exstdy": ["EXSTDY", "ex_start_day", "start_day"],
        "exendy": ["EXENDY", "ex_end_day", "end_day"],
        "exdur": ["EXDUR", "ex_duration", "duration"],
    },
    "ds": {
        "subject": SUBJECT,
        "dscat": ["DSCAT", "ds_category"],
        "dsdecod": ["DSDECOD", "ds_decod", "disposition"],
        "dsterm": ["DSTERM", "ds_term", "disposition_reason", "reason"],
        "dsstdy": ["DSSTDY", "ds_day", "disposition_day"],
        "epoch": ["EPOCH", "ds_epoch"],
    },
}
def raw_columns(domain: str) -> list[str]:
    return list(FIELDS[domain])


def check_fields(kind: str, fields: dict[str, str]) -> None:
    """Manifest check: every mapped field is one of ours for the domain."""
    unknown = [f for f in fields if f not in FIELDS[kind]]
    if unknown:
        raise ValueError(
            f"fields: {', '.join(unknown)} is not a field of kind {kind}; known: {', '.join(FIELDS[kind])}"
        )



def raw_tables() -> dict[str, list[str]]:
    """raw table name -> data columns (without study_id/source/lineage)."""
    tables = {"randomization": RANDOMIZATION_COLUMNS, "subject_columns": SUBJECT_COLUMNS}
    for inst_id in load_instruments():
        tables[inst_id] = instrument_columns(inst_id)
    for domain in SAFETY_TABLES:
        tables[domain] = raw_columns(domain)
    return tables


def create_raw_table_sql(table: str) -> str:
    cols = raw_tables()[table]
    defs = ["study_id varchar not null", "source varchar not null"]
    defs += [f"{c} varchar" for c in cols]
    defs += ["_source_file varchar not null", "_source_row bigint not null", "_source_sha256 varchar not null"]
    return f"create or replace table raw.{table} ({', '.join(defs)})"


def raw_comments(table: str) -> tuple[str, dict[str, str]]:
    if table == "randomization":
        desc = "Randomization / subject-level rows as received (mapped columns only, values as text), one row per file row"
    elif table in SAFETY_TABLES:
        desc = SAFETY_DESCRIPTIONS[table]
    elif table == "subject_columns":
        desc = (
            "Subject-level columns (site, sex, age, race, ethnicity, covariates) declared on a longitudinal "
            "assessment file, as received, one row per file row; staging.subject_columns takes one value per subject"
        )
    else:
        inst = load_instruments()[table]
        desc = (
            f"{inst.instrument} rows as received (mapped columns only, values as text), one row per file row; "
            "wide files fill item_<n>, long files fill item/value"
        )
    comments = {}
    for col in ["study_id", "source", *raw_tables()[table], *LINEAGE]:
        if col in SAFETY_COMMENTS:
            comments[col] = SAFETY_COMMENTS[col]
        elif col.startswith("item_"):
            n = int(col.split("_")[1])
            inst = load_instruments()[table]
            it = inst.item(n)
            comments[col] = f"Wide layouts: item {n} ({it.code}, {it.label}) as received"
        else:
            comments[col] = COLUMN_COMMENTS[col]
    return desc, comments
