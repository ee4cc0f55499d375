"""The nightly schedule: every study whose inputs changed since its last successful run.

Cron and timezone come from TRIALPIPE_NIGHTLY_CRON (default ``0 2 * * *``, 02:00) and
TRIALPIPE_TIMEZONE (default: this machine's time zone). A study is run when the fingerprint of its
inputs (study.yaml + every file, SHA-256) differs from the one tagged on its last successful run.
To run every study regardless, launch a backfill of all partitions of ``study_job`` from the UI.
"""

from __future__ import annotations

import os

from dagster import DagsterRunStatus, DefaultScheduleStatus, RunRequest, RunsFilter, ScheduleEvaluationContext, SkipReason, schedule

from pipelines.core import registry
from pipelines.core.errors import TrialpipeError
from pipelines.core.study_run import PARTITION_TAG, TAG_INPUT_HASH, StudyRun
from pipelines.orchestration.jobs import STUDY_JOB
from pipelines.orchestration.partitions import studies_partitions
from pipelines.orchestration.resources import TrialpipeResource


def _local_timezone() -> str:
    try:
        from tzlocal import get_localzone_name

        return get_localzone_name() or "UTC"
    except Exception:  # noqa: BLE001 - any failure means "we cannot tell"
        return "UTC"


NIGHTLY_CRON = os.environ.get("TRIALPIPE_NIGHTLY_CRON", "0 2 * * *")
TIMEZONE = os.environ.get("TRIALPIPE_TIMEZONE") or _local_timezone()


def last_success_fingerprint(instance, study_id: str) -> str | None:
    runs = instance.get_runs(
        filters=RunsFilter(
            job_name=STUDY_JOB, statuses=[DagsterRunStatus.SUCCESS], tags={PARTITION_TAG: study_id}
        ),
        limit=1,
    )
    return runs[0].tags.get(TAG_INPUT_HASH) if runs else None


def changed_studies(instance, studies_root: str) -> tuple[list[StudyRun], list[str]]:
    """Every known study whose inputs changed since its last success (resolved), and the others' ids."""
    folders = {e.study_id: e.dir for e in registry.all_entries()}
    found, _problems = registry.scan_ids(studies_root)  # a study_id two folders declare is not run
    for sid, folder in found.items():
        try:
            entry = registry.register(folder)
            folders[entry.study_id] = entry.dir
        except TrialpipeError:
            continue
    partitions = set(instance.get_dynamic_partitions(studies_partitions.name))
    changed, unchanged = [], []
    for sid, folder in sorted(folders.items()):
        if sid not in partitions:
            continue
        try:
            study = StudyRun.from_folder(folder)
        except TrialpipeError:
            continue
        if last_success_fingerprint(instance, sid) != study.input_hash:
            changed.append(study)
        else:
            unchanged.append(sid)
    return changed, unchanged


@schedule(
    cron_schedule=NIGHTLY_CRON,
    execution_timezone=TIMEZONE,
    job_name=STUDY_JOB,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Nightly: every study whose files changed since its last successful run",
)
def nightly(context: ScheduleEvaluationContext, trialpipe: TrialpipeResource):
    changed, unchanged = changed_studies(context.instance, trialpipe.studies_root)
    if not changed:
        return SkipReason(f"no study changed since its last successful run ({len(unchanged)} up to date)")
    from datetime import UTC, datetime

    try:
        when = context.scheduled_execution_time
    except Exception:  # noqa: BLE001 - evaluated by hand (tests, UI "test schedule") without a tick time
        when = None
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%d")
    return [
        RunRequest(
            run_key=f"nightly-{stamp}-{s.study_id}-{s.input_hash[:12]}",
            partition_key=s.study_id,
            tags=s.tags("schedule"),
        )
        for s in changed
    ]
