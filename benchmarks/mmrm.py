"""Time our MMRM fits against R mmrm, both measured in this run (a benchmark, never run as a test).

Run: ``.venv/bin/python benchmarks/mmrm.py [--repeat N] [--rounds K] [--cases ...] [--no-cli]``

Models (the usual primary MMRM, and the spatial Gaussian one):

* fev UN + KR:  FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID), REML, Kenward-Roger
* bcva UN + Satterthwaite / KR: BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT + us(AVISIT | USUBJID)
  (the formula of mmrm's own bcva benchmark: 55 covariance parameters on 10 visits, 1,000 subjects)
* fev sp_gau + KR: FEV1 ~ ARMCD + sp_gau(VISITN, VISITN2 | USUBJID)

Two measurements, each side by side with R in the same run:

1. **in process**: ours = ``fit_mmrm`` + the coefficient table (df included) on a loaded DataFrame;
   R = ``mmrm()`` + ``summary()`` on a loaded data.frame, all fits in one R process
   (``benchmarks/mmrm_peer.R``). One untimed warm-up each, then ``--repeat`` timed fits.
2. **whole process (CLI)**: ``trialpipe mmrm DATA.csv FORMULA`` against ``Rscript`` doing the same
   (start, load mmrm, read the CSV, fit, print the summary), each started ``--repeat`` times.

Ours and R's runs alternate for ``--rounds`` rounds so both see the same machine load; the minimum
over all runs is reported, with the ratio R / ours (> 1: we are faster). R is optional: without
``Rscript`` or the mmrm package the script says so and prints our timings only. How R mmrm was
installed on a Debian machine: see the README's benchmark section.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEER = Path(__file__).with_name("mmrm_peer.R")

CASES = {
    "fev UN + KR": (
        "fev_data.csv",
        "FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID)",
        {"ref": {"SEX": "Male"}, "df_method": "kenward-roger"},
        ["--ref", "SEX=Male", "--df", "kenward-roger"],
    ),
    "bcva UN + Satterthwaite": (
        "bcva_data.csv",
        "BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT + us(AVISIT | USUBJID)",
        {"df_method": "satterthwaite"},
        ["--df", "satterthwaite"],
    ),
    "bcva UN + KR": (
        "bcva_data.csv",
        "BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT + us(AVISIT | USUBJID)",
        {"df_method": "kenward-roger"},
        ["--df", "kenward-roger"],
    ),
    "fev sp_gau + KR": (
        "fev_data.csv",
        "FEV1 ~ ARMCD + sp_gau(VISITN, VISITN2 | USUBJID)",
        {"df_method": "kenward-roger"},
        ["--df", "kenward-roger"],
    ),
}
# Done-when targets of issue 14 (R / ours, same run)
TARGET_RATIO = {"fev UN + KR": 3.0, "bcva UN + Satterthwaite": 5.0}


def r_available() -> tuple[bool, str]:
    rscript = shutil.which("Rscript")
    if not rscript:
        return False, "Rscript not found"
    try:
        out = subprocess.run(
            [rscript, "-e", 'cat(as.character(packageVersion("mmrm")))'],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"Rscript failed: {exc}"
    if out.returncode != 0:
        return False, "the R package mmrm is not installed"
    return True, out.stdout.strip()


def run_r_inprocess(refdata: Path, repeat: int, cases: list[str]) -> dict:
    cmd = ["Rscript", str(PEER), str(refdata), str(repeat), *cases]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"R benchmark failed:\n{out.stderr[-2000:]}")
    res = {}
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "RESULT":
            res[parts[1]] = {"min": float(parts[2]), "median": float(parts[3]), "deviance": float(parts[4])}
        elif parts[0] == "LOAD":
            res["_load"] = float(parts[1])
    return res


def time_ours_inprocess(frames, name, repeat):
    from pipelines.stats.mmrm import fit_mmrm

    data, formula, kwargs, _ = CASES[name]

    def once():
        res = fit_mmrm(frames[data], formula, **kwargs)
        res.coefficients  # noqa: B018 - the coefficient table (with df) is part of the work
        return res

    res = once()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = once()
        times.append(time.perf_counter() - t0)
    assert res.converged, res.warnings
    return times, res.neg2_loglik


def _wall(cmd, env=None):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{out.stdout[-1000:]}\n{out.stderr[-2000:]}")
    return dt


def time_cli(refdata, name, repeat, with_r):
    data, formula, _, cli_args = CASES[name]
    csv = str(refdata / data)
    trialpipe = [sys.executable, "-c", "from pipelines.cli import main; main()"]
    ours = [
        _wall([*trialpipe, "mmrm", csv, formula, *cli_args], env={**os.environ, "PYTHONPATH": str(ROOT)})
        for _ in range(repeat)
    ]
    r = [_wall(["Rscript", str(PEER), "--cli", name, csv]) for _ in range(repeat)] if with_r else []
    return ours, r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case and round (default 3)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of ours and R (default 2)")
    ap.add_argument("--refdata", type=Path, default=ROOT / "tests" / "data" / "refdata")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--cli-cases", nargs="*", default=["fev UN + KR", "bcva UN + Satterthwaite"])
    ap.add_argument("--no-r", action="store_true", help="do not run R even if it is installed")
    args = ap.parse_args(argv)

    import numpy  # noqa: F401 - load OpenBLAS before asking threadpoolctl about it
    import polars as pl
    from threadpoolctl import threadpool_info

    have_r, r_info = (False, "not asked (--no-r)") if args.no_r else r_available()
    print(f"R mmrm: {r_info if have_r else 'not run: ' + r_info}")
    blas = [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()]
    print(f"BLAS: {blas}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    frames = {f: pl.read_csv(args.refdata / f, null_values=["NA"]) for f in {CASES[c][0] for c in args.cases}}
    ours = {c: [] for c in args.cases}
    theirs = {c: [] for c in args.cases}
    dev = {}
    for rnd in range(args.rounds):
        for c in args.cases:
            t, d = time_ours_inprocess(frames, c, args.repeat)
            ours[c] += t
            dev[c] = [d, None]
        if have_r:
            rr = run_r_inprocess(args.refdata, args.repeat, args.cases)
            for c in args.cases:
                theirs[c].append(rr[c]["min"])
                dev[c][1] = rr[c]["deviance"]
        print(f"  round {rnd + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})", flush=True)

    print("\nIn process: fit + coefficient table, min over all runs (seconds)")
    print(f"{'case':<26}{'ours':>9}{'R mmrm':>9}{'R/ours':>8}{'target':>8}  met   -2LL ours / R")
    for c in args.cases:
        o = min(ours[c])
        r = min(theirs[c]) if theirs[c] else float("nan")
        ratio = r / o if theirs[c] else float("nan")
        tgt = TARGET_RATIO.get(c)
        met = "" if tgt is None or not theirs[c] else ("yes" if ratio >= tgt else "NO")
        d_r = f"{dev[c][1]:.4f}" if dev[c][1] is not None else "-"
        tgt_s = f"{tgt:.0f}x" if tgt else ""
        print(f"{c:<26}{o:>9.4f}{r:>9.4f}{ratio:>7.1f}x{tgt_s:>8}  {met:<5} {dev[c][0]:.4f} / {d_r}")

    if args.cli_cases:
        print("\nWhole process: `trialpipe mmrm DATA.csv FORMULA` vs Rscript (load mmrm, read, fit, print)")
        print(f"{'case':<26}{'ours':>9}{'R mmrm':>9}{'R/ours':>8}{'target':>8}  met")
        for c in args.cli_cases:
            o_all, r_all = [], []
            for _ in range(args.rounds):
                o, r = time_cli(args.refdata, c, args.repeat, have_r)
                o_all += o
                r_all += r
            o = min(o_all)
            r = min(r_all) if r_all else float("nan")
            ratio = r / o if r_all else float("nan")
            tgt = TARGET_RATIO.get(c)
            met = "" if tgt is None or not r_all else ("yes" if ratio >= tgt else "NO")
            print(f"{c:<26}{o:>9.3f}{r:>9.3f}{ratio:>7.1f}x{(f'{tgt:.0f}x' if tgt else ''):>8}  {met}")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
