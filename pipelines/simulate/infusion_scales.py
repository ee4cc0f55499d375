"""CADSS and BPRS rated around each infusion (pre-infusion, +40 min, +240 min), written as REDCap-style
exports whose events are manifest visits of ``phase: infusion`` (the generic per-infusion time-point
mechanics: ADQS takes INFNO / ATPT / ATPTN from the visit, and the per-infusion baseline rule A10).

Random numbers come from a stream of their own, a child of the study seed with a spawn key far beyond
the trial's named streams (``STREAM_KEY``), so adding these files changes no other value of the study:
the efficacy data, the safety domains and every result stay as without them.

Sources. "Feder 2021" = Feder et al., Am J Psychiatry 2021;178:193-202; "Feder 2014" = Feder et al.,
JAMA Psychiatry 2014;71:681-688 (single ketamine infusion in PTSD, the same group and protocol family).
shared/docs/domain.md has no CADSS or BPRS numbers (the Feder 2021 abstract is truncated at "well
tolerated overall, without serious ..."); what follows is what both papers describe in words plus
magnitudes that are our assumptions, labelled as such:

* Schedule (Feder 2021): CADSS and BPRS before each of the six infusions and at 40 min (the end of the
  40-min infusion) and 240 min after its start; the pre-infusion rating is taken 15 min before the
  start (assumption, as the vital signs in pipelines/simulate/safety.py). A subject is rated at the
  infusions they received (the EX rule of safety.py: all six for week-2 completers, else those up to
  the last attended visit).
* CADSS (23 subject-rated items, 0-4, total 0-92), Feder 2014/2021: with ketamine dissociation rises
  sharply at 40 min and is back at the pre-infusion level by 240 min; midazolam changes it little.
  Assumptions for the size: pre-infusion mean total about 1 in both arms (PTSD patients report a
  little dissociation); at 40 min ketamine adds about 11 points on average (Feder 2014 reported a
  ketamine CADSS total around 11 at 40 min vs about 1-2 with midazolam - our reading, UNCONFIRMED in
  our sources), with a log-normal subject multiplier (SD 0.5 on the log scale: some subjects dissociate
  much more than others), midazolam about 1.5 points; at 240 min ketamine 0.3, midazolam 0.
* BPRS (18 items, 1-7, total 18-126; positive-symptom subscale items 4, 11, 12, 15, 4-28), Feder
  2014/2021: a small transient rise of positive symptoms with ketamine at 40 min, none lasting to 240
  min. Assumptions: pre-infusion total about 30 (PTSD: anxiety, tension, depressive mood, somatic
  concern and guilt above "not present"; psychotic items at the floor); at 40 min ketamine adds about
  0.3 per positive item (subscale about +1.2; conceptual disorganization and unusual thought content
  most) and some blunted affect/emotional withdrawal and disorientation (total about +2); midazolam adds
  sedation-like motor retardation and blunted affect (total about +0.6, positive subscale about +0.1).

Item values: ``item = min + Poisson(mean)`` clipped to the item range, where the item means spread the
expected total over the items by fixed weights, so the expected totals are the numbers above (clipping
at the top is rare at these means).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.instruments import load_instruments

# A child of SeedSequence(seed) outside the trial's named streams (0..len(_STREAMS)-1) and the
# intercurrent-event stream (1001): nothing else draws from it.
STREAM_KEY = 1515
INSTRUMENTS = ("cadss", "bprs")
PRE_MINUTES = -15


@dataclass(frozen=True)
class TimePoint:
    code: str  # visit id suffix and REDCap event part
    name: str  # ATPT
    minutes: int  # ATPTN / elapsed_min: minutes from the start of the infusion


TIMEPOINTS = (
    TimePoint("PRE", "PRE-INFUSION", PRE_MINUTES),
    TimePoint("P40", "40 MIN", 40),
    TimePoint("P240", "240 MIN", 240),
)


@dataclass(frozen=True)
class InfusionVisit:
    id: str
    label: str
    day: int
    infusion: int
    timepoint: TimePoint
    redcap_event: str


def infusion_visits() -> tuple[InfusionVisit, ...]:
    """One visit per infusion x time point: I1PRE, I1P40, I1P240, I2PRE, ... (nominal infusion days)."""
    from pipelines.simulate.safety import INFUSION_DAYS

    out = []
    for k, day in enumerate(INFUSION_DAYS, start=1):
        for tp in TIMEPOINTS:
            label = f"Infusion {k}, {'pre-infusion' if tp.minutes <= 0 else tp.name.lower()}"
            out.append(InfusionVisit(f"I{k}{tp.code}", label, day, k, tp, f"infusion_{k}_{tp.code.lower()}_arm_1"))
    return tuple(out)


# --- magnitudes (assumptions, see the module docstring) -------------------------------------------
CADSS_PRE_TOTAL = 1.0
CADSS_PRE_SUBJECT_SD = 0.5  # log-scale SD of the subject's own pre-infusion level
CADSS_ADDED = {  # (arm, time point code) -> mean points added to the pre-infusion total
    ("KET", "P40"): 11.0, ("KET", "P240"): 0.3,
    ("MID", "P40"): 1.5, ("MID", "P240"): 0.0,
}
CADSS_RESPONSE_SD = 0.5  # log-scale SD of the subject's multiplier of the added dissociation
CADSS_OCCASION_SD = 0.25  # log-scale SD of the infusion-to-infusion variation of that multiplier

# BPRS item means above the floor (1 = not present) before the infusion: PTSD symptoms, not psychosis
# fmt: off
BPRS_PRE = np.array([
    1.0, 2.0, 0.8, 0.0, 1.0, 1.8, 0.1, 0.0, 1.8,  # 1 somatic .. 9 depressive mood
    0.8, 0.4, 0.0, 0.5, 0.2, 0.0, 0.8, 0.2, 0.0,  # 10 hostility .. 18 disorientation
])  # sum 11.4 -> total about 29.4
BPRS_ADDED = {  # (arm, time point code) -> mean added per item at that time point
    ("KET", "P40"): np.array([0, 0, 0.3, 0.4, 0, 0, 0.1, 0, 0, 0, 0.2, 0.2, 0, 0, 0.4, 0.3, 0, 0.3]),
    ("KET", "P240"): np.array([0, 0, 0, 0.03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.03, 0, 0, 0]),
    ("MID", "P40"): np.array([0, 0, 0.1, 0.03, 0, 0, 0, 0, 0, 0, 0.02, 0.02, 0.3, 0, 0.03, 0.15, 0, 0]),
    ("MID", "P240"): np.zeros(18),
}
# fmt: on
BPRS_SUBJECT_SD = 0.3  # log-scale SD of the subject's own symptom level
BPRS_RESPONSE_SD = 0.5  # log-scale SD of the subject's multiplier of the added symptoms


def stream(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(STREAM_KEY,))))


def simulate(trial) -> dict[str, pl.DataFrame]:
    """Instrument id -> REDCap-style frame: one row per subject x received infusion x time point."""
    from pipelines.simulate.formats import REDCAP_DAY_COLUMN, redcap_item_columns, redcap_spec
    from pipelines.simulate.safety import received_infusions

    rng = stream(trial.seed)
    inst = load_instruments()
    n = trial.n
    arm = trial.subjects["arm"].to_list()
    received = received_infusions(trial)
    visits = infusion_visits()
    # subject terms first, in a fixed order, for every subject (a subject's draws do not depend on
    # how many infusions the others received)
    cadss_level = CADSS_PRE_TOTAL * np.exp(rng.normal(-0.5 * CADSS_PRE_SUBJECT_SD**2, CADSS_PRE_SUBJECT_SD, n))
    cadss_resp = np.exp(rng.normal(-0.5 * CADSS_RESPONSE_SD**2, CADSS_RESPONSE_SD, n))
    bprs_level = np.exp(rng.normal(-0.5 * BPRS_SUBJECT_SD**2, BPRS_SUBJECT_SD, n))
    bprs_resp = np.exp(rng.normal(-0.5 * BPRS_RESPONSE_SD**2, BPRS_RESPONSE_SD, n))
    k_cadss = len(inst["cadss"].core_items)
    # CADSS item weights: how the expected total spreads over the 23 items (derealization and
    # depersonalization items a little more often than the rest; assumption)
    w = np.ones(k_cadss)
    w[[1, 2, 3, 5, 6, 14, 17]] = 2.0
    w = w / w.sum()
    rows = {key: [] for key in INSTRUMENTS}
    n_slots = len(visits)
    for i in range(n):
        occasion = np.exp(rng.normal(-0.5 * CADSS_OCCASION_SD**2, CADSS_OCCASION_SD, n_slots))
        cadss_draws = rng.random((n_slots, k_cadss))
        bprs_draws = rng.random((n_slots, 18))
        for j, v in enumerate(visits):
            if v.infusion not in received[i]:
                continue
            tp = v.timepoint.code
            total = cadss_level[i] + CADSS_ADDED.get((arm[i], tp), 0.0) * cadss_resp[i] * occasion[j]
            cadss = _poisson_items(cadss_draws[j], total * w, 0, 4)
            bprs_mean = BPRS_PRE * bprs_level[i] + BPRS_ADDED.get((arm[i], tp), np.zeros(18)) * bprs_resp[i]
            bprs = _poisson_items(bprs_draws[j], bprs_mean, 1, 7)
            common = {
                "record_id": trial.subjects["usubjid"][i],
                "redcap_event_name": v.redcap_event,
                REDCAP_DAY_COLUMN: v.day,
            }
            rows["cadss"].append((common, cadss))
            rows["bprs"].append((common, bprs))
    out = {}
    for key in INSTRUMENTS:
        spec = redcap_spec(key)
        cols = redcap_item_columns(inst[key], spec["items"])
        data = [
            {**common, **dict(zip(cols, (int(x) for x in items), strict=True)), spec["total"]: int(items.sum()),
             f"{spec['form']}_complete": 2}
            for common, items in rows[key]
        ]
        out[key] = pl.DataFrame(data)
    return out


def _poisson_items(u: np.ndarray, mean: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """lo + Poisson(mean) by inversion of uniform draws ``u`` (one per item), clipped to [lo, hi]."""
    from scipy.stats import poisson

    return np.clip(lo + poisson.ppf(u, np.maximum(mean, 1e-12)), lo, hi).astype(np.int64)


def manifest_visits() -> str:
    """The visits block entries (YAML) for the infusion time points."""
    lines = []
    for v in infusion_visits():
        lines.append(
            f"  - {{id: {v.id}, label: \"{v.label}\", day: {v.day}, phase: infusion, infusion: {v.infusion}, "
            f"timepoint: \"{v.timepoint.name}\", elapsed_min: {v.timepoint.minutes}, codes: [\"{v.redcap_event}\"]}}"
        )
    return "\n".join(lines)


def manifest_blocks() -> str:
    from pipelines.simulate.formats import REDCAP_DAY_COLUMN, redcap_spec

    inst = load_instruments()
    out = []
    for key in INSTRUMENTS:
        spec = redcap_spec(key)
        out.append(
            f"""\
  # {inst[key].instrument} around each infusion (pre-infusion, 40 min, 240 min; visits of phase infusion),
  # REDCap-style export: one row per record x infusion time point (pipelines/simulate/infusion_scales.py).
  - file: {file_name(key)}
    kind: {key}
    layout: wide
    delimiter: ","
    columns: {{subject: record_id, visit: redcap_event_name, study_day: {REDCAP_DAY_COLUMN}}}
    items: "{spec["items"]}"
    total: {spec["total"]}
"""
        )
    return "".join(out)


def file_name(key: str) -> str:
    return f"safety/{key}.csv"


def write(trial, target) -> None:
    """Write safety/cadss.csv and safety/bprs.csv; ``target(rel)`` returns the path (and records it)."""
    for key, frame in simulate(trial).items():
        frame.write_csv(target(file_name(key)), line_terminator="\n")
