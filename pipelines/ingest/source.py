"""One manifest source -> its rows: pick the reader (tabular, NDA, SDTM) and keep every failure.

``read_source`` never raises for a problem with the user's data: a file that cannot be used at all
comes back as a ``SourceRead`` with ``error`` set and no rows (see ``pipelines.ingest.readers``).
The NDA and SDTM readers build on the tabular readers' helpers, so the dispatch lives here, above
all three, and no reader imports another back.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.core.errors import InputFileError, TrialpipeError
from pipelines.core.manifest import Manifest, Source
from pipelines.ingest import files, guard
from pipelines.ingest.nda import read_nda
from pipelines.ingest.readers import SourceRead, read_long, read_randomization, read_wide, skip_blank_lines
from pipelines.ingest.sdtm import read_sdtm

log = logging.getLogger(__name__)


def read_source(study_dir: Path, manifest: Manifest, source: Source) -> SourceRead:
    label = source.file
    out = SourceRead(source=source, file=label)
    try:
        path = manifest.source_path(study_dir, source)  # inside the study folder (or allow_outside)
        if not path.is_file():
            raise InputFileError("does not exist (named in study.yaml)", file=label)
        out.sha256 = files.sha256_file(path)
        if source.layout == "nda":
            read_nda(path, manifest, source, out)
        elif source.layout == "sdtm":
            read_sdtm(path, manifest, source, out)
        else:
            table = files.read_any(path, source.format or "csv", label=label, encoding=source.encoding, delimiter=source.delimiter)
            guard.check(table, manifest, source)
            out.rows_read = table.frame.height
            table = skip_blank_lines(table, out)
            if source.kind in ("ae", "vs", "ex", "ds"):
                from pipelines.ingest.readers import _Cols
                from pipelines.ingest.safety import read_safety

                read_safety(table, _Cols(table.columns, label), source.kind, manifest, source, out, sdtm=False)
            elif source.kind == "randomization":
                read_randomization(table, manifest, source, out)
            elif source.layout == "wide":
                read_wide(table, manifest, source, out)
            else:
                read_long(table, manifest, source, out)
    except TrialpipeError as exc:
        out.error = exc
        out.frames = {}
    except Exception as exc:  # never crash the pipeline on user data; keep the detail for developers
        log.debug("unexpected error reading %s", label, exc_info=True)
        out.error = InputFileError(f"could not be read ({type(exc).__name__}: {exc})", file=label)
        out.frames = {}
    out.missing_codes = sorted(set(out.missing_codes) | set(source.missing_codes))
    return out
