"""Great Expectations in a helper process, so a run's own process never imports it.

Importing GX takes about 1.6 s of a Feder-size `trialpipe run`'s 12 s (3.8 s in a fresh process), and
nothing else in the run needs it. ``trialpipe run`` / ``validate`` / ``demo`` start this helper
first thing (:func:`start`), for a small study when the machine has a free core: it imports GX on
that core while the run's process imports Dagster, launches the run, loads the files and builds the
staging tables. A suite's rows then go to it as a polars frame (pickled, Arrow IPC), and its answer comes
back as plain :class:`pipelines.core.gx.Result` objects: the same call
(:func:`pipelines.core.gx.validate`) the run's process would make, so the outcome is the same.

The run's process validates a suite itself (importing GX then) when there is no helper (a run
launched by the Dagster UI or a schedule, a study of more than :data:`MAX_STUDY_BYTES`,
``TRIALPIPE_GX_WORKER=0``, a busy machine), for a frame of more than :data:`MAX_ROWS` rows, and
whenever the helper fails: it died, it answered with an error (the local run then
raises that error itself), or it was interrupted mid-call. Nothing about the outcome depends on
where it ran; ``tests/validation/test_gx_worker.py`` compares the two.

The helper reads requests from its stdin and answers on its stdout, each a pickle behind its
8-byte length; end of input (the run's process closed the pipe, exited or was killed) ends it.
It runs in its own session, so a Ctrl-C in the terminal reaches only the run's process.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

MAX_ROWS = 250_000  # larger frames are validated in the run's process
# A study whose files hold more than this is not small: its item rows alone outgrow MAX_ROWS (a
# 1,000-subject study in wide CSVs is 1.2 MB and 300,000 item rows), so the run's process imports
# GX anyway and a helper would only hold another 330 MB.
MAX_STUDY_BYTES = 1_000_000
ENV = "TRIALPIPE_GX_WORKER"  # "0": never start the helper; "1": start it even on a busy machine
_HEADER = struct.Struct("<Q")
_CURRENT: dict = {"worker": None}


def _runnable() -> float:
    """Threads runnable at this moment, this one included: the least of three looks at
    ``/proc/loadavg``'s fourth field 5 ms apart (one look sometimes catches a passing kernel
    thread). Where there is no /proc, the one-minute load average."""
    try:
        looks = []
        for i in range(3):
            if i:
                time.sleep(0.005)
            with open("/proc/loadavg", encoding="ascii") as f:
                looks.append(int(f.read().split()[3].split("/")[0]))
        return float(min(looks))
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (OSError, AttributeError):  # no load average on this platform: assume busy
            return float("inf")


def _free_core() -> bool:
    """A core nothing else is using now (the helper would only compete on a busy machine). Not the
    load average where /proc says more: that is a one-minute mean, and a run that has just finished
    keeps it above 1 for a minute after it has gone."""
    return (os.cpu_count() or 1) - _runnable() >= 1


def _larger_than(folder: Path, limit: int) -> bool:
    """Whether the files under ``folder`` hold more than ``limit`` bytes (stops counting there)."""
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            continue
        if total > limit:
            return True
    return False


def start(study_dir: str | Path | None = None) -> Worker | None:
    """Start the helper for this process's runs of a small study (``study_dir``'s files at most
    :data:`MAX_STUDY_BYTES`) when a core is free; ``TRIALPIPE_GX_WORKER=0`` never, ``=1`` always.
    Idempotent; the helper stops when this process exits (or at :func:`stop`)."""
    setting = os.environ.get(ENV, "")
    if _CURRENT["worker"] is not None or setting == "0":
        return _CURRENT["worker"]
    if setting != "1" and (not _free_core() or (study_dir is not None and _larger_than(Path(study_dir), MAX_STUDY_BYTES))):
        return None
    try:
        _CURRENT["worker"] = Worker()
    except OSError as exc:
        log.warning("the Great Expectations helper process did not start (%s); validating in this process", exc)
    return _CURRENT["worker"]


def current() -> Worker | None:
    worker = _CURRENT["worker"]
    return worker if worker is not None and worker.alive else None


def stop() -> None:
    worker, _CURRENT["worker"] = _CURRENT["worker"], None
    if worker is not None:
        worker.close()


class Worker:
    """The run's end of the helper process."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from pipelines.core.gx_worker import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True, close_fds=True,
        )
        # non-blocking, waited on with a timeout: an interrupt of the run is raised within 0.2 s,
        # even while the helper is still importing GX
        for pipe in (self.proc.stdin, self.proc.stdout):
            os.set_blocking(pipe.fileno(), False)
        self.alive = True
        self._lock = threading.Lock()
        atexit.register(self.close)  # a helper outliving its process would wait for input that never comes

    def validate(self, name: str, part: str, frame, params: dict):
        """The helper's :func:`pipelines.core.gx.validate` of the frame, or None when it could not
        answer (the caller then validates in its own process)."""
        with self._lock:
            if not self.alive:
                return None
            try:
                self._send(pickle.dumps((name, part, frame, params), protocol=pickle.HIGHEST_PROTOCOL))
                status, payload = pickle.loads(self._receive())
            except BaseException as exc:  # interrupted, or the helper died: its pipe may hold half a message
                self.close()
                if not isinstance(exc, Exception):
                    raise
                log.warning("the Great Expectations helper process failed (%s); validating in this process", exc)
                return None
        if status != "ok":
            log.warning("the Great Expectations helper process could not validate %s (%s); "
                        "validating in this process", name, payload)
            return None
        return payload

    def _send(self, data: bytes) -> None:
        fd = self.proc.stdin.fileno()
        view = memoryview(_HEADER.pack(len(data)) + data)
        ready = _poller(fd, select.POLLOUT)
        while view:
            self._check()
            if ready():
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    continue

    def _receive(self) -> bytes:
        (size,) = _HEADER.unpack(self._read(_HEADER.size))
        return self._read(size)

    def _read(self, n: int) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        ready = _poller(fd, select.POLLIN)
        while len(buf) < n:
            if not ready():
                self._check()
                continue
            try:
                chunk = os.read(fd, n - len(buf))
            except BlockingIOError:
                continue
            if not chunk:
                raise EOFError("the helper process closed its output")
            buf += chunk
        return bytes(buf)

    def _check(self) -> None:
        if self.proc.poll() is not None:
            raise EOFError(f"the helper process exited with status {self.proc.returncode}")

    def close(self) -> None:
        """End the helper at once (it keeps nothing: a kill loses no work, and a run that ends
        early does not wait for an import it no longer needs)."""
        self.alive = False
        atexit.unregister(self.close)
        proc = getattr(self, "proc", None)
        if proc is None or proc.returncode is not None:
            return
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        proc.kill()
        proc.wait()


def _poller(fd: int, event: int):
    """A wait of at most 0.2 s for ``event`` on ``fd``: True when it came (poll, not select, which
    fails on descriptors past 1024 in a process holding many files)."""
    poll = select.poll()
    poll.register(fd, event | select.POLLERR | select.POLLHUP)
    return lambda: bool(poll.poll(200))


def _read_exactly(stream, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


# Modules GX imports for what trialpipe's suites never use: scipy.stats for the KL-divergence
# expectation and altair for rendering, 0.9 s of the helper's 2.6 s import (measured on this
# 2-core machine). Here they load when first used instead of when GX imports them.
DEFERRED = ("scipy.stats", "altair")


class _DeferredFinder:
    """A meta path finder that hands out ``names`` with :class:`importlib.util.LazyLoader`: the module
    object exists at once, its code runs on the first attribute access (the standard library's
    lazy import; a module that is used behaves exactly as if imported eagerly)."""

    def __init__(self, names) -> None:
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        import importlib.util

        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                return spec
        return None


def defer_imports(names) -> None:
    """Load ``names`` lazily in this process from now on (the helper only: a run's own process needs
    scipy.stats anyway)."""
    if not any(isinstance(f, _DeferredFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _DeferredFinder(names))


def serve() -> None:
    """The helper's loop: import GX, then answer requests until end of input."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):  # the run's process ends the helper, a terminal does not
        signal.signal(sig, signal.SIG_IGN)
    # the answers get their own descriptor and file descriptor 1 becomes stderr, so nothing a
    # library prints (from Python or from C) can reach the answers' pipe
    sys.stdout.flush()
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    import polars  # noqa: F401 - the frames arrive as polars frames

    from pipelines.core import gx

    defer_imports(DEFERRED)
    gx.import_gx()
    while True:
        header = _read_exactly(requests, _HEADER.size)
        if header is None:
            return
        body = _read_exactly(requests, _HEADER.unpack(header)[0])
        if body is None:
            return
        try:
            name, part, frame, params = pickle.loads(body)
            reply = ("ok", gx.validate(name, part, frame, params))
        except Exception as exc:  # noqa: BLE001 - answered; the run's process validates again itself
            reply = ("error", f"{type(exc).__name__}: {exc}")
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            answers.write(_HEADER.pack(len(data)) + data)
            answers.flush()
        except BrokenPipeError:
            return
