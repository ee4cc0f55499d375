"""Run a study through Dagster from the command line.

``trialpipe run`` registers the study folder as a partition of the persistent local instance
(``DAGSTER_HOME``, default ``.dagster_home`` in the project) and executes the study job in this
process against it, so the run shows in ``dagster dev``'s run history like any other. Dagster's own
console log is silenced; progress is shown per step with rich.

Ctrl-C (SIGINT) or SIGTERM cancels the run: it is marked CANCELING, the step in progress is
interrupted, Dagster records the run as CANCELED, nothing is published (a publish in progress
leaves the published file as it was) and the command ends with one plain line. While another run
of the same study holds its lock, the command says which run holds it and since when, and keeps
saying how long it has waited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import registry
from pipelines.core.signals import PROXY as _PROXY
from pipelines.core.paths import dagster_home
from pipelines.core.study_run import StudyRun
from pipelines.orchestration.monitor import mark_dead_runs_failed, record_outcome

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
    canceled: bool = False
    problems: list[str] = field(default_factory=list)  # e.g. the run could not be recorded


_SQLITE_SYNC_INSTALLED: set[str] = set()  # DAGSTER_HOMEs whose listener is in place


def _sqlite_event_log_without_fsync(home: str) -> None:
    """``PRAGMA synchronous = OFF`` on the SQLite files of the local instance under ``home``.

    Dagster's SQLite storage opens a connection per event and closes it again; the close
    checkpoints the WAL with an fsync, so every event of a run (about 270 in a Feder-size study run)
    waited for the disk: 10-20 ms each here, seconds per run. Without the fsync a process that is
    killed loses nothing (SQLite's WAL survives it); only an operating-system crash or power cut can
    lose or damage the newest events of the run history, never the warehouse (DuckDB, published by
    an atomic rename). ``TRIALPIPE_DAGSTER_SYNC=full`` keeps SQLite's default. A Postgres-backed
    instance (dagster.yaml) is not affected."""
    mode = os.environ.get("TRIALPIPE_DAGSTER_SYNC", "off").strip().lower()
    if mode not in ("off", "normal", "full"):
        from pipelines.core.errors import TrialpipeError

        raise TrialpipeError(f"TRIALPIPE_DAGSTER_SYNC must be off, normal or full, not {mode!r}")
    if mode == "full" or home in _SQLITE_SYNC_INSTALLED:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    root = os.path.realpath(home)

    def on_connect(dbapi_connection, _record) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        files = [row[2] for row in dbapi_connection.execute("pragma database_list")]
        if any(f and os.path.realpath(f).startswith(root + os.sep) for f in files):
            dbapi_connection.execute(f"pragma synchronous = {mode}")

    event.listen(Engine, "connect", on_connect)
    _SQLITE_SYNC_INSTALLED.add(home)


def get_instance(*, capture_output: bool = True):
    """The persistent local instance (DAGSTER_HOME). ``capture_output=False`` (the command-line
    runs) skips Dagster's stdout/stderr mirroring: its ``tail`` helper processes would inherit the
    blocked SIGINT/SIGTERM of a cancelable run, and our steps log through Dagster, not print."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    from pipelines.orchestration.storage import pooled

    os.environ["DAGSTER_HOME"] = home = str(dagster_home())
    _sqlite_event_log_without_fsync(home)
    overrides = None if capture_output else {
        "compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}}
    with _instance_lock(home):
        return DagsterInstance.from_ref(pooled(InstanceRef.from_dir(home, overrides=overrides)))


@contextlib.contextmanager
def _instance_lock(home: str):
    """Dagster creates the SQLite storages' tables on first use without guarding against a second
    process doing the same (its schedule storage then fails with 'table job_ticks already exists'):
    two `trialpipe run`s started at once on a new DAGSTER_HOME take turns creating the instance
    (milliseconds). A home we may not write to is left to Dagster's own error."""
    try:
        fh = open(Path(home) / ".trialpipe-instance.lock", "a")  # noqa: SIM115 - closed below
    except OSError:
        yield
        return
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _step_label(step_key: str) -> str:
    return step_key.replace("__", "/")


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM asked the run to stop."""


@contextlib.contextmanager
def _cancel_on_signals(get_instance_and_run, progress):
    """While a run executes, SIGINT/SIGTERM mark it CANCELING before the main thread is interrupted."""
    asked: list[str] = []

    def on_signal(name: str) -> bool:
        if asked:
            progress.note(f"{name}: already canceling, please wait")
            return False
        asked.append(name)
        progress.note(f"{name}: canceling the run ...")
        instance, run_id = get_instance_and_run()
        if instance is not None:
            with contextlib.suppress(Exception):
                run = instance.get_run_by_id(run_id)
                if run is not None and not run.is_finished:
                    instance.report_run_canceling(run, message=f"{name} received by trialpipe")
        return True

    _PROXY["on_signal"] = on_signal
    try:
        yield asked
    finally:
        _PROXY["on_signal"] = None


def run_study(
    study_dir: str | Path,
    *,
    warehouse: str | Path | None = None,
    report_dir: str | Path | None = None,
    job_name: str = "study_job",
    console=None,
) -> RunOutcome:
    from dagster import DagsterRunStatus
    from dagster._core.utils import make_new_run_id

    # resolved once: a manifest error or a file outside the study folder stops here, before Dagster
    study = StudyRun.from_folder(study_dir, warehouse=warehouse, report_dir=report_dir)
    entry = registry.register(study.study_dir, warehouse=study.warehouse, report_dir=report_dir)
    if entry.report_dir and not report_dir:  # where this study's reports were registered to go
        study = dataclasses.replace(study, report_dir=Path(entry.report_dir))
    run_id = make_new_run_id()
    progress = _Progress(console)
    ev = _Events(run_id, progress)
    result = None
    interrupted = False
    with _cancel_on_signals(lambda: (ev.instance, run_id), progress) as asked:
        try:
            with progress:
                ev.instance = instance = get_instance(capture_output=not _PROXY["installed"])
                mark_dead_runs_failed(instance)  # a run killed earlier must not hold the study's queue slot
                result = _execute(study, job_name, run_id, instance, progress, ev)
        except KeyboardInterrupt:
            interrupted = True
    instance = ev.instance
    run = instance.get_run_by_id(run_id) if instance is not None else None
    if run is not None and not run.is_finished:  # interrupted outside a step (e.g. between two)
        if run.status == DagsterRunStatus.CANCELING or interrupted or asked:
            instance.report_run_canceled(run, message="canceled from the command line")
        else:
            instance.report_run_failed(run, message="the run ended without finishing")
        run = instance.get_run_by_id(run_id)
    canceled = bool(asked) or interrupted or (run is not None and run.status == DagsterRunStatus.CANCELED)
    outcome = RunOutcome(
        run_id=run_id,
        study_id=study.study_id,
        success=bool(result is not None and result.success) and not canceled,
        warehouse=study.warehouse,
        working_db=study.working_db,
        report_dir=study.report_dir,
        failed_steps=[f for f in ev.failed_steps if f[1] != "KeyboardInterrupt"],
        failed_checks=ev.failed_checks,
        skipped_steps=ev.skipped,
        canceled=canceled,
    )
    if run is not None and not outcome.success and job_name == "study_job":
        problem = record_outcome(instance, run_id, study, "canceled" if canceled else "failed")
        if problem:
            outcome.problems.append(problem)
    return outcome


def _execute(study: StudyRun, job_name: str, run_id: str, instance, progress, ev):
    from pipelines.orchestration.definitions import defs
    from pipelines.orchestration.partitions import studies_partitions

    if not instance.has_dynamic_partition(studies_partitions.name, study.study_id):
        instance.add_dynamic_partitions(studies_partitions.name, [study.study_id])
    job = defs.resolve_job_def(job_name)
    with study.lock(run_id, on_wait=progress.waiting_for_lock):
        stop = threading.Event()

        def follow() -> None:  # progress from the event log, while the run executes in the main thread
            while not stop.wait(0.25):
                with contextlib.suppress(Exception):
                    ev.drain()

        follower = threading.Thread(target=follow, name="trialpipe-progress", daemon=True)
        follower.start()
        try:
            return job.execute_in_process(
                run_config=QUIET_LOGGERS,
                instance=instance,
                partition_key=study.study_id,
                raise_on_error=False,
                run_id=run_id,
                tags=study.tags("cli", with_process=True),
            )
        finally:
            stop.set()
            follower.join()
            ev.drain()


class _Events:
    """Follows the run's event log: step progress, failed steps and checks."""

    def __init__(self, run_id: str, progress):
        self.run_id = run_id
        self.progress = progress
        self.instance = None
        self.cursor = None
        self.seen: set[str] = set()
        self.failed_steps: list[tuple[str, str]] = []
        self.failed_checks: list[tuple[str, str]] = []
        self.skipped: list[str] = []
        self._lock = threading.Lock()

    def drain(self) -> None:
        from dagster import DagsterEventType

        with self._lock:
            conn = self.instance.get_records_for_run(self.run_id, cursor=self.cursor)
            self.cursor = conn.cursor
            for rec in conn.records:
                ev = rec.event_log_entry.dagster_event
                if ev is None:
                    message = rec.event_log_entry.user_message or ""
                    if message.startswith("waiting for "):  # a lock wait inside a step (publish)
                        self.progress.note(f"waiting: {message.removeprefix('waiting for ')}")
                    continue
                step = _step_label(ev.step_key) if ev.step_key else None
                if ev.event_type == DagsterEventType.STEP_START and step not in self.seen:
                    self.seen.add(step)
                    self.progress.start(step)
                elif ev.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                    # a layer step builds several tables: show each one as it lands
                    self.progress.done(ev.asset_key.to_user_string())
                elif ev.event_type == DagsterEventType.STEP_FAILURE:
                    err = ev.event_specific_data.error
                    msg = _user_message(err)
                    interrupted = err is not None and _interrupted(err)
                    self.failed_steps.append((step, "KeyboardInterrupt" if interrupted else msg))
                    if not (interrupted or (err and err.cls_name == "DagsterAssetCheckFailedError")):
                        self.progress.failed(step, msg)
                elif ev.event_type == DagsterEventType.STEP_SKIPPED:
                    self.skipped.append(step)
                elif ev.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                    data = ev.event_specific_data
                    if not data.passed:
                        self.failed_checks.append(
                            (f"{data.asset_key.to_user_string()}:{data.check_name}", data.description or ""))
                        self.progress.check_failed(data.check_name, data.description or "")


def _interrupted(err) -> bool:
    node = err
    while node is not None:
        if node.cls_name in ("KeyboardInterrupt", "DagsterExecutionInterruptedError", "RunInterrupted"):
            return True
        node = node.cause
    return False


def user_error_names() -> set[str]:
    """Names of TrialpipeError and every subclass of it loaded so far (a step's error arrives as
    Dagster's serialized error, which keeps only the class name; the class that raised it is loaded)."""
    from pipelines.core.errors import TrialpipeError

    names, todo = set(), [TrialpipeError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _user_message(err) -> str:
    """The user-facing part of a step error: our TrialpipeError message without the traceback."""
    if err is None:
        return "failed"
    user_errors = user_error_names()
    node = err
    while node is not None:
        if node.cls_name in user_errors:
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

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"  {text}", highlight=False)

    def waiting_for_lock(self, who: str, waited: float) -> None:
        if self.console is not None:
            self.console.print(f"  waiting: this study is locked by {who} ({waited:.0f} s so far)", highlight=False)

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
