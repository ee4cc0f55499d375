"""The identifier guard on one hand-written file: every column kind it tells apart, with the finding,
its kind and first row worked out by hand from the rules in pipelines/ingest/guard.py.

The guard decides most columns (empty ones, plain-number ones) for the whole frame at once and tests
the identifier patterns on a column's distinct values; these cases pin what it finds, so a change in
how it computes cannot change what it reports."""

from __future__ import annotations

import pytest

from pipelines.core.manifest import load_manifest
from pipelines.ingest import files, guard
from pipelines.ingest.guard import Finding
from tests.conftest import ARMS_VISITS, write_study

# header is row 1; data rows 2-6 (the row numbers a person sees)
CSV = "\n".join([
    "record_id,empty_col,patient_name,item_1,age,note,score,visit_date,comments,cleared_notes,mixed,item_2",
    "S1,,,1,45,,3,,,,,",
    "S2,  , Jo ,  2 ,,call 555-867-5309,12345678901,2021-01-05,,the quick brown fox jumps,7,",
    "S3,,,,93,,,,the patient felt better today,,a@b.org,",
    "S4,,,,,,,,,,,",
    "S5,,,0.5,,,,,,,,  ",
]) + "\n"

DATES = "holds full calendar dates; dates are identifiers unless shifted per subject " \
        "(declare dates.shifted: true if they are, or remove the column)"
FREE_TEXT = "holds free text, which may name people or places; remove it or clear it in allow_columns"


def _screen(tmp_path, extra: str):
    manifest = f"""\
    study_id: GUARD
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    {extra}
    sources:
      - {{file: pcl5.csv, kind: pcl5, columns: {{subject: record_id}}, items: "item_{{n}}"}}
    """
    study = write_study(tmp_path / "study", manifest, {"pcl5.csv": CSV})
    m = load_manifest(study)
    table = files.read_delimited(study / "pcl5.csv", label="pcl5.csv")
    return guard.screen(table, m, m.sources[0])


def test_guard_findings_column_by_column(tmp_path):
    found = _screen(tmp_path, "deidentification: {allow_columns: [cleared_notes]}")
    assert found == [
        # 'patient_name' says what it holds; first filled cell ' Jo ' is on row 3
        Finding("patient_name", "its name says it holds a person's name", 3),
        # plain numbers, and the column is an age in years: 93 (row 4) is over 89
        Finding("age", "holds ages over 89 years (89 years); top-code them as 90 and set "
                       "deidentification.ages_top_coded: true", 4),
        Finding("note", "values look like phone numbers", 3),  # 555-867-5309
        # 11 digits without separators: not a plain number (more than 4 digits)
        Finding("score", "values look like identifier-shaped numbers (9-11 digits: phone, social security "
                         "or record numbers)", 3),
        Finding("visit_date", DATES, 3),  # 2021-01-05, dates not declared shifted
        Finding("comments", FREE_TEXT, 4),  # a comment column with 5 words
        Finding("mixed", "values look like e-mail addresses", 4),  # '7' then 'a@b.org'
    ]
    # not found: record_id (codes), empty_col and item_2 (blank or spaces only), item_1 (plain
    # numbers, 0.5 included), cleared_notes (allowed although it holds free text)


def test_guard_with_shifted_dates_and_top_coded_ages(tmp_path):
    found = _screen(
        tmp_path,
        "dates: {shifted: true}\n    deidentification: {ages_top_coded: true, allow_columns: [comments]}",
    )
    assert [(f.column, f.kind, f.row) for f in found] == [
        ("patient_name", "its name says it holds a person's name", 3),
        ("age", "holds ages above the top code (90 years)", 4),  # 93 > 90
        ("note", "values look like phone numbers", 3),
        ("score", "values look like identifier-shaped numbers (9-11 digits: phone, social security "
                  "or record numbers)", 3),
        # visit_date: shifted dates are allowed; comments: allowed; cleared_notes now screened
        ("cleared_notes", FREE_TEXT, 3),  # a notes column with 5 words
        ("mixed", "values look like e-mail addresses", 4),
    ]


@pytest.mark.parametrize("cell, kind", [
    ("555-86-7530", "values look like social security numbers"),
    ("http://example.org/x", "values look like URLs"),
    ("10.0.0.1", "values look like IP addresses"),
    ("12345-6789", "values look like ZIP+4 codes"),
    ("+44 20 7946 0960", "values look like international phone numbers"),
    ("5558675309", "values look like identifier-shaped numbers (9-11 digits: phone, social security or record numbers)"),
    ("0.123456789", None),  # a plain decimal, not a 9-digit number
    ("12.03.2021", None),  # a date (declared shifted below), not a number
])
def test_guard_value_patterns_in_a_rating_column(tmp_path, cell, kind):
    # the cell sits among ratings, on row 4; the earlier rows are plain numbers
    csv = "record_id,item_1\nS1,1\nS2,2\nS3," + (f'"{cell}"' if "," in cell else cell) + "\nS4,3\n"
    manifest = f"""\
    study_id: GUARD
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    dates: {{shifted: true}}
    sources:
      - {{file: pcl5.csv, kind: pcl5, columns: {{subject: record_id}}, items: "item_{{n}}"}}
    """
    study = write_study(tmp_path / "study", manifest, {"pcl5.csv": csv})
    m = load_manifest(study)
    found = guard.screen(files.read_delimited(study / "pcl5.csv", label="pcl5.csv"), m, m.sources[0])
    assert found == ([Finding("item_1", kind, 4)] if kind else [])
