"""Ingest benchmark: trialpipe vs bare DuckDB on the same simulated 10,000-subject study.

    .venv/bin/python benchmarks/ingest.py [--subjects 10000] [--repeats 3]

Both sides run in this process, alternately, on the same files (REDCap-style wide CSVs written by
the simulator), into fresh DuckDB files on the same disk:

* bare DuckDB (the physical reference): ``read_csv`` of each file (auto-detected types) into a
  table; and ``read_csv`` + ``UNPIVOT`` of the item columns into one long table;
* trialpipe: the raw layer (parse, identifier guard, lineage, raw tables) and the raw layer plus
  staging (every row decided: visits, arms, ranges, duplicates, quarantine, reconciliation) down
  to ``staging.item_responses``.

Prints medians and the speed ratio bare/trialpipe (1.0 = as fast as bare DuckDB). Not a test:
timings depend on the machine; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import duckdb


def bare_read(study: Path, db: Path, files: list[str]) -> int:
    con = duckdb.connect(str(db))
    con.execute("set enable_progress_bar = false")
    n = 0
    for i, f in enumerate(files):
        con.execute(f"create table t{i} as select * from read_csv('{study / f}', header = true)")
        n += con.execute(f"select count(*) from t{i}").fetchone()[0]
    con.close()
    return n


def bare_read_unpivot(study: Path, db: Path, files: list[tuple[str, str]]) -> int:
    """read_csv + unpivot of the item columns (matched by a regex) into one long table."""
    con = duckdb.connect(str(db))
    con.execute("set enable_progress_bar = false")
    parts = [
        f"select * from (select * from read_csv('{study / f}', header = true)) "
        f"unpivot (value for item in (columns('{pattern}')))"
        for f, pattern in files
    ]
    con.execute("create table long as " + " union all by name ".join(parts))
    n = con.execute("select count(*) from long").fetchone()[0]
    con.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "ingest.json")
    args = ap.parse_args()

    from pipelines.core.build import build_study
    from pipelines.core.manifest import load_manifest
    from pipelines.simulate import write_study

    work = Path(tempfile.mkdtemp(prefix="tp-bench-ingest-"))
    study = work / "study"
    t0 = time.perf_counter()
    write_study(study, per_arm=args.subjects // 2, seed=7, formats=("wide",))
    print(f"simulated {args.subjects} subjects in {time.perf_counter() - t0:.1f} s -> {study}")
    manifest = load_manifest(study)
    assessment_files = []
    for s in manifest.sources:
        if s.kind != "randomization":
            # the item columns the manifest names, as one regex for DuckDB's COLUMNS()
            from pipelines.instruments import load_instruments

            names = []
            for inst_id, m in s.instruments.items():
                inst = load_instruments()[inst_id]
                if m.items.columns:
                    names += m.items.columns
                else:
                    names += [m.items.pattern.format(n=i.n, code=i.code, code_lower=i.code.lower()) for i in inst.items]
            assessment_files.append((s.file, "^(" + "|".join(names) + ")$"))
    all_files = [s.file for s in manifest.sources]
    size_mb = sum((study / f).stat().st_size for f in all_files) / 1e6

    results: dict[str, list[float]] = {"bare_read": [], "bare_read_unpivot": [], "trialpipe_raw": [], "trialpipe_staging": []}
    counts: dict[str, int] = {}
    for r in range(args.repeats):
        for name in results:
            db = work / f"{name}-{r}.duckdb"
            t = time.perf_counter()
            if name == "bare_read":
                counts[name] = bare_read(study, db, all_files)
            elif name == "bare_read_unpivot":
                counts[name] = bare_read_unpivot(study, db, assessment_files)
            elif name == "trialpipe_raw":
                res, _ = build_study(study, db, layers=())
                counts[name] = sum(res.rows_by_table().values())
            else:
                build_study(study, db, layers=("staging", "qc"))
                con = duckdb.connect(str(db), read_only=True)
                counts[name] = con.execute("select count(*) from staging.item_responses").fetchone()[0]
                con.close()
            results[name].append(time.perf_counter() - t)
            db.unlink(missing_ok=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    summary = {
        "subjects": args.subjects,
        "input_mb": round(size_mb, 1),
        "rows": counts,
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "all_seconds": {k: [round(x, 3) for x in v] for k, v in results.items()},
        "ratio_raw_vs_bare_read": round(med["bare_read"] / med["trialpipe_raw"], 3),
        "ratio_staging_vs_bare_read_unpivot": round(med["bare_read_unpivot"] / med["trialpipe_staging"], 3),
    }
    print(f"input: {size_mb:.1f} MB of CSV, {counts.get('bare_read_unpivot', 0):,} item rows")
    for k, v in med.items():
        print(f"  {k:<20} {v:6.2f} s   ({counts.get(k, 0):,} rows)")
    print(f"speed ratio, raw layer vs bare read_csv:                 {summary['ratio_raw_vs_bare_read']:.2f}")
    print(f"speed ratio, raw+staging vs bare read_csv + unpivot:     {summary['ratio_staging_vs_bare_read_unpivot']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
