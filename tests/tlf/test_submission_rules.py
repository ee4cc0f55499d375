"""XPORT v5 rules are checked before writing, with errors naming dataset, variable and row."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.tlf.submission import Dataset, SubmissionError, Variable, check_dataset, map_columns


def _ds(frame: pl.DataFrame, variables: list[Variable], name: str = "ADSL", label: str = "Subject-Level Analysis Dataset") -> Dataset:
    return Dataset(name, label, "analysis.adsl", "SUBJECT LEVEL ANALYSIS DATASET", "One record per subject", [], variables, frame)


def test_a_valid_dataset_passes():
    f = pl.DataFrame({"USUBJID": ["S-1", "S-2"], "AGE": [34.0, 41.0]})
    check_dataset(_ds(f, [Variable("USUBJID", "usubjid", "Unique Subject Identifier", "char", 3), Variable("AGE", "age", "Age", "num", 8)]))


@pytest.mark.parametrize(
    "variable, message",
    [
        (Variable("PRIMARYBASE", "primary_base", "Baseline", "num", 8), "variable name 'PRIMARYBASE' (column primary_base) must be 1-8"),
        (Variable("base", "base", "Baseline", "num", 8), "variable name 'base'"),
        (Variable("BASE", "base", "Baseline value of the completer parameter at visit", "num", 8), "must be 1-40 ASCII characters (it has 50)"),
    ],
)
def test_names_and_labels_are_checked(variable, message):
    f = pl.DataFrame({variable.name: [1.0]})
    with pytest.raises(SubmissionError, match="dataset ADSL") as exc:
        check_dataset(_ds(f, [variable]))
    assert message in str(exc.value)


def test_long_and_non_ascii_values_name_the_row():
    f = pl.DataFrame({"COMMENT": ["ok", "x" * 201]})
    with pytest.raises(SubmissionError, match="variable COMMENT row 2 is 201 bytes long; XPT v5 allows 200"):
        check_dataset(_ds(f, [Variable("COMMENT", "comment", "Comment", "char", 201)]))
    f = pl.DataFrame({"SITEID": ["Zurich", "Z\u00fcrich"]})
    with pytest.raises(SubmissionError, match="variable SITEID row 2 has a non-ASCII character"):
        check_dataset(_ds(f, [Variable("SITEID", "site", "Study Site Identifier", "char", 7)]))


def test_two_columns_on_one_name_and_a_long_dataset_label():
    f = pl.DataFrame({"AVAL": [1.0]})
    v = [Variable("AVAL", "aval", "Analysis Value", "num", 8), Variable("AVAL", "a_val", "Analysis Value", "num", 8)]
    with pytest.raises(SubmissionError, match="columns aval and a_val both map to variable AVAL"):
        check_dataset(_ds(f, v))
    with pytest.raises(SubmissionError, match="dataset label"):
        check_dataset(_ds(f, v[:1], label="A dataset label that is far too long for XPORT"))


def test_column_mapping_uses_adam_names_and_skips_lineage():
    mapped, skipped = map_columns("analysis.adqs", ["study_id", "n_items_missing", "crit1fl", "_source_file", "a_very_long_name"])
    assert [(c, n) for c, n, _ in mapped] == [("study_id", "STUDYID"), ("n_items_missing", "NITEMMIS"), ("crit1fl", "CRIT1FL")]
    assert skipped["_source_file"] == "lineage/internal column"
    assert "no ADaM name of at most 8 characters" in skipped["a_very_long_name"]
