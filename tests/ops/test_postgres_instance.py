"""A team instance: the documented dagster.yaml with PostgreSQL storage, against a real server.

The test starts a throw-away PostgreSQL from the machine's packages (initdb + pg_ctl on a free
port, socket and data in a temp dir) and skips cleanly when none can start.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "bad_inputs"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    return None


@pytest.fixture
def postgres():
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl) on this machine")
    # outside pytest's private (0700) temp dir, so the server's own user can reach it
    base = Path(tempfile.mkdtemp(prefix="trialpipe-pg-"))
    base.chmod(0o755)
    data = base / "pgdata"
    data.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the packages' postgres user
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            pytest.skip("running as root and there is no postgres user to own the server")
        shutil.chown(data, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    user = "postgres" if run_as else getpass.getuser()
    init = subprocess.run([*run_as, initdb, "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"],
                          capture_output=True, text=True)
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr.strip()[-200:]}")
    start = subprocess.run(
        [*run_as, pg_ctl, "-D", str(data), "-l", str(data / "log"), "-w", "-t", "30",
         "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
        capture_output=True, text=True,
    )
    if start.returncode != 0:
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[-200:]}")
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres")
        con.autocommit = True
        con.cursor().execute("create database dagster")
        con.close()
        yield {"host": "127.0.0.1", "port": port, "user": user, "db": "dagster"}
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_study_runs_against_postgres_backed_instance(postgres, tmp_path, monkeypatch):
    import psycopg2
    from click.testing import CliRunner

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "docs" / "dagster" / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", postgres["host"])
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres["port"]))
    monkeypatch.setenv("DAGSTER_PG_DB", postgres["db"])
    monkeypatch.setenv("DAGSTER_PG_USERNAME", postgres["user"])
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")

    from pipelines.cli import cli

    result = CliRunner().invoke(cli, ["run", str(CORPUS / "utf8_bom"), "--warehouse", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 0, result.output
    con = psycopg2.connect(host=postgres["host"], port=postgres["port"], user=postgres["user"], dbname="dagster")
    cur = con.cursor()
    cur.execute("select status from runs where partition = 'UTF8-BOM'")
    assert cur.fetchall() == [("SUCCESS",)]
    cur.execute("select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'")
    assert cur.fetchone()[0] >= 10
    cur.execute("select partition from dynamic_partitions")
    assert ("UTF8-BOM",) in cur.fetchall()
    con.close()
