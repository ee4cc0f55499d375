"""The Dagster code location loads, and every asset is documented and grouped (dagster-open-platform habit)."""

from __future__ import annotations

from pipelines.core import sql, warehouse


def test_definitions_load_with_groups_and_descriptions():
    from pipelines.orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert len(keys) >= 10
    for key in keys:
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", key
        assert node.description, key
    for group in ("raw", "staging", "publish"):
        assert any(graph.get(k).group_name == group for k in keys)
    assert defs.resolve_job_def("study_job") is not None
    assert defs.resolve_job_def("validate_job") is not None


def test_every_sql_model_is_an_asset_and_documented():
    from pipelines.orchestration.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    docs = warehouse.table_docs()
    for model in sql.ordered_models():
        assert model.replace(".", "/") in keys
        assert model in docs, f"{model} has no entry in sql/_schema.yml"
        # every referenced table is either another model or a table a Python asset writes
        for ref in sql.model_inputs(model):
            assert ref.split(".")[0] in ("raw", "ref") or ref in docs, (model, ref)


def test_sql_files_are_one_select_with_a_header():
    for layer in ("staging", "qc", "analysis"):
        for model in sql.models(layer):
            text = sql.model_path(model).read_text()
            assert text.startswith(f"-- {model}:"), model
            assert "create " not in text.lower().split("\n", 1)[1] or "create" in text.split("--")[0], model


def test_models_rebuild_on_an_existing_working_database(tmp_path):
    """A second run over the same working file replaces tables and views alike."""
    from pathlib import Path

    from pipelines.core.build import build_study

    case = Path(__file__).parent / "data" / "bad_inputs" / "utf8_bom"
    build_study(case, tmp_path / "w.duckdb")
    _, timings = build_study(case, tmp_path / "w.duckdb")
    assert timings["staging.item_responses"]["rows"] == 160
