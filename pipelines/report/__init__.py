"""Reports for people: the study report, the validation page, Dagster metadata and the CLI headline.

Dagster-free; everything reads a DuckDB connection holding a study's tables under their contract
names (docs: contract.md) and never raises for missing tables, columns or rows.

* :func:`pipelines.report.study.build_report` - one self-contained HTML file per study;
* :mod:`pipelines.report.metadata` - ``(markdown, SVG data URI)`` per results table for the asset UI;
* :func:`pipelines.report.headline.headline_lines` / ``print_headline`` - what ``trialpipe demo`` prints;
* :mod:`pipelines.report.validation` - what ingestion and validation did (console and HTML);
* :mod:`pipelines.report.data` (the one reader), :mod:`.tables`, :mod:`.figures`, :mod:`.fmt` - shared parts.
"""
