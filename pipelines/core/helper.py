"""A helper process on the second core: Great Expectations, and figures drawn to bytes.

**Great Expectations.** Importing GX takes about 1.6 s of a Feder-size `trialpipe run` (3.8 s in a
fresh process), and nothing else in the run needs it. ``trialpipe run`` / ``validate`` / ``demo``
start this helper first thing (:func:`start`), for a small study when the machine has a free core:
it imports GX on that core while the run's process imports Dagster, launches the run, loads the
files and builds the staging tables. A suite's rows then go to it as a polars frame (pickled, Arrow
IPC), and its answer comes back as plain :class:`pipelines.core.gx.Result` objects: the same call
(:func:`pipelines.core.gx.validate`) the run's process would make, so the outcome is the same.

**Figures and files.** After validating, the helper is idle. A matplotlib figure pickles in about
5 ms and is drawn in the helper by the same call (:func:`pipelines.report.figures.figure_bytes`) as
in the run's process, to the same bytes, while the run's process goes on: the report's SVGs while it
builds the rest of the report, the CSR package's PNGs and table RTF files while it writes the HTML
and the datasets (:class:`Later`). :meth:`Worker.call` sends a call without waiting,
:meth:`Worker.answer` waits for its answer; answers come in the order the calls went.

The run's process does the work itself (importing GX then) when there is no helper (a run
launched by the Dagster UI or a schedule, a study of more than :data:`MAX_STUDY_BYTES`,
``TRIALPIPE_GX_WORKER=0``, a busy machine), for a frame of more than :data:`MAX_ROWS` rows, for a
figure that cannot be pickled, and whenever the helper fails: it died, it answered with an error
(the local call then raises that error itself), or it was interrupted mid-call. Nothing about the
outcome depends on where it ran; ``tests/validation/test_helper_gx.py`` and
``tests/tlf/test_helper_figures.py`` compare the two.

The helper reads requests from its stdin and answers on its stdout, each a pickle behind its
8-byte length; end of input (the run's process closed the pipe, exited or was killed) ends it.
It runs in its own session, so a Ctrl-C in the terminal reaches only the run's process.
"""

from __future__ import annotations

import atexit
import collections
import functools
import logging
import os
import pickle
import queue
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


class Ticket:
    """A request's answer to come: ``status`` is None until it came, then "ok" (``payload`` the
    result), "error" (``payload`` the helper's error) or "failed" (the helper is gone). A request
    with a ``fallback`` (the same work, done in this process) that the helper has not begun (it says
    when it begins one) is done here instead when this process would otherwise wait
    (:meth:`Worker.answer`)."""

    __slots__ = ("begun", "fallback", "payload", "rid", "status", "what")

    def __init__(self, rid: int, what: str, fallback=None) -> None:
        self.rid, self.what, self.fallback = rid, what, fallback
        self.status: str | None = None
        self.payload = None
        self.begun = False  # the helper said it began


class Worker:
    """The run's end of the helper process."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from pipelines.core.helper import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True, close_fds=True,
        )
        # non-blocking, waited on with a timeout: an interrupt of the run is raised within 0.2 s,
        # even while the helper is still importing GX
        for pipe in (self.proc.stdin, self.proc.stdout):
            os.set_blocking(pipe.fileno(), False)
            _widen(pipe.fileno())
        self.alive = True
        self._lock = threading.RLock()
        self._waiting: collections.deque[Ticket] = collections.deque()  # sent, not yet answered, in order
        self._inbox = bytearray()  # what the helper wrote that is not a whole answer yet
        self._rids = iter(range(1, 1 << 62))
        atexit.register(self.close)  # a helper outliving its process would wait for input that never comes

    def validate(self, name: str, part: str, frame, params: dict):
        """The helper's :func:`pipelines.core.gx.validate` of the frame, or None when it could not
        answer (the caller then validates in its own process, importing GX: never done here)."""
        from pipelines.core import gx  # GX itself is imported inside gx.validate, in the helper

        return self.answer(self.call(gx.validate, (name, part, frame, params), {}, what=f"validate {name}"))

    def call(self, func, args: tuple, kwargs: dict, fallback=None, what: str | None = None) -> Ticket | None:
        """Send ``func(*args, **kwargs)`` (a module-level function: it is pickled by name) to be
        done in the helper, without waiting; its result comes from :meth:`answer`. None when there is
        no helper or the arguments do not pickle (a figure holding a lambda). ``fallback``: the same
        call here (see :class:`Ticket`)."""
        if not self.alive:
            return None
        rid = next(self._rids)
        what = what or getattr(func, "__qualname__", str(func))
        try:
            data = pickle.dumps((rid, func, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - the caller does it itself
            log.debug("not sent to the helper process (%s): %s", what, exc)
            return None
        ticket = Ticket(rid, what, fallback)
        with self._lock:
            if not self.alive:
                return None
            try:
                self._send(data)
            except BaseException as exc:  # interrupted, or the helper died: its pipe may hold half a message
                self._fail(exc)
                if not isinstance(exc, Exception):
                    raise
                return None
            self._waiting.append(ticket)
        return ticket

    def answer(self, ticket: Ticket | None):
        """The answer to ``ticket`` (waiting for it), or None when the helper could not give one."""
        if ticket is None:
            return None
        with self._lock:
            while ticket.status is None:
                if not self.alive:  # closed meanwhile
                    self._fail(EOFError("the helper process was stopped"))
                    break
                try:
                    self._pump(wait=False)
                    spare = self._spare(ticket) if ticket.status is None else None
                    if spare is not None:  # rather than wait, do here what the helper has not begun
                        self._send(pickle.dumps((None, _CANCEL, (spare.rid,), {}), protocol=pickle.HIGHEST_PROTOCOL))
                        self._do_here(spare)
                    elif ticket.status is None:
                        self._pump(wait=True)
                except BaseException as exc:
                    self._fail(exc)
                    if not isinstance(exc, Exception):
                        raise
        if ticket.status == "error":
            log.warning("the helper process could not %s (%s); doing it in this process", ticket.what, ticket.payload)
        return ticket.payload if ticket.status == "ok" else None

    @staticmethod
    def _do_here(ticket: Ticket) -> None:
        """Do ``ticket``'s call in this process. An error in it is the call's, not the helper's:
        the ticket gets no answer, and its owner's own call raises that error."""
        try:
            ticket.status, ticket.payload = "ok", ticket.fallback()
        except Exception:  # noqa: BLE001 - raised again where the caller does it itself
            ticket.status, ticket.payload = "failed", None

    def _spare(self, ticket: Ticket) -> Ticket | None:
        """What this process can do itself rather than wait for ``ticket``: ``ticket``, when the
        helper has not begun it, else the last request waiting that it has not begun."""
        if not ticket.begun and ticket.fallback is not None:
            return ticket
        for other in reversed(self._waiting):
            if other.status is None and not other.begun and other.fallback is not None:
                return other
        return None

    def _fail(self, exc: BaseException) -> None:
        """The helper is of no more use: end it; every request still waiting gets no answer."""
        if self.alive and isinstance(exc, Exception):
            log.warning("the helper process failed (%s); this process does its work from now on", exc)
        self.close()
        self._waiting.clear()

    def _send(self, data: bytes) -> None:
        """Write one request, reading answers meanwhile: a helper blocked writing an answer into a
        full pipe reads no request until that answer is read."""
        out_fd, in_fd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        view = memoryview(_HEADER.pack(len(data)) + data)
        poll = select.poll()
        poll.register(out_fd, select.POLLOUT | select.POLLERR | select.POLLHUP)
        poll.register(in_fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        while view:
            events = dict(poll.poll(200))
            if not events:
                self._check()
                continue
            if in_fd in events:
                self._read(in_fd)
            if out_fd in events:
                if events[out_fd] & (select.POLLERR | select.POLLHUP) and not events[out_fd] & select.POLLOUT:
                    self._check()
                    raise EOFError("the helper process closed its input")
                try:
                    view = view[os.write(out_fd, view):]
                except BlockingIOError:
                    continue

    def _pump(self, wait: bool) -> None:
        """Read what the helper has written and hand each whole answer to the request it answers:
        ``wait``: what comes within 0.2 s; else all it has written (a pipe holds 64 kB, so an answer
        of more comes in several reads, each as soon as the helper has refilled it)."""
        fd = self.proc.stdout.fileno()
        poll = select.poll()  # not select, which fails on descriptors past 1024 in a busy process
        poll.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        if not wait:
            while poll.poll(5) and self._read(fd):
                pass
        elif not (poll.poll(200) and self._read(fd)):
            self._check()

    def _read(self, fd: int) -> bool:
        """One read of what the helper wrote (False: nothing there)."""
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return False
        if not chunk:
            raise EOFError("the helper process closed its output")
        self._inbox += chunk
        while len(self._inbox) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._inbox)
            if len(self._inbox) < _HEADER.size + size:
                break
            status, payload = pickle.loads(bytes(self._inbox[_HEADER.size:_HEADER.size + size]))
            del self._inbox[:_HEADER.size + size]
            if status == "begun":  # not an answer: the helper began request ``payload``
                for waiting in self._waiting:
                    if waiting.rid == payload:
                        waiting.begun = True
                        break
                continue
            if not self._waiting:
                raise EOFError("the helper process answered a request it was not sent")
            ticket = self._waiting.popleft()
            if ticket.status is None:  # not done here meanwhile
                ticket.status, ticket.payload = status, payload
        return True

    def _check(self) -> None:
        if self.proc.poll() is not None:
            raise EOFError(f"the helper process exited with status {self.proc.returncode}")

    def close(self) -> None:
        """End the helper at once (it keeps nothing: a kill loses no work, and a run that ends
        early does not wait for an import it no longer needs)."""
        self.alive = False
        atexit.unregister(self.close)
        for ticket in getattr(self, "_waiting", ()):
            ticket.status, ticket.payload = "failed", None
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


def _widen(fd: int) -> None:
    """A pipe of 1 MB instead of 64 kB where Linux allows (``F_SETPIPE_SZ``): a figure (about 130 kB
    pickled) is sent without waiting for the helper to read it, and its bytes come back in one read."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (OSError, ImportError, ValueError):
        pass  # the size the system gives: slower, not wrong


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
    if not select.select([requests], [], [], 0)[0]:  # idle: get ready for figures too
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.backends.backend_svg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    # requests are read as they come, by a thread of their own: the run's process sends a figure
    # and goes on while the one before is still being drawn, rather than waiting on a full pipe
    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def read_requests() -> None:  # the bytes only: this thread waits on the pipe, not on the GIL
        while True:
            header = _read_exactly(requests, _HEADER.size)
            body = _read_exactly(requests, _HEADER.unpack(header)[0]) if header is not None else None
            inbox.put(body)
            if body is None:
                return

    # and answers are written by another: a figure's bytes wait there (not in a full pipe, which
    # would stop this process) until the run's process reads them
    outbox: queue.SimpleQueue = queue.SimpleQueue()

    def write_answers() -> None:
        while True:
            data = outbox.get()
            try:
                answers.write(_HEADER.pack(len(data)) + data)
                answers.flush()
            except (BrokenPipeError, ValueError):  # the run's process is gone; its end of input ends the loop
                return

    threading.Thread(target=read_requests, name="trialpipe-requests", daemon=True).start()
    threading.Thread(target=write_answers, name="trialpipe-answers", daemon=True).start()
    pending: collections.deque = collections.deque()  # requests read, in order
    cancelled: set[int] = set()  # requests the run's process did itself
    ended = False
    while True:
        # everything that has come, so a cancel is seen before the call it cancels
        while not ended and (not pending or not inbox.empty()):
            body = inbox.get()
            if body is None:
                ended = True
                break
            try:
                rid, func, args, kwargs = pickle.loads(body)
            except Exception as exc:  # noqa: BLE001 - answered with the error
                pending.append((None, functools.partial(_raise, exc)))
                continue
            if func == _CANCEL:
                cancelled.add(args[0])
            else:
                pending.append((rid, functools.partial(func, *args, **kwargs)))
        if ended:
            return
        rid, call = pending.popleft()
        if rid in cancelled:
            cancelled.discard(rid)  # a helper lives for the process: the set keeps only pending ones
            reply = ("cancelled", None)
        else:
            outbox.put(pickle.dumps(("begun", rid), protocol=pickle.HIGHEST_PROTOCOL))
            try:
                reply = ("ok", call())
            except Exception as exc:  # noqa: BLE001 - answered; the run's process does it again itself
                reply = ("error", f"{type(exc).__name__}: {exc}")
        outbox.put(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


def _raise(exc: Exception):
    raise exc


_CANCEL = "cancel"  # in a request's place of the function: the run's process did request args[0] itself


class Later:
    """``func(*args, **kwargs)`` done in the helper process when there is one, while the caller goes
    on with other work; :meth:`result` waits for it. Without a helper, when the helper fails, or when
    this process would otherwise wait for a call the helper has not begun, it is done here. For
    calls whose result does not depend on where they run (a figure's bytes, a file written)."""

    def __init__(self, func, *args, **kwargs) -> None:
        self._call = functools.partial(func, *args, **kwargs)
        self._worker = current()
        self._ticket = self._worker.call(func, args, kwargs, fallback=self._call) if self._worker is not None else None
        self._done = False
        self._result = None

    @property
    def sent(self) -> bool:
        """Whether it went to the helper."""
        return self._ticket is not None

    def result(self):
        if not self._done:
            ticket, self._ticket = self._ticket, None
            if ticket is not None:
                self._worker.answer(ticket)
            self._result = ticket.payload if ticket is not None and ticket.status == "ok" else self._call()
            self._done = True
        return self._result
