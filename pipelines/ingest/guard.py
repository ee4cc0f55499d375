"""De-identification guard: refuse a file that looks identifiable, before any of it is loaded.

Runs on every parsed file, on all its columns (mapped or not: a file holding identifiers should
not have reached an analytics warehouse at all). A finding blocks that file entirely; the message
names the file, the column, the first row and the kind of identifier, and never echoes the value.
The checks follow HIPAA Safe Harbor (45 CFR 164.514(b)(2)) as summarised in domain.md section 5:

1. column names that say identifier (name, address, zip, phone, fax, email, ssn, mrn, dob/birth,
   ip, url, account, licence, vehicle, device serial, photo);
2. values that look like e-mail addresses, phone numbers (also international, and 9-11 digit
   numbers with or without separators, such as 5558675309 or 078051120), SSNs, URLs, IPv4
   addresses or ZIP+4 codes - in mapped columns (a rating cell) and unmapped ones alike;
3. full calendar dates, unless the manifest declares dates as already shifted per subject;
4. ages over 89 (``interview_age`` over 1068 months) unless the manifest says ages are top-coded
   (then nothing above 90 / 1080 months may appear);
5. free text (long multi-word values, or comment/notes columns with sentences); MedDRA and CDISC
   controlled-terminology columns (AEDECOD, AEBODSYS, DSDECOD ...; pipelines/ingest/safety.py)
   are dictionary terms and exempt from this rule only. Verbatim AETERM is screened like any text.

``deidentification.allow_columns`` in the manifest exempts columns a privacy review has cleared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from pipelines.core.errors import IdentifiableDataError
from pipelines.ingest.files import ROW_COL, TextTable
from pipelines.core.manifest import Manifest, Source



@dataclass(frozen=True)
class Finding:
    column: str
    kind: str
    row: int | None = None

    def text(self) -> str:
        where = f" (first at row {self.row})" if self.row is not None else ""
        return f"column {self.column!r}: {self.kind}{where}"


# -- 1. column names ------------------------------------------------------------------------

_PERSON = r"(first|last|middle|given|family|full|sur|maiden|patient|subject|participant|parent|mother|father|guardian|contact|pt)"
_NAME_PATTERNS: list[tuple[str, str]] = [
    (rf"^(name|names|{_PERSON}_?name|name_?(first|last|full))$", "a person's name"),
    (r"^initials?$|_initials$", "a person's initials"),
    (r"(^|_)(address|street|addr|city|county|town|precinct)(_|$)", "a street address or place smaller than a state"),
    (r"(^|_)(zip|zipcode|zip_code|postal|postcode|postal_code)(_|$)", "a ZIP / postal code"),
    (r"(^|_)(phone|telephone|tel|mobile|cell|cellphone|fax)(_|$)", "a phone or fax number"),
    (r"(^|_)(email|e_mail|emailaddress|email_address)(_|$)", "an e-mail address"),
    (r"(^|_)(ssn|social_security|socsec)(_|$)", "a social security number"),
    (r"(^|_)(mrn|medical_record|medicalrecord|med_rec|chart_number)(_|$)", "a medical record number"),
    (r"(^|_)(dob|birth|birthdate|birth_date|date_of_birth|brthdtc|birthday)(_|$)|^dob", "a date of birth"),
    (r"(^|_)(ip|ip_address|ipaddress)(_|$)", "an IP address"),
    (r"(^|_)(url|website|web_address)(_|$)", "a URL"),
    (r"(^|_)(account|acct|insurance_id|health_plan|beneficiary)(_|$)", "an account or health-plan number"),
    (r"(^|_)(license|licence|certificate)(_no|_number|_num)?$", "a licence / certificate number"),
    (r"(^|_)(vehicle|license_plate|plate_number|vin)(_|$)", "a vehicle identifier"),
    (r"(^|_)(device_serial|serial_number|serial_no)(_|$)", "a device serial number"),
    (r"(^|_)(photo|photograph|face_image|fingerprint|voiceprint)(_|$)", "a photo or biometric identifier"),
]


def _snake(name: str) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def name_finding(column: str) -> str | None:
    key = _snake(column)
    for pattern, kind in _NAME_PATTERNS:
        if re.search(pattern, key):
            return f"its name says it holds {kind}"
    return None


# -- 2. value patterns ----------------------------------------------------------------------

_VALUE_PATTERNS: list[tuple[str, str]] = [
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "e-mail addresses"),
    (r"(?i)\b(https?://|www\.)\S+", "URLs"),
    (r"\b\d{3}-\d{2}-\d{4}\b", "social security numbers"),
    (r"(?:^|[^\d])(\+?1[-. ]?)?\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}(?:$|[^\d])", "phone numbers"),
    (r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b", "IP addresses"),
    (r"\b\d{5}-\d{4}\b", "ZIP+4 codes"),
    # international numbers: + country code, then 7-14 more digits in groups (+44 20 7946 0960)
    (r"(?:^|[^\w+])\+\d(?:[ ().-]{0,2}\d){6,14}(?:$|\D)", "international phone numbers"),
    # 9-11 digits with or without separators: phone numbers (5558675309), SSNs (078051120),
    # record and account numbers; calendar dates are told apart below
    (r"(?:^|[^\d.,])\(?\d(?:[ ().-]{0,2}\d){8,10}(?:$|[^\d.,])", "identifier-shaped numbers (9-11 digits: phone, social security or record numbers)"),
]

# -- 3. dates -------------------------------------------------------------------------------

_DATE = (
    r"^\s*("
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?"  # ISO 8601
    r"|\d{1,2}/\d{1,2}/\d{4}"  # MM/DD/YYYY (NDA)
    r"|\d{1,2}\.\d{1,2}\.\d{4}"  # DD.MM.YYYY
    r"|\d{1,2}-[A-Za-z]{3}-\d{2,4}|\d{2}[A-Za-z]{3}\d{4}"  # 05-Jan-2021, 05JAN2021 (SAS)
    r")\s*$"
)

# -- 4. ages --------------------------------------------------------------------------------

_AGE_YEARS = re.compile(r"^(age|age_years|age_at_(consent|baseline|screening|entry)|ageyrs|age_yrs)$")
_AGE_MONTHS = re.compile(r"^(interview_age|age_months|age_in_months)$")

# -- 5. free text ---------------------------------------------------------------------------

_COMMENTISH = re.compile(r"(^|_)(comment|comments|note|notes|narrative|description|describe|specify|free_text|freetext|remarks|text)(_|$)")


_PLAIN_NUMBER = r"^\s*-?\d{1,4}(\.\d+)?\s*$"


def _filled(values: pl.Series) -> pl.Series:
    return values.str.len_chars().fill_null(0) > 0


def _column_flags(frame: pl.DataFrame, columns: list[str]) -> tuple[list[bool], list[bool]]:
    """For each column: does any cell hold text, and is every filled cell a plain number (at most
    4 digits before the point: a rating, a day, an age)? One select over the whole frame, which
    polars runs on all cores, instead of two passes per column one after another (most files are
    all ratings, and these two answers settle most of their columns)."""
    if not columns:
        return [], []
    exprs = []
    for i, col in enumerate(columns):
        filled = pl.col(col).str.len_chars().fill_null(0) > 0
        exprs.append(filled.any().alias(f"f{i}"))
        exprs.append((pl.col(col).str.contains(_PLAIN_NUMBER).fill_null(True) | ~filled).all().alias(f"p{i}"))
    row = frame.select(exprs).row(0)
    return [bool(v) for v in row[0::2]], [bool(v) for v in row[1::2]]


def _first_row(table: TextTable, mask: pl.Series) -> int | None:
    hits = table.frame.filter(mask)
    return int(hits[ROW_COL][0]) if hits.height else None


def screen(table: TextTable, manifest: Manifest, source: Source) -> list[Finding]:
    """All identifier findings for a parsed file (empty list: the file may be loaded)."""
    from pipelines.ingest.safety import coded_columns

    allow = {c.lower() for c in manifest.deidentification.allow_columns}
    coded = coded_columns(source)
    findings: list[Finding] = []
    columns = [col for col in table.columns if col.lower() not in allow]
    filled_any, plain_all = _column_flags(table.frame, columns)
    for col, any_filled, plain in zip(columns, filled_any, plain_all):
        if not any_filled:
            continue  # an empty column holds nothing identifying
        values = table.frame[col]
        kind = name_finding(col)
        if kind:
            findings.append(Finding(col, kind, _first_row(table, _filled(values))))
            continue
        key = _snake(col)
        # Most columns are ratings: plain numbers can only be ages; skip the text patterns.
        if plain:
            age = _age_finding(table, col, key, manifest)
            if age:
                findings.append(age)
            continue
        # Every test below is cell by cell, so whether any cell matches is decided on the column's
        # distinct values (a subject id column has a quarter of the cells, a visit column a handful);
        # only a column that matches is scanned in full, for the first row that does.
        distinct = values.unique()
        distinct_not_date = _not_date(distinct)
        for pattern, what in _VALUE_PATTERNS:
            if (distinct.str.contains(pattern).fill_null(False) & distinct_not_date).any():
                findings.append(Finding(col, f"values look like {what}", _first_row(table, _pattern_mask(values, pattern))))
                break
        else:
            if _date_mask(distinct).any() and not manifest.dates.shifted:
                findings.append(
                    Finding(col, "holds full calendar dates; dates are identifiers unless shifted per subject "
                                 "(declare dates.shifted: true if they are, or remove the column)",
                            _first_row(table, _date_mask(values)))
                )
                continue
            age = _age_finding(table, col, key, manifest)
            if age:
                findings.append(age)
                continue
            # MedDRA / CDISC controlled terms are dictionary vocabulary, not free text
            text = None if col.lower() in coded else _free_text(table, col, key, values, distinct)
            if text:
                findings.append(text)
    return findings


def _age_finding(table: TextTable, col: str, key: str, manifest: Manifest) -> Finding | None:
    months = bool(_AGE_MONTHS.match(key))
    if not (months or _AGE_YEARS.match(key)):
        return None
    nums = table.frame[col].str.strip_chars().cast(pl.Float64, strict=False)
    limit = (1080 if months else 90) if manifest.deidentification.ages_top_coded else (1068 if months else 89)
    mask = (nums > limit).fill_null(False)
    if not mask.any():
        return None
    unit = "months" if months else "years"
    rule = (
        f"ages above the top code ({limit} {unit})"
        if manifest.deidentification.ages_top_coded
        else f"ages over 89 years ({limit} {unit}); top-code them as 90 and set deidentification.ages_top_coded: true"
    )
    return Finding(col, f"holds {rule}", _first_row(table, mask))


def _free_text(table: TextTable, col: str, key: str, values: pl.Series, distinct: pl.Series) -> Finding | None:
    commentish = bool(_COMMENTISH.search(key))
    if _text_mask(distinct, commentish).any():
        return Finding(col, "holds free text, which may name people or places; remove it or clear it in allow_columns",
                       _first_row(table, _text_mask(values, commentish)))
    return None


def _text_mask(values: pl.Series, commentish: bool) -> pl.Series:
    words = values.str.count_matches(r"[A-Za-z]{2,}").fill_null(0)
    long_text = (values.str.len_chars().fill_null(0) >= 100) | (words >= 8)
    if commentish:
        long_text = long_text | (words >= 3)
    return long_text


def _date_mask(values: pl.Series) -> pl.Series:
    return values.str.contains(_DATE).fill_null(False)


def _not_date(values: pl.Series) -> pl.Series:
    """A calendar date or a plain decimal (0.123456789) is not a phone number."""
    return ~(values.str.contains(_DATE) | values.str.contains(r"^\s*-?\d+[.,]\d+\s*$")).fill_null(False)


def _pattern_mask(values: pl.Series, pattern: str) -> pl.Series:
    """Cells matching an identifier pattern, dates and decimals aside."""
    return values.str.contains(pattern).fill_null(False) & _not_date(values)


def check(table: TextTable, manifest: Manifest, source: Source) -> None:
    """Raise IdentifiableDataError naming every finding (the file is then not loaded)."""
    findings = screen(table, manifest, source)
    if findings:
        raise IdentifiableDataError(
            "refused before loading: it looks identifiable - " + "; ".join(f.text() for f in findings),
            file=source.file,
            hint="trialpipe loads de-identified data only; fix the file or clear columns in deidentification.allow_columns",
        )
