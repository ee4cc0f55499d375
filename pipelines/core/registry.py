"""Which folder and which warehouse belong to a study partition.

A partition key is a study_id; Dagster needs to find the study's folder from it in any process
(CLI, webserver, daemon). The registry is a small JSON file in DAGSTER_HOME, written atomically:
``{study_id: {"dir": ..., "warehouse": ..., "report_dir": ...}}``. ``trialpipe run STUDY_DIR
--warehouse W`` records where that study publishes, so a later run from the UI publishes there too.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.core.errors import DuplicateStudyError, TrialpipeError
from pipelines.core.manifest import MANIFEST_NAME, load_manifest
from pipelines.core.paths import dagster_home

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class StudyEntry:
    study_id: str
    dir: str
    warehouse: str | None = None
    report_dir: str | None = None


def _path() -> Path:
    return dagster_home() / "trialpipe_studies.json"


def _read() -> dict[str, dict]:
    p = _path()
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}


def _write(data: dict[str, dict]) -> None:
    p = _path()
    tmp = p.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, p)


def register(study_dir: str | Path, *, warehouse: str | Path | None = None, report_dir: str | Path | None = None) -> StudyEntry:
    """Record a study folder (and optionally where it publishes); returns its entry."""
    study_dir = Path(study_dir).resolve()
    manifest = load_manifest(study_dir)
    lock = _path().with_suffix(".lock")
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        data = _read()
        prev = data.get(manifest.study_id)
        if prev and Path(prev["dir"]) != study_dir:
            # study_id is the study's identity: two live folders claiming it is an error, never a
            # silent switch (which would also drop the study's registered warehouse)
            if _declares(Path(prev["dir"]), manifest.study_id):
                raise DuplicateStudyError(
                    f"study_id {manifest.study_id!r} is declared by two folders: {prev['dir']} (registered) and "
                    f"{study_dir}; give each study its own study_id, or remove the old folder"
                )
            log.warning("study %s moves from %s to %s", manifest.study_id, prev["dir"], study_dir)
            prev = {k: v for k, v in prev.items() if k != "dir"}
        entry = StudyEntry(
            study_id=manifest.study_id,
            dir=str(study_dir),
            warehouse=str(Path(warehouse).resolve()) if warehouse else (prev or {}).get("warehouse"),
            report_dir=str(Path(report_dir).resolve()) if report_dir else (prev or {}).get("report_dir"),
        )
        data[entry.study_id] = asdict(entry)
        _write(data)
    return entry


def lookup(study_id: str) -> StudyEntry | None:
    raw = _read().get(study_id)
    return StudyEntry(**raw) if raw else None


def all_entries() -> list[StudyEntry]:
    return [StudyEntry(**v) for v in _read().values()]


def _declares(folder: Path, study_id: str) -> bool:
    try:
        return load_manifest(folder).study_id == study_id
    except TrialpipeError:
        return False


def scan_ids(studies_root: str | Path) -> tuple[dict[str, Path], list[str]]:
    """study_id -> folder for every readable study under the studies root, and the problems:
    unreadable manifests, and study_ids declared by two folders (an error naming both; neither
    folder is taken for the study)."""
    found: dict[str, list[Path]] = {}
    problems: list[str] = []
    for folder in scan(studies_root):
        try:
            sid = load_manifest(folder).study_id
        except TrialpipeError as exc:
            problems.append(f"{folder}: {exc}")
            continue
        found.setdefault(sid, []).append(folder)
    out: dict[str, Path] = {}
    for sid, folders in found.items():
        if len(folders) > 1:
            problems.append(
                f"study_id {sid!r} is declared by two folders: {folders[0]} and {folders[1]}"
                + (f" (and {len(folders) - 2} more)" if len(folders) > 2 else "")
                + "; give each study its own study_id - neither is run until then"
            )
        else:
            out[sid] = folders[0]
    return out, problems


def find_study(studies_root: str | Path, study_id: str) -> list[Path]:
    """The folder under the studies root that declares ``study_id`` (raises if two do)."""
    ids, problems = scan_ids(studies_root)
    dup = [p for p in problems if f"study_id {study_id!r} is declared by two folders" in p]
    if dup:
        raise DuplicateStudyError(dup[0])
    return [ids[study_id]] if study_id in ids else []


def scan(studies_root: str | Path) -> list[Path]:
    """Study folders (holding a study.yaml) directly under, or nested in, the studies root."""
    root = Path(studies_root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(MANIFEST_NAME) if ".work" not in p.parts)
