"""CAPS-5 diagnostic items 21-25 (onset, duration, distress, social and occupational impairment).

In words. The symptom severities (items 1-20) come from the calibrated model and are never touched;
these items are drawn afterwards from random streams of their own (children of the seed with spawn
keys (``DIAGNOSIS_STREAM_KEY``, part): one for per-subject facts, one per visit), so every other
value of a simulated study is the same with or without them, and a visit's values do not depend on
how many visits follow it. Assumptions (not calibrated; Feder 2021 enrolled chronic PTSD, median illness duration 14 years):

* item 21 delayed onset (>= 6 months), 0/1: a fixed fact per subject, yes with probability
  ``DELAYED_ONSET_P``; it is in no score and no criterion;
* item 22 duration > 1 month, 0/1: 1 at every assessment (chronic PTSD by inclusion);
* items 23-25 (criterion G, severity 0-4): the subject's mean symptom severity at the visit (mean of
  items 1-20, 0-4), plus a fixed offset per item (distress rated a little above the symptoms,
  occupational impairment a little below), plus normal noise (SD ``G_NOISE_SD``), rounded and
  clipped to 0-4. Inclusion needs clinically significant distress or impairment, so at the baseline
  visit a subject whose three ratings are all below 2 gets distress 2.
  Loss of diagnosis therefore follows the symptoms: more likely on ketamine, whose severities fall
  more, with no arm term of its own.
* missing: each item missing with the study's ``missing_item_rate``, from the same own stream.

Baseline diagnosis for every subject by inclusion holds for criteria A (screening), F and G by
construction; criteria B-E are judged on the calibrated items 1-20 as simulated (changing them would
change the efficacy results), so a subject whose simulated baseline misses a symptom criterion has
no baseline diagnosis and is not evaluable for loss of diagnosis (it counts as a non-responder under
non-responder imputation).
"""

from __future__ import annotations

import numpy as np

from pipelines.instruments import Instrument

DIAGNOSIS_STREAM_KEY = 1002  # far beyond trial._STREAMS and ICE_STREAM_KEY (1001)
DELAYED_ONSET_P = 0.2  # assumption
G_OFFSETS = (0.3, 0.0, -0.3)  # distress, social, occupational (assumption)
G_NOISE_SD = 0.6  # assumption
ONSET, DURATION, G_ITEMS = 21, 22, (23, 24, 25)


def diagnosis_rng(seed: int, part: int) -> np.random.Generator:
    """Part 0 = per-subject facts, part j + 1 = visit j: a visit's draws do not depend on how many
    visits the design has (BL..W2 are the same with and without follow-up visits)."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(DIAGNOSIS_STREAM_KEY, part)))
    )


def simulate_diagnostic_items(
    inst: Instrument, seed: int, symptoms: np.ndarray, missing_item_rate: float
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """(item numbers 21-25, values (n, V, 5) int8, missing (n, V, 5) bool) from the symptom items
    ``symptoms`` (n, V, 20) of the same subjects and visits."""
    numbers = (ONSET, DURATION, *G_ITEMS)
    for k in numbers:
        inst.item(k)  # KeyError if the definition lacks an item
    n, v, _ = symptoms.shape
    onset = (diagnosis_rng(seed, 0).random(n) < DELAYED_ONSET_P).astype(np.int8)
    visit_rngs = [diagnosis_rng(seed, j + 1) for j in range(v)]
    mean_sev = symptoms.astype(float).mean(axis=2)  # (n, V)
    noise = np.stack([r.normal(0.0, G_NOISE_SD, size=(n, len(G_ITEMS))) for r in visit_rngs], axis=1)
    g = np.rint(mean_sev[:, :, None] + np.array(G_OFFSETS)[None, None, :] + noise)
    g = np.clip(g, 0, 4).astype(np.int8)
    below = g[:, 0, :].max(axis=1) < 2
    g[below, 0, 0] = 2  # baseline visit: inclusion needs distress or impairment
    values = np.concatenate(
        [np.broadcast_to(onset[:, None, None], (n, v, 1)), np.ones((n, v, 1), dtype=np.int8), g], axis=2
    ).astype(np.int8)
    missing = np.stack([r.random((n, len(numbers))) for r in visit_rngs], axis=1) < missing_item_rate
    return numbers, values, missing
