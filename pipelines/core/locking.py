"""Waiting for an exclusive ``flock``: the study's run lock and the warehouse's publish lock."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable


def wait_for_lock(
    fh,
    *,
    on_wait: Callable[[float], None] | None = None,
    every: float = 10,
    poll: float = 0.5,
    timeout: float | None = None,
) -> bool:
    """Take an exclusive lock on the open file ``fh``, waiting while another process holds it.

    ``on_wait(waited_seconds)`` is called when the wait starts and then every ``every`` seconds.
    Returns False when ``timeout`` seconds passed without the lock (no timeout: waits for good)."""
    started = time.monotonic()
    last_note = None
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            waited = time.monotonic() - started
            if timeout is not None and waited > timeout:
                return False
            if on_wait and (last_note is None or waited - last_note >= every):
                last_note = waited
                on_wait(waited)
            time.sleep(poll)
