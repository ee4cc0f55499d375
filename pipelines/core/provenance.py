"""Code version for provenance: the package version and, in a git checkout, the commit."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pipelines.core.paths import PROJECT_ROOT


@functools.cache
def code_version() -> str:
    try:
        v = version("trialpipe")
    except PackageNotFoundError:
        v = "0+unknown"
    try:
        sha = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"{v}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return v


def study_inputs(study_dir: Path) -> tuple[str, dict[str, str]]:
    """A fingerprint of everything a study run reads: study.yaml and every source file.

    Returns (combined SHA-256, {file: SHA-256}); a missing file counts as "missing", so adding it
    later changes the fingerprint."""
    from pipelines.ingest.files import sha256_file
    from pipelines.core.manifest import MANIFEST_NAME, load_manifest

    study_dir = Path(study_dir)
    manifest = load_manifest(study_dir)
    hashes = {MANIFEST_NAME: sha256_file(study_dir / MANIFEST_NAME)}
    for s in manifest.sources:
        path = study_dir / s.file
        hashes[s.file] = sha256_file(path) if path.is_file() else "missing"
    combined = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()
    return combined, hashes
