"""One rule registry (pipelines/core/rules.py) and a reviewed snapshot of the asset graph.

* Every GX suite, table, asset and check line up: ``sql/<layer>/<name>.sql`` = table
  ``<layer>.<name>`` = asset ``<layer>/<name>`` = ``expectations/<name>.json``, every registered rule
  is an asset check on its table's asset, and every asset check is a registered rule.
* ``tests/snapshots/asset_graph.txt`` lists every asset (key, group, deps) and check; a change to the
  graph changes that file, so it shows in review. To accept a change on purpose:
  ``TRIALPIPE_UPDATE_SNAPSHOT=1 .venv/bin/pytest tests/test_rule_registry.py`` and commit the file.

Both fail when a suite, table or asset is added without the others; the negative tests below show it
on temporary copies.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dagster import AssetKey, AssetSpec, Definitions

from pipelines.core import rules
from pipelines.core.paths import EXPECTATIONS_DIR

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.txt"


def _graph(defs):
    g = defs.resolve_asset_graph()
    assets = {k.to_user_string() for k in g.get_all_asset_keys()}
    checks = {(c.asset_key.to_user_string(), c.name) for c in g.asset_check_keys}
    return g, assets, checks


def render(defs) -> str:
    """One line per asset: key | group | deps | checks (sorted), then nothing else."""
    g, _, checks = _graph(defs)
    lines = []
    for key in sorted(g.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = g.get(key)
        deps = ", ".join(sorted(p.to_user_string() for p in node.parent_keys)) or "-"
        own = ", ".join(sorted(n for a, n in checks if a == key.to_user_string())) or "-"
        lines.append(f"{key.to_user_string()} | group {node.group_name} | deps {deps} | checks {own}")
    return "\n".join(lines) + "\n"


def test_every_suite_table_asset_and_check_line_up():
    from pipelines.orchestration.definitions import defs

    _, assets, checks = _graph(defs)
    assert rules.registry_problems(assets=assets, checks=checks) == []
    # the four places for each suite, spelled out
    for rule in rules.suite_rules():
        layer, name = rule.table.split(".")
        assert (rules.SQL_DIR / layer / f"{name}.sql").is_file()
        assert f"{layer}/{name}" in assets
        assert (f"{layer}/{name}", f"gx_{name}") in checks
        assert (EXPECTATIONS_DIR / f"{name}.json").is_file()


def test_a_suite_without_its_table_asset_and_check_fails(tmp_path):
    from pipelines.orchestration.definitions import defs

    _, assets, checks = _graph(defs)
    folder = tmp_path / "expectations"
    shutil.copytree(EXPECTATIONS_DIR, folder)
    (folder / "visits.json").write_text(
        '{"name": "visits", "meta": {"table": "staging.visits", "description": "x"}, "expectations": []}'
    )
    problems = rules.registry_problems(folder, assets=assets, checks=checks)
    assert "expectations/visits.json: no sql/staging/visits.sql builds staging.visits" in problems
    assert "rule gx_visits: its table staging.visits is not an asset" in problems
    assert "rule gx_visits: not an asset check on staging/visits" in problems
    # a suite named apart from its table breaks the one-name rule
    (folder / "visits.json").unlink()
    (folder / "adqs_checks.json").write_text(
        '{"name": "adqs_checks", "meta": {"table": "analysis.adqs"}, "expectations": []}'
    )
    problems = rules.registry_problems(folder, assets=assets, checks=checks)
    assert "expectations/adqs_checks.json validates analysis.adqs: the suite must be named adqs.json" in problems


def test_a_check_outside_the_registry_fails():
    from pipelines.orchestration.definitions import defs

    _, assets, checks = _graph(defs)
    problems = rules.registry_problems(assets=assets, checks=checks | {("staging/subjects", "ad_hoc_rule")})
    assert problems == ["asset check staging/subjects:ad_hoc_rule is not a registered rule (pipelines/core/rules.py)"]


def test_asset_graph_matches_the_reviewed_snapshot():
    from pipelines.orchestration.definitions import defs

    text = render(defs)
    if os.environ.get("TRIALPIPE_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert text == SNAPSHOT.read_text(encoding="utf-8"), (
        "the asset graph changed; review tests/snapshots/asset_graph.txt "
        "(TRIALPIPE_UPDATE_SNAPSHOT=1 rewrites it)"
    )


def test_snapshot_notices_an_added_asset():
    from pipelines.orchestration.definitions import defs

    extra = AssetSpec(AssetKey(["staging", "visits"]), group_name="staging", description="x")
    bigger = Definitions.merge(defs, Definitions(assets=[extra]))
    assert render(bigger) != SNAPSHOT.read_text(encoding="utf-8")
    assert "staging/visits | group staging | deps - | checks -" in render(bigger)


def test_qc_tables_are_one_group_and_ref_its_own():
    from pipelines.orchestration.definitions import defs

    g, assets, _ = _graph(defs)
    groups = {a: g.get(AssetKey(a.split("/"))).group_name for a in assets}
    assert {groups[a] for a in assets if a.startswith("qc/")} == {"qc"}
    assert groups["ref/study"] == "ref"
