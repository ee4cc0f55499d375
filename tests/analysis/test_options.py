"""The analysis options that drive scoring are checked when the manifest is read, naming the key."""

from __future__ import annotations

import pytest

from pipelines.core.errors import ManifestError
from pipelines.core.manifest import parse_manifest
from tests.analysis.harness import manifest_text


@pytest.mark.parametrize(
    ("analysis", "message"),
    [
        ("primary_parameter: CAPSTOT", "primary_parameter: unknown parameter 'CAPSTOT'"),
        ("response: {PCL5TOTAL: 30}", "response.PCL5TOTAL: unknown parameter"),
        ("remission: {MADRS: {op: '<=', value: 10}}", "remission.MADRS: unknown parameter"),
        ("response: {PCL5TOT: 0}", "response.PCL5TOT: 0.0 is not a percent reduction"),
        ("missing_items: {method: prorate}", "method prorate needs max_missing of at least 1"),
        ("missing_items: {max_missing: 2}", "max_missing is used only with method: prorate"),
        ("missing_items: {method: prorate, max_missing: 1, rounding: round}", "missing_items.rounding"),
    ],
)
def test_bad_analysis_options_are_refused_with_the_key(analysis, message):
    with pytest.raises(ManifestError) as err:
        parse_manifest(manifest_text(analysis))
    assert message in str(err.value)


def test_good_analysis_options():
    m = parse_manifest(manifest_text("""
        primary_parameter: PCL5TOT
        response: {CAPS5D: 30}
        missing_items: {method: prorate, max_missing: 1, scope: cluster, rounding: half_up}
    """))
    assert m.analysis.response == {"CAPS5D": 30} and m.analysis.missing_items.scope == "cluster"
