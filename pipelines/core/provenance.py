"""Code version for provenance: the package version and, in a git checkout, the commit."""

from __future__ import annotations

import functools
import subprocess
from importlib.metadata import PackageNotFoundError, version

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
