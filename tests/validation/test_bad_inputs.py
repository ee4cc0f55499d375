"""The bad-input corpus: every case ends in its expected clear message or quarantine.

Each folder under tests/data/bad_inputs/ is a small study (study.yaml + files) with
``expected.yaml`` written by hand: file outcomes and message fragments, quarantine reasons with
their counts, accepted rows, failing checks. Beyond each case's own expectations, every case must
hold the invariants: nothing raises (no traceback reaches a user), every row of every loaded file
is accounted for, no quarantined row reaches staging, and a refused file loads nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.core import rules, validation, warehouse
from pipelines.core.build import build_study
from pipelines.core.errors import ManifestError
from pipelines.core.manifest import load_manifest
from pipelines.ingest.schema import SAFETY_TABLES, raw_tables

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.yaml").exists())


def test_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path):
    folder = CORPUS / case
    exp = yaml.safe_load((folder / "expected.yaml").read_text())
    db = tmp_path / "work.duckdb"

    if "manifest_error" in exp:
        with pytest.raises(ManifestError) as err:
            build_study(folder, db)
        for fragment in exp["manifest_error"]:
            assert fragment in str(err.value), (fragment, str(err.value))
        return

    build_study(folder, db)  # must not raise on user data
    manifest = load_manifest(folder)
    with warehouse.connect(db) as con:
        outcomes = {o.name: o for o in rules.validate_tables(con, manifest)}
        files = {f: (s, m, skipped) for f, s, m, skipped in con.execute(
            "select _source_file, status, coalesce(message, ''), rows_skipped from qc.source_files").fetchall()}
        quarantine = con.execute("select _source_file, _source_row, reason from qc.quarantine").fetchall()
        accepted = dict(con.execute(
            "select instrument_id, count(*) from staging.assessment_rows where status = 'accepted' group by 1 "
            "union all select 'randomization', count(*) from staging.randomization_rows where status = 'accepted'"
            + "".join(f" union all select '{d}', count(*) from staging.{d}_rows where status = 'accepted'"
                      for d in SAFETY_TABLES)
        ).fetchall())
        leaked = con.execute(
            "select count(*) from staging.item_responses r join qc.quarantine q "
            "on q._source_file = r._source_file and q._source_row = r._source_row and q.raw_table = 'raw.' || r.instrument_id"
        ).fetchone()[0]
        n_missing = con.execute("select count(*) from staging.item_responses where value is null").fetchone()[0]
        raw_by_file = dict(con.execute(
            " union all ".join(f"select _source_file, count(*) from raw.{t} group by 1" for t in raw_tables())
        ).fetchall())

    # -- this case's own expectations
    for name, status in exp.get("files", {}).items():
        assert files[name][0] == status, (name, files[name])
    messages = " | ".join(m for _, m, _ in files.values())
    for fragment in exp.get("message", []):
        assert fragment in messages, (fragment, messages)
    for fragment in exp.get("not_in_message", []):
        assert fragment not in messages, f"the message echoes a value: {fragment!r} in {messages!r}"
    if "quarantine" in exp:
        if exp["quarantine"] == {}:
            assert quarantine == [], quarantine
        for fragment, count in exp["quarantine"].items():
            hits = [q for q in quarantine if fragment in q[2]]
            assert len(hits) == count, (fragment, count, [q[2] for q in quarantine])
    for pos in exp.get("quarantined_rows", []):
        assert tuple(pos) in {(f, r) for f, r, _ in quarantine}
    for table, n in exp.get("accepted", {}).items():
        assert accepted.get(table, 0) == n, (table, accepted)
    if "missing_values" in exp:
        assert n_missing == exp["missing_values"]
    for name, n in exp.get("skipped", {}).items():
        assert files[name][2] == n
    failed_checks = {n for n, o in outcomes.items() if not o.success}
    refused = any(s != "loaded" for s, _, _ in files.values())
    if "checks_failed" in exp:
        assert failed_checks == set(exp["checks_failed"]), {n: outcomes[n].summary for n in failed_checks}
    elif not refused:
        assert not failed_checks, {n: outcomes[n].summary for n in failed_checks}

    # identifier-shaped values and free text never travel on: not in a quarantine reason, raw_values,
    # a file message or a check's summary and details (what logs, event metadata and HTML show)
    if "not_anywhere" in exp:
        with warehouse.connect(db, read_only=True) as con:
            texts = [str(v) for row in con.execute(
                "select reason, raw_values from qc.quarantine union all select message, null from qc.source_files").fetchall()
                for v in row if v is not None]
        texts += [o.summary for o in outcomes.values()] + [o.markdown() for o in outcomes.values()]
        for fragment in exp["not_anywhere"]:
            leaks = [t for t in texts if fragment in t]
            assert not leaks, f"{fragment!r} is echoed: {leaks[:2]}"

    # -- invariants for every case
    assert outcomes["rows_reconcile"].success, outcomes["rows_reconcile"].summary
    assert leaked == 0, "a quarantined row reached staging.item_responses"
    for name, (status, message, _) in files.items():
        if status != "loaded":
            assert raw_by_file.get(name, 0) == 0, f"{name} was refused but rows of it were loaded"
            assert name in message, "a file-level message must name the file"
