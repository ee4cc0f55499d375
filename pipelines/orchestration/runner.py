"""Run a study through Dagster from the command line.

``trialpipe run`` registers the study folder as a partition of the persistent local instance
(``DAGSTER_HOME``, default ``.dagster_home`` in the project) and executes the study job in this
process against it, so the run shows in ``dagster dev``'s run history like any other. Dagster's own
console log is silenced; progress is shown per step with rich.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import registry
from pipelines.core.manifest import load_manifest
from pipelines.core.paths import dagster_home
from pipelines.core.provenance import study_inputs

QUIET_LOGGERS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class RunOutcome:
    run_id: str
    study_id: str
    success: bool
    warehouse: Path
    working_db: Path
    report_dir: Path
    failed_steps: list[tuple[str, str]] = field(default_factory=list)  # (step, error message)
    failed_checks: list[tuple[str, str]] = field(default_factory=list)  # (check, description)
    skipped_steps: list[str] = field(default_factory=list)


def get_instance():
    from dagster import DagsterInstance

    os.environ["DAGSTER_HOME"] = str(dagster_home())
    return DagsterInstance.get()


def _step_label(step_key: str) -> str:
    return step_key.replace("__", "/")


def run_study(
    study_dir: str | Path,
    *,
    warehouse: str | Path | None = None,
    report_dir: str | Path | None = None,
    job_name: str = "study_job",
    console=None,
) -> RunOutcome:
    from dagster import DagsterEventType
    from dagster._core.utils import make_new_run_id

    from pipelines.orchestration.definitions import defs
    from pipelines.orchestration.partitions import studies_partitions
    from pipelines.core.paths import default_warehouse

    study_dir = Path(study_dir)
    manifest = load_manifest(study_dir)  # a manifest error stops here, before Dagster
    entry = registry.register(study_dir, warehouse=warehouse or default_warehouse(), report_dir=report_dir)
    instance = get_instance()
    if not instance.has_dynamic_partition(studies_partitions.name, manifest.study_id):
        instance.add_dynamic_partitions(studies_partitions.name, [manifest.study_id])
    job = defs.resolve_job_def(job_name)
    run_id = make_new_run_id()
    holder: dict = {}

    def target() -> None:
        try:
            holder["result"] = job.execute_in_process(
                run_config=QUIET_LOGGERS,
                instance=instance,
                partition_key=manifest.study_id,
                raise_on_error=False,
                run_id=run_id,
                tags={
                    "trialpipe/study": manifest.study_id,
                    "trialpipe/launched_by": "cli",
                    "trialpipe/input_hash": study_inputs(study_dir)[0],
                },
            )
        except BaseException as exc:  # surfaced below; a thread must not die silently
            holder["error"] = exc

    thread = threading.Thread(target=target, name="trialpipe-run")
    progress = _Progress(console)
    thread.start()
    cursor = None
    seen_steps: set[str] = set()
    failed_steps: list[tuple[str, str]] = []
    failed_checks: list[tuple[str, str]] = []
    skipped: list[str] = []

    def drain() -> None:
        nonlocal cursor
        conn = instance.get_records_for_run(run_id, cursor=cursor)
        cursor = conn.cursor
        for rec in conn.records:
            ev = rec.event_log_entry.dagster_event
            if ev is None:
                continue
            step = _step_label(ev.step_key) if ev.step_key else None
            if ev.event_type == DagsterEventType.STEP_START and step not in seen_steps:
                seen_steps.add(step)
                progress.start(step)
            elif ev.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                # a layer step builds several tables: show each one as it lands
                progress.done(ev.asset_key.to_user_string())
            elif ev.event_type == DagsterEventType.STEP_FAILURE:
                err = ev.event_specific_data.error
                msg = _user_message(err)
                failed_steps.append((step, msg))
                if not (err and err.cls_name == "DagsterAssetCheckFailedError"):
                    progress.failed(step, msg)
            elif ev.event_type == DagsterEventType.STEP_SKIPPED:
                skipped.append(step)
            elif ev.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                data = ev.event_specific_data
                if not data.passed:
                    failed_checks.append((f"{data.asset_key.to_user_string()}:{data.check_name}", data.description or ""))
                    progress.check_failed(data.check_name, data.description or "")

    with progress:
        while thread.is_alive():
            thread.join(0.25)
            drain()
        drain()
    if "error" in holder:
        raise holder["error"]
    result = holder["result"]
    study_wh = Path(entry.warehouse) if entry.warehouse else default_warehouse()
    outcome = RunOutcome(
        run_id=run_id,
        study_id=manifest.study_id,
        success=bool(result.success),  # a failed blocking check fails its step, hence the run
        warehouse=study_wh,
        working_db=study_wh.parent / ".work" / f"{manifest.study_id}.duckdb",
        report_dir=Path(entry.report_dir) if entry.report_dir else study_wh.parent / "reports",
        failed_steps=failed_steps,
        failed_checks=failed_checks,
        skipped_steps=skipped,
    )
    if not outcome.success and job_name == "study_job":
        record_failure(instance, run_id, manifest.study_id, study_wh, study_dir)
    return outcome


def record_failure(instance, run_id: str, study_id: str, warehouse_path: Path, study_dir: Path) -> None:
    """meta.runs gets a row for a failed run too (the published data stay as they were)."""
    from datetime import UTC, datetime

    from pipelines.core.provenance import code_version
    from pipelines.core.publish import record_run

    stats = instance.get_run_stats(run_id)
    try:
        hashes = study_inputs(study_dir)[1]
    except Exception:  # noqa: BLE001 - the failure may be an unreadable input
        hashes = {}
    record_run(
        warehouse_path,
        {
            "study_id": study_id,
            "run_id": run_id,
            "started_at": datetime.fromtimestamp(stats.start_time, UTC) if stats and stats.start_time else None,
            "finished_at": datetime.now(UTC),
            "code_version": code_version(),
            "input_sha256s": hashes,
            "status": "failed",
        },
    )


USER_ERRORS = ("TrialpipeError", "ManifestError", "InputFileError", "ModelSpecError", "IdentifiableDataError")


def _user_message(err) -> str:
    """The user-facing part of a step error: our TrialpipeError message without the traceback."""
    if err is None:
        return "failed"
    node = err
    while node is not None:
        if node.cls_name in USER_ERRORS:
            return node.message.split(": ", 1)[-1].strip() if node.message.startswith(node.cls_name) else node.message.strip()
        node = node.cause
    return err.message.strip().splitlines()[-1]


class _Progress:
    """Per-step progress with rich, or plain lines when there is no console."""

    def __init__(self, console):
        self.console = console
        self._status = None

    def __enter__(self):
        if self.console is not None:
            self._status = self.console.status("starting the run ...")
            self._status.__enter__()
        return self

    def __exit__(self, *exc):
        if self._status is not None:
            self._status.__exit__(*exc)

    def start(self, step: str) -> None:
        if self._status is not None:
            self._status.update(f"[bold]{step}[/] ...")

    def done(self, step: str) -> None:
        if self.console is not None:
            self.console.print(f"  [green]✓[/] {step}")

    def failed(self, step: str, msg: str) -> None:
        if self.console is not None:
            self.console.print(f"  [red]✗ {step}[/]: {msg}")

    def check_failed(self, name: str, msg: str) -> None:
        if self.console is not None:
            short = msg if len(msg) <= 240 else msg[:237] + "..."
            self.console.print(f"  [yellow]! check {name} failed[/]: {short}", highlight=False)
