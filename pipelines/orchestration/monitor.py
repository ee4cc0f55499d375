"""Runs that ended badly: record them in meta.runs, and mark runs whose process died as failed.

A study run tags itself with the process executing it (``trialpipe/pid``, ``trialpipe/host`` and
the process start time). A run still STARTED, STARTING or CANCELING in Dagster whose process no
longer exists on this host was killed (SIGKILL, a closed terminal, a reboot): it is marked failed
(or canceled, if it was being canceled), so the run queue's per-study slot is freed. This runs at
the start of every ``trialpipe run`` and on every tick of the ``dead_runs`` sensor.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from pipelines.core.errors import TrialpipeError
from pipelines.core.study_run import TAG_HOST, TAG_PID, TAG_PID_START, StudyRun, process_start_ticks


def process_alive(pid: int, start_ticks: str | None) -> bool:
    now = process_start_ticks(pid)
    if now is None:
        return False
    return not start_ticks or now == start_ticks  # same pid, same start time: the same process


def mark_dead_runs_failed(instance) -> list[str]:
    """Mark this host's runs whose process is gone as failed (canceled if they were canceling)."""
    from dagster import DagsterRunStatus, RunsFilter

    host = socket.gethostname()
    marked = []
    runs = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING,
                                                          DagsterRunStatus.CANCELING]))
    for run in runs:
        pid, run_host = run.tags.get(TAG_PID), run.tags.get(TAG_HOST)
        if not pid or run_host != host or process_alive(int(pid), run.tags.get(TAG_PID_START)):
            continue
        message = f"the process running this study (pid {pid} on {host}) is gone - it was killed or the machine restarted"
        if run.status == DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message=message)
        else:
            instance.report_run_failed(run, message=message)
        marked.append(run.run_id)
    return marked


def record_outcome(instance, run_id: str, study: StudyRun, status: str) -> str | None:
    """Add the meta.runs row of a run that did not publish (failed or canceled); the published data
    stay as they were. Returns a one-line problem instead of raising (the run's own error matters more)."""
    from pipelines.core.publish import record_run

    stats = instance.get_run_stats(run_id)
    started = datetime.fromtimestamp(stats.start_time, UTC) if stats and stats.start_time else None
    try:
        record_run(study.warehouse, study.runs_row(run_id, status, started_at=started))
    except TrialpipeError as exc:
        return f"the run could not be recorded in meta.runs: {exc}"
    return None
