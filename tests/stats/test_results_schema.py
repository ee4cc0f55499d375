"""Every results.* column the efficacy library writes is documented in sql/results/_schema.yml (the
COMMENT ON text analysts see), and nothing is documented that the library does not write."""

from __future__ import annotations

from pipelines.core import warehouse
from pipelines.stats.efficacy import schema


def test_results_schema_yml_documents_exactly_the_written_columns():
    docs = warehouse.table_docs()
    for table, columns in schema.TABLES.items():
        assert table in docs, table
        assert docs[table]["description"].strip(), table
        documented = docs[table]["columns"]
        assert set(documented) == set(columns), (table, set(documented) ^ set(columns))
        assert all(str(text).strip() for text in documented.values()), table
