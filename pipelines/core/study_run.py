"""One resolved study run: everything a run of one study needs, worked out once.

A :class:`StudyRun` is resolved once, from a study folder (``trialpipe run``, sensors, schedules)
or from a partition key (the Dagster resource), and then handed to whatever needs it: the CLI
runner, the resource the assets and checks use, sensors and schedules, publish and failure
recording. It carries

* the parsed manifest (``study.yaml`` is parsed here and nowhere else during a run),
* the study folder, the working DuckDB, the published warehouse, the report folder and the
  study's lock file,
* the input fingerprint: SHA-256 of ``study.yaml`` and of every source file, and their combination,
* the code version and the versions of the packages that compute numbers,
* the run tags every launcher sets, and the ``meta.runs`` row of a run in any status,

and opens the working connection with the DuckDB variables (``study_id``, ``run_id``) set.

The default warehouse is ``$TRIALPIPE_WAREHOUSE`` or ``<project>/warehouse/trialpipe.duckdb``
(the same for the command line and the UI, whatever the current directory).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import duckdb

from pipelines.core import registry, warehouse
from pipelines.core.errors import TrialpipeError
from pipelines.core.locking import wait_for_lock
from pipelines.core.manifest import MANIFEST_NAME, Manifest, load_manifest
from pipelines.core.paths import default_warehouse
from pipelines.core.provenance import code_version

# -- run tags: defined here once -----------------------------------------------------------------
TAG_STUDY = "trialpipe/study"
TAG_INPUT_HASH = "trialpipe/input_hash"
TAG_LAUNCHED_BY = "trialpipe/launched_by"
TAG_PID = "trialpipe/pid"
TAG_HOST = "trialpipe/host"
TAG_PID_START = "trialpipe/pid_start"
PARTITION_TAG = "dagster/partition"

# packages whose versions can change a number in the results
NUMERIC_PACKAGES = ("trialpipe", "duckdb", "polars", "numpy", "scipy", "statsmodels", "pandas",
                    "great_expectations", "firthmodels", "dagster")


@functools.cache
def package_versions() -> Mapping[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in NUMERIC_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return MappingProxyType(out)


def fingerprint(study_dir: Path, manifest: Manifest) -> dict[str, str]:
    """{file: SHA-256} of study.yaml and every source file ("missing" if absent)."""
    from pipelines.ingest.files import sha256_file

    hashes = {MANIFEST_NAME: sha256_file(study_dir / MANIFEST_NAME)}
    for s in manifest.sources:
        path = manifest.source_path(study_dir, s)
        hashes[s.file] = sha256_file(path) if path.is_file() else "missing"
    return hashes


def process_start_ticks(pid: int) -> str | None:
    """The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat): with the
    pid it names one process for good, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class StudyRun:
    """A resolved study run. The study id is the manifest's; the input fingerprint is the per-file
    SHA-256s (:func:`fingerprint`) and their combination :attr:`input_hash`; the code and package
    versions are this process's, taken when the run is resolved."""

    study_dir: Path
    manifest: Manifest
    warehouse: Path
    report_dir: Path
    input_sha256s: Mapping[str, str]
    code_version: str = field(default_factory=code_version)
    package_versions: Mapping[str, str] = field(default_factory=package_versions)

    # -- resolution ------------------------------------------------------------------------------
    @classmethod
    def from_folder(
        cls, study_dir: str | Path, *, warehouse: str | Path | None = None, report_dir: str | Path | None = None,
        manifest: Manifest | None = None,
    ) -> StudyRun:
        study_dir = Path(study_dir).resolve()
        manifest = manifest or load_manifest(study_dir)  # a manifest error stops everything here
        wh = Path(warehouse).resolve() if warehouse else default_warehouse()
        reports = Path(report_dir).resolve() if report_dir else wh.parent / "reports"
        hashes = MappingProxyType(fingerprint(study_dir, manifest))
        return cls(study_dir, manifest, warehouse=wh, report_dir=reports, input_sha256s=hashes)

    @classmethod
    def as_published(cls, study_dir: str | Path, *, warehouse: str | Path | None = None) -> StudyRun:
        """The study for commands that read its published results (``trialpipe tlf``): the warehouse
        given, else the one the study was last run to (the registry), else the default warehouse."""
        manifest = load_manifest(Path(study_dir).resolve())
        entry = registry.lookup(manifest.study_id)
        if warehouse is None and entry is not None and entry.warehouse:
            warehouse = entry.warehouse
        return cls.from_folder(study_dir, warehouse=warehouse, manifest=manifest)

    @classmethod
    def from_entry(cls, entry: registry.StudyEntry, *, default_warehouse: str | Path | None = None) -> StudyRun:
        return cls.from_folder(entry.dir, warehouse=entry.warehouse or default_warehouse, report_dir=entry.report_dir)

    @classmethod
    def from_partition(cls, study_id: str, studies_root: str | Path, *,
                       default_warehouse: str | Path | None = None) -> StudyRun:
        """The study a partition key names: its registered folder, else a folder under the studies root."""
        entry = registry.lookup(study_id)
        if entry is None:
            folders = registry.find_study(studies_root, study_id)
            if folders:
                entry = registry.register(folders[0])
        if entry is None:
            raise TrialpipeError(
                f"study {study_id!r} is not registered and is not under the studies root {studies_root}; "
                "run `trialpipe run STUDY_DIR` once to register it"
            )
        return cls.from_entry(entry, default_warehouse=default_warehouse)

    @property
    def study_id(self) -> str:
        return self.manifest.study_id

    @functools.cached_property
    def input_hash(self) -> str:
        """The combined SHA-256 of the inputs: one value for run tags, sensors and schedules."""
        return hashlib.sha256(json.dumps(dict(self.input_sha256s), sort_keys=True).encode()).hexdigest()

    @functools.cached_property
    def input_bytes(self) -> int:
        """The size of the study's source files (what its working database is sized by)."""
        paths = (self.manifest.source_path(self.study_dir, s) for s in self.manifest.sources)
        return sum(p.stat().st_size for p in paths if p.is_file())

    # -- places ----------------------------------------------------------------------------------
    @property
    def work_dir(self) -> Path:
        return self.warehouse.parent / ".work"

    @property
    def working_db(self) -> Path:
        return self.work_dir / f"{self.study_id}.duckdb"

    @property
    def lock_path(self) -> Path:
        return self.work_dir / f"{self.study_id}.lock"

    @property
    def manifest_sha256(self) -> str:
        return self.input_sha256s[MANIFEST_NAME]

    @property
    def report_path(self) -> Path:
        return self.report_dir / f"{self.study_id}.html"

    # -- tags and the run record -----------------------------------------------------------------
    def tags(self, launched_by: str, *, with_process: bool = False) -> dict[str, str]:
        tags = {TAG_STUDY: self.study_id, TAG_INPUT_HASH: self.input_hash, TAG_LAUNCHED_BY: launched_by}
        if with_process:  # this process executes the run: a later check can tell whether it died
            tags.update({TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname(),
                         TAG_PID_START: process_start_ticks(os.getpid()) or ""})
        return tags

    def analysis_options(self) -> dict:
        return self.manifest.analysis.model_dump(mode="json")

    def runs_row(self, run_id: str, status: str, *, started_at: datetime | None = None,
                 finished_at: datetime | None = None) -> dict:
        """The meta.runs row of this run, whatever its status."""
        return {
            "study_id": self.study_id,
            "run_id": run_id,
            "started_at": started_at,
            "finished_at": finished_at or datetime.now(UTC),
            "code_version": self.code_version,
            "input_sha256s": dict(self.input_sha256s),
            "status": status,
            "study_yaml_sha256": self.manifest_sha256,
            "analysis_options": self.analysis_options(),
            "package_versions": dict(self.package_versions),
        }

    # -- the working database --------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self, run_id: str | None = None, *, db: str | Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """The study's working database (or ``db``), its schemas made, its DuckDB variables set."""
        with warehouse.connect(db or self.working_db, memory=warehouse.memory_limit(self.input_bytes)) as con:
            warehouse.ensure_schemas(con)
            warehouse.set_context(con, study_id=self.study_id, run_id=run_id or "")
            yield con

    # -- one run per study at a time ---------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, run_id: str = "", *, timeout: float = 1800,
             on_wait: Callable[[str, float], None] | None = None, every: float = 10) -> Iterator[None]:
        """Hold the study's lock (its working files) for a run; re-entrant within this process.

        While another run holds it, ``on_wait(who, waited_seconds)`` is called at once and then every
        ``every`` seconds, ``who`` saying which run, process and since when."""
        key = str(self.lock_path)
        if key in _HELD:
            yield
            return
        fh = _open_lock(self.lock_path)
        try:
            waiting = on_wait and (lambda waited: on_wait(lock_holder(self.lock_path), waited))
            if not wait_for_lock(fh, on_wait=waiting, every=every, timeout=timeout):
                raise TrialpipeError(
                    f"study {self.study_id} is still locked by {lock_holder(self.lock_path)} after "
                    f"{timeout:.0f} s; wait for that run to finish (or stop it) and run again"
                )
            _write_holder(fh, run_id)
            _HELD[key] = fh
            try:
                yield
            finally:
                _HELD.pop(key, None)
        finally:
            fh.close()  # releases the flock


_HELD: dict[str, object] = {}


def _open_lock(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("a+")
    except OSError as exc:
        from pipelines.core.faults import explain

        raise explain(exc, path, "create the study's working folder") from None


def _write_holder(fh, run_id: str) -> None:
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id,
                         "since": datetime.now(UTC).isoformat(timespec="seconds")}))
    fh.flush()


def lock_holder(path: Path) -> str:
    """Who holds a study lock, in words (from what the holder wrote into the lock file)."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        info = {}
    if not info:
        return "another run"
    since = info.get("since", "?").replace("T", " ").replace("+00:00", " UTC")
    run = f"run {info['run_id']}" if info.get("run_id") else "another run"
    return f"{run} (process {info.get('pid')} on {info.get('host')}, since {since})"
