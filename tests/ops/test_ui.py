"""The Dagster UI for real: the webserver (dagster dev, with its daemon) on a free loopback port,
queried and driven over GraphQL, and the asset graph page rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "pipelines.orchestration.definitions"
REPO = "__repository__"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    assert "errors" not in out, out["errors"]
    return out["data"]


@pytest.fixture(scope="session")
def webserver(tmp_path_factory):
    """trialpipe ui in its own process group (a bare `&` would make it ignore SIGTERM).

    Session-scoped, and `python3 dev.py test` hands a whole module to one worker (--dist
    loadscope): one server for all the UI tests, and the run history they share."""
    home = tmp_path_factory.mktemp("ui_home")
    studies = tmp_path_factory.mktemp("ui_studies")
    env = {**os.environ, "DAGSTER_HOME": str(home), "TRIALPIPE_STUDIES_ROOT": str(studies),
           "TRIALPIPE_WAREHOUSE": str(home / "warehouse" / "trialpipe.duckdb"), "PYTHONPATH": str(ROOT)}
    shutil.copy(ROOT / "docs" / "dagster" / "dagster.local.yaml", home / "dagster.yaml")
    # a run from the command line before the UI starts: it must show in the UI's run history
    cli_run = subprocess.run(
        [str(Path(sys.executable).with_name("trialpipe")), "run", str(ROOT / "tests" / "data" / "bad_inputs" / "utf8_bom"),
         "--warehouse", str(home / "warehouse" / "trialpipe.duckdb")],
        env=env, capture_output=True, text=True,
    )
    assert cli_run.returncode == 0, cli_run.stdout + cli_run.stderr
    port = _free_port()
    log = open(home / "dagster_dev.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(  # trialpipe ui: Dagster's webserver behind the same-origin guard, plus the daemon
        [str(Path(sys.executable).with_name("trialpipe")), "ui", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("trialpipe ui did not come up: " + (home / "dagster_dev.log").read_text()[-2000:])
                time.sleep(0.5)
        yield {"port": port, "home": home, "studies": studies, "env": env, "cli_output": cli_run.stdout}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="session")
def ui_run(webserver):
    """A simulated study registered as a partition over GraphQL, run over GraphQL and polled to the end
    (the tests that read its materializations ask for this fixture, not for another test's side effect)."""
    port = webserver["port"]
    study = webserver["studies"] / "ket"
    subprocess.run([str(Path(sys.executable).with_name("trialpipe")), "simulate", str(study), "--per-arm", "6", "--seed", "3"],
                   check=True, env=webserver["env"], capture_output=True)
    sid = "FEDERSIM-3"
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPO}
    added = _gql(port, "mutation($s: RepositorySelector!, $k: String!) { addDynamicPartition(repositorySelector: $s, "
                       "partitionsDefName: \"studies\", partitionKey: $k) { __typename } }", {"s": selector, "k": sid})
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"
    launched = _gql(
        port,
        "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
        {"p": {"selector": {**selector, "jobName": "study_job"}, "runConfigData": {},
               "executionMetadata": {"tags": [{"key": "dagster/partition", "value": sid}]}}},
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline, status = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        status = _gql(port, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}')["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(0.5)
    return {"sid": sid, "run_id": run_id, "status": status,
            "log": (webserver["home"] / "dagster_dev.log").read_text()[-3000:]}


@pytest.mark.slow
def test_graphql_lists_assets_checks_schedule_sensor_and_runs_a_study(webserver, ui_run):
    port = webserver["port"]
    assets = {tuple(n["assetKey"]["path"]) for n in _gql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]}
    for key in [("raw", "pcl5"), ("staging", "item_responses"), ("analysis", "adqs"), ("publish", "warehouse")]:
        assert key in assets
    checks = _gql(port, '{ assetNodeOrError(assetKey: {path: ["staging", "item_responses"]}) '
                        '{ ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } } }')
    names = {c["name"]: c["blocking"] for c in checks["assetNodeOrError"]["assetChecksOrError"]["checks"]}
    assert names.get("gx_item_responses") is True
    repo = _gql(port, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } "
                      "jobs { name } schedules { name cronSchedule } sensors { name } } } } }")["repositoriesOrError"]["nodes"][0]
    assert {"study_job", "validate_job"} <= {j["name"] for j in repo["jobs"]}
    assert [s["name"] for s in repo["schedules"]] == ["nightly"] and repo["schedules"][0]["cronSchedule"] == "0 2 * * *"
    assert {"studies_sensor", "record_failed_runs"} <= {s["name"] for s in repo["sensors"]}

    # the command-line run is in the UI's history, with its study partition
    runs = _gql(port, "{ runsOrError(limit: 20) { ... on Runs { results { runId jobName status tags { key value } } } } }")
    cli_runs = [r for r in runs["runsOrError"]["results"]
                if {"key": "trialpipe/launched_by", "value": "cli"} in r["tags"]]
    assert cli_runs and cli_runs[0]["status"] == "SUCCESS" and cli_runs[0]["jobName"] == "study_job"
    assert {"key": "dagster/partition", "value": "UTF8-BOM"} in cli_runs[0]["tags"]
    assert cli_runs[0]["runId"] in webserver["cli_output"]

    # a simulated study, registered as a partition over GraphQL, run over GraphQL, polled to success
    assert ui_run["status"] == "SUCCESS", ui_run


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")
def test_asset_graph_page_renders_in_headless_chromium(webserver, tmp_path):
    # the staging group's lineage page: its asset nodes carry the asset names
    url = f"http://127.0.0.1:{webserver['port']}/locations/{LOCATION}/asset-groups/staging"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}", "--virtual-time-budget=15000"]
    # the lineage graph only puts the nodes in view into the DOM (13 staging assets no longer fit), so
    # the names are read from the group's List tab and the lineage page is the screenshot
    dom = subprocess.run([_chromium(), *flags, "--window-size=1600,2400", "--dump-dom", f"{url}/list"],
                         capture_output=True, text=True, timeout=120).stdout
    shot = tmp_path / "asset_graph.png"
    subprocess.run([_chromium(), *flags, "--window-size=1600,1000", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    for name in ("item_responses", "assessment_rows", "subjects"):
        assert name in dom, f"{name} not rendered in the asset graph page"


def _curl(port: int, *args: str) -> tuple[int, str]:
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


LAUNCH = ('mutation { launchPartitionBackfill(backfillParams: {selector: {partitionSetName: "x", '
          'repositorySelector: {repositoryLocationName: "x", repositoryName: "x"}}, partitionNames: []}) { __typename } }')


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_problem2_foreign_host_and_origin_are_refused_the_ui_works_from_loopback(webserver):
    """The audit's attack: the same mutation with a foreign Host (DNS rebinding) or Origin (CSRF)."""
    port = webserver["port"]
    url = f"http://127.0.0.1:{port}/graphql"
    body = json.dumps({"query": LAUNCH})
    post = ["-X", "POST", "-H", "Content-Type: application/json", "--data", body, url]
    # refused: a foreign Host, a foreign Origin, a cross-site fetch, a mutation over GET
    assert _curl(port, "-H", "Host: attacker.example:%d" % port, *post)[0] == 403
    assert _curl(port, "-H", "Origin: http://attacker.example", *post)[0] == 403
    assert _curl(port, "-H", "Origin: null", *post)[0] == 403
    assert _curl(port, "-H", "Sec-Fetch-Site: cross-site", *post)[0] == 403
    get = _curl(port, "-G", "--data-urlencode", f"query={LAUNCH}", "-H", "Host: attacker.example", url)
    assert get[0] == 403
    get = _curl(port, "-G", "--data-urlencode", f"query={LAUNCH}", url)
    assert get[0] == 405 and "POST only" in get[1]
    # accepted: the same request from the UI itself, at 127.0.0.1 and at localhost
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        code, text = _curl(port, "-H", f"Host: {host}", "-H", f"Origin: http://{host}", *post)
        assert code == 200, (host, code, text)
        assert "__typename" in text
    for host in ("127.0.0.1", "localhost"):
        code, text = _curl(port, f"http://{host}:{port}/")
        assert code == 200 and "<html" in text.lower(), host
    # no first-visit modal: the shipped instance config turns it off
    assert "nux:\n  enabled: false" in (ROOT / "docs" / "dagster" / "dagster.local.yaml").read_text()
    info = _gql(port, "{ instance { info } }")["instance"]["info"]
    assert "nux" in info and "enabled: false" in info.split("nux:")[1][:40]


def test_problem10_owners_kinds_figures_and_the_report_link(webserver, ui_run):
    port = webserver["port"]
    nodes = _gql(port, "{ assetNodes { assetKey { path } owners { ... on TeamAssetOwner { team } } kinds } }")["assetNodes"]
    for node in nodes:
        assert {"team": "biostatistics"} in node["owners"], node
        assert node["kinds"], node
    # the UI run's partition by name, not "the latest materialization of any partition": one CI run
    # (two workers, loaded machine) got the CLI run's UTF8-BOM there, which has no CAPS-5 to plot
    q = ('{ assetNodeOrError(assetKey: {path: %s}) { ... on AssetNode { assetMaterializations(partitions: '
         '["FEDERSIM-3"], limit: 1) '
         '{ metadataEntries { label __typename ... on MarkdownMetadataEntry { mdStr } ... on UrlMetadataEntry { url } '
         '... on TableSchemaMetadataEntry { schema { columns { name description } } } } } } } }')
    def entries(path):
        mats = _gql(port, q % json.dumps(path))["assetNodeOrError"]["assetMaterializations"]
        assert mats, path
        return {e["label"]: e for e in mats[0]["metadataEntries"]}
    # the UI run materialized FEDERSIM-3 (the CLI run materialized UTF8-BOM)
    assert ui_run["status"] == "SUCCESS", ui_run
    effects = entries(["results", "treatment_effects"])
    assert "data:image/svg+xml;base64," in effects["summary"]["mdStr"]  # the forest plot
    lsmeans = entries(["results", "lsmeans"])
    assert "data:image/svg+xml;base64," in lsmeans["summary"]["mdStr"]  # the mean-change plot
    # the figures inline ("plot": a short markdown image the UI renders without a click), served by trialpipe ui
    for entry in (effects, lsmeans):
        src = entry["plot"]["mdStr"].split("](")[1].rstrip(")")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{src}", timeout=30) as resp:
            assert resp.headers["Content-Type"] == "image/svg+xml" and resp.read(5) == b"<?xml"
    cols = effects["dagster/column_schema"]["schema"]["columns"]
    assert cols and all(c["description"] for c in cols), [c for c in cols if not c["description"]]
    report = entries(["report", "study_report"])
    link = report["report"]["url"]
    assert link.startswith("/trialpipe/reports/") and link.endswith(".html")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{link}", timeout=30) as resp:
        html = resp.read().decode()
    assert resp.status == 200 and "<html" in html.lower()
