"""Build a study's tables without Dagster, in the same order the asset graph runs them.

The Dagster assets call the same library functions; this path exists for tests, benchmarks and
debugging (``python -m pipelines.core.build STUDY_DIR DB``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pipelines.core import sql, warehouse
from pipelines.ingest.load import IngestResult, ingest, write_reference
from pipelines.core.manifest import load_manifest


def build_study(
    study_dir: str | Path, db_path: str | Path, *, run_id: str = "local", layers: tuple[str, ...] = ("staging", "qc", "analysis")
) -> tuple[IngestResult, dict[str, dict]]:
    study_dir = Path(study_dir)
    manifest = load_manifest(study_dir)
    timings: dict[str, dict] = {}
    with warehouse.connect(db_path) as con:
        warehouse.ensure_schemas(con)
        warehouse.set_context(con, study_id=manifest.study_id, run_id=run_id)
        t = time.perf_counter()
        write_reference(con, manifest)
        result = ingest(con, study_dir, manifest, run_id)
        timings["ingest"] = {"seconds": round(time.perf_counter() - t, 3)}
        for model in sql.ordered_models(layers):
            timings[model] = sql.run_model(con, model)
    return result, timings


if __name__ == "__main__":  # pragma: no cover - debugging aid
    res, times = build_study(sys.argv[1], sys.argv[2])
    for r in res.reads:
        print(r.file, "ERROR " + str(r.error) if r.error else r.rows_loaded)
    for k, v in times.items():
        print(k, v)
