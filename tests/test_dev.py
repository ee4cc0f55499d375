"""dev.py, the bootstrap the README's two commands go through."""

import importlib.util
import shutil
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dev_module():
    spec = importlib.util.spec_from_file_location("trialpipe_dev", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_project_is_compiled_where_python_writes_no_bytecode(tmp_path, monkeypatch):
    """With PYTHONDONTWRITEBYTECODE set (as in many container images) every trialpipe process would
    compile the project's modules again; dev.py compiles them once, as uv does for the dependencies.
    Checked on a copy of the source tree without bytecode: each module gets the .pyc its import
    reads (this interpreter's cache tag, the source's mtime and size in the header)."""
    dev = _dev_module()
    packages = dev.project_packages()
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for package in packages:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    sources = sorted(p for package in packages for p in (tmp_path / package).rglob("*.py"))
    assert len(sources) > 100
    assert not any(Path(importlib.util.cache_from_source(str(p))).exists() for p in sources)

    dev.compile_project()

    for source in sources:
        header = Path(importlib.util.cache_from_source(str(source))).read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER, source
        flags, mtime, size = struct.unpack("<III", header[4:16])
        stat = source.stat()
        assert (flags, mtime, size) == (0, int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF), source
