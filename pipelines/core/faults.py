"""Operating-system faults in words: disk full, read-only folder, missing permission.

:func:`explain` turns an ``OSError`` (or a DuckDB I/O error carrying the same cause) into a
one-line :class:`~pipelines.core.errors.TrialpipeError` that names the path and says what to do;
anything else is returned unchanged so it is not disguised.
"""

from __future__ import annotations

import errno
from pathlib import Path

from pipelines.core.errors import StorageError, TrialpipeError



_CAUSES = (
    ((errno.ENOSPC, errno.EDQUOT), ("no space left on device", "disk quota exceeded", "could not write all bytes",
                                    "not enough space"),
     "the disk is full", "free space on that disk (or pass --warehouse on another disk) and run again"),
    ((errno.EROFS,), ("read-only file system",),
     "the file system is read-only", "use a writable folder (--warehouse) and run again"),
    ((errno.EACCES, errno.EPERM), ("permission denied", "operation not permitted"),
     "permission denied", "give your user write access to that folder (or pass --warehouse elsewhere) and run again"),
)


def cause(exc: BaseException) -> tuple[str, str] | None:
    """(what went wrong, what to do) for a storage fault, else None."""
    code = getattr(exc, "errno", None)
    text = str(exc).lower()
    for codes, phrases, what, todo in _CAUSES:
        if code in codes or any(p in text for p in phrases):
            return what, todo
    return None


def explain(exc: BaseException, path: str | Path, doing: str) -> BaseException:
    """A StorageError naming ``path`` for a storage fault; ``exc`` itself otherwise."""
    found = cause(exc)
    if found is None:
        return exc
    what, todo = found
    return StorageError(f"could not {doing} at {path}: {what}; nothing was changed - {todo}")
