"""End-to-end benchmark: wall time and peak memory of `trialpipe run` on two studies.

    .venv/bin/python benchmarks/end_to_end.py [--large-subjects 10000] [--profile]

* a Feder-size study: 15 + 15 subjects, PCL-5 (REDCap wide), CAPS-5 (NDA) and MADRS (SDTM), 4 visits;
* a 10,000-subject pooled study: two arms, all three instruments (wide), five visits (the
  simulator's week-4 follow-up added).

Each `trialpipe run` is a fresh process (imports, Dagster instance, every asset and check,
publish and report), as a user would run it; peak RSS is the largest resident set of that
process (getrusage of the child). Targets on a 2-core machine: <= 20 s and <= 90 s, <= 2 GB.
With --profile the large run's efficacy step is profiled separately (cProfile, top functions).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(study: Path, warehouse: Path, home: Path) -> dict:
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("trialpipe")), "run", str(study), "--warehouse", str(warehouse)],
        env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 2),
        # RUSAGE_CHILDREN keeps the maximum over all children so far; runs go smallest first
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 1),
        "last_line": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large-subjects", type=int, default=10_000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "end_to_end.json")
    args = ap.parse_args()

    from pipelines.simulate import write_study

    work = Path(tempfile.mkdtemp(prefix="tp-bench-e2e-"))
    home = work / "dagster_home"
    home.mkdir()
    small = write_study(work / "feder", per_arm=15, formats=("wide", "nda", "sdtm"))
    t = time.perf_counter()
    large = write_study(work / "pooled", per_arm=args.large_subjects // 2, seed=99, formats=("wide",), follow_up=True)
    sim_large = time.perf_counter() - t

    results = {"feder_size": timed_run(small, work / "wh" / "trialpipe.duckdb", home)}
    results["pooled_10k"] = timed_run(large, work / "wh" / "trialpipe.duckdb", home)
    results["pooled_10k"]["simulate_seconds"] = round(sim_large, 1)
    for name, r in results.items():
        print(f"{name:<12} exit {r['exit_code']}  wall {r['wall_seconds']:7.2f} s  peak RSS {r['peak_rss_mb']:7.1f} MB")
        print(f"             {r['last_line'][:160]}")
    if args.profile:
        import cProfile
        import pstats

        from pipelines.core import warehouse
        from pipelines.core.manifest import load_manifest
        from pipelines.stats.efficacy import run_efficacy

        db = work / "wh" / ".work" / f"{load_manifest(large).study_id}.duckdb"
        with warehouse.connect(db) as con:
            prof = cProfile.Profile()
            prof.enable()
            run_efficacy(con, load_manifest(large), "profile")
            prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
