"""Reference-based and MAR multiple imputation on the project's MMRM engine (the R rbmi workflow).

>>> from pipelines.stats import imputation as mi
>>> ld = mi.prepare(df, "CHANGE ~ BASVAL*VISIT + THERAPY*VISIT + us(VISIT | PATIENT)",
...                 group="THERAPY", reference="PLACEBO", ice={"1513": "5", ...}, strategy="J2R")
>>> dr = mi.draws(ld, "condmean-jackknife")             # or condmean-bootstrap / approx-bayes
>>> run = mi.ImputationAnalysis(ld, dr)
>>> run.results()                                          # pooled difference + LS means per visit
>>> run.results(delta_experimental=2.0)                    # delta adjustment of imputed post-ICE values
>>> run.grid("7", [0, 1, 2], [0, -1]); run.tipping_delta("7", "experimental")

Steps (rbmi's draws/impute/analyse/pool): :func:`prepare` builds the completed subject x visit grid,
the ICE visit and strategy of each subject and fits the imputation MMRM to the MAR data;
:func:`draws` refits it on leave-one-out / bootstrap samples by re-weighting subjects' sufficient
statistics (:mod:`.refit`); :func:`impute` completes the data (:mod:`.strategies`); :func:`ancova`
analyses each data set per visit; :mod:`.core` pools (jackknife, bootstrap, Rubin/Barnard-Rubin).
Sign: estimates are experimental minus control (the arm that is not ``reference`` minus it).
"""

from .core import (
    METHODS,
    Analysis,
    Draws,
    ImputationAnalysis,
    Pooled,
    ancova,
    delta_matrix,
    draws,
    impute,
    pool_bootstrap_normal,
    pool_bootstrap_percentile,
    pool_grouped_jackknife,
    pool_jackknife,
    jackknife_groups,
    rubin,
)
from .data import STRATEGIES, LongData, ice_from_dropout, normalise_strategy, prepare
from .strategies import compute_sigma, distribution

__all__ = [
    "METHODS",
    "STRATEGIES",
    "Analysis",
    "Draws",
    "ImputationAnalysis",
    "LongData",
    "Pooled",
    "ancova",
    "compute_sigma",
    "delta_matrix",
    "distribution",
    "draws",
    "ice_from_dropout",
    "impute",
    "normalise_strategy",
    "pool_bootstrap_normal",
    "pool_bootstrap_percentile",
    "pool_grouped_jackknife",
    "pool_jackknife",
    "jackknife_groups",
    "prepare",
    "rubin",
]
