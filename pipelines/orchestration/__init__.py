"""The Dagster wiring: the code location (definitions), jobs, partitions, resources, asset checks,
schedules, sensors, and the runner that executes a study job from the command line.

Nothing here computes a number; the assets in the top-level ``assets/`` package and the checks call
into ``pipelines.core``, ``pipelines.ingest``, ``pipelines.stats`` and ``pipelines.report``.
"""
