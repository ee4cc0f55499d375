"""Synthetic trials calibrated to Feder et al. 2021 (ketamine vs midazolam for chronic PTSD).

Dagster-free API:

* :func:`simulate_trial` - the study as long item data (polars), no files;
* :func:`write_study` - a complete study folder (data files in the requested formats + study.yaml);
* ``pipelines.cli.simulate.simulate`` - the ``trialpipe simulate`` click command.

The latent model and its calibration constants live in :mod:`pipelines.simulate.model`.
"""

from pipelines.simulate.study import write_study, write_study_files
from pipelines.simulate.trial import DEFAULT_PER_ARM, DEFAULT_SEED, build_trial, simulate_trial

__all__ = [
    "DEFAULT_PER_ARM",
    "DEFAULT_SEED",
    "build_trial",
    "simulate_trial",
    "write_study",
    "write_study_files",
]
