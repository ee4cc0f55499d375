"""``trialpipe ui``: the Dagster UI, answering only its own user.

Dagster's webserver has no setting that refuses requests from other web pages: bound to 127.0.0.1
it still executes a ``launchRun`` mutation sent by any page the statistician has open (a
cross-site request) or by a foreign name resolving to 127.0.0.1 (DNS rebinding). So this launcher
builds Dagster's own ASGI app (``dagster_webserver.app.create_app_from_workspace_process_context``,
what ``dagster-webserver`` serves) and wraps it in :class:`LocalOnly`, a small ASGI middleware:

* the ``Host`` header must be ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT``;
* an ``Origin`` header, when a browser sends one, must be one of those origins;
* ``Sec-Fetch-Site: cross-site`` (a request a foreign page made) is refused;
* GraphQL mutations over GET are refused (the UI sends them by POST; a GET can be an ``<img>``).

Refusals are ``403`` (``405`` for a GET mutation) with a one-line reason. The same middleware
serves the study reports at ``/trialpipe/reports/<study_id>.html`` (and ``.validation.html``), so
the report link on the ``report/study_report`` asset opens from the UI, and the results figures
(``<study_id>.treatment_effects.svg``, the forest plot ...) the results assets show inline. The daemon (schedules,
sensors, run queue, run monitoring) runs beside it as ``dagster-daemon run``, as ``dagster dev``
would start it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote

import click

from pipelines.core.paths import REPORTS_URL_PREFIX as REPORTS_PREFIX
from pipelines.core.paths import report_url  # noqa: F401 - re-exported for callers of the UI
_REPORT_NAME = re.compile(r"([A-Za-z][A-Za-z0-9_.-]{0,63}?)(\.validation)?\.html|([A-Za-z][A-Za-z0-9_.-]{0,63}?)\.([a-z_]{1,32})\.svg")
_MUTATION = re.compile(r"^\s*(#[^\n]*\n\s*)*(mutation|subscription)\b", re.IGNORECASE)


class LocalOnly:
    """ASGI middleware: only same-origin requests to a loopback host name reach the app."""

    def __init__(self, app, port: int):
        self.app = app
        names = ("127.0.0.1", "localhost", "[::1]")
        self.hosts = {f"{n}:{port}" for n in names}
        self.origins = {f"http://{h}" for h in self.hosts}

    def refusal(self, scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "").strip().lower()
        if host not in self.hosts:
            return 403, f"refused: Host {host or '(none)'!r} is not this machine's UI address"
        origin = headers.get("origin")
        if origin is not None and origin.strip().lower() not in self.origins:
            return 403, f"refused: a request from another web page ({origin!r})"
        if headers.get("sec-fetch-site") == "cross-site":
            return 403, "refused: a request from another web page"
        if scope["type"] == "http" and scope.get("method") == "GET" and scope.get("path", "").endswith("/graphql"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("query", [""])[0]
            if _MUTATION.search(query):
                return 405, "refused: GraphQL mutations are accepted by POST only"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refused = self.refusal(scope)
        if refused is not None:
            status, text = refused
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            return await _plain(send, status, text)
        if scope["type"] == "http" and scope.get("path", "").startswith(REPORTS_PREFIX):
            return await _report(scope, send)
        return await self.app(scope, receive, send)


async def _plain(send, status: int, text: str, content_type: str = "text/plain; charset=utf-8", body: bytes | None = None):
    body = body if body is not None else (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})


async def _report(scope, send):
    from pipelines.core import registry
    from pipelines.core.paths import default_warehouse

    name = unquote(scope["path"][len(REPORTS_PREFIX):])
    m = _REPORT_NAME.fullmatch(name)
    entry = registry.lookup(m.group(1) or m.group(3)) if m else None
    if entry is None:
        return await _plain(send, 404, f"no report {name!r}: run the study first")
    wh = Path(entry.warehouse) if entry.warehouse else default_warehouse()
    folder = Path(entry.report_dir) if entry.report_dir else wh.parent / "reports"
    path = folder / name
    if not path.is_file():
        return await _plain(send, 404, f"no report {name!r} yet: run study {entry.study_id} first")
    kind = "image/svg+xml" if name.endswith(".svg") else "text/html; charset=utf-8"
    return await _plain(send, 200, "", kind, path.read_bytes())


def build_app(port: int, workspace: Path):
    """Dagster's webserver app for ``workspace`` behind :class:`LocalOnly`; returns (app, context)."""
    from dagster import DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_webserver import __version__
    from dagster_webserver.app import create_app_from_workspace_process_context

    instance = DagsterInstance.get()
    context = WorkspaceProcessContext(instance, version=__version__, read_only=False,
                                      workspace_load_target=WorkspaceFileTarget(paths=[str(workspace)]))
    app = create_app_from_workspace_process_context(context, "", 2000)
    return LocalOnly(app, port), context


@click.command()
@click.option("--port", "-p", type=int, default=3000, show_default=True, help="Port on 127.0.0.1.")
@click.option("--no-daemon", is_flag=True, help="Do not start dagster-daemon (schedules, sensors, run queue).")
def ui(port: int, no_daemon: bool) -> None:
    """The Dagster UI on http://127.0.0.1:PORT, refusing requests from other web pages."""
    import uvicorn

    from pipelines.core.paths import PROJECT_ROOT, dagster_home

    os.environ["DAGSTER_HOME"] = str(dagster_home())
    workspace = PROJECT_ROOT / "workspace.yaml"
    os.chdir(PROJECT_ROOT)  # workspace.yaml names the code location relative to the project
    daemon = None
    if not no_daemon:
        daemon = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace)],
                                  env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    app, context = build_app(port, workspace)
    click.echo(f"trialpipe ui: http://127.0.0.1:{port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']}); Ctrl-C stops it.")
    try:
        with context:
            uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
    click.echo("trialpipe ui: stopped.")

