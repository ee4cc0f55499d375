"""The CSR package assets are in the study graph, after the report, and do not hold up publishing."""

from __future__ import annotations

from dagster import AssetKey


def test_csr_assets_follow_the_report_and_read_the_adam_tables():
    from pipelines.orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in (AssetKey(["report", "tlf_package"]), AssetKey(["report", "submission_datasets"])):
        node = graph.get(key)
        parents = set(node.parent_keys)
        assert AssetKey(["report", "study_report"]) in parents
        assert {AssetKey(["analysis", "adsl"]), AssetKey(["analysis", "adqs"])} <= parents
        assert node.group_name == "report" and node.description
        assert key not in graph.get(AssetKey(["publish", "warehouse"])).parent_keys
    assert "study_job" in {j.name for j in defs.resolve_all_job_defs()}
