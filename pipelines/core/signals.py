"""SIGINT/SIGTERM through a watcher thread, so a run can record that it was asked to stop.

Imports nothing heavy: :func:`install_signal_proxy` must run before any thread exists.
"""

from __future__ import annotations

import _thread
import signal
import threading

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
PROXY: dict = {"installed": False, "on_signal": None}


def install_signal_proxy() -> None:
    """Route SIGINT/SIGTERM through a watcher thread (call first thing in the process).

    Both signals are blocked in every thread - they must be blocked before any thread exists (polars
    and DuckDB start native threads on import), and the processes Dagster starts inherit the mask,
    so they stay quiet instead of printing KeyboardInterrupt tracebacks. The watcher takes the
    signals with ``sigtimedwait``, lets the current run record its cancel request first, and then
    raises the interrupt in the main thread through whatever SIGINT handler is current there
    (Dagster's, during a step, turns it into an execution interrupt)."""
    if PROXY["installed"] or threading.current_thread() is not threading.main_thread():
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    PROXY["installed"] = True

    def watch() -> None:
        while True:
            info = signal.sigwaitinfo(STOP_SIGNALS)
            name = signal.Signals(info.si_signo).name
            callback = PROXY["on_signal"]
            if callback is not None and not callback(name):
                continue  # already canceling
            _thread.interrupt_main(signal.SIGINT)

    threading.Thread(target=watch, name="trialpipe-signals", daemon=True).start()


