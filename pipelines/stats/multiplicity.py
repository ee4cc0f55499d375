"""Multiplicity adjustment of a family of p-values (adjusted p-values, compare with alpha).

Methods (``analysis.multiplicity`` in the manifest):

* ``holm`` (default) - Holm's step-down Bonferroni: sort ascending, p~(i) = max over j <= i of
  min(1, (m - j + 1) p(j)). Strong FWER control under any dependence.
* ``hochberg`` - Hochberg's step-up: p~(i) = min over j >= i of min(1, (m - j + 1) p(j)). FWER under
  independence or positive dependence (clusters of one instrument are positively correlated).
* ``fdr_bh`` - Benjamini-Hochberg: p~(i) = min over j >= i of min(1, m p(j) / j). Controls the false
  discovery rate, not the FWER.
* ``bonferroni`` - min(1, m p).
* ``fixed_sequence`` - hierarchical testing in a pre-specified order (CAPS-5/PCL-5 clusters: B, C, D,
  E), each at the full alpha, stopping at the first non-rejection. Adjusted p-value of the k-th
  hypothesis = max(p(1), ..., p(k)) in the test order, so "p~ <= alpha" is exactly "reached and
  rejected". Computed by hand (statsmodels has no fixed-sequence method).
* ``none`` - p~ = p.

Holm, Hochberg, BH and Bonferroni are statsmodels' ``multipletests`` (methods ``holm``,
``simes-hochberg``, ``fdr_bh``, ``bonferroni``).

Missing p-values (a hypothesis of the family whose model could not be fitted) are counted as
p = 1: the planned family size m is kept, so a failed fit never makes the others' adjustment
milder; their own adjusted p-value stays missing. Under fixed-sequence a missing p-value stops the
sequence (every later hypothesis gets adjusted p = 1 at least, i.e. is not rejected).
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterator, Sequence

import numpy as np

METHODS = ("holm", "hochberg", "fdr_bh", "fixed_sequence", "bonferroni", "none")
_STATSMODELS = {"holm": "holm", "hochberg": "simes-hochberg", "fdr_bh": "fdr_bh", "bonferroni": "bonferroni"}
LABELS = {
    "holm": "Holm",
    "hochberg": "Hochberg",
    "fdr_bh": "Benjamini-Hochberg",
    "fixed_sequence": "fixed sequence",
    "bonferroni": "Bonferroni",
    "none": "none",
}


def adjust(p_values: Sequence[float | None], method: str) -> list[float | None]:
    """Adjusted p-values of one family, in the order given (for fixed_sequence: the test order).

    ``None``/NaN entries count as p = 1 for the others and come back as ``None``."""
    if method not in METHODS:
        raise ValueError(f"unknown multiplicity method {method!r}; use one of {', '.join(METHODS)}")
    raw = [None if (p is None or (isinstance(p, float) and math.isnan(p))) else float(p) for p in p_values]
    if not raw:
        return []
    for p in raw:
        if p is not None and not 0.0 <= p <= 1.0:
            raise ValueError(f"p-value {p} is outside [0, 1]")
    filled = np.array([1.0 if p is None else p for p in raw])
    if method == "none":
        adj = filled
    elif method == "fixed_sequence":
        adj = np.maximum.accumulate(filled)
    else:
        from statsmodels.stats.multitest import multipletests

        with _heap_frozen():
            adj = multipletests(filled, method=_STATSMODELS[method])[1]
    return [None if p is None else float(min(1.0, a)) for p, a in zip(raw, adj, strict=True)]


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """statsmodels' Holm path ends with ``gc.collect()``: a full collection of the whole process heap
    (Dagster, Great Expectations, the data: 0.27 s a call in a study run) to free one small array.
    With the heap frozen that collection sees only what the call made; unfreezing hands every object
    back to the collector as before."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
