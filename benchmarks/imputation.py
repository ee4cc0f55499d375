"""Reference-based imputation: speed and calibration (a benchmark, never run as a test).

Run: ``.venv/bin/python benchmarks/imputation.py [--repeat N] [--reps R] [--per-arm-cal N]``

1. **Speed**: the rbmi antidepressant analysis (172 subjects, J2R, conditional mean imputation with
   jackknife = 172 refits of the UN MMRM; rbmi's CondMean_Inference vignette) and the same analysis of
   a simulated Feder-size trial (15 per arm, 20% discontinuation): prepare (imputation-model fit),
   draws (refits), impute + analyse + pool; minimum of ``--repeat`` runs, plus the CPU time.
   The whole-process time of ``trialpipe impute`` on the antidepressant CSV is measured as well.
   R rbmi is not installed on this machine (only R mmrm), so there is no peer in the same run; the
   target from the issue is <= 5 s for the antidepressant jackknife on 2 cores.
2. **Calibration** under MNAR: simulated trials (``--per-arm-cal`` per arm, 20% discontinuation,
   ``mnar=True``: discontinuation likelier when not improving, ketamine benefit lost after stopping).
   Truth = the difference in mean CAPS-5 change at week 2 of the complete (partly unobserved)
   outcomes, from one very large trial with the same settings (treatment-policy estimand: what
   happens to patients who stop). Estimates per replicate: the primary MMRM (MAR) and J2R conditional
   mean imputation (ICE from the simulator's disc_visit). Reports the mean bias of each and its MC SE.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.simulate.trial import build_trial
from pipelines.stats import imputation as mi
from pipelines.stats.imputation.refit import Refitter

CSV = ROOT / "tests" / "data" / "refdata" / "antidepressant_data.csv"
AD_FORMULA = "CHANGE ~ BASVAL*VISIT + THERAPY*VISIT + us(VISIT | PATIENT)"
SIM_FORMULA = "chg ~ base*avisit + trtp*avisit + us(avisit | usubjid)"
VISITS = ["D1", "W1", "W2"]


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, repeat):
    best, cpu_best = None, None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), _cpu()
        out = fn()
        t, c = time.perf_counter() - t0, _cpu() - c0
        best = t if best is None else min(best, t)
        cpu_best = c if cpu_best is None else min(cpu_best, c)
    return best, cpu_best, out


def antidepressant():
    from pipelines.cli.mmrm import read_csv

    df = read_csv(str(CSV))
    ice = mi.ice_from_dropout(df, subject="PATIENT", visit="VISIT", outcome="CHANGE")
    steps = {}
    t = time.perf_counter()
    ld = mi.prepare(df, AD_FORMULA, group="THERAPY", reference="PLACEBO", ice=ice, strategy="J2R")
    steps["prepare"] = time.perf_counter() - t
    t = time.perf_counter()
    dr = mi.draws(ld, "condmean-jackknife")
    steps["draws (172 refits)"] = time.perf_counter() - t
    t = time.perf_counter()
    res = mi.ImputationAnalysis(ld, dr).results()
    steps["impute+analyse+pool"] = time.perf_counter() - t
    est = res.filter((pl.col("visit") == "7") & (pl.col("parameter") == "difference")).row(0, named=True)
    return steps, est, dr


def trial_frame(trial):
    """Long CAPS-5 change-from-baseline frame of the observed visits, and the ICE dict."""
    caps = trial.items["caps5"].sum(axis=2).astype(float)
    ids = [v.id for v in trial.visits]
    subj = trial.subjects
    rows = []
    for s in range(trial.n):
        for v in VISITS:
            j = ids.index(v)
            if trial.observed[s, j]:
                rows.append((subj["usubjid"][s], subj["arm"][s], v, caps[s, j] - caps[s, 0], caps[s, 0]))
    df = pl.DataFrame(rows, schema=["usubjid", "trtp", "avisit", "chg", "base"], orient="row")
    ice = {}
    if "disc_visit" in subj.columns:
        for u, d in zip(subj["usubjid"], subj["disc_visit"], strict=True):
            if d and ids.index(d) + 1 < len(ids) and ids[ids.index(d) + 1] in VISITS:
                ice[u] = ids[ids.index(d) + 1]
    return df, ice, caps


def feder_size(repeat):
    trial = build_trial(per_arm=15, seed=20210105, discontinuation_rate=0.2)
    df, ice, _ = trial_frame(trial)

    def run():
        ld = mi.prepare(
            df, SIM_FORMULA, group="trtp", reference="MID", ice=ice, strategy="J2R", visit_levels=VISITS
        )
        return mi.ImputationAnalysis(ld, mi.draws(ld, "condmean-jackknife")).results()

    t, c, _ = timed(run, repeat)
    return t, c, len(ice)


def point_estimates(df, ice):
    from pipelines.stats.mmrm import fit_mmrm

    fit = fit_mmrm(df, "chg ~ base + trtp*avisit + us(avisit | usubjid)", ref={"trtp": "MID"}, df_method="residual",
                   levels={"avisit": VISITS})  # fmt: skip
    c = fit.lsmean_contrasts("trtp", by="avisit", ref="MID")
    mar = float(c.filter(pl.col("avisit") == "W2")["estimate"][0])
    ld = mi.prepare(
        df, SIM_FORMULA, group="trtp", reference="MID", ice=ice, strategy="J2R", visit_levels=VISITS
    )
    rf = Refitter(ld.fit).full
    dr = mi.Draws("condmean-jackknife", rf.beta[None], rf.sigmas[None], np.ones((1, ld.n)), False, None)
    an = mi.ancova(ld, mi.impute(ld, dr), dr.weights)
    return mar, float(an.est[0, VISITS.index("W2")])


def calibration(reps, per_arm):
    big = build_trial(per_arm=20000, seed=99, discontinuation_rate=0.2, mnar=True)
    caps = big.items["caps5"].sum(axis=2).astype(float)
    w2 = [v.id for v in big.visits].index("W2")
    chg = caps[:, w2] - caps[:, 0]
    ket = big.subjects["arm"].to_numpy() == "KET"
    truth = chg[ket].mean() - chg[~ket].mean()
    no_loss = build_trial(per_arm=20000, seed=99)
    c0 = no_loss.items["caps5"].sum(axis=2).astype(float)
    k0 = no_loss.subjects["arm"].to_numpy() == "KET"
    on_treatment = (c0[:, w2] - c0[:, 0])[k0].mean() - (c0[:, w2] - c0[:, 0])[~k0].mean()
    mar, j2r = [], []
    for r in range(reps):
        t = build_trial(per_arm=per_arm, seed=1000 + r, discontinuation_rate=0.2, mnar=True)
        df, ice, _ = trial_frame(t)
        a, b = point_estimates(df, ice)
        mar.append(a)
        j2r.append(b)
    mar, j2r = np.array(mar), np.array(j2r)
    return truth, on_treatment, mar, j2r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--per-arm-cal", type=int, default=150)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    t, c, (steps, est, dr) = timed(antidepressant, args.repeat)
    print(f"antidepressant J2R condmean-jackknife: {t:.2f} s wall (min of {args.repeat}), {c:.2f} s CPU; "
          f"week 6 DRUG-PLACEBO {est['estimate']:.3f} (SE {est['std_error']:.3f}); mean Newton iterations per "
          f"refit {np.mean(dr.iterations):.1f}")  # fmt: skip
    print("  last run by step: " + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items()))
    t0 = time.perf_counter()
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "trialpipe"), "impute", str(CSV), AD_FORMULA, "--group", "THERAPY",
         "--reference", "PLACEBO", "--strategy", "J2R"], check=True, capture_output=True,
    )  # fmt: skip
    print(f"  trialpipe impute (whole process, CSV to table): {time.perf_counter() - t0:.2f} s")
    t, c, n_ice = feder_size(args.repeat)
    print(
        f"Feder-size trial (15 per arm, {n_ice} discontinued) J2R condmean-jackknife incl. fit: {t:.2f} s wall, {c:.2f} s CPU"
    )
    truth, on_tr, mar, j2r = calibration(args.reps, args.per_arm_cal)
    se = lambda x: x.std(ddof=1) / np.sqrt(len(x))
    print(f"calibration (MNAR, 20% discontinuation, {args.reps} trials of {args.per_arm_cal} per arm):")
    print(
        f"  truth (complete outcomes, benefit lost after stopping) {truth:.2f}; had everyone stayed on treatment {on_tr:.2f}"
    )
    print(f"  MAR MMRM: mean {mar.mean():.2f}, bias {mar.mean() - truth:+.2f} (MC SE {se(mar):.2f})")
    print(f"  J2R:      mean {j2r.mean():.2f}, bias {j2r.mean() - truth:+.2f} (MC SE {se(j2r):.2f})")


if __name__ == "__main__":
    main()
