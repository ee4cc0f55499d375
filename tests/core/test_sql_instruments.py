"""SQL models generated per instrument loop over the instruments a study has (pipelines/core/sql.py).

The statement names only the instruments whose raw table has rows, and it must give the same rows
as the one over all ten: a study is built both ways and its staging and qc tables compared."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.core import sql, warehouse
from pipelines.core.build import build_study
from pipelines.ingest.schema import create_raw_table_sql, raw_tables
from pipelines.instruments import load_instruments

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"


def _raw_layer(con, rows_in: tuple[str, ...] = ()) -> None:
    con.execute("create schema if not exists raw")
    for table in raw_tables():
        con.execute(create_raw_table_sql(table))
    for inst in rows_in:
        con.execute(f"insert into raw.{inst} (study_id, source, _source_file, _source_row, _source_sha256) "
                    "values ('S', 'src', 'f.csv', 1, 'x')")


def test_only_instruments_with_rows_are_listed():
    con = duckdb.connect()
    _raw_layer(con, ("pcl5", "madrs"))
    ids = list(load_instruments())
    assert sql.instruments_with_rows(con) == [i for i in ids if i in ("pcl5", "madrs")]  # definition order


def test_all_instruments_when_none_has_rows_or_the_raw_layer_is_missing():
    con = duckdb.connect()
    assert sql.instruments_with_rows(con) is None  # no raw layer at all
    _raw_layer(con)
    assert sql.instruments_with_rows(con) is None  # every raw table empty
    con.execute("insert into raw.pcl5 (study_id, source, _source_file, _source_row, _source_sha256) "
                "values ('S', 'src', 'f.csv', 1, 'x')")
    con.execute("drop table raw.caps5")
    assert sql.instruments_with_rows(con) is None  # a raw table missing: the old layer, all of them


def test_render_names_only_the_given_instruments():
    full = sql.render("staging.assessment_rows")
    some = sql.render("staging.assessment_rows", ["pcl5"])
    for inst in load_instruments():
        assert f"raw.{inst}" in full
        assert (f"raw.{inst}" in some) == (inst == "pcl5"), inst


@pytest.mark.parametrize("case", ["conflicting_duplicates", "madrs_out_of_range"])
def test_a_study_built_over_its_own_instruments_equals_one_built_over_all(case, tmp_path, monkeypatch):
    subset_db, full_db = tmp_path / "subset.duckdb", tmp_path / "full.duckdb"
    build_study(CORPUS / case, subset_db)
    with warehouse.connect(subset_db, read_only=True) as con:
        present = sql.instruments_with_rows(con)
    assert present is not None and len(present) < len(load_instruments())  # the subset path was taken
    monkeypatch.setattr(sql, "instruments_with_rows", lambda con: None)
    build_study(CORPUS / case, full_db)
    for table in ("staging.assessment_rows", "staging.subjects", "staging.item_responses", "qc.quarantine"):
        q = f"select * from {table} order by all"
        with warehouse.connect(subset_db, read_only=True) as a, warehouse.connect(full_db, read_only=True) as b:
            rows = a.execute(q).fetchall()
            assert rows == b.execute(q).fetchall(), table
