"""The lines ``trialpipe demo`` ends with."""

from __future__ import annotations

import duckdb


def print_headline(outcome, console) -> None:
    con = duckdb.connect(str(outcome.warehouse), read_only=True)
    try:
        rows = con.execute(
            "select instrument, count(distinct usubjid), count(*) from staging.item_responses "
            "where study_id = ? group by 1 order by 1",
            [outcome.study_id],
        ).fetchall()
    finally:
        con.close()
    for inst, subjects, n in rows:
        console.print(f"  {inst}: {n} item ratings from {subjects} subjects")
