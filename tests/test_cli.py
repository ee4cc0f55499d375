"""The command line end to end: real Dagster runs against a temporary instance, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli import cli
from tests.conftest import query

CORPUS = Path(__file__).parent / "data" / "bad_inputs"


def _invoke(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    return result


def test_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipelines.cli", "--help"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "."})
    assert out.returncode == 0
    for cmd in ("simulate", "run", "demo", "validate", "mmrm"):
        assert cmd in out.stdout
    # lazy imports: --help must not import Dagster, DuckDB or Great Expectations
    assert "dagster" not in out.stderr and "great_expectations" not in out.stderr and "duckdb" not in out.stderr


@pytest.mark.parametrize("case", ["subject_randomized_twice", "email_column", "empty_file"])
def test_validate_blocking_cases_exit_1_without_traceback(case, tmp_path):
    result = _invoke(["validate", str(CORPUS / case), "--warehouse", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "has blocking failures" in result.output
    assert (tmp_path / "reports").glob("*.validation.html")


@pytest.mark.slow
def test_run_publishes_with_lineage_and_comments(tmp_path):
    case = CORPUS / "pcl5_out_of_range"  # one quarantined row, the rest valid
    wh = tmp_path / "wh" / "trialpipe.duckdb"
    result = _invoke(["run", str(case), "--warehouse", str(wh)])
    assert result.exit_code == 0, result.output
    assert f"published to {wh}" in result.output
    sid = "PCL5-OUT-OF-RANGE"
    # every raw table carries the three lineage columns
    for (table,) in query(wh, "select table_name from duckdb_tables() where schema_name = 'raw'"):
        cols = {c for (c,) in query(wh, f"select column_name from duckdb_columns() where schema_name = 'raw' and table_name = '{table}'")}
        assert {"_source_file", "_source_row", "_source_sha256", "study_id"} <= cols
    # every table and every column is documented
    undocumented = query(wh, "select schema_name || '.' || table_name from duckdb_tables() where comment is null or comment = ''")
    assert undocumented == []
    bare = query(wh, "select schema_name || '.' || table_name || '.' || column_name from duckdb_columns() "
                     "where (comment is null or comment = '') and not internal and schema_name not in ('main', 'information_schema', 'pg_catalog')")
    assert bare == []
    assert query(wh, "select count(*) from qc.quarantine where study_id = ?", [sid]) == [(1,)]
    # the CSR package is not part of a study run (csr_job makes it on request) ...
    tlf = wh.parent / "reports" / f"{sid}-tlf"
    assert not tlf.exists()
    # ... and csr_job, launched the way the CLI launches runs, writes its index and the ADSL transport file
    from pipelines.orchestration.runner import run_study

    assert run_study(case, warehouse=wh, job_name="csr_job").success
    assert (tlf / "index.html").exists() and (tlf / "adsl.xpt").exists()
    assert query(wh, "select count(distinct usubjid) from staging.item_responses where study_id = ?", [sid]) == [(4,)]
    assert query(wh, "select status from meta.runs where study_id = ?", [sid]) == [("success",)]


@pytest.mark.slow
def test_blocked_run_leaves_published_warehouse_untouched(tmp_path):
    wh = tmp_path / "wh" / "trialpipe.duckdb"
    ok = _invoke(["run", str(CORPUS / "utf8_bom"), "--warehouse", str(wh)])
    assert ok.exit_code == 0, ok.output
    snapshot = "select * from staging.item_responses order by all"
    before = query(wh, snapshot)
    bad = _invoke(["run", str(CORPUS / "subject_randomized_twice"), "--warehouse", str(wh)])
    assert bad.exit_code == 1 and "FAILED" in bad.output and "Traceback" not in bad.output
    assert query(wh, snapshot) == before
    assert query(wh, "select count(*) from staging.subjects where study_id = 'SUBJECT-RANDOMIZED-TWICE'") == [(0,)]
    # meta.runs has a row for every run, the failed one included
    assert query(wh, "select study_id, status from meta.runs order by finished_at") == [
        ("UTF8-BOM", "success"), ("SUBJECT-RANDOMIZED-TWICE", "failed")
    ]


@pytest.mark.slow
def test_simulate_all_formats_then_run(tmp_path):
    """The foundation's done-when: simulate wide+NDA+SDTM, run, and find all three instruments."""
    study, wh = tmp_path / "D", tmp_path / "W" / "trialpipe.duckdb"
    sim = _invoke(["simulate", str(study), "--format", "wide,nda,sdtm"])
    assert sim.exit_code == 0, sim.output
    assert (study / "nda").is_dir() and (study / "sdtm" / "rs.xpt").exists()
    result = _invoke(["run", str(study), "--warehouse", str(wh)])
    assert result.exit_code == 0, result.output
    assert query(wh, "select instrument, count(distinct usubjid) from staging.item_responses group by 1 order by 1") == [
        ("CAPS-5", 30), ("MADRS", 30), ("PCL-5", 30)
    ]
    assert query(wh, "select count(*) from staging.item_responses where study_id is null") == [(0,)]
    assert {f for (f,) in query(wh, "select distinct _source_file from raw.caps5")} == {"nda/ptsd_dsm501.txt"}
    paramcds = {p for (p,) in query(wh, "select distinct paramcd from analysis.adqs")}
    assert {"CAPS5TOT", "CAPS5B", "CAPS5C", "CAPS5D", "CAPS5E", "PCL5TOT", "PCL5B", "PCL5C", "PCL5D", "PCL5E", "MADRSTOT"} <= paramcds


@pytest.mark.slow
def test_rerun_on_identical_inputs_gives_identical_results(tmp_path):
    """Provenance: every results row carries its run_id, and a rerun reproduces the values exactly."""
    study, wh = tmp_path / "D", tmp_path / "W" / "trialpipe.duckdb"
    assert _invoke(["simulate", str(study), "--per-arm", "8", "--seed", "11"]).exit_code == 0
    snapshots, run_ids = [], []
    for _ in range(2):
        result = _invoke(["run", str(study), "--warehouse", str(wh)])
        assert result.exit_code == 0, result.output
        run_id = query(wh, "select run_id from meta.runs order by finished_at desc limit 1")[0][0]
        run_ids.append(run_id)
        snap = {}
        for table in ("treatment_effects", "lsmeans", "responders", "model_fits"):
            assert query(wh, f"select count(*) from results.{table} where run_id is distinct from ?", [run_id]) == [(0,)]
            cols = [c for (c,) in query(wh, f"select column_name from duckdb_columns() where schema_name = 'results' "
                                            f"and table_name = '{table}' and column_name <> 'run_id' order by column_index")]
            snap[table] = query(wh, f"select {', '.join(cols)} from results.{table} order by all")
        snapshots.append(snap)
    assert run_ids[0] != run_ids[1]
    assert snapshots[0] == snapshots[1]
    assert query(wh, "select count(*) from meta.runs") == [(2,)]
