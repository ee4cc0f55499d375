"""Development tool: re-derive the calibrated constants of the latent model (``model.py``), which
live in the ``simulation:`` block of each scale's YAML. Never run at study time.

    .venv/bin/python -m pipelines.simulate.calibrate [--per-arm 150000] [--seed 1]

Method: common random numbers. The standard-normal draws of ``model.draw_latent`` do not depend on
the calibrated constants, so for a fixed large sample the totals' summary statistics are (nearly)
smooth functions of the constants. Newton's method with a forward-difference Jacobian solves

* CAPS-5: (level, tau, delta_ns, delta_ket, resp_sd) for baseline mean 40, baseline SD 10.5,
  week-2 difference -11.88 and responder rates 67 % / 20 %;
* PCL-5 (given CAPS-5): (level, loading, tau, resp_sd) for baseline mean 50, SD 12, r = 0.7 with
  CAPS-5 at baseline and r = 0.7 in week-2 change (within arm);
* MADRS (given CAPS-5): (level, tau, delta_ns, delta_ket) for baseline mean 30, SD 7.5, midazolam
  week-2 change -5 and ketamine - midazolam -7.5;

then prints the constants to paste into the YAML files and a check on a fresh sample. What each
stage solves and its targets are the scale's ``simulation.calibration`` (``pipelines/instruments``).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from pipelines.simulate import model
from pipelines.simulate.trial import visit_days

W2 = 3


def _sample(per_arm: int, seed: int, params: model.Params):
    ss = np.random.SeedSequence(seed).spawn(4)
    rngs = [np.random.Generator(np.random.PCG64(s)) for s in ss]
    n = 2 * per_arm
    days = visit_days(rngs[0], n)
    is_ket = np.arange(n) < per_arm
    draws = model.draw_latent((rngs[1], rngs[2], rngs[3]), days, params)
    return draws, is_ket


def summary(draws, is_ket, params: model.Params) -> dict[str, float]:
    items = model.item_scores(draws, is_ket, params)
    caps = items["caps5"].sum(axis=2, dtype=np.int64).astype(float)
    pcl = items["pcl5"].sum(axis=2, dtype=np.int64).astype(float)
    madrs = items["madrs"].sum(axis=2, dtype=np.int64).astype(float)
    k, m = is_ket, ~is_ket
    c_chg = caps[:, W2] - caps[:, 0]
    p_chg = pcl[:, W2] - pcl[:, 0]
    m_chg = madrs[:, W2] - madrs[:, 0]
    resp = c_chg <= -0.30 * caps[:, 0]
    e_items = model.CLUSTER_OF_ITEM == 3
    e_tot = items["caps5"][:, :, e_items].sum(axis=2, dtype=np.int64).astype(float)
    e_chg = e_tot[:, W2] - e_tot[:, 0]

    def r_within(a, b):
        return 0.5 * (np.corrcoef(a[k], b[k])[0, 1] + np.corrcoef(a[m], b[m])[0, 1])

    return {
        "caps_bl_mean": caps[:, 0].mean(),
        "caps_bl_sd": caps[:, 0].std(ddof=1),
        "caps_diff": c_chg[k].mean() - c_chg[m].mean(),
        "resp_ket": resp[k].mean(),
        "resp_mid": resp[m].mean(),
        "caps_e_diff": e_chg[k].mean() - e_chg[m].mean(),
        "pcl_bl_mean": pcl[:, 0].mean(),
        "pcl_bl_sd": pcl[:, 0].std(ddof=1),
        "pcl_r_bl": np.corrcoef(pcl[:, 0], caps[:, 0])[0, 1],
        "pcl_r_chg": r_within(p_chg, c_chg),
        "pcl_diff": p_chg[k].mean() - p_chg[m].mean(),
        "madrs_bl_mean": madrs[:, 0].mean(),
        "madrs_bl_sd": madrs[:, 0].std(ddof=1),
        "madrs_chg_mid": m_chg[m].mean(),
        "madrs_diff": m_chg[k].mean() - m_chg[m].mean(),
    }


# Solved in this order: PCL-5 and MADRS lean on the CAPS-5 terms.
STAGES = ("caps5", "pcl5", "madrs")


def _with(params: model.Params, stage: str, names, x) -> model.Params:
    sub = dataclasses.replace(getattr(params, stage), **{k: float(v) for k, v in zip(names, x, strict=True)})
    return dataclasses.replace(params, **{stage: sub})


def solve_stage(params: model.Params, stage: str, draws, is_ket, *, iters: int = 8, h: float = 0.004):
    names = model.calibration(stage).solve
    targets = model.calibration(stage).targets
    keys = list(targets)
    goal = np.array(list(targets.values()))
    # residuals scaled so that each is "one unit" of tolerance
    scale = np.array([0.05 if k.startswith(("resp", "pcl_r")) else 1.0 for k in keys])
    x = np.array([getattr(getattr(params, stage), k) for k in names])

    def f(xv):
        s = summary(draws, is_ket, _with(params, stage, names, xv))
        return (np.array([s[k] for k in keys]) - goal) / scale

    fx = f(x)
    for it in range(iters):
        jac = np.empty((len(keys), len(names)))
        for j in range(len(names)):
            xj = x.copy()
            xj[j] += h
            jac[:, j] = (f(xj) - fx) / h
        step = np.linalg.lstsq(jac, -fx, rcond=None)[0]
        x = x + step
        fx = f(x)
        print(f"  {stage} iter {it}: max |residual| = {np.abs(fx * scale).max():.5f}", flush=True)
        if np.abs(fx * scale).max() < 1e-3:
            break
    return _with(params, stage, names, x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-arm", type=int, default=150_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    params = model.CALIBRATED
    draws, is_ket = _sample(args.per_arm, args.seed, params)
    for stage in STAGES:
        params = solve_stage(params, stage, draws, is_ket)
    for stage in STAGES:
        names = model.calibration(stage).solve
        print(stage, {k: round(getattr(getattr(params, stage), k), 4) for k in names})
    draws2, is_ket2 = _sample(args.per_arm, args.seed + 1, params)
    for k, v in summary(draws2, is_ket2, params).items():
        print(f"  check (fresh sample) {k:14s} {v:9.4f}")


if __name__ == "__main__":
    main()
