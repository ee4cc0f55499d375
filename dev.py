#!/usr/bin/env python3
"""Bootstrap trialpipe on a machine with only Python (3.11, 3.12 or 3.13) and pip, then run it.

    python3 dev.py demo            # install (first time), then `trialpipe demo`
    python3 dev.py test            # install (first time), then the test suite
    python3 dev.py ui              # the Dagster UI on http://127.0.0.1:3000 (trialpipe ui)
    python3 dev.py trialpipe ARGS  # any trialpipe command

Installing: uv (pinned) goes into ``.tools/`` with pip; uv then builds ``.venv/`` exactly from
``uv.lock``. Both folders are ignored by git; delete them to start over.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
VENV = ROOT / ".venv"
UV_VERSION = "0.13.9"


def _bin(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


def _run(cmd: list[str], **kw) -> None:
    result = subprocess.run(cmd, cwd=ROOT, **kw)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_installed() -> None:
    if not (3, 11) <= sys.version_info[:2] <= (3, 13):
        sys.exit(
            f"trialpipe needs Python 3.11, 3.12 or 3.13; this is {sys.version.split()[0]} ({sys.executable}). "
            "Run dev.py with one of those (e.g. python3.12 dev.py test)."
        )
    uv = _bin(TOOLS, "uv")
    if not uv.exists():
        print(f"dev.py: installing uv {UV_VERSION} into {TOOLS.name}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
        _run([str(_bin(TOOLS, "python")), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"uv=={UV_VERSION}"])
    stamp = VENV / ".synced"
    lock = ROOT / "uv.lock"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        print("dev.py: installing trialpipe and its locked dependencies into .venv/ ...", flush=True)
        _run([str(uv), "sync", "--frozen", "--python", sys.executable, "--compile-bytecode", "--quiet"],
             env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENV)})
        stamp.touch()
    compile_project()


def compile_project() -> None:
    """Bytecode for trialpipe's own modules, as uv's ``--compile-bytecode`` makes for the
    dependencies (it covers site-packages, not this editable source tree). Where
    PYTHONDONTWRITEBYTECODE is set (many container images set it) Python never writes it, and every
    trialpipe process - a run, its helper, each of the UI's code servers - compiled again the
    hundred-odd modules it imports: 0.3 s of CPU each. Files already compiled are only looked at
    (a few ms); one that does not compile is left for its import to report."""
    import compileall

    for package in project_packages():
        compileall.compile_dir(ROOT / package, quiet=2)


def project_packages() -> list[str]:
    """trialpipe's own packages, as pyproject.toml lists them for the wheel."""
    import tomllib  # here: dev.py must reach its Python-version message on an older Python

    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    ensure_installed()
    cmd, rest = argv[0], argv[1:]
    env = {**os.environ}
    env.setdefault("DAGSTER_HOME", str(ROOT / ".dagster_home"))
    if cmd == "demo":
        args = [str(_bin(VENV, "trialpipe")), "demo", *rest]
    elif cmd == "test":
        # both cores, one test module per worker at a time: a module's fixtures (a built study, the UI
        # tests' webserver) are built once. (pytest-xdist 3.8's loadgroup does nothing under pytest
        # 9.2: it renames item._nodeid, which pytest no longer reads; the UI tests started two
        # webservers and a module's study was built on both workers.)
        parallel = [] if any(a.startswith("-n") for a in rest) else ["-n", "2", "--dist", "loadscope"]
        args = [str(_bin(VENV, "pytest")), *parallel, *rest]
    elif cmd == "ui":
        Path(env["DAGSTER_HOME"]).mkdir(exist_ok=True)
        # trialpipe ui: Dagster's webserver behind a guard that refuses other web pages' requests
        args = [str(_bin(VENV, "trialpipe")), "ui", *rest]
    elif cmd == "trialpipe":
        args = [str(_bin(VENV, "trialpipe")), *rest]
    else:
        sys.exit(f"dev.py: unknown command {cmd!r}; use demo, test, ui or trialpipe")
    os.chdir(ROOT)
    os.execve(args[0], args, env)


if __name__ == "__main__":
    main(sys.argv[1:])
