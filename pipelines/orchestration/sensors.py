"""The studies sensor: new study folders become partitions; new or changed inputs request a run.

Every ``minimum_interval_seconds`` it scans the studies root (TRIALPIPE_STUDIES_ROOT). A folder
with a ``study.yaml`` whose study_id is not yet a partition is added as one. A study whose inputs
(study.yaml and every file it names, by SHA-256) differ from the last fingerprint the sensor saw
gets a run request; the run_key is the fingerprint, so the same inputs never run twice. Nothing
new gives a SkipReason that says what was looked at.
"""

from __future__ import annotations

import json

from dagster import (
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from pipelines.core import registry
from pipelines.core.errors import TrialpipeError
from pipelines.orchestration.jobs import STUDY_JOB, study_job
from pipelines.core.manifest import load_manifest
from pipelines.orchestration.partitions import studies_partitions
from pipelines.core.provenance import study_inputs
from pipelines.orchestration.resources import TrialpipeResource

INPUT_HASH_TAG = "trialpipe/input_hash"


@sensor(
    job_name=STUDY_JOB,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Registers new study folders under the studies root as partitions and runs a study when its files change",
)
def studies_sensor(context: SensorEvaluationContext, trialpipe: TrialpipeResource):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    existing = set(context.instance.get_dynamic_partitions(studies_partitions.name))
    new_partitions: list[str] = []
    requests: list[RunRequest] = []
    problems: list[str] = []
    folders = registry.scan(trialpipe.studies_root)
    for folder in folders:
        try:
            manifest = load_manifest(folder)
            fingerprint, _ = study_inputs(folder)
        except TrialpipeError as exc:
            problems.append(f"{folder.name}: {exc}")
            continue
        sid = manifest.study_id
        registry.register(folder)
        if sid not in existing and sid not in new_partitions:
            new_partitions.append(sid)
        if seen.get(sid) != fingerprint:
            seen[sid] = fingerprint
            requests.append(
                RunRequest(
                    run_key=f"{sid}:{fingerprint[:16]}",
                    partition_key=sid,
                    tags={INPUT_HASH_TAG: fingerprint, "trialpipe/study": sid, "trialpipe/launched_by": "sensor"},
                )
            )
    for p in problems:
        context.log.warning(p)
    if not requests and not new_partitions:
        return SkipReason(
            f"scanned {trialpipe.studies_root}: {len(folders)} study folder(s), no new study and no changed file"
            + (f"; {len(problems)} folder(s) with an unreadable study.yaml" if problems else "")
        )
    return SensorResult(
        run_requests=requests,
        cursor=json.dumps(seen, sort_keys=True),
        dynamic_partitions_requests=[studies_partitions.build_add_request(new_partitions)] if new_partitions else [],
    )


@run_failure_sensor(
    monitored_jobs=[study_job],
    default_status=DefaultSensorStatus.RUNNING,
    description="Records failed study runs in meta.runs of the published warehouse (its data stay as they were)",
)
def record_failed_runs(context: RunFailureSensorContext, trialpipe: TrialpipeResource):
    from pipelines.orchestration.runner import record_failure

    run = context.dagster_run
    sid = run.tags.get("dagster/partition")
    if not sid or run.tags.get("trialpipe/launched_by") == "cli":
        return  # the CLI records its own failures
    study = trialpipe.study(sid)
    record_failure(context.instance, run.run_id, sid, study.warehouse_path, study.dir)
