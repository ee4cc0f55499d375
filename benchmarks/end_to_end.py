"""End-to-end benchmark: `trialpipe run` against Dagster's own floor, and cost per subject at scale.

    .venv/bin/python benchmarks/end_to_end.py [--sizes 1000,10000,50000] [--repeats 3] [--profile]

All in one run, on this machine, so the ratios compare like with like:

* **the floor** — a trivial one-asset job materialised the way `trialpipe run` materialises a study:
  a fresh Python process, the persistent SQLite instance under DAGSTER_HOME, a dynamic partition,
  ``execute_in_process`` with the in-process executor. That is what Dagster itself costs.
* **the floor with the libraries** — the same job in a process that first imports what every study
  run needs (Great Expectations, statsmodels, scipy, matplotlib, polars, DuckDB): the least any run
  that validates with GX and fits statsmodels models can cost, however little it does.
* **Feder-size** — 15 + 15 subjects, PCL-5 (REDCap wide), CAPS-5 (NDA) and MADRS (SDTM), 4 visits,
  as `trialpipe run` in a fresh process; the ratio to the floor is printed with a per-step
  breakdown read from the run's Dagster event log (time before the first step, each step, the tail).
* **scale** — pooled studies (two arms, three instruments, five visits, wide CSVs) of each size in
  ``--sizes``: wall time, peak RSS of that process (``wait4``), seconds per 1,000 subjects.

Each process's peak RSS is its own (not the maximum over all children so far). Not a test: the
numbers depend on the machine and its load; read the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLOOR_JOB = textwrap.dedent(
    """
    import sys
    from dagster import Definitions, DynamicPartitionsDefinition, asset, define_asset_job, in_process_executor
    from pipelines.orchestration.runner import get_instance  # the instance exactly as `trialpipe run` opens it

    parts = DynamicPartitionsDefinition(name="studies")

    @asset(partitions_def=parts)
    def trivial() -> int:
        return 1

    defs = Definitions(assets=[trivial], jobs=[define_asset_job("job", selection=[trivial], partitions_def=parts)],
                       executor=in_process_executor)
    instance = get_instance(capture_output=False)
    if not instance.has_dynamic_partition("studies", "S1"):
        instance.add_dynamic_partitions("studies", ["S1"])
    res = defs.resolve_job_def("job").execute_in_process(instance=instance, partition_key="S1", raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    sys.exit(0 if res.success else 1)
    """
)


# The floor job after importing the libraries every study run needs (Great Expectations for the
# suites, statsmodels and scipy for the models, matplotlib for the figures, polars/DuckDB for the
# data): what any run that validates with GX and fits statsmodels models costs before its first row.
LIBRARIES = "import great_expectations, matplotlib.figure, polars, duckdb, scipy.stats, statsmodels.discrete.discrete_model\n"


def measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` from a fresh helper process so RUSAGE_CHILDREN is exactly that command's peak."""
    code = textwrap.dedent(
        """
        import json, resource, subprocess, sys, time
        cmd = json.loads(sys.argv[1])
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({"exit_code": p.returncode, "wall_seconds": wall, "peak_rss_mb": peak / 1024,
                          "stdout": p.stdout[-4000:], "stderr": p.stderr[-4000:]}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(cmd)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def run_id_of(stdout: str) -> str | None:
    import re

    m = re.search(r"\(run ([0-9a-f-]{36})\)", stdout)
    return m.group(1) if m else None


def step_breakdown(home: Path, run_id: str) -> dict:
    """Seconds before the first step, per step, and after the last, from the run's event log."""
    os.environ["DAGSTER_HOME"] = str(home)
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.get()
    records = instance.all_logs(run_id)
    start = {}
    dur: dict[str, float] = {}
    first = min(r.timestamp for r in records)
    last = max(r.timestamp for r in records)
    first_step = last_step = None
    for r in records:
        ev = r.dagster_event
        if ev is None or not ev.step_key:
            continue
        if ev.event_type == DagsterEventType.STEP_START:
            start[ev.step_key] = r.timestamp
            first_step = r.timestamp if first_step is None else min(first_step, r.timestamp)
        elif ev.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE) and ev.step_key in start:
            dur[ev.step_key] = r.timestamp - start[ev.step_key]
            last_step = r.timestamp if last_step is None else max(last_step, r.timestamp)
    return {
        "before_first_step": (first_step or first) - first,
        "steps": dict(sorted(dur.items(), key=lambda kv: -kv[1])),
        "after_last_step": last - (last_step or last),
        "n_steps": len(dur),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,50000", help="pooled study sizes (subjects); '' for none")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the floor and of the Feder-size study")
    ap.add_argument("--profile", action="store_true", help="cProfile the largest study's efficacy step")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "end_to_end.json")
    args = ap.parse_args()

    from pipelines.simulate import write_study

    work = Path(tempfile.mkdtemp(prefix="tp-bench-e2e-"))
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "docs" / "dagster" / "dagster.local.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    trialpipe = str(Path(sys.executable).with_name("trialpipe"))
    small = write_study(work / "feder", per_arm=15, formats=("wide", "nda", "sdtm"))

    floor, libs, feder = [], [], []
    # one untimed run of each first: the first process after an install compiles and caches
    measure([sys.executable, "-c", FLOOR_JOB], env)
    measure([sys.executable, "-c", LIBRARIES + FLOOR_JOB], env)
    measure([trialpipe, "run", str(small), "--warehouse", str(work / "wh" / "trialpipe.duckdb")], env)
    for _ in range(args.repeats):  # alternate, so load drifts hit all alike
        floor.append(measure([sys.executable, "-c", FLOOR_JOB], env))
        libs.append(measure([sys.executable, "-c", LIBRARIES + FLOOR_JOB], env))
        feder.append(measure([trialpipe, "run", str(small), "--warehouse", str(work / "wh" / "trialpipe.duckdb")], env))
    for name, runs in (("floor", floor), ("libraries", libs), ("feder", feder)):
        bad = [r for r in runs if r["exit_code"] != 0]
        if bad:
            sys.exit(f"{name} run failed: {bad[0]['stderr'][-2000:]}")
    floor_s = statistics.median(r["wall_seconds"] for r in floor)
    feder_s = statistics.median(r["wall_seconds"] for r in feder)
    libs_s = statistics.median(r["wall_seconds"] for r in libs)
    breakdown = step_breakdown(home, run_id_of(feder[-1]["stdout"]))
    results: dict = {
        "floor": {"median_seconds": floor_s, "all": [r["wall_seconds"] for r in floor],
                  "peak_rss_mb": max(r["peak_rss_mb"] for r in floor)},
        "floor_with_libraries": {"median_seconds": libs_s, "all": [r["wall_seconds"] for r in libs],
                                 "peak_rss_mb": max(r["peak_rss_mb"] for r in libs)},
        "feder_size": {"median_seconds": feder_s, "all": [r["wall_seconds"] for r in feder],
                       "peak_rss_mb": max(r["peak_rss_mb"] for r in feder), "ratio_to_floor": feder_s / floor_s,
                       "breakdown": breakdown},
        "scale": {},
    }
    print(f"Dagster floor (trivial one-asset job, fresh process): {floor_s:6.2f} s  (runs: "
          + ", ".join(f"{r['wall_seconds']:.2f}" for r in floor) + ")")
    print(f"the same after importing GX, statsmodels, scipy:    {libs_s:6.2f} s  (runs: "
          + ", ".join(f"{r['wall_seconds']:.2f}" for r in libs) + ")")
    print(f"Feder-size trialpipe run:                           {feder_s:6.2f} s  (runs: "
          + ", ".join(f"{r['wall_seconds']:.2f}" for r in feder) + f")  -> {feder_s / floor_s:.2f}x the floor, "
          f"{feder_s / libs_s:.2f}x the floor with the libraries")
    steps_total = sum(breakdown["steps"].values())
    print(f"  before the first step {breakdown['before_first_step']:.2f} s; {breakdown['n_steps']} steps "
          f"{steps_total:.2f} s; after the last step {breakdown['after_last_step']:.2f} s")
    for k, v in list(breakdown["steps"].items())[:12]:
        print(f"    {k:<40} {v:6.2f} s")

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    for n in sizes:
        t = time.perf_counter()
        study = write_study(work / f"pooled{n}", per_arm=n // 2, seed=99 + n, formats=("wide",), follow_up=True)  # one study_id per size
        sim = time.perf_counter() - t
        r = measure([trialpipe, "run", str(study), "--warehouse", str(work / "wh" / "trialpipe.duckdb")], env)
        results["scale"][n] = {
            "exit_code": r["exit_code"], "wall_seconds": r["wall_seconds"], "peak_rss_mb": r["peak_rss_mb"],
            "seconds_per_1000_subjects": r["wall_seconds"] / n * 1000, "simulate_seconds": sim,
        }
        rid = run_id_of(r["stdout"])
        if rid:
            results["scale"][n]["breakdown"] = step_breakdown(home, rid)
        print(f"pooled {n:>6} subjects: exit {r['exit_code']}  wall {r['wall_seconds']:7.1f} s  peak RSS "
              f"{r['peak_rss_mb']:7.0f} MB  {r['wall_seconds'] / n * 1000:6.2f} s per 1,000 subjects")
        if rid:
            bd = results["scale"][n]["breakdown"]
            print(f"    before the first step {bd['before_first_step']:.1f} s; after the last {bd['after_last_step']:.1f} s; "
                  + ", ".join(f"{k} {v:.1f}" for k, v in bd["steps"].items()))
        if r["exit_code"] != 0:
            print(r["stderr"][-1500:])
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        sa, sb = (results["scale"][x]["seconds_per_1000_subjects"] for x in (a, b))
        print(f"time per subject at {b:,} / at {a:,}: {sb / sa:.2f}")

    if args.profile and sizes:
        import cProfile
        import pstats

        from pipelines.core import warehouse
        from pipelines.core.manifest import load_manifest
        from pipelines.stats.efficacy import run_efficacy

        big = work / f"pooled{sizes[-1]}"
        db = work / "wh" / ".work" / f"{load_manifest(big).study_id}.duckdb"
        with warehouse.connect(db) as con:
            prof = cProfile.Profile()
            prof.enable()
            run_efficacy(con, load_manifest(big), "profile")
            prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
