"""The simulated trial in memory: design, subjects, visit days, dropout, items, missing items.

Everything random comes from one ``numpy.random.SeedSequence(seed)`` split into named, independent
streams, so a seed fixes the whole study, and the item values do not depend on the output formats
or on ``missing_item_rate`` (the missing-item mask is drawn from its own stream and nested: a
higher rate only adds missing cells).

The visit schedule belongs to the trial (``Trial.visits``): the default four visits of Feder 2021
(``VISITS``), or five with the optional follow-up visit W4 (``design_visits(follow_up=True)``).
Everything about W4 is drawn from a stream of its own after the four-visit study, so turning the
follow-up on changes no value at BL..W2 and the default study is the same as without the option.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pipelines.instruments import load_instruments
from pipelines.simulate import diagnosis, generic, model

DEFAULT_SEED = 20210105  # Feder 2021 was published online on 5 Jan 2021
DEFAULT_PER_ARM = 15  # Feder 2021: N = 30 randomized 1:1


@dataclass(frozen=True)
class VisitSpec:
    id: str
    label: str
    day: int  # nominal study day (day 0 = baseline, the day of the first infusion)
    visitnum: int  # SDTM VISITNUM
    redcap_event: str  # REDCap event name
    nda_label: str  # NDA ``visit`` element
    sdtm_label: str  # SDTM VISIT
    jitter: tuple[tuple[int, float], ...]  # (actual day, probability); assumption


# Feder 2021: baseline, 24 h after the first infusion, weekly visits; primary at week 2 (day 14).
VISITS: tuple[VisitSpec, ...] = (
    VisitSpec("BL", "Baseline", 0, 1, "baseline_arm_1", "baseline", "BASELINE", ((0, 1.0),)),
    VisitSpec(
        "D1", "Day 1 (24 h after infusion 1)", 1, 2, "day_1_arm_1", "day 1", "DAY 1", ((1, 0.9), (2, 0.1))
    ),
    VisitSpec("W1", "Week 1", 7, 3, "week_1_arm_1", "week 1", "WEEK 1", ((6, 0.2), (7, 0.6), (8, 0.2))),
    VisitSpec(
        "W2",
        "Week 2",
        14,
        4,
        "week_2_arm_1",
        "week 2",
        "WEEK 2",
        ((13, 0.15), (14, 0.6), (15, 0.2), (16, 0.05)),
    ),
)
PRIMARY_VISIT = "W2"
# Optional follow-up visit, two weeks after the last infusion (Feder 2021 followed ketamine
# responders after week 2 for time to loss of response). Jitter 26-30 days: assumption, a wider
# window than the weekly visits of the infusion course.
FOLLOW_UP_VISIT = VisitSpec(
    "W4",
    "Week 4 (follow-up)",
    28,
    5,
    "week_4_arm_1",
    "week 4",
    "WEEK 4",
    ((26, 0.1), (27, 0.2), (28, 0.4), (29, 0.2), (30, 0.1)),
)
# Assumption: a few more subjects miss the follow-up visit than the visits of the infusion course:
# each week-2 completer misses W4 with probability 0.05, in either arm, completely at random.
# (A subject who dropped out before week 2 has no W4 either.)
FOLLOW_UP_ATTRITION = 0.05


def weekly_follow_up_visits(weeks: int) -> tuple[VisitSpec, ...]:
    """Weekly follow-up assessments after the treatment phase: W3 .. W(2 + weeks), day 7 x week,
    jittered one day either way (assumption)."""
    return tuple(
        VisitSpec(
            f"W{w}",
            f"Week {w} (follow-up)",
            7 * w,
            len(VISITS) + i + 1,
            f"week_{w}_arm_1",
            f"week {w}",
            f"WEEK {w}",
            ((7 * w - 1, 0.2), (7 * w, 0.6), (7 * w + 1, 0.2)),
        )
        for i, w in enumerate(range(3, 3 + weeks))
    )


# Assumption: each week of follow-up, a subject still followed misses the assessment and every later
# one with probability 0.02 (lost to follow-up, completely at random).
WEEKLY_FOLLOW_UP_ATTRITION = 0.02


def design_visits(follow_up: bool = False, follow_up_weeks: int = 0) -> tuple[VisitSpec, ...]:
    """The visit schedule: BL, D1, W1, W2 (= ``VISITS``), plus W4 with ``follow_up``, or weekly
    follow-up visits W3.. with ``follow_up_weeks``. W2 stays primary."""
    if follow_up and follow_up_weeks:
        raise ValueError("choose either the single W4 follow-up visit or weekly follow-up weeks, not both")
    if follow_up_weeks:
        return (*VISITS, *weekly_follow_up_visits(follow_up_weeks))
    return (*VISITS, FOLLOW_UP_VISIT) if follow_up else VISITS


@dataclass(frozen=True)
class ArmSpec:
    id: str
    label: str
    role: str
    code: str  # randomization.csv code
    sdtm_arm: str  # DM.ARM


ARMS: tuple[ArmSpec, ...] = (
    ArmSpec("KET", "Ketamine 0.5 mg/kg", "experimental", "1", "KETAMINE 0.5 MG/KG IV"),
    ArmSpec("MID", "Midazolam 0.045 mg/kg", "control", "0", "MIDAZOLAM 0.045 MG/KG IV"),
)
SITE = "01"  # Feder 2021 was a single-site trial (Icahn School of Medicine at Mount Sinai)

# Feder 2021 registry table (NCT02397889): age 38.9 (SD 13.2) years; 23 female, 6 male, 1 other of 30.
AGE_MEAN, AGE_SD, AGE_MIN, AGE_MAX = 38.9, 13.2, 18, 65  # adults 18-65 (assumption for the range)
SEX_SHARES = (("F", 23 / 30), ("M", 6 / 30), ("O", 1 / 30))
# Shifted (NDA-masked) baseline dates fall in this window; random per subject, derived from nothing.
SHIFT_WINDOW = (dt.date(2016, 1, 1), dt.date(2019, 12, 31))
GUID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))

# Child i of SeedSequence(seed).spawn(k) is the same for any k >= i + 1, so a stream appended here
# leaves the others unchanged. "follow_up" feeds everything about visits after W2 (sub-streams
# _FOLLOW_UP_STREAMS); it is never drawn from in the default four-visit design.
# "disposition" (main), then "durability" (the weekly follow-up, ``follow_up_weeks``) and "safety"
# (AE/VS/EX/DS): none is drawn from in the default design.
_STREAMS = (
    "design", "caps5", "pcl5", "madrs", "days", "dropout", "missing", "keys", "follow_up", "disposition",
    "durability", "safety",
)
_DURABILITY_STREAMS = ("days", "dropout", "caps5", "pcl5", "madrs", "missing", "relapse")
_FOLLOW_UP_STREAMS = ("days", "dropout", "caps5", "pcl5", "madrs", "missing")
# The default instruments (the calibrated latent model); any other definition is simulated by
# pipelines.simulate.generic from a stream of its own.
INSTRUMENT_ORDER = ("pcl5", "caps5", "madrs")


def check_instruments(instruments) -> tuple[str, ...]:
    """Instrument ids as given (names such as 'IES-R' resolved), without repeats; ValueError if unknown."""
    from pipelines.instruments import resolve_instrument

    out = []
    for name in instruments:
        inst = resolve_instrument(str(name))
        if inst is None:
            raise ValueError(f"unknown instrument {name!r}; known: {', '.join(load_instruments())}")
        if inst.id not in out:
            out.append(inst.id)
    if not out:
        raise ValueError("no instrument given")
    return tuple(out)


# Intercurrent events (optional, off by default): their own random stream, a child of the seed
# with a spawn key far beyond _STREAMS, so adding it (or other helpers appending streams) changes no
# existing draw.
ICE_STREAM_KEY = 1001
DISCONTINUATION_REASONS = (
    "ADVERSE EVENT",
    "WITHDRAWAL BY SUBJECT",
    "PHYSICIAN DECISION",
    "LOST TO FOLLOW-UP",
)
# MNAR dropout: logit P(discontinue) = a + MNAR_SLOPE * z, z the standardised CAPS-5 total change at D1
# (positive = less improvement); a is solved so that the mean probability is the requested rate.
MNAR_SLOPE = 1.5


# Discontinuation reasons (CDISC NCOMPLT terms). Feder 2021's one ketamine dropout: "Physician
# Decision" (ClinicalTrials.gov); in larger simulated studies the first dropout keeps that reason
# and the others draw from these shares (assumption), from the appended "disposition" stream.
FEDER_DROPOUT_REASON = "PHYSICIAN DECISION"
DROPOUT_REASONS = (
    ("PHYSICIAN DECISION", 0.25), ("WITHDRAWAL BY SUBJECT", 0.35), ("LOST TO FOLLOW-UP", 0.25), ("ADVERSE EVENT", 0.15),
)


def n_dropouts(per_arm: int) -> int:
    """Ketamine-arm dropouts before week 2: Feder 2021 had 1 of 15 (reason "Physician Decision");
    scaled as round(per_arm / 15), at least 1; none in the midazolam arm (15/15 completed)."""
    return min(per_arm, max(1, round(per_arm / 15)))


@dataclass
class Trial:
    """One simulated study. Arrays are indexed [subject, visit, item] in subject-id order."""

    study_id: str
    seed: int
    per_arm: int
    subjects: pl.DataFrame
    days: np.ndarray  # (n, V) actual study day
    observed: np.ndarray  # (n, V) visit attended
    items: dict[str, np.ndarray]  # instrument id -> (n, V, k) int8
    missing: dict[str, np.ndarray]  # instrument id -> (n, V, k) bool (item not answered)
    visits: tuple[VisitSpec, ...] = VISITS  # the schedule; V = len(visits)
    primary_visit: str = PRIMARY_VISIT
    instruments: tuple[str, ...] = INSTRUMENT_ORDER  # ids of the instruments simulated, in file order
    follow_up_weeks: int = 0  # weekly follow-up visits after W2 (phase follow_up in study.yaml)
    relapse_days: np.ndarray | None = None  # (n,) latent relapse time after W2 (weekly follow-up only)
    safety_rng: np.random.Generator | None = None  # the "safety" stream (AE/VS/EX/DS)
    # instrument id -> (item numbers, values (n, V, k), missing (n, V, k)) of items outside the core
    # set that the files carry too (CAPS-5 diagnostic items 21-25, pipelines.simulate.diagnosis)
    extra_items: dict[str, tuple[tuple[int, ...], np.ndarray, np.ndarray]] = field(default_factory=dict)

    def item_block(self, key: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(item numbers, values (n, V, k), missing (n, V, k)) of every item the files carry: the core
        items in definition order, then the extra ones. Totals use the core items only."""
        core = list(load_instruments()[key].core_items)
        if key not in self.extra_items:
            return core, self.items[key], self.missing[key]
        numbers, vals, miss = self.extra_items[key]
        return (
            core + list(numbers),
            np.concatenate([self.items[key], vals.astype(self.items[key].dtype)], axis=2),
            np.concatenate([self.missing[key], miss], axis=2),
        )

    @property
    def n(self) -> int:
        return self.subjects.height

    @property
    def follow_up_visits(self) -> tuple[VisitSpec, ...]:
        """The visits after the primary one (W4 with follow-up; none in the default design)."""
        ids = [v.id for v in self.visits]
        return self.visits[ids.index(self.primary_visit) + 1 :]

    def long(self) -> pl.DataFrame:
        """One row per subject x attended visit x instrument x item (value null when missing)."""
        inst = load_instruments()
        usubjid = self.subjects["usubjid"].to_numpy()
        arm = self.subjects["arm"].to_numpy()
        frames = []
        for key in self.instruments:
            vals = self.items[key]
            n, v, k = vals.shape
            s_idx, v_idx, i_idx = np.meshgrid(np.arange(n), np.arange(v), np.arange(k), indexing="ij")
            keep = np.broadcast_to(self.observed[:, :, None], vals.shape).ravel()
            s_idx, v_idx, i_idx = s_idx.ravel()[keep], v_idx.ravel()[keep], i_idx.ravel()[keep]
            value = vals.ravel()[keep].astype(np.int64)
            miss = self.missing[key].ravel()[keep]
            frames.append(
                pl.DataFrame(
                    {
                        "study_id": self.study_id,
                        "usubjid": usubjid[s_idx],
                        "arm": arm[s_idx],
                        "visit": np.array([x.id for x in self.visits])[v_idx],
                        "visitnum": np.array([x.visitnum for x in self.visits], dtype=np.int64)[v_idx],
                        "study_day": self.days[s_idx, v_idx].astype(np.int64),
                        "instrument": inst[key].instrument,
                        "item": np.array(inst[key].core_items)[i_idx].astype(np.int64),
                        "value": pl.Series(value).scatter(np.flatnonzero(miss), None)
                        if miss.any()
                        else value,
                    }
                )
            )
        return pl.concat(frames)


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    return {name: np.random.Generator(np.random.PCG64(s)) for name, s in zip(_STREAMS, children, strict=True)}


def visit_days(rng: np.random.Generator, n: int, visits: tuple[VisitSpec, ...] = VISITS) -> np.ndarray:
    """Actual study day of each visit: baseline day 0, the others jittered around nominal (assumption)."""
    cols = []
    for v in visits:
        days, probs = zip(*v.jitter, strict=True)
        cols.append(rng.choice(np.array(days), size=n, p=np.array(probs)))
    return np.stack(cols, axis=1).astype(float)


def _sex_counts(n: int) -> list[tuple[str, int]]:
    """Largest-remainder split of n subjects in the registry proportions (30 -> 23 F, 6 M, 1 O)."""
    raw = [(code, share * n) for code, share in SEX_SHARES]
    counts = {code: int(np.floor(x)) for code, x in raw}
    left = n - sum(counts.values())
    for code, _ in sorted(raw, key=lambda t: -(t[1] - np.floor(t[1])))[:left]:
        counts[code] += 1
    return [(code, counts[code]) for code, _ in SEX_SHARES]


def _ages_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Age at baseline in days: normal(38.9, 13.2) years truncated to 18-65 (rejection sampling)."""
    out = np.empty(0)
    while out.size < n:
        years = rng.normal(AGE_MEAN, AGE_SD, size=2 * n)
        out = np.concatenate([out, years[(years >= AGE_MIN) & (years < AGE_MAX + 1)]])
    return np.floor(out[:n] * 365.25).astype(np.int64)


def _guids(rng: np.random.Generator, n: int) -> list[str]:
    """NDA pseudo-GUIDs NDAR_INV + 8 random upper-case alphanumerics (random, derived from nothing)."""
    keys: list[str] = []
    seen: set[str] = set()
    while len(keys) < n:
        key = "NDAR_INV" + "".join(rng.choice(GUID_ALPHABET, size=8))
        if key not in seen:
            seen.add(key)
            keys.append(key)
    return keys


def default_study_id(seed: int) -> str:
    return f"FEDERSIM-{seed}"


def build_trial(
    *,
    per_arm: int = DEFAULT_PER_ARM,
    seed: int = DEFAULT_SEED,
    study_id: str | None = None,
    missing_item_rate: float = 0.0,
    params: model.Params = model.CALIBRATED,
    effect_scale: float = 1.0,
    follow_up: bool = False,
    instruments: tuple[str, ...] = INSTRUMENT_ORDER,
    follow_up_weeks: int = 0,
    durability: model.DurabilityParams = model.DURABILITY,
    discontinuation_rate: float = 0.0,
    mnar: bool = False,
    rescue_rate: float = 0.0,
) -> Trial:
    """Simulate one study in memory (no files). ``effect_scale`` multiplies the ketamine-specific
    change (0 = a null trial; see :func:`model.with_effect_scale`); it changes no random draw.
    ``follow_up`` adds the visit W4 (day 28); BL..W2 are the same as without it, value for value.
    ``instruments``: any defined instrument ids; the default three come from the calibrated model
    (always drawn, so leaving one out changes nothing else), every other from
    :mod:`pipelines.simulate.generic` on a stream of its own.

    Intercurrent events (all off by default, drawn from their own stream): ``discontinuation_rate``
    - each subject still on treatment stops it after D1 or W1 with this probability (reason drawn;
    no data after the last visit on treatment); ``mnar`` - discontinuation likelier when not
    improving at D1 (and reason 'LACK OF EFFICACY' then), and a ketamine subject's benefit after
    stopping drifts back to midazolam's (half of the ketamine-specific change at the first missed
    visit, none later; ``items`` hold these unobserved values, the truth a benchmark compares with);
    ``rescue_rate`` - subjects on treatment through W1 start rescue medication before W2 with this
    probability (recorded only; outcomes unchanged). The subjects frame then has ``disc_visit`` (last
    visit on treatment, '' when none), ``disc_reason`` and ``rescue_visit``."""
    instruments = check_instruments(instruments)
    if per_arm < 1:
        raise ValueError(f"per_arm must be at least 1 (got {per_arm})")
    if not 0.0 <= missing_item_rate < 1.0:
        raise ValueError(f"missing_item_rate must be in [0, 1) (got {missing_item_rate})")
    study_id = study_id or default_study_id(seed)
    rng = _streams(seed)
    n = 2 * per_arm
    if follow_up_weeks < 0:
        raise ValueError(f"follow_up_weeks must be 0 or more (got {follow_up_weeks})")
    visits = design_visits(follow_up, follow_up_weeks)
    n_base = len(VISITS)  # the four-visit study is drawn first, as without follow-up
    fu = dict(zip(_FOLLOW_UP_STREAMS, rng["follow_up"].spawn(len(_FOLLOW_UP_STREAMS)), strict=True))
    if follow_up_weeks:  # weekly follow-up draws from its own stream
        fu = dict(zip(_DURABILITY_STREAMS, rng["durability"].spawn(len(_DURABILITY_STREAMS)), strict=True))

    # Design: enrolment-order ids P0001..; 1:1 allocation by a random permutation, so ids carry no arm.
    design = rng["design"]
    arm_of = design.permutation(np.repeat(np.array([a.id for a in ARMS]), per_arm))
    sex = design.permutation(np.concatenate([np.repeat(code, k) for code, k in _sex_counts(n)]))
    age_days = _ages_days(design, n)
    width = max(4, len(str(n)))
    subjid = [f"P{i:0{width}d}" for i in range(1, n + 1)]
    usubjid = [f"{study_id}-{s}" for s in subjid]

    keys = rng["keys"]
    span = (SHIFT_WINDOW[1] - SHIFT_WINDOW[0]).days
    base_dates = [SHIFT_WINDOW[0] + dt.timedelta(days=int(d)) for d in keys.integers(0, span + 1, size=n)]
    guids = _guids(keys, n)

    days = visit_days(rng["days"], n)
    if len(visits) > n_base:
        days = np.concatenate([days, visit_days(fu["days"], n, visits[n_base:])], axis=1)
    is_ket = arm_of == "KET"

    # Dropout (MCAR): Feder 2021 lost 1 ketamine subject before week 2; last visit attended D1 or W1.
    observed = np.ones((n, len(visits)), dtype=bool)
    drop_rng = rng["dropout"]
    ket_idx = np.flatnonzero(is_ket)
    dropouts = np.sort(drop_rng.choice(ket_idx, size=n_dropouts(per_arm), replace=False))
    last_visit = drop_rng.choice(np.array([1, 2]), size=dropouts.size)
    for s, last in zip(dropouts, last_visit, strict=True):
        observed[s, last + 1 :] = False
    last_attended = np.full(n, n_base - 1)
    last_attended[dropouts] = last_visit
    attrition = WEEKLY_FOLLOW_UP_ATTRITION if follow_up_weeks else FOLLOW_UP_ATTRITION
    for j in range(n_base, len(visits)):  # follow-up: only after the previous visit (attrition per visit)
        lost = fu["dropout"].random(n) < attrition
        observed[:, j] = observed[:, j - 1] & ~lost
        last_attended[observed[:, j]] = j

    params = model.with_effect_scale(params, effect_scale)
    draws = model.draw_latent((rng["caps5"], rng["pcl5"], rng["madrs"]), days[:, :n_base], params)
    if len(visits) > n_base:
        draws = model.extend_latent(draws, (fu["caps5"], fu["pcl5"], fu["madrs"]), days, params)
    relapse = None
    profiles = None
    if follow_up_weeks:
        median = np.where(is_ket, durability.relapse_median_ket, durability.relapse_median_mid)
        relapse = fu["relapse"].exponential(1.0, size=n) * median / np.log(2.0)
        primary_index = [v.id for v in visits].index(PRIMARY_VISIT)
        profiles = model.durability_profiles(n_base, days, primary_index, relapse, params)
    items = model.item_scores(draws, is_ket, params, profiles)
    miss_rng = rng["missing"]
    missing = {
        k: miss_rng.random((n, n_base, items[k].shape[2])) < missing_item_rate for k in INSTRUMENT_ORDER
    }
    if len(visits) > n_base:
        missing = {
            k: np.concatenate(
                [m, fu["missing"].random(items[k][:, n_base:].shape) < missing_item_rate], axis=1
            )
            for k, m in missing.items()
        }

    events = IntercurrentEvents(discontinuation_rate, mnar, rescue_rate)
    ice_cols = None
    if events.wanted:
        course = _Course(
            seed, visits, n_base, is_ket, dropouts, draws, params, items, observed, last_attended
        )
        ice_cols = events.draw(course)

    inst = load_instruments()
    if follow_up_weeks:  # other instruments: the week-2 change held over the follow-up (no relapse model)
        ns, ket = params.time_profiles(n_base)
        extra = np.ones(len(visits) - n_base)
        profiles = (np.concatenate([ns, extra]), np.concatenate([ket, extra]))
    else:
        profiles = params.time_profiles(len(visits))
    for key in instruments:
        if key in INSTRUMENT_ORDER:
            continue
        own = generic.instrument_rng(seed, key)
        items[key] = generic.simulate_items(inst[key], own, is_ket, profiles, effect_scale)
        missing[key] = own.random(items[key].shape) < missing_item_rate
        if inst[key].change_scale:  # rates change since baseline: not rated at the baseline visit
            missing[key][:, 0, :] = True
    items = {k: items[k] for k in instruments}
    missing = {k: missing[k] for k in instruments}
    # CAPS-5 items 21-25 (onset, duration, distress/impairment) for the DSM-5 diagnosis: a stream of
    # their own, drawn after everything else, so no other value changes
    extra = {}
    if "caps5" in instruments:
        extra["caps5"] = diagnosis.simulate_diagnostic_items(inst["caps5"], seed, items["caps5"], missing_item_rate)

    age_years = (age_days / 365.25).astype(np.int64)
    dcsreas = np.full(n, None, dtype=object)
    if dropouts.size:
        names, probs = zip(*DROPOUT_REASONS, strict=True)
        drawn = rng["disposition"].choice(np.array(names, dtype=object), size=dropouts.size, p=np.array(probs))
        drawn[0] = FEDER_DROPOUT_REASON
        dcsreas[dropouts] = drawn
    subjects = pl.DataFrame(
        {
            "usubjid": usubjid,
            "subjid": subjid,
            "arm": arm_of,
            "site": SITE,
            "sex": sex,
            "age_days": age_days,
            "age_years": age_years,
            "subjectkey": guids,
            "baseline_date": base_dates,
            "last_visit": np.array([v.id for v in visits])[last_attended],
            "dcsreas": pl.Series("dcsreas", list(dcsreas), dtype=pl.String),
        }
    )
    if ice_cols is not None:
        subjects = subjects.with_columns(**{k: pl.Series(v) for k, v in ice_cols.items()})
    return Trial(
        study_id, seed, per_arm, subjects, days, observed, items, missing, visits, PRIMARY_VISIT, instruments,
        follow_up_weeks, relapse, rng["safety"], extra,
    )


@dataclass(frozen=True)
class _Course:
    """The trial drawn so far, which intercurrent events act on: the seed (their stream is a child of
    it), the visits (the first ``n_base`` without follow-up), arms, the calibrated dropouts, the latent
    draws and parameters, and the arrays the events update in place: ``items`` (n, V, k) per
    instrument, ``observed`` (n, V) and ``last_attended`` (n,)."""

    seed: int
    visits: tuple[VisitSpec, ...]
    n_base: int
    is_ket: np.ndarray
    dropouts: np.ndarray
    draws: model.LatentDraws
    params: model.Params
    items: dict[str, np.ndarray]
    observed: np.ndarray
    last_attended: np.ndarray


@dataclass(frozen=True)
class IntercurrentEvents:
    """The intercurrent-event options of a simulated trial (see :func:`build_trial`; all off by
    default): discontinuation probability, MNAR discontinuation, rescue-medication probability."""

    discontinuation_rate: float = 0.0
    mnar: bool = False
    rescue_rate: float = 0.0

    @property
    def wanted(self) -> bool:
        return self.discontinuation_rate > 0 or self.rescue_rate > 0 or self.mnar

    def draw(self, course: _Course) -> dict[str, list[str]]:
        """Draw discontinuations and rescue medication; updates ``observed``, ``last_attended`` and,
        with ``mnar``, the unobserved post-discontinuation ``items`` of ``course`` in place. Returns
        the subjects' ``disc_visit``, ``disc_reason`` and ``rescue_visit`` columns."""
        rate, mnar, rescue_rate = self.discontinuation_rate, self.mnar, self.rescue_rate
        items, observed, last_attended = course.items, course.observed, course.last_attended
        is_ket, n_base, visits = course.is_ket, course.n_base, course.visits
        if not 0.0 <= rate < 1.0 or not 0.0 <= rescue_rate < 1.0:
            raise ValueError("discontinuation_rate and rescue_rate must be in [0, 1)")
        stream = np.random.SeedSequence(course.seed, spawn_key=(ICE_STREAM_KEY,))
        rng = np.random.Generator(np.random.PCG64(stream))
        n = len(is_ket)
        caps = items["caps5"][:, :n_base].sum(axis=2).astype(float)
        change = caps[:, 1] - caps[:, 0]
        z = (change - change.mean()) / (change.std() or 1.0)
        if mnar and rate > 0:
            lo, hi = -30.0, 30.0
            for _ in range(100):
                a = 0.5 * (lo + hi)
                if np.mean(1 / (1 + np.exp(-(a + MNAR_SLOPE * z)))) < rate:
                    lo = a
                else:
                    hi = a
            p = 1 / (1 + np.exp(-(a + MNAR_SLOPE * z)))
        else:
            p = np.full(n, rate)
        u = rng.random(n)
        last_on = rng.choice(np.array([1, 2]), size=n)
        reason_pick = rng.integers(0, len(DISCONTINUATION_REASONS), size=n)
        u_rescue = rng.random(n)
        on_treatment = last_attended == n_base - 1
        disc = on_treatment & (u < p)
        visit_ids = np.array([v.id for v in visits])
        disc_visit = np.array([""] * n, dtype=object)
        reason = np.array([""] * n, dtype=object)
        for s in np.flatnonzero(disc):
            observed[s, last_on[s] + 1 :] = False
            last_attended[s] = last_on[s]
            disc_visit[s] = visit_ids[last_on[s]]
            reason[s] = "LACK OF EFFICACY" if mnar and z[s] > 0 else DISCONTINUATION_REASONS[reason_pick[s]]
        for s in course.dropouts:  # the calibrated Feder dropout ("Physician Decision" in the registry)
            disc_visit[s] = visit_ids[last_attended[s]]
            reason[s] = "PHYSICIAN DECISION"
        if mnar:
            half = model.item_scores(course.draws, is_ket * 0.5, course.params)
            none = model.item_scores(course.draws, np.zeros(n), course.params)
            for s in np.flatnonzero(is_ket & (disc_visit != "")):
                k = int(last_attended[s]) + 1
                for key in items:
                    if k < items[key].shape[1]:
                        items[key][s, k] = half[key][s, k]
                        items[key][s, k + 1 :] = none[key][s, k + 1 :]
        rescue = np.array([""] * n, dtype=object)
        prim = list(visit_ids).index(PRIMARY_VISIT)
        rp = np.clip(rescue_rate * (1 + (0.5 * z if mnar else 0 * z)), 0, 1)
        rescue[(last_attended >= prim) & (u_rescue < rp)] = PRIMARY_VISIT
        return {"disc_visit": list(disc_visit), "disc_reason": list(reason), "rescue_visit": list(rescue)}


def simulate_trial(**options) -> pl.DataFrame:
    """The simulated study as long item data (polars), without writing files.

    One row per subject x attended visit x instrument x item with columns ``study_id, usubjid,
    arm ('KET'/'MID'), visit ('BL','D1','W1','W2', and 'W4' with ``follow_up``), visitnum (SDTM
    VISITNUM, 1..5), study_day, instrument ('PCL-5', 'CAPS-5', 'MADRS'), item (1..n in the
    instrument's standard order), value`` (null when the item is missing). Visits after a dropout
    have no rows. Same seed, same data as :func:`write_study`. ``effect_scale`` and ``follow_up``
    as in :func:`build_trial` (0 = null trial; W4 added, BL..W2 unchanged).
    """
    return build_trial(**options).long()
