"""The studies sensor and the nightly schedule, evaluated against a real temporary instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dagster import DagsterInstance, SensorResult, SkipReason, build_schedule_context, build_sensor_context

from pipelines.orchestration.resources import TrialpipeResource

CORPUS = Path(__file__).parent / "data" / "bad_inputs"


def _eval_sensor(instance, root, cursor=None):
    from pipelines.orchestration.sensors import studies_sensor

    resources = {"trialpipe": TrialpipeResource(studies_root=str(root))}
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        return studies_sensor(ctx)


def test_sensor_registers_new_study_and_runs_only_on_changed_inputs(tmp_path):
    root = tmp_path / "studies"
    root.mkdir()
    with DagsterInstance.ephemeral() as instance:
        first = _eval_sensor(instance, root)
        assert isinstance(first, SkipReason) and "0 study folder(s)" in first.skip_message

        shutil.copytree(CORPUS / "utf8_bom", root / "ket01")
        result = _eval_sensor(instance, root)
        assert isinstance(result, SensorResult)
        assert result.dynamic_partitions_requests[0].partition_keys == ["UTF8-BOM"]
        (req,) = result.run_requests
        assert req.partition_key == "UTF8-BOM" and req.run_key.startswith("UTF8-BOM:")
        instance.add_dynamic_partitions("studies", ["UTF8-BOM"])

        again = _eval_sensor(instance, root, cursor=result.cursor)
        assert isinstance(again, SkipReason) and "no new study and no changed file" in again.skip_message

        with (root / "ket01" / "randomization.csv").open("a") as fh:
            fh.write("S5,0\n")
        changed = _eval_sensor(instance, root, cursor=result.cursor)
        (req2,) = changed.run_requests
        assert req2.run_key != req.run_key and not changed.dynamic_partitions_requests


@pytest.mark.slow
def test_schedule_runs_changed_studies_only(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pipelines.cli import cli
    from pipelines.orchestration.runner import get_instance
    from pipelines.orchestration.schedules import nightly

    root = tmp_path / "studies"
    shutil.copytree(CORPUS / "utf8_bom", root / "ket01")
    instance = get_instance()  # the persistent instance in the test's DAGSTER_HOME
    resources = {"trialpipe": TrialpipeResource(studies_root=str(root))}

    # a study found under the root but never run is due
    instance.add_dynamic_partitions("studies", ["UTF8-BOM"])

    def evaluate():
        with build_schedule_context(instance=instance, resources=resources) as ctx:
            return nightly(ctx)

    due = evaluate()
    assert [r.partition_key for r in due] == ["UTF8-BOM"]

    # after a successful run on the same inputs it is not
    out = CliRunner().invoke(cli, ["run", str(root / "ket01"), "--warehouse", str(tmp_path / "w.duckdb")])
    assert out.exit_code == 0, out.output
    skip = evaluate()
    assert isinstance(skip, SkipReason) and "1 up to date" in skip.skip_message

    # a changed file makes it due again
    with (root / "ket01" / "pcl5.csv").open("a") as fh:
        fh.write("S1,week_2_arm_1," + ",".join(["0"] * 20) + "\n")
    due2 = evaluate()
    assert [r.partition_key for r in due2] == ["UTF8-BOM"]
