"""The trialpipe Dagster resource: where studies, working databases and the warehouse are."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from pipelines.core import registry, warehouse
from pipelines.core.errors import TrialpipeError
from pipelines.core.manifest import Manifest, load_manifest
from pipelines.core.paths import PROJECT_ROOT


class Study:
    """One study partition as an asset sees it."""

    def __init__(self, study_id: str, study_dir: Path, manifest: Manifest, warehouse_path: Path, report_dir: Path):
        self.study_id = study_id
        self.dir = study_dir
        self.manifest = manifest
        self.warehouse_path = warehouse_path
        self.report_dir = report_dir

    @property
    def work_dir(self) -> Path:
        return self.warehouse_path.parent / ".work"

    @property
    def working_db(self) -> Path:
        return self.work_dir / f"{self.study_id}.duckdb"

    @contextlib.contextmanager
    def connect(self, run_id: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(self.working_db) as con:
            warehouse.ensure_schemas(con)
            warehouse.set_context(con, study_id=self.study_id, run_id=run_id or "")
            yield con


class TrialpipeResource(ConfigurableResource):
    """Paths of the studies root and the published warehouse (env: TRIALPIPE_STUDIES_ROOT,
    TRIALPIPE_WAREHOUSE). A study registered with ``trialpipe run --warehouse`` publishes where it
    was registered."""

    studies_root: str = os.environ.get("TRIALPIPE_STUDIES_ROOT", str(PROJECT_ROOT / "studies"))
    warehouse: str = os.environ.get("TRIALPIPE_WAREHOUSE", str(PROJECT_ROOT / "warehouse" / "trialpipe.duckdb"))
    lock_timeout_seconds: float = 1800

    _lock_fh: object = PrivateAttr(default=None)

    def study(self, study_id: str) -> Study:
        entry = registry.lookup(study_id)
        if entry is None:
            for folder in registry.scan(self.studies_root):
                try:
                    if load_manifest(folder).study_id == study_id:
                        entry = registry.register(folder)
                        break
                except TrialpipeError:
                    continue
        if entry is None:
            raise TrialpipeError(
                f"study {study_id!r} is not registered and is not under the studies root {self.studies_root}; "
                "run `trialpipe run STUDY_DIR` once to register it"
            )
        wh = Path(entry.warehouse or self.warehouse)
        report = Path(entry.report_dir) if entry.report_dir else wh.parent / "reports"
        return Study(study_id, Path(entry.dir), load_manifest(entry.dir), wh, report)

    # One run per study at a time: the run holds an exclusive lock on the study's working files
    # for its whole life (runs of different studies proceed in parallel).
    def setup_for_execution(self, context: InitResourceContext) -> None:
        run = context.run
        key = run.tags.get("dagster/partition") if run else None
        if not key:
            return
        study = self.study(key)
        study.work_dir.mkdir(parents=True, exist_ok=True)
        fh = open(study.work_dir / f"{key}.lock", "w")  # noqa: SIM115 - held for the run
        deadline = time.monotonic() + self.lock_timeout_seconds
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    fh.close()
                    raise TrialpipeError(f"another run of study {key} held its working files for {self.lock_timeout_seconds:.0f} s")
                if context.log:
                    context.log.info(f"waiting for another run of study {key} to finish")
                time.sleep(2)
        self._lock_fh = fh

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()  # releases the flock
            self._lock_fh = None
