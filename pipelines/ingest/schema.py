"""The raw layer's fixed shapes.

``raw.<kind>`` holds one row per data row received, for the mapped columns only, values as text
exactly as received (no code mapping applied), plus lineage. Column names are ours, not the
file's: the manifest maps them. Instrument tables carry both shapes a file can have: wide
(``item_<n>`` columns) and long (``item`` code + ``value``); the unused shape is NULL.
"""

from __future__ import annotations

from pipelines.instruments import load_instruments

LINEAGE = ["_source_file", "_source_row", "_source_sha256"]

RANDOMIZATION_COLUMNS = ["subject", "arm", "site", "sex", "age", "age_band", "race", "ethnicity", "covariates"]

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


def raw_tables() -> dict[str, list[str]]:
    """raw table name -> data columns (without study_id/source/lineage)."""
    tables = {"randomization": RANDOMIZATION_COLUMNS}
    for inst_id in load_instruments():
        tables[inst_id] = instrument_columns(inst_id)
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
    else:
        inst = load_instruments()[table]
        desc = (
            f"{inst.instrument} rows as received (mapped columns only, values as text), one row per file row; "
            "wide files fill item_<n>, long files fill item/value"
        )
    comments = {}
    for col in ["study_id", "source", *raw_tables()[table], *LINEAGE]:
        if col.startswith("item_"):
            n = int(col.split("_")[1])
            inst = load_instruments()[table]
            it = inst.item(n)
            comments[col] = f"Wide layouts: item {n} ({it.code}, {it.label}) as received"
        else:
            comments[col] = COLUMN_COMMENTS[col]
    return desc, comments
