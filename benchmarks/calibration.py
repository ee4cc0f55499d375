"""Statistical calibration of the primary MMRM at Feder-2021 size (a benchmark, never run as a test).

Run: ``.venv/bin/python benchmarks/calibration.py [--trials 1000] [--per-arm 15] [--workers 2]``

For each scenario - ``feder`` (the simulator's calibrated ketamine effect) and ``null`` (effect scale
0: no true arm difference) - it simulates ``--trials`` trials in memory (``pipelines.simulate.build_trial``,
seeds ``--seed`` .. ``--seed + trials - 1``, the same seeds in both scenarios), computes the CAPS-5 totals
directly from the items (every item answered; visits after a dropout absent, as the simulator draws
them), and fits the primary model exactly as ``run_efficacy`` does
(``fit_mmrm_with_fallbacks``: chg ~ base + trtp * avisit + us(avisit | usubjid), REML, Kenward-Roger,
fallbacks toeph, ar1h, cs). It reports for the week-2 ketamine - midazolam difference:

* coverage of the 95 % CI of the true difference: -11.88 under ``feder`` (Feder 2021's estimate, the
  simulator's calibration target for the difference in mean week-2 change, calibrated to about 0.02;
  ``--check-truth`` re-estimates it from a large complete-data sample) and 0 under ``null``;
* type-I error (null) and power (feder): share of trials with two-sided p < 0.05;
* bias, empirical SD of the estimates vs the mean model SE, mean KR df;
* how often UN failed and which fallback was used (and coverage among UN fits only).

Monte Carlo SEs: sqrt(p (1 - p) / n) for proportions, SD / sqrt(n) for means. The targets for a
well-calibrated procedure are coverage 94-96 % and type-I error 4-6 % at 1,000 trials (MC SE 0.7 %).

Measured on this machine class (2 cores), ``--trials 10000 --check-truth`` (seeds 1-10000, 397 s;
``--trials 1000`` takes about 25 s):

==========  ===============  ==============  ==================  ===========================
scenario    95 % coverage    p < 0.05        SD(est) / mean SE   covariance used
==========  ===============  ==============  ==================  ===========================
feder       95.02 % (0.22)   91.13 % (0.28)  3.433 / 3.434       us 10000 (no fallback)
null        94.80 % (0.22)   5.20 % (0.22)   3.567 / 3.563       us 10000 (no fallback)
==========  ===============  ==============  ==================  ===========================

(MC SE in brackets; mean estimate -11.863 (0.034) and +0.042 (0.036); mean KR df 27.3 and 27.4;
large-sample true difference -11.812 (100,000 per arm, MC SE about 0.04) against the target -11.88.)
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread per worker process

import argparse
import json
import math
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.simulate import model as sim_model  # noqa: E402
from pipelines.simulate.trial import VISITS, build_trial  # noqa: E402
from pipelines.stats.efficacy.fits import fit_mmrm_with_fallbacks  # noqa: E402

SCENARIOS = {"feder": 1.0, "null": 0.0}
TRUE_DIFF = {"feder": sim_model.calibration("caps5").targets["caps_diff"], "null": 0.0}
STRUCTURES = ("us", "toeph", "ar1h", "cs")
POST = [v.id for v in VISITS[1:]]  # D1, W1, W2
ALPHA = 0.05


def trial_frame(per_arm: int, seed: int, effect_scale: float) -> pl.DataFrame:
    """One row per subject x attended post-baseline visit: usubjid, trtp, avisit, ady, base, chg."""
    t = build_trial(per_arm=per_arm, seed=seed, effect_scale=effect_scale)
    total = t.items["caps5"][:, :, :20].sum(axis=2, dtype=np.int64).astype(float)  # items 1-20
    base = total[:, 0]
    rows = {"usubjid": [], "trtp": [], "avisit": [], "ady": [], "base": [], "chg": []}
    arms = t.subjects["arm"].to_list()
    ids = t.subjects["usubjid"].to_list()
    for s in range(t.n):
        for j, v in enumerate(POST, start=1):
            if t.observed[s, j]:
                rows["usubjid"].append(ids[s])
                rows["trtp"].append(arms[s])
                rows["avisit"].append(v)
                rows["ady"].append(float(t.days[s, j]))
                rows["base"].append(base[s])
                rows["chg"].append(total[s, j] - base[s])
    return pl.DataFrame(rows)


def one(task: tuple[str, int, int, str]) -> dict:
    scenario, per_arm, seed, df_method = task
    d = trial_frame(per_arm, seed, SCENARIOS[scenario])
    fit = fit_mmrm_with_fallbacks(
        d, structures=STRUCTURES, df_method=df_method, reml=True, visit_levels=POST, control="MID", with_arm=True
    )
    out = {"scenario": scenario, "seed": seed, "covariance": None, "estimate": None, "std_error": None,
           "df": None, "p_value": None}  # fmt: skip
    if fit.used is not None:
        r = fit.used.contrasts.filter(pl.col("avisit") == "W2").row(0, named=True)
        out.update(covariance=fit.used.covariance, estimate=r["estimate"], std_error=r["std_error"], df=r["df"],
                   p_value=r["p_value"])  # fmt: skip
    return out


def _prop(x: np.ndarray) -> tuple[float, float]:
    p = float(np.mean(x))
    return p, math.sqrt(p * (1 - p) / len(x))


def summarise(rows: list[dict], truth: dict[str, float]) -> dict:
    from scipy import stats

    res = {}
    df = pl.DataFrame(rows)
    for scenario in SCENARIOS:
        s = df.filter(pl.col("scenario") == scenario)
        n_all = s.height
        ok = s.filter(pl.col("estimate").is_not_null())
        est, se, dfs, p = (ok[c].to_numpy() for c in ("estimate", "std_error", "df", "p_value"))
        q = stats.t.ppf(1 - ALPHA / 2, dfs)
        covered = (est - q * se <= truth[scenario]) & (truth[scenario] <= est + q * se)
        reject = p < ALPHA
        used = s["covariance"].fill_null("none (all failed)").value_counts().sort("count", descending=True)
        un = (ok["covariance"] == "us").to_numpy()
        cov_un = _prop(covered[un]) if un.any() else (float("nan"), float("nan"))
        res[scenario] = {
            "trials": n_all,
            "fitted": ok.height,
            "true_difference": truth[scenario],
            "coverage": _prop(covered),
            "coverage_un_only": cov_un,
            "rejection_rate": _prop(reject),
            "mean_estimate": (float(est.mean()), float(est.std(ddof=1) / math.sqrt(len(est)))),
            "bias": float(est.mean() - truth[scenario]),
            "empirical_sd": float(est.std(ddof=1)),
            "mean_model_se": float(se.mean()),
            "rms_model_se": float(np.sqrt(np.mean(se**2))),
            "mean_df": float(dfs.mean()),
            "covariance_used": dict(zip(used["covariance"].to_list(), used["count"].to_list(), strict=True)),
        }
    return res


def check_truth(per_arm: int = 100_000, seed: int = 99) -> float:
    """The simulator's week-2 CAPS-5 difference in mean change from a large complete-data sample
    (no dropout), with the calibration module's own summary."""
    from pipelines.simulate.calibrate import _sample, summary

    draws, is_ket = _sample(per_arm, seed, sim_model.CALIBRATED)
    return float(summary(draws, is_ket, sim_model.CALIBRATED)["caps_diff"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--per-arm", type=int, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--df-method", default="kenward-roger")
    ap.add_argument("--check-truth", action="store_true", help="re-estimate the true difference (slow, ~1 GB)")
    ap.add_argument("--json", type=Path, help="write the per-trial rows and the summary here")
    args = ap.parse_args(argv)

    truth = dict(TRUE_DIFF)
    if args.check_truth:
        t0 = time.perf_counter()
        big = check_truth()
        print(f"true week-2 difference, 100,000 per arm complete data: {big:.3f} "
              f"(target {TRUE_DIFF['feder']}; {time.perf_counter() - t0:.0f} s)")  # fmt: skip
    tasks = [(sc, args.per_arm, args.seed + i, args.df_method) for sc in SCENARIOS for i in range(args.trials)]
    t0 = time.perf_counter()
    with Pool(args.workers) as pool:
        rows = []
        for k, r in enumerate(pool.imap_unordered(one, tasks, chunksize=10), start=1):
            rows.append(r)
            if k % 200 == 0:
                print(f"  {k}/{len(tasks)} fits, {time.perf_counter() - t0:.0f} s", flush=True)
    seconds = time.perf_counter() - t0
    res = summarise(rows, truth)

    print(f"\nPrimary MMRM (UN + {args.df_method}, REML, fallbacks toeph/ar1h/cs), CAPS-5 total, week 2, "
          f"{args.per_arm} per arm, {args.trials} trials per scenario, {args.workers} workers, "
          f"{seconds:.0f} s ({1000 * seconds / len(tasks):.0f} ms per trial and worker pool)")  # fmt: skip
    for sc, r in res.items():
        cov, cov_se = r["coverage"]
        rej, rej_se = r["rejection_rate"]
        m, m_se = r["mean_estimate"]
        print(f"\n[{sc}] true difference {r['true_difference']:+.2f}; fitted {r['fitted']}/{r['trials']}")
        print(f"  95% CI coverage            {100 * cov:6.2f} %  (MC SE {100 * cov_se:.2f})")
        cu, cu_se = r["coverage_un_only"]
        print(f"  coverage, UN fits only     {100 * cu:6.2f} %  (MC SE {100 * cu_se:.2f})")
        label = "type-I error (p < 0.05)" if sc == "null" else "power (p < 0.05)      "
        print(f"  {label}    {100 * rej:6.2f} %  (MC SE {100 * rej_se:.2f})")
        print(f"  mean estimate              {m:+7.3f}   (MC SE {m_se:.3f}; bias {r['bias']:+.3f})")
        print(f"  empirical SD of estimates  {r['empirical_sd']:7.3f}   vs mean model SE {r['mean_model_se']:.3f} "
              f"(RMS {r['rms_model_se']:.3f})")  # fmt: skip
        print(f"  mean df ({args.df_method}) {r['mean_df']:7.2f}")
        print(f"  covariance used            {r['covariance_used']}")
    if args.json:
        args.json.write_text(json.dumps({"summary": res, "rows": rows, "seconds": seconds}, indent=1))


if __name__ == "__main__":
    main()
