"""The trialpipe Dagster resource: the run's resolved study (a :class:`StudyRun`) and its lock."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from pipelines.core.paths import PROJECT_ROOT
from pipelines.core.process import collect_less
from pipelines.core.study_run import PARTITION_TAG, TAG_LAUNCHED_BY, TAG_PID, StudyRun


def stop_if_canceling(context) -> None:
    """Raise KeyboardInterrupt (Dagster's interrupt of a step) when the run is canceling.

    An interrupt that lands inside a DuckDB query comes out as duckdb.InterruptException, an
    ordinary error: Dagster fails that step, keeps its exception (with the frames holding the
    query's result, and so the study's DuckDB instance) and goes on with the steps that do not
    depend on it. The next one to open the study's file then waits in duckdb.connect for that
    instance to close, for good: a Ctrl-C during the efficacy step hung in the estimands step's
    connect in 2 of 23 runs on Python 3.13. A canceling run starts no step, so nothing opens it."""
    from dagster import DagsterRunStatus

    instance = getattr(context, "instance", None)
    run = instance.get_run_by_id(context.run.run_id) if instance is not None else None
    if run is not None and run.status in (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED):
        raise KeyboardInterrupt(f"run {run.run_id} is canceling: this step does not start")


class TrialpipeResource(ConfigurableResource):
    """The studies root (env TRIALPIPE_STUDIES_ROOT) and the default warehouse (env
    TRIALPIPE_WAREHOUSE, else ``<project>/warehouse/trialpipe.duckdb``). A study registered with
    ``trialpipe run --warehouse`` publishes where it was registered.

    Within a run the study is resolved once (manifest parsed, inputs hashed) when the resource is
    set up, and every asset and check of the run gets the same :class:`StudyRun`."""

    studies_root: str = os.environ.get("TRIALPIPE_STUDIES_ROOT", str(PROJECT_ROOT / "studies"))
    warehouse: str = ""  # "" = the default warehouse, looked up when a study is resolved
    lock_timeout_seconds: float = 1800

    _run: StudyRun | None = PrivateAttr(default=None)
    _lock: object = PrivateAttr(default=None)

    def study(self, study_id: str) -> StudyRun:
        if self._run is not None and self._run.study_id == study_id:
            return self._run
        self._run = StudyRun.from_partition(study_id, self.studies_root, default_warehouse=self.warehouse or None)
        return self._run

    def for_run(self, context) -> tuple[StudyRun, str]:
        """The study of an asset's (or check's) run, by its partition key, and the run id. A run
        asked to stop (Ctrl-C, SIGTERM, Terminate in the UI) starts no further step: that step
        would interrupt itself as it begins (:func:`stop_if_canceling`)."""
        stop_if_canceling(context)
        return self.study(context.partition_key), context.run.run_id

    # One run per study at a time: the run holds the study's lock for its whole life (runs of
    # different studies proceed in parallel). A run started by `trialpipe run` already holds it.
    def setup_for_execution(self, context: InitResourceContext) -> None:
        collect_less()  # this process runs a study (a run worker the daemon started, or the CLI's)
        run = context.run
        key = run.tags.get(PARTITION_TAG) if run else None
        if not key:
            return
        study = self.study(key)
        if context.instance is not None and TAG_PID not in run.tags:
            # the process executing the run, so a run whose process dies can be found and marked failed
            context.instance.add_run_tags(run.run_id, study.tags(run.tags.get(TAG_LAUNCHED_BY, "ui"), with_process=True))

        def waiting(who: str, waited: float) -> None:
            if context.log:
                context.log.info(f"study {key} is locked by {who}; waiting ({waited:.0f} s so far)")

        self._lock = study.lock(run.run_id, timeout=self.lock_timeout_seconds, on_wait=waiting)
        self._lock.__enter__()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

