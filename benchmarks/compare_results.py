"""Compare the results tables of two published warehouses (a refactor must leave them identical).

    .venv/bin/python benchmarks/compare_results.py OLD.duckdb NEW.duckdb [--schemas results,analysis] [--allow-added]

Every table of the ``results`` and ``analysis`` schemas present in both files is compared row for
row, ignoring columns that name a run (run_id) or a time; numbers must be equal to the last bit
(DOUBLEs compared exactly). Prints one line per table and exits 1 when any differs. With
``--allow-added`` a table whose old rows are all still there, unchanged, and that only gained rows
(a new endpoint) is reported as "added" and does not fail the comparison.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

IGNORED = {"run_id", "created_at", "started_at", "finished_at", "validated_at", "analysis_date"}


def tables(con: duckdb.DuckDBPyConnection, catalog: str, schemas: tuple[str, ...]) -> set[str]:
    return {
        f"{s}.{t}"
        for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables where table_catalog = ? and table_schema in "
            f"({', '.join('?' for _ in schemas)})",
            [catalog, *schemas],
        ).fetchall()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--schemas", default="results,analysis")
    ap.add_argument("--allow-added", action="store_true", help="rows only in NEW (none lost or changed) do not fail")
    args = ap.parse_args()
    con = duckdb.connect()
    for alias, path in (("old", args.old), ("new", args.new)):
        quoted = path.replace("'", "''")
        con.execute(f"attach '{quoted}' as {alias} (read_only)")
    schemas = tuple(args.schemas.split(","))
    old_t, new_t = tables(con, "old", schemas), tables(con, "new", schemas)
    bad = 0
    for t in sorted(old_t - new_t):
        print(f"MISSING  {t} (only in old)")
        bad += 1
    for t in sorted(new_t - old_t):
        print(f"new      {t} (only in new)")
    for t in sorted(old_t & new_t):
        cols_old = [r[0] for r in con.execute(f"select * from old.{t} limit 0").description]
        cols_new = [r[0] for r in con.execute(f"select * from new.{t} limit 0").description]
        common = [c for c in cols_old if c in cols_new and c not in IGNORED]
        sel = ", ".join(f'"{c}"' for c in common)
        only_old = con.execute(f"select count(*) from (select {sel} from old.{t} except all select {sel} from new.{t})").fetchone()[0]
        only_new = con.execute(f"select count(*) from (select {sel} from new.{t} except all select {sel} from old.{t})").fetchone()[0]
        n = con.execute(f"select count(*) from old.{t}").fetchone()[0]
        extra = sorted(set(cols_new) - set(cols_old))
        dropped = sorted(set(cols_old) - set(cols_new) - IGNORED)
        status = "same" if only_old == only_new == 0 else "DIFFERS"
        if status == "DIFFERS" and only_old == 0 and args.allow_added:
            status = "added"
        if status == "DIFFERS" or dropped:
            bad += 1
        note = (f"; new columns {extra}" if extra else "") + (f"; DROPPED columns {dropped}" if dropped else "")
        print(f"{status:<8} {t}: {n} rows, {only_old} only in old, {only_new} only in new{note}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
