"""study.yaml errors point at the key at fault; the documented example parses."""

from __future__ import annotations

import textwrap

import pytest

from pipelines.core.errors import ManifestError
from pipelines.core.manifest import parse_manifest
from pipelines.core.paths import PROJECT_ROOT

BASE = """\
study_id: S1
arms:
  - {id: KET, role: experimental, codes: ["1"]}
  - {id: MID, role: control, codes: ["0"]}
visits:
  - {id: BL, day: 0, baseline: true}
  - {id: W2, day: 14}
sources:
  - {file: a.csv, kind: pcl5, columns: {subject: id, visit: v}}
"""


def test_documented_example_parses():
    m = parse_manifest((PROJECT_ROOT / "docs" / "study.example.yaml").read_text())
    assert m.study_id == "KETPTSD-01"
    assert m.primary_visit.id == "W2"
    assert [s.kind for s in m.sources][:2] == ["randomization", "pcl5"]


def test_defaults():
    m = parse_manifest(BASE)
    assert m.primary_visit.id == "W2"  # no primary flag: the last visit
    assert m.analysis.model.covariance == "us" and m.analysis.model.df_method == "kenward-roger"
    assert m.sources[0].name == "a" and m.sources[0].format == "csv"


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda t: t.replace("columns: {subject: id", "colums: {subject: id"), "sources[0].colums (line 9): unknown key"),
        (lambda t: t.replace("study_id: S1\n", ""), "study_id"),
        (lambda t: t.replace("{id: W2, day: 14}", "{id: W2, day: 14, baseline: true}"), "exactly one visit needs baseline"),
        (lambda t: t.replace('codes: ["0"]', 'codes: ["1"]'), "code '1' is given for both 'KET' and 'MID'"),
        (lambda t: t.replace("role: control", "role: experimental"), "one arm with role experimental and one with role control"),
        (lambda t: t.replace("kind: pcl5", "kind: pcl6"), "sources[0].kind"),
        (lambda t: t.replace("a.csv", "a.xlsx"), "cannot tell the format"),
        (lambda t: t.replace("visit: v}}", "visit: v}, recode: {visit: {week2: W9}}}"), "maps to unknown visit 'W9'"),
        (lambda t: t.replace("visit: v}}", "visit: v}, recode: {arm: {a: KET, b: KET}}}"), "both arms cannot share one code"),
        (lambda t: t.replace("day: 14}", "day: fourteen}"), "visits[1].day"),
        (lambda t: t + "  - {file: b.csv, kind: pcl5, layout: long, columns: {subject: id, visit: v}}\n", "layout long needs columns.item"),
        (lambda t: "arms: [\n", "not valid YAML at line"),
    ],
)
def test_errors_name_the_key(edit, fragment):
    with pytest.raises(ManifestError) as exc:
        parse_manifest(edit(textwrap.dedent(BASE)))
    assert fragment in str(exc.value)
    assert "study.yaml" in str(exc.value)
