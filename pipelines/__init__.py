"""trialpipe: psychiatric clinical-trial analysis from raw exports to a DuckDB warehouse, on Dagster.

Three kinds of code, one folder each:

* front door — ``pipelines.cli``: the ``trialpipe`` command line (every command lives there);
* Dagster wiring — ``pipelines.orchestration``: definitions, jobs, resources, checks, schedules,
  sensors and the CLI's runner (the assets themselves are in the top-level ``assets/`` package);
* study core and libraries — ``pipelines.core`` (manifest, warehouse, SQL runner, rules,
  publishing, provenance), ``pipelines.ingest`` (readers and the identifier guard),
  ``pipelines.instruments`` (instrument definitions as YAML), ``pipelines.stats`` (MMRM engine,
  efficacy, responders), ``pipelines.report`` (HTML report and Dagster metadata) and
  ``pipelines.simulate`` (the trial simulator). None of these import Dagster.
"""
