"""Sensors: new study folders become partitions and changed inputs request a run; failed runs are
recorded in meta.runs; runs whose process died are marked failed.

Every ``minimum_interval_seconds`` the studies sensor scans the studies root
(TRIALPIPE_STUDIES_ROOT). A folder with a ``study.yaml`` whose study_id is not yet a partition is
added as one. A study whose inputs (study.yaml and every file it names, by SHA-256) differ from the
last fingerprint the sensor saw gets a run request; the run_key is the fingerprint, so the same
inputs never run twice. Two folders declaring the same study_id are an error naming both, and
neither is run. Nothing new gives a SkipReason that says what was looked at.
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
from pipelines.core.study_run import PARTITION_TAG, TAG_LAUNCHED_BY, StudyRun
from pipelines.orchestration.jobs import STUDY_JOB, study_job
from pipelines.orchestration.monitor import mark_dead_runs_failed, record_outcome
from pipelines.orchestration.partitions import studies_partitions
from pipelines.orchestration.resources import TrialpipeResource


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
    folders, problems = registry.scan_ids(trialpipe.studies_root)
    for sid, folder in sorted(folders.items()):
        try:
            study = StudyRun.from_folder(folder)
            registry.register(folder)
        except TrialpipeError as exc:
            problems.append(f"{folder}: {exc}")
            continue
        if sid not in existing and sid not in new_partitions:
            new_partitions.append(sid)
        if seen.get(sid) != study.input_hash:
            seen[sid] = study.input_hash
            requests.append(
                RunRequest(run_key=f"{sid}:{study.input_hash[:16]}", partition_key=sid, tags=study.tags("sensor"))
            )
    for p in problems:
        context.log.warning(p)
    if not requests and not new_partitions:
        return SkipReason(
            f"scanned {trialpipe.studies_root}: {len(folders)} study folder(s), no new study and no changed file"
            + (f"; {len(problems)} problem(s): " + " | ".join(problems) if problems else "")
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
    run = context.dagster_run
    sid = run.tags.get(PARTITION_TAG)
    if not sid or run.tags.get(TAG_LAUNCHED_BY) == "cli":
        return  # the CLI records its own failures
    record_outcome(context.instance, run.run_id, trialpipe.study(sid), "failed")


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Marks study runs whose process died (killed, machine restarted) as failed, so the run queue never waits on them",
)
def dead_runs(context: SensorEvaluationContext):
    marked = mark_dead_runs_failed(context.instance)
    return SkipReason(f"marked {len(marked)} dead run(s) failed: {', '.join(marked)}" if marked else "no dead run")
