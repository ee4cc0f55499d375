"""Item responses for any instrument definition, from a latent severity (every instrument other than
the three calibrated ones in :mod:`pipelines.simulate.model`).

In words. Each subject has a stable severity on a 0-1 scale (a fraction of each item's range): a
study-wide ``baseline`` plus a subject deviation (SD ``subject_sd``). Over the visits it changes by
the same time profiles as the calibrated model (``Params.time_profiles``): a non-specific change
``change_control`` at week 2 shared by both arms, with a subject-specific response deviation (SD
``response_sd``), plus the experimental arm's specific change ``change_experimental`` (multiplied by
``effect_scale``: 0 = a null trial). An occasion deviation (SD ``occasion_sd``) moves all items of a
visit; each item adds its own noise (SD ``item_sd``). An item's value is ``min + (max - min) x`` that
fraction, rounded to the nearest category and clipped to the item's range (its own range when the
definition gives one). A scale that rates change itself (``change_scale``, CGI-I) is ``0.5`` (no
change: the middle of its range) plus ``change_gain`` x the subject's change since baseline, and is
not rated at the baseline visit.

Defaults are Feder-like on the fraction scale (assumptions, not calibrated): CAPS-5 in Feder 2021
had baseline ~40 of 80 (0.5), a baseline SD of 10.5 (0.13), and a ketamine - midazolam week-2
difference of -11.88 (-0.15). An instrument's YAML may override any of them under ``simulation:``
(CADSS: a dissociation scale near its floor at baseline that ketamine raises).

Each instrument draws from a random stream of its own, seeded by (seed, instrument id), so adding
an instrument to a simulated study changes no value of the others and the default three-instrument
study is byte-identical with or without this module.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pipelines.instruments import Instrument


@dataclass(frozen=True)
class GenericParams:
    baseline: float = 0.55  # assumption: moderate-severe at entry
    subject_sd: float = 0.13  # Feder 2021 derived: CAPS-5 baseline SD 10.5 of 80
    change_control: float = -0.08  # assumption: non-specific week-2 change (midazolam)
    change_experimental: float = -0.15  # Feder 2021 derived: -11.88 of 80 CAPS-5 points at week 2
    response_sd: float = 0.08  # assumption: subject-specific response deviation at week 2
    occasion_sd: float = 0.04  # assumption
    item_sd: float = 0.12  # assumption: item-level noise
    change_gain: float = 1.5  # assumption: change scales, fraction of range per unit of change


def instrument_rng(seed: int, instrument_id: str) -> np.random.Generator:
    """The instrument's own stream: independent of the default streams and of other instruments."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(instrument_id.encode())])))


def simulate_items(
    inst: Instrument,
    rng: np.random.Generator,
    is_exp: np.ndarray,
    profiles: tuple[np.ndarray, np.ndarray],
    effect_scale: float = 1.0,
) -> np.ndarray:
    """(n subjects, V visits, k core items) int8 ratings of one instrument."""
    p = inst.simulation_params(GenericParams)
    g_ns, g_exp = (np.asarray(x, dtype=float)[None, :] for x in profiles)  # (1, V)
    n, v = is_exp.size, g_ns.shape[1]
    items = inst.core_items
    k = len(items)
    z = rng.standard_normal((n, 1))
    r = rng.standard_normal((n, 1))
    occ = rng.standard_normal((n, v))
    eps = rng.standard_normal((n, v, k))
    change = g_ns * (p.change_control + p.response_sd * r) + is_exp.astype(float)[:, None] * g_exp * (
        p.change_experimental * effect_scale
    )
    if inst.change_scale:
        level = 0.5 + p.change_gain * change
    else:
        level = p.baseline + p.subject_sd * z + change
    frac = (level + p.occasion_sd * occ)[:, :, None] + p.item_sd * eps
    lo = np.array([inst.item_range(i)[0] for i in items], dtype=float)
    hi = np.array([inst.item_range(i)[1] for i in items], dtype=float)
    values = lo + (hi - lo) * frac
    return np.clip(np.floor(values + 0.5), lo, hi).astype(np.int8)


def score_totals(inst: Instrument, values: np.ndarray) -> np.ndarray:
    """The instrument total of ratings (..., k core items) by its definition: the sum of its
    components, a max_of group counting once by its largest item (QIDS-SR16)."""
    pos = {n: j for j, n in enumerate(inst.core_items)}
    parts = [values[..., [pos[n] for n in g]].max(axis=-1).astype(np.int64) for g in inst.total.components()]
    return np.sum(parts, axis=0)
