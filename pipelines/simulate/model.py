"""The latent model behind simulated item responses (PCL-5, CAPS-5, MADRS).

In words. Every subject has a *latent severity* per symptom cluster on the item scale (CAPS-5 and
PCL-5: clusters B, C, D, E; MADRS: one depression factor). It is the sum of

* a stable subject level, correlated across clusters (and, for MADRS, with CAPS-5 cluster D);
* a treatment-course change that grows over the visits: a non-specific change shared by both arms
  (expectancy, rater contact, the psychoactive control), the ketamine-specific change (CAPS-5
  clusters B, C and D only; Feder 2021 reports no marked effect on E), and a subject-specific
  response deviation shared across clusters and instruments (some subjects respond, some do not);
* an occasion process: an Ornstein-Uhlenbeck (continuous-time AR(1)) deviation over the actual
  study days, partly shared across clusters.

An item's latent value is its cluster's severity plus an item offset (some symptoms are rarer),
a stable subject-by-item deviation and occasion noise. The observed item is that value rounded to
the nearest category and clipped to the item range (0-4, MADRS 0-6): an ordinal mapping with
equally spaced thresholds. PCL-5 (self-report) loads on the CAPS-5 cluster severities plus its own
subject, response and occasion terms, so both instruments correlate at baseline and in change.

The constants are instrument knowledge and live with each scale's definition: the ``simulation:``
block of ``pipelines/instruments/{caps5,pcl5,madrs}.yaml``, read as :class:`LatentParams`, each
with its source. Because rounding and clipping bend the means, the ones marked *calibrated* were
solved numerically so that the **totals** hit the block's ``calibration`` targets in expectation;
they are written down there and never re-fitted at run time. They were found with ``python -m pipelines.simulate.calibrate --per-arm
300000 --seed 7`` (Newton iterations on common random numbers, 300,000 subjects per arm; Monte
Carlo error of the week-2 CAPS-5 difference ~0.02 points) and checked on a fresh sample. Sources:
"Feder 2021" = Feder et al., Am J Psychiatry 2021;178:193-202 (shared/docs/domain.md section 1);
"derived" = our arithmetic from those figures; "assumption" = a choice of ours, not a published number.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from pipelines.instruments import Calibration, load_instruments

# Visits of the default design (BL, D1, W1, W2); the per-subject actual days jitter around nominal
# (see trial.py). The optional follow-up visit W4 makes it five (``Params.follow_up_*``).
N_VISITS = 4

# Inclusion severity floor (assumption): Feder 2021 enrolled chronic, severe PTSD (its numeric
# CAPS-5 entry threshold is UNCONFIRMED in our sources). The subject's common CAPS-5 severity (the
# mean of the four cluster levels, in SD units) is truncated below SEVERITY_FLOOR_Z SDs, i.e. the
# least severe ~16 % of the untruncated population are not enrolled; the truncated draw is an
# inverse-CDF map of the same normal draw (calibration keeps common random numbers). Item noise
# still lets a few baseline totals fall lower (measured at 2,000 per arm: see the README).
SEVERITY_FLOOR_Z = -1.0


@dataclass(frozen=True)
class LatentParams:
    """One scale's constants in the latent model, read from the ``simulation:`` block of its
    definition (``pipelines/instruments/<id>.yaml``), which gives each one's source: *calibrated*
    (solved for the block's ``calibration`` targets, see the module docstring) or *assumption*.

    ``level``: latent item level before the item ``offsets``; ``tau``: SD of the stable subject level
    (per cluster); ``delta_ns`` / ``delta_ket``: non-specific / ketamine-specific latent change per
    item at week 2 (ketamine's only in ``ket_clusters`` for a scale with clusters); ``resp_sd``: SD of
    the subject's response deviation per item; ``rho_clusters`` / ``rho_response`` /
    ``occasion_rho_clusters``: correlation of the subject levels, response deviations and occasion
    noise across clusters; ``occasion_sd``, ``item_subject_sd``, ``item_occasion_sd``: occasion,
    subject x item and item-occasion noise. PCL-5 has no change of its own but a ``loading`` on the
    CAPS-5 cluster severities; MADRS (one factor) correlates with CAPS-5 cluster D (``rho_caps_d``)
    and the CAPS-5 common response (``rho_caps_response``). A term a scale's model does not have is
    left out of its block and is 0 (none).
    """

    level: float
    tau: float
    resp_sd: float
    occasion_sd: float
    item_subject_sd: float
    item_occasion_sd: float
    offsets: tuple[float, ...]
    delta_ns: float = 0.0
    delta_ket: float = 0.0
    ket_clusters: tuple[str, ...] = ()
    rho_clusters: float = 0.0
    rho_response: float = 0.0
    occasion_rho_clusters: float = 0.0
    loading: float = 0.0
    rho_caps_d: float = 0.0
    rho_caps_response: float = 0.0

    @classmethod
    def of(cls, instrument_id: str) -> LatentParams:
        return load_instruments()[instrument_id].simulation_params(cls)

    def item_values(self, severity: np.ndarray, u: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Latent item values (n, V, items): the level, plus each item's latent severity deviation
        (its cluster's), its offset, the stable subject x item deviation (``u``: n x items standard
        normals) and item-occasion noise (``e``: n x V x items)."""
        return (
            self.level
            + severity
            + np.asarray(self.offsets)
            + self.item_subject_sd * u[:, None, :]
            + self.item_occasion_sd * e
        )


def calibration(instrument_id: str) -> Calibration:
    """What a calibrated scale's constants were solved for: the constants and, per summary statistic
    (``pipelines.simulate.calibrate.summary``), its target (the YAML's ``simulation.calibration``)."""
    found = load_instruments()[instrument_id].simulation.calibration
    if found is None:
        raise ValueError(f"{instrument_id}: its simulation block has no calibration")
    return found


@dataclass(frozen=True)
class Params:
    caps5: LatentParams = field(default_factory=lambda: LatentParams.of("caps5"))
    pcl5: LatentParams = field(default_factory=lambda: LatentParams.of("pcl5"))
    madrs: LatentParams = field(default_factory=lambda: LatentParams.of("madrs"))
    # assumption: days over which the occasion process decorrelates to 1/e (weekly rhythm)
    occasion_days: float = 7.0
    # assumption: fraction of the week-2 change reached at D1 and W1. Ketamine-specific change is
    # visible 24 h after the first infusion (Feder 2021 / press release: improvement in responders
    # at 24 h); the non-specific change builds more slowly.
    profile_nonspecific: tuple[float, ...] = (0.0, 0.30, 0.70, 1.00)
    profile_ketamine: tuple[float, ...] = (0.0, 0.60, 0.85, 1.00)
    # The optional follow-up visit W4 (day 28, two weeks after the last infusion), appended to the
    # profiles above when the trial has it. Not calibrated (no published figure at week 4).
    # assumption: the non-specific change neither grows nor relapses once the infusions stop: it
    # stays at its week-2 level.
    follow_up_nonspecific: float = 1.00
    # assumption, derived from Feder 2021: among ketamine responders the median time to loss of
    # response was 27.5 days after the primary-outcome day (week 2). If loss of response has a
    # constant hazard, the share still responding 14 days later (at W4) is 2 ** (-14 / 27.5) = 0.70;
    # we let the mean ketamine-specific change wane in the same proportion (partial waning, not a
    # return to baseline). The definition of loss of response is UNCONFIRMED (domain.md section 1).
    follow_up_ketamine: float = 0.70

    def time_profiles(self, n_visits: int) -> tuple[np.ndarray, np.ndarray]:
        """(non-specific, ketamine-specific) fraction of the week-2 change at each of ``n_visits``
        visits: the default four (BL, D1, W1, W2), or five with the follow-up visit W4 appended."""
        ns, ket = self.profile_nonspecific, self.profile_ketamine
        if n_visits == len(ns) + 1:
            ns, ket = (*ns, self.follow_up_nonspecific), (*ket, self.follow_up_ketamine)
        elif n_visits != len(ns):
            raise ValueError(
                f"the latent model has profiles for {len(ns)} or {len(ns) + 1} visits, not {n_visits}"
            )
        return np.asarray(ns, dtype=float), np.asarray(ket, dtype=float)


CALIBRATED = Params()


def with_effect_scale(params: Params, scale: float) -> Params:
    """``params`` with every ketamine-specific latent change multiplied by ``scale`` (CAPS-5 and MADRS
    ``delta_ket``; PCL-5 follows CAPS-5 through its loading).

    ``scale = 0`` is a null trial: no term of the latent model depends on the arm, so both arms have
    the same distribution (the non-specific change stays). Other values scale the *latent* effect;
    the totals' differences are only roughly proportional because items are rounded and clipped.
    """
    import dataclasses

    if scale == 1.0:
        return params
    return dataclasses.replace(
        params,
        caps5=dataclasses.replace(params.caps5, delta_ket=params.caps5.delta_ket * scale),
        madrs=dataclasses.replace(params.madrs, delta_ket=params.madrs.delta_ket * scale),
    )


CLUSTERS = ("B", "C", "D", "E")
# DSM-5 cluster of items 1..20 (the same for PCL-5 and CAPS-5; pipelines/instruments/*.yaml).
CLUSTER_OF_ITEM = np.array([0] * 5 + [1] * 2 + [2] * 7 + [3] * 6)


def _equicorrelated(rng: np.random.Generator, n: int, k: int, rho: float) -> np.ndarray:
    """n draws of k standard normals with pairwise correlation rho (one common factor)."""
    common = rng.standard_normal((n, 1))
    own = rng.standard_normal((n, k))
    return np.sqrt(rho) * common + np.sqrt(1.0 - rho) * own


def _severity_floor(z: np.ndarray, rho: float, floor: float | None = None) -> np.ndarray:
    """Inclusion floor: the subject's mean cluster level m (SD sqrt(rho + (1 - rho) / k)) is mapped to
    a normal truncated below ``floor`` SDs by the inverse CDF, u = Phi(m / s) -> s Phi^-1(a + u (1 - a)),
    a = Phi(floor); every cluster of the subject moves by the same amount (within-subject cluster
    differences are kept). No draw is added: the same stream gives the same subjects otherwise."""
    from scipy.stats import norm

    floor = SEVERITY_FLOOR_Z if floor is None else floor
    k = z.shape[1]
    s = np.sqrt(rho + (1.0 - rho) / k)
    m = z.mean(axis=1)
    a = norm.cdf(floor)
    m_new = s * norm.ppf(a + norm.cdf(m / s) * (1.0 - a))
    return z + (m_new - m)[:, None]


def _ou(rng: np.random.Generator, days: np.ndarray, k: int, scale_days: float) -> np.ndarray:
    """Standard-normal Ornstein-Uhlenbeck paths at each subject's visit days: (n, V, k).

    corr(visit a, visit b) = exp(-|day_a - day_b| / scale_days) - an AR(1) over irregular days.
    """
    n, v = days.shape
    eps = rng.standard_normal((n, v, k))
    out = np.empty_like(eps)
    out[:, 0] = eps[:, 0]
    for j in range(1, v):
        phi = np.exp(-(days[:, j] - days[:, j - 1]) / scale_days)[:, None]
        out[:, j] = phi * out[:, j - 1] + np.sqrt(1.0 - phi**2) * eps[:, j]
    return out


def _to_items(latent: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Ordinal mapping: nearest category (thresholds at k + 0.5), clipped to the item range."""
    return np.clip(np.floor(latent + 0.5), lo, hi).astype(np.int8)


@dataclass
class LatentDraws:
    """Standard-normal draws, independent of the parameters (common random numbers for calibration)."""

    caps_z: np.ndarray
    caps_r_common: np.ndarray
    caps_r: np.ndarray
    caps_occ: np.ndarray
    caps_u: np.ndarray
    caps_e: np.ndarray
    pcl_z: np.ndarray
    pcl_r: np.ndarray
    pcl_occ: np.ndarray
    pcl_u: np.ndarray
    pcl_e: np.ndarray
    madrs_z: np.ndarray
    madrs_r: np.ndarray
    madrs_occ: np.ndarray
    madrs_u: np.ndarray
    madrs_e: np.ndarray


def draw_latent(
    rngs: tuple[np.random.Generator, np.random.Generator, np.random.Generator],
    days: np.ndarray,
    params: Params = CALIBRATED,
) -> LatentDraws:
    """All random draws for n subjects; ``rngs`` are separate streams for CAPS-5, PCL-5 and MADRS.

    Only the fixed correlation structure (rho_* and the occasion time scale) is used here, so the
    calibrated constants can be changed without changing a single draw.
    """
    rc, rp, rm = rngs
    n, v = days.shape
    c, p, m = params.caps5, params.pcl5, params.madrs
    caps_r_common = rc.standard_normal(n)
    caps_r = np.sqrt(c.rho_response) * caps_r_common[:, None] + np.sqrt(
        1 - c.rho_response
    ) * rc.standard_normal((n, 4))
    caps_occ_common = _ou(rc, days, 1, params.occasion_days)
    caps_occ = np.sqrt(c.occasion_rho_clusters) * caps_occ_common + np.sqrt(
        1 - c.occasion_rho_clusters
    ) * _ou(rc, days, 4, params.occasion_days)
    draws = {
        "caps_z": _severity_floor(_equicorrelated(rc, n, 4, c.rho_clusters), c.rho_clusters),
        "caps_r_common": caps_r_common,
        "caps_r": caps_r,
        "caps_occ": caps_occ,
        "caps_u": rc.standard_normal((n, 20)),
        "caps_e": rc.standard_normal((n, v, 20)),
    }
    pcl_occ_common = _ou(rp, days, 1, params.occasion_days)
    draws.update(
        pcl_z=_equicorrelated(rp, n, 4, p.rho_clusters),
        pcl_r=_equicorrelated(rp, n, 4, p.rho_response),
        pcl_occ=(
            np.sqrt(p.occasion_rho_clusters) * pcl_occ_common
            + np.sqrt(1 - p.occasion_rho_clusters) * _ou(rp, days, 4, params.occasion_days)
        ),
        pcl_u=rp.standard_normal((n, 20)),
        pcl_e=rp.standard_normal((n, v, 20)),
    )
    z_d = draws["caps_z"][:, 2]
    draws.update(
        madrs_z=m.rho_caps_d * z_d + np.sqrt(1 - m.rho_caps_d**2) * rm.standard_normal(n),
        madrs_r=m.rho_caps_response * caps_r_common
        + np.sqrt(1 - m.rho_caps_response**2) * rm.standard_normal(n),
        madrs_occ=_ou(rm, days, 1, params.occasion_days)[:, :, 0],
        madrs_u=rm.standard_normal((n, 10)),
        madrs_e=rm.standard_normal((n, v, 10)),
    )
    return LatentDraws(**draws)


def extend_latent(
    draws: LatentDraws,
    rngs: tuple[np.random.Generator, np.random.Generator, np.random.Generator],
    days: np.ndarray,
    params: Params = CALIBRATED,
) -> LatentDraws:
    """``draws`` continued to later visits: ``days`` is (n, V + extra), ``draws`` cover the first V.

    The subject terms (levels, response deviations, subject x item deviations) are kept; each
    occasion process continues as the same Ornstein-Uhlenbeck path (it is Markov: the next value is
    phi * the last one + sqrt(1 - phi^2) * a fresh innovation, phi = exp(-gap / occasion_days), with
    the innovations correlated across clusters as in :func:`draw_latent`); item-occasion noise is
    fresh. ``rngs`` (CAPS-5, PCL-5, MADRS) are streams of their own, so extending never changes a
    draw of the first V visits.
    """
    rc, rp, rm = rngs
    n, v_all = days.shape
    c, p = params.caps5, params.pcl5
    occ = {"caps_occ": [draws.caps_occ], "pcl_occ": [draws.pcl_occ], "madrs_occ": [draws.madrs_occ]}
    eps = {"caps_e": [draws.caps_e], "pcl_e": [draws.pcl_e], "madrs_e": [draws.madrs_e]}
    for j in range(draws.caps_e.shape[1], v_all):
        phi = np.exp(-(days[:, j] - days[:, j - 1]) / params.occasion_days)
        w = np.sqrt(1.0 - phi**2)
        occ["caps_occ"].append(
            phi[:, None, None] * occ["caps_occ"][-1][:, -1:]
            + w[:, None, None] * _equicorrelated(rc, n, 4, c.occasion_rho_clusters)[:, None, :]
        )
        eps["caps_e"].append(rc.standard_normal((n, 1, 20)))
        occ["pcl_occ"].append(
            phi[:, None, None] * occ["pcl_occ"][-1][:, -1:]
            + w[:, None, None] * _equicorrelated(rp, n, 4, p.occasion_rho_clusters)[:, None, :]
        )
        eps["pcl_e"].append(rp.standard_normal((n, 1, 20)))
        occ["madrs_occ"].append(
            phi[:, None] * occ["madrs_occ"][-1][:, -1:] + w[:, None] * rm.standard_normal((n, 1))
        )
        eps["madrs_e"].append(rm.standard_normal((n, 1, 10)))
    return replace(draws, **{k: np.concatenate(x, axis=1) for k, x in (occ | eps).items()})


def item_scores(
    draws: LatentDraws,
    is_ket: np.ndarray,
    params: Params = CALIBRATED,
    profiles: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Integer item responses per instrument, shape (n subjects, V visits, n items); V is 4, or 5
    with the follow-up visit (the draws' visit count, see :func:`extend_latent`).

    Keys are instrument ids (``caps5``, ``pcl5``, ``madrs``); items are in the instrument's standard
    order (CAPS-5 B1..E6 = items 1-20, PCL-5 1-20, MADRS 1-10). ``profiles`` (non-specific,
    ketamine-specific), each (n, V), replace the shared time profiles with per-subject ones.
    """
    c, p, m = params.caps5, params.pcl5, params.madrs
    ket = is_ket.astype(float)[:, None, None]  # (n, 1, 1)
    if profiles is None:
        profile_ns, profile_ket = params.time_profiles(draws.caps_e.shape[1])
        g_ns = profile_ns[None, :, None]  # (1, V, 1)
        g_ket = profile_ket[None, :, None]
    else:  # per-subject profiles (n, V): weekly follow-up with relapse (see durability_profiles)
        g_ns = profiles[0][:, :, None]
        g_ket = profiles[1][:, :, None]
    ket_cluster = np.array([1.0 if k in c.ket_clusters else 0.0 for k in CLUSTERS])[None, None, :]

    # CAPS-5 cluster severities (n, V, 4)
    caps_dev = (
        c.tau * draws.caps_z[:, None, :]
        + c.occasion_sd * draws.caps_occ
        + g_ns * (c.delta_ns + c.resp_sd * draws.caps_r[:, None, :])
        + ket * g_ket * c.delta_ket * ket_cluster
    )
    caps_item = c.item_values(caps_dev[:, :, CLUSTER_OF_ITEM], draws.caps_u, draws.caps_e)

    # PCL-5: loads on the CAPS-5 cluster deviations, plus its own terms
    pcl_dev = (
        p.loading * caps_dev
        + p.tau * draws.pcl_z[:, None, :]
        + p.occasion_sd * draws.pcl_occ
        + g_ns * p.resp_sd * draws.pcl_r[:, None, :]
    )
    pcl_item = p.item_values(pcl_dev[:, :, CLUSTER_OF_ITEM], draws.pcl_u, draws.pcl_e)

    # MADRS: one depression factor (n, V)
    ket2 = ket[:, :, 0]
    madrs_dev = (
        m.tau * draws.madrs_z[:, None]
        + m.occasion_sd * draws.madrs_occ
        + g_ns[:, :, 0] * (m.delta_ns + m.resp_sd * draws.madrs_r[:, None])
        + ket2 * g_ket[:, :, 0] * m.delta_ket
    )
    madrs_item = m.item_values(madrs_dev[:, :, None], draws.madrs_u, draws.madrs_e)

    inst = load_instruments()
    latent = {"pcl5": pcl_item, "caps5": caps_item, "madrs": madrs_item}
    return {k: _to_items(x, inst[k].item_min, inst[k].item_max) for k, x in latent.items()}


# --- durability of response (weekly follow-up after the treatment phase) ---------------------------
# Feder 2021: among ketamine responders the median time to loss of response was 27.5 days after the
# primary-outcome day (week 2). Definition of loss UNCONFIRMED (domain.md section 1); trialpipe's
# default is "no longer meeting the response criterion (>= 30 % CAPS-5 reduction) at a follow-up
# assessment" (manifest analysis.durability).
TARGET_DURABILITY_MEDIAN_KET = 27.5


@dataclass(frozen=True)
class DurabilityParams:
    """Relapse after the treatment phase. Each subject has a relapse time R (days after their week-2
    visit), exponential (constant hazard; assumption); before R the treatment-course change stays at its
    week-2 level, from R on it is gone (the subject's latent severity returns to its own baseline level:
    assumption, symptoms return once the benefit wanes).

    calibrated: the ketamine median of R, solved so that the *observed* median time to loss of response
    among week-2 ketamine responders - judged on weekly CAPS-5 assessments with their occasion noise, as
    analysis.adtte does - is 27.5 days (Kaplan-Meier on 20,000 per arm, seed 7, 10 follow-up weeks: latent 27.5 -> observed 21.0 days,
    38 -> 27.0, 45 -> 28.0).
    Observed losses come earlier than R because responders near the 30 % threshold lose response by
    noise alone, so the latent median is longer than the target.
    assumption: the midazolam (psychoactive placebo) response fades faster - half the ketamine median.
    """

    relapse_median_ket: float = 38.0
    relapse_median_mid: float = 19.0


DURABILITY = DurabilityParams()


def durability_profiles(
    n_base: int,
    days: np.ndarray,
    primary_index: int,
    relapse_days: np.ndarray,
    params: Params = CALIBRATED,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-subject (non-specific, ketamine-specific) profiles (n, V) for a schedule of ``n_base``
    treatment-phase visits followed by follow-up visits: the shared profiles for the treatment phase;
    at a follow-up visit the week-2 level (1.0) while its day is before the subject's relapse
    (``relapse_days`` after the primary visit's day), 0 from then on."""
    n, v = days.shape
    ns, ket = params.time_profiles(n_base)
    g_ns = np.broadcast_to(ns, (n, n_base))
    g_ket = np.broadcast_to(ket, (n, n_base))
    since = days[:, n_base:] - days[:, [primary_index]]
    kept = (since < relapse_days[:, None]).astype(float)
    return np.concatenate([g_ns, kept], axis=1), np.concatenate([g_ket, kept], axis=1)
