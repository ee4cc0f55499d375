"""Safety and exposure domains: adverse events (AE), vital signs (VS), exposure (EX), disposition (DS).

One reader for SDTM files (``layout: sdtm``, domain AE/VS/EX/DS, XPT or CSV) and for CSV/REDCap
exports holding the same content (``kind: ae | vs | ex | ds``), whose columns are mapped through the
manifest's ``fields`` (our field -> the file's column); a field not mapped is looked up by its SDTM
variable name. Every file row becomes one ``raw.<domain>`` row, values as text exactly as received;
the staging rules (``sql/staging/<domain>_rows.sql``) decide on each row.

Vital signs come long (SDTM: one record per test, VSTESTCD/VSORRES) or wide (one row per subject x
timepoint with systolic, diastolic and pulse columns, mapped as ``fields.sysbp/diabp/pulse``); raw.vs
keeps whichever shape the file has and staging unpivots.

Study days: SDTM --DY has no day 0 (day 1 is the reference start, the first infusion); trialpipe's
study day counts from the baseline day 0, so SDTM days >= 1 are shifted down by one, as for QS/RS.
A CSV source's study-day columns are taken as trialpipe study days (day 0 = first infusion).

Verbatim text. MedDRA terms (AEDECOD, AEBODSYS and the other dictionary levels) and CDISC
controlled terms (DSDECOD) are dictionary vocabulary, not personal data, so the identifier guard does
not apply its free-text rule to them (patterns such as e-mail addresses or phone numbers are still
refused). The investigator's verbatim term AETERM can name people or places; it is screened like
any text and loaded only when a privacy review cleared the column (``deidentification.allow_columns``);
otherwise it is dropped on reading and ADAE.AETERM is NULL. trialpipe never codes terms: an AE
without a preferred term (AEDECOD) is quarantined.
"""

from __future__ import annotations

import polars as pl

from pipelines.core.errors import InputFileError
from pipelines.ingest.schema import FIELDS, check_fields, raw_columns  # noqa: F401 - the domain fields live with the raw schema

# Our field -> SDTM variable names it is found under (first match wins), per domain. The first
# name of each list is the SDTM variable; the rest are common export spellings.
REQUIRED = {
    "ae": ["subject"],
    "vs": ["subject"],
    "ex": ["subject"],
    "ds": ["subject"],
}
# SDTM study-day fields (shifted to trialpipe's day 0 when read from an SDTM file)
DAY_FIELDS = {"aestdy", "aeendy", "vsdy", "exstdy", "exendy", "dsstdy"}
# Columns the identifier guard does not treat as free text: MedDRA dictionary levels and CDISC
# controlled terminology (not personal data). Verbatim AETERM / DSTERM stay screened.
CODED_COLUMNS = {
    "aedecod", "aebodsys", "aesoc", "aehlt", "aehlgt", "aellt", "aeptcd", "aebdsycd", "aesoccd",
    "dsdecod", "dscat", "vstpt", "vstest", "extrt", "epoch",
}
CODED_FIELDS = {"aedecod", "aebodsys", "dsdecod", "dscat", "vstpt", "extrt", "epoch"}
SDTM_DOMAINS = {"AE": "ae", "VS": "vs", "EX": "ex", "DS": "ds"}


def coded_columns(source) -> set[str]:
    """Lower-case file columns of ``source`` holding dictionary/controlled terms (guard exemption)."""
    out = set(CODED_COLUMNS)
    for field, column in source.fields.items():
        if field in CODED_FIELDS:
            out.add(column.lower())
    return out


def read_safety(table, cols, domain: str, manifest, source, out, *, sdtm: bool) -> None:
    """One raw.<domain> row per file row (``domain`` is ae, vs, ex or ds)."""
    from pipelines.ingest import files
    from pipelines.ingest.readers import add_frame

    spec = FIELDS[domain]
    mapped = {f: c for f, c in source.fields.items()}
    if not sdtm and source.columns.subject:
        mapped.setdefault("subject", source.columns.subject)
    if not sdtm and source.columns.visit and "visit" in spec:
        mapped.setdefault("visit", source.columns.visit)
    found: dict[str, str] = {}
    for field, names in spec.items():
        if field in mapped:
            found[field] = cols.need(mapped[field], f"mapped as fields.{field}")
            continue
        for name in names:
            hit = cols.find(name)
            if hit:
                found[field] = hit
                break
    for field in REQUIRED[domain]:
        if field not in found:
            raise InputFileError(
                f"has no {field} column ({spec[field][0]}); map it with fields.{field} in study.yaml "
                f"(columns are: {', '.join(table.columns[:12])})",
                file=source.file,
                column=spec[field][0],
            )
    if domain == "ae" and "aedecod" not in found:
        raise InputFileError(
            "has no MedDRA preferred term column (AEDECOD); trialpipe does not code verbatim terms - "
            "map the coded term with fields.aedecod",
            file=source.file,
            column="AEDECOD",
        )
    if domain == "vs" and "vstestcd" not in found and not any(f in found for f in ("sysbp", "diabp", "pulse")):
        raise InputFileError(
            "has neither VSTESTCD/VSORRES (one record per test) nor systolic/diastolic/pulse columns "
            "(map fields.sysbp, fields.diabp, fields.pulse)",
            file=source.file,
            column="VSTESTCD",
        )
    if domain == "ex" and "exstdy" not in found:
        raise InputFileError(
            "has no start study day (EXSTDY); the first dose decides which adverse events are treatment-emergent",
            file=source.file,
            column="EXSTDY",
        )
    if domain == "ds" and "dsdecod" not in found:
        raise InputFileError("has no disposition term (DSDECOD)", file=source.file, column="DSDECOD")
    if domain == "ae" and "aeterm" in found:
        allowed = {c.lower() for c in manifest.deidentification.allow_columns}
        if found["aeterm"].lower() not in allowed:
            out.notes.append(
                f"verbatim AE term column {found['aeterm']!r} not loaded (verbatim text may name people; "
                "list it in deidentification.allow_columns after a privacy review to keep it)"
            )
            del found["aeterm"]
    for extra in ("STUDYID", "DOMAIN", "VISITNUM", f"{domain.upper()}TEST", "VSTPTREF", "AESTDTC", "AEENDTC",
                  "EXSTDTC", "EXENDTC", "DSSTDTC", "VSDTC", "VSSTRESC", "VSSTRESU", "VSORRES", "VSSTRESN"):
        cols.find(extra)  # read and understood; not stored (dates are identifiers; see guard)
    exprs = [pl.col(files.ROW_COL)]
    for field, column in found.items():
        e = pl.col(column)
        if sdtm and field in DAY_FIELDS:
            dy = pl.col(column).str.strip_chars().cast(pl.Int64, strict=False)
            e = pl.when(dy >= 1).then(dy - 1).otherwise(dy).cast(pl.String).fill_null(pl.col(column))
        exprs.append(e.alias(field))
    add_frame(out, domain, table.frame.select(exprs), manifest)
    out.unmapped_columns = cols.unmapped()
