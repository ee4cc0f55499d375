"""Table documentation (sql/<schema>/_schema.yml) written as COMMENT ON: only where it differs from
what the table carries, and :func:`warehouse.undocumented` names what the docs do not describe."""

from __future__ import annotations

import duckdb

from pipelines.core import warehouse

TABLE = "analysis.adsl"


class Recording:
    """A connection that keeps the SQL it is given (to count COMMENT statements)."""

    def __init__(self, con):
        self.con, self.sql = con, []

    def execute(self, sql, *args):
        self.sql.append(sql)
        return self.con.execute(sql, *args)


def _comments(con) -> list[str]:
    return [s for sql in con.sql for s in sql.split(";\n") if s.startswith("comment on")]


def _adsl(con) -> list[str]:
    names = list(warehouse.documentation(TABLE)[1])[:5]
    con.execute("create schema if not exists analysis")
    con.execute(f"create table {TABLE} ({', '.join(f'{c} varchar' for c in names)})")
    return names


def test_a_new_table_gets_every_comment_and_a_second_pass_writes_none():
    con = Recording(duckdb.connect())
    names = _adsl(con)
    warehouse.document(con, TABLE)
    assert len(_comments(con)) == 1 + len(names)  # the table and each of its documented columns
    desc, cols = warehouse.documentation(TABLE)
    have = warehouse.comments(con.con, TABLE)
    assert have[("analysis", "adsl", None)] == desc.strip()
    assert all(have[("analysis", "adsl", c)] == str(cols[c]).strip() for c in names)
    con.sql.clear()
    warehouse.document(con, TABLE, current=warehouse.comments(con.con))
    assert _comments(con) == []


def test_only_a_changed_comment_is_written_again():
    con = Recording(duckdb.connect())
    names = _adsl(con)
    warehouse.document(con, TABLE)
    con.con.execute(f"comment on column {TABLE}.{names[2]} is 'edited by hand'")
    con.sql.clear()
    warehouse.document(con, TABLE)
    assert _comments(con) == [f"comment on column {TABLE}.{names[2]} is "
                              f"{warehouse._quote(str(warehouse.documentation(TABLE)[1][names[2]]).strip())}"]


def test_undocumented_names_columns_and_tables_the_docs_do_not_describe():
    con = duckdb.connect()
    names = _adsl(con)
    con.execute(f"alter table {TABLE} add column not_in_the_docs integer")
    con.execute("create table analysis.scratch (x integer)")
    assert warehouse.undocumented(con, "analysis") == [("adsl", "not_in_the_docs"), ("scratch", None)]
    assert all(("adsl", c) not in warehouse.undocumented(con, "analysis") for c in names)
