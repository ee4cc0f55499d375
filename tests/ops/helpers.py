"""Shared by the ops tests: a warehouse with one study published in this process, and waiting for a
step event of a `trialpipe run` subprocess in the Dagster event log."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from pipelines.core.build import build_study
from pipelines.core.publish import publish
from pipelines.core.study_run import StudyRun

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"


def published(tmp_path: Path, case: str = "utf8_bom", wh: Path | None = None) -> tuple[Path, StudyRun]:
    """A warehouse holding the corpus study ``case``, built and published in this process (no Dagster,
    no GX): a test's starting state without paying a whole `trialpipe run` for it."""
    wh = wh or tmp_path / "wh" / "trialpipe.duckdb"
    study = StudyRun.from_folder(CORPUS / case, warehouse=wh)
    build_study(study.study_dir, study.working_db)
    publish(study.working_db, wh, study.study_id, study.runs_row("run-1", "success"))
    return wh, study


def await_event(instance, proc: subprocess.Popen, step: str, event: str, timeout: float = 600) -> str | None:
    """The run id of the run executed by ``proc`` once its event log has ``event`` for ``step``;
    None when the process ended first."""
    from dagster import DagsterEventType, RunsFilter

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=RunsFilter(tags={"trialpipe/pid": str(proc.pid)}))
        if runs and any(rec.step_key == step for rec in
                        instance.all_logs(runs[0].run_id, of_type=DagsterEventType[event])):
            return runs[0].run_id
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    raise AssertionError(f"no {event} of {step} within {timeout} s")
