"""Build a study's tables without Dagster, in the same order the asset graph runs them.

The Dagster assets call the same library functions; this path exists for tests, benchmarks and
debugging (``python -m pipelines.core.build STUDY_DIR DB``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pipelines.core import sql
from pipelines.core.study_run import StudyRun
from pipelines.ingest.load import IngestResult, ingest, write_reference


def build_study(
    study_dir: str | Path, db_path: str | Path, *, run_id: str = "local", layers: tuple[str, ...] = ("staging", "qc", "analysis")
) -> tuple[IngestResult, dict[str, dict]]:
    """Ingest the study in ``study_dir`` into ``db_path`` and build the SQL models of ``layers``."""
    study = StudyRun.from_folder(study_dir)
    timings: dict[str, dict] = {}
    with study.connect(run_id, db=db_path) as con:
        t = time.perf_counter()
        write_reference(con, study.manifest)
        result = ingest(con, study.study_dir, study.manifest, run_id)
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
