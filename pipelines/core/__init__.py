"""The study core: what a study *is* and how its data move, with no Dagster in it.

manifest (study.yaml), registry (known study folders), paths (project files and local state),
warehouse (DuckDB connections), sql (the SQL model runner), validation (cross-table rules),
publish (atomic publishing), provenance (input fingerprints, versions), build (a study's tables
without Dagster), errors (the user-facing error types).
"""
