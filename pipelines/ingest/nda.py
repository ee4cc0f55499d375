"""NIMH Data Archive structures (pcl501, ptsd_dsm501, madrs01).

Two layouts exist (domain.md 3a):

* submission template (``.csv``): line 1 is the structure name split into base and version
  (``pcl5,01``), line 2 the element names, data from line 3;
* download package (``<short_name>.txt``): tab-delimited, line 1 element names, line 2 element
  descriptions, data from line 3.

Element names are the archive's, not the scale's: PCL-5 items 1-6 are ``bsi_54..bsi_59``; MADRS
elements are named, not numbered, and NDA's own numbering is not scale order; CAPS-5 has parallel
element sets (``caps_sum_*``, past-month, past-week ``*_v2``). Missing-value codes are
per-structure. Similar names are traps: ``pcl01`` is the Psychopathy Checklist, ``caps01`` the
Cardiff Anomalous Perceptions Scale.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from pipelines.core.errors import InputFileError
from pipelines.ingest import files, guard
from pipelines.ingest.readers import (
    SourceRead,
    VISIT_CANDIDATES,
    _Cols,
    add_frame,
    study_days_from_dates,
)
from pipelines.ingest.schema import item_column
from pipelines.instruments import Instrument, load_instruments
from pipelines.core.manifest import Manifest, Source

# Structures people confuse with ours, and what they really are.
TRAPS = {
    "pcl01": "the Psychopathy Checklist (pcl01), not the PTSD Checklist for DSM-5 (pcl501)",
    "pclc01": "the PCL-Civilian for DSM-IV (pclc01: 17 items rated 1-5), not the PCL-5 (pcl501)",
    "caps01": "the Cardiff Anomalous Perceptions Scale (caps01), not the CAPS-5 (ptsd_dsm501)",
    "ptsd01": "the CAPS for DSM-IV (ptsd01), not the CAPS-5 (ptsd_dsm501)",
}
NOT_INSTRUMENTS = {"ndar_subject01": "the NDA Research Subject record (no ratings, no arm)"}

_TEMPLATE_LINE = re.compile(r'^\s*"?([A-Za-z][A-Za-z0-9_]*?)"?\s*,\s*"?(\d{1,2})"?\s*[,\s]*$')


def structure_instrument(structure: str) -> Instrument | None:
    for inst in load_instruments().values():
        if inst.formats.nda and inst.formats.nda.structure == structure:
            return inst
    return None


def _detect_layout(path: Path, source: Source) -> tuple[str | None, int, int, str | None]:
    """-> (structure from the file or None, lines before header, lines after header to drop, delimiter)."""
    raw = path.read_bytes()[:65536]
    text = files.decode_bytes(raw, source.encoding, source.file) if raw else ""
    first = text.splitlines()[0] if text.strip() else ""
    m = _TEMPLATE_LINE.match(first)
    if m:
        base, version = m.group(1).lower(), m.group(2).zfill(2)
        return f"{base}{version}", 1, 0, source.delimiter or ","
    lines = text.splitlines()
    delimiter = source.delimiter or files.detect_delimiter(first)
    # Download packages repeat a description line under the names; it is not data.
    if len(lines) > 1:
        second = lines[1].split(delimiter)
        if any("Global Unique Identifier" in c or ("subject" in c.lower() and " " in c) for c in second):
            return None, 0, 1, delimiter
    return None, 0, 0, delimiter


def read_nda(path: Path, manifest: Manifest, source: Source, out: SourceRead) -> None:
    label = source.file
    structure, skip, drop, delimiter = _detect_layout(path, source)
    if structure is None:
        structure = source.nda.structure or _structure_from_name(path)
    if structure is None:
        raise InputFileError(
            "is declared as an NDA file but its structure cannot be told: line 1 is not a template line like "
            "'pcl5,01' and the file name is not a structure short name; set nda.structure in study.yaml",
            file=label,
        )
    structure = structure.lower()
    if source.nda.structure and source.nda.structure.lower() != structure:
        raise InputFileError(
            f"is NDA structure {structure!r} but study.yaml declares nda.structure {source.nda.structure!r}",
            file=label,
        )
    if structure in TRAPS:
        raise InputFileError(f"is {TRAPS[structure]}; it cannot be read as a trial outcome", file=label, value=structure)
    if structure in NOT_INSTRUMENTS:
        raise InputFileError(f"is {NOT_INSTRUMENTS[structure]}; declare arms in a randomization file", file=label)
    inst = structure_instrument(structure)
    if inst is None:
        known = ", ".join(sorted(i.formats.nda.structure for i in load_instruments().values() if i.formats.nda))
        raise InputFileError(f"is NDA structure {structure!r}, which trialpipe does not read (known: {known})", file=label)
    if source.kind in load_instruments() and source.kind != inst.id:
        raise InputFileError(
            f"is NDA structure {structure!r} ({inst.instrument}) but study.yaml declares kind {source.kind}",
            file=label,
        )
    table = files.read_delimited(
        path, label=label, encoding=source.encoding, delimiter=delimiter, skip_lines=skip, extra_header_lines=drop
    )
    guard.check(table, manifest, source)
    out.rows_read = table.frame.height
    cols = _Cols(table.columns, label)
    nda = inst.formats.nda
    assert nda is not None
    m = source.columns
    subject = cols.pick(m.subject, ["src_subject_id", "subjectkey"], "subject id", "subject", required=True)
    visit = cols.pick(m.visit, [*VISIT_CANDIDATES, "visnum", "week"], "visit", "visit", required=True)
    exprs = [pl.col(files.ROW_COL), pl.col(subject).alias("subject"), pl.col(visit).alias("visit")]
    if m.study_day:
        exprs.append(pl.col(cols.need(m.study_day, "mapped as columns.study_day")).alias("study_day"))
    elif cols.find("days_baseline"):
        exprs.append(pl.col(cols.find("days_baseline")).alias("study_day"))
    else:
        date_col = cols.find(m.date or "interview_date")
        if date_col and manifest.dates.shifted:
            days = study_days_from_dates(table.frame, subject, visit, date_col, manifest, source)
            exprs.append(pl.lit(days).alias("study_day"))
        elif date_col:
            # Not loaded; the identifier guard reports unshifted dates before ingestion.
            cols.used.discard(date_col)
    if m.arm:
        exprs.append(pl.col(cols.need(m.arm, "mapped as columns.arm")).alias("arm"))
    for key in ("predose", "time_from_dose"):
        if getattr(m, key):
            exprs.append(pl.col(cols.need(getattr(m, key), f"mapped as columns.{key}")).alias(key))

    item_set, item_map = _choose_item_set(inst, table.frame, cols, source)
    exprs += [pl.col(col).alias(item_column(n)) for n, col in item_map.items()]
    total_el = nda.totals.get(item_set)
    if total_el and cols.find(total_el):
        exprs.append(pl.col(cols.find(total_el)).alias("total"))
    out.source_items[inst.id] = dict(sorted(item_map.items()))
    out.missing_codes = list(nda.missing_codes)
    out.notes.append(f"NDA structure {structure}, item set {item_set!r} ({len(item_map)} items)")
    add_frame(out, inst.id, table.frame.select(exprs), manifest)
    out.unmapped_columns = cols.unmapped()


def _structure_from_name(path: Path) -> str | None:
    stem = path.stem.lower()
    for cand in [stem, *re.split(r"[^a-z0-9_]", stem)]:
        if cand in TRAPS or cand in NOT_INSTRUMENTS or structure_instrument(cand):
            return cand
    return None


def _choose_item_set(inst: Instrument, frame: pl.DataFrame, cols: _Cols, source: Source) -> tuple[str, dict[int, str]]:
    """The element set the file's items are in: as declared, or the one set that has data."""
    sets = inst.nda_item_map()
    if source.nda.item_set:
        if source.nda.item_set not in sets:
            raise InputFileError(
                f"nda.item_set {source.nda.item_set!r} is not a {inst.instrument} element set (sets: {', '.join(sets)})",
                file=source.file,
            )
        candidates = [source.nda.item_set]
    else:
        candidates = list(sets)
    scored = []
    for name in candidates:
        present = {n: cols.by_lower[el.lower()] for el, n in sets[name].items() if el.lower() in cols.by_lower}
        filled = sum(1 for c in present.values() if frame[c].str.len_chars().gt(0).any())
        scored.append((filled, len(present), name, present))
    scored.sort(key=lambda t: (t[0], t[1]), reverse=True)
    filled, n_present, name, present = scored[0]
    core = set(inst.core_items)
    if not present and not source.nda.item_set:
        # a totals-only file (e.g. madrs01 with madrstot alone) is read for its totals
        for set_name, total_el in (inst.formats.nda.totals if inst.formats.nda else {}).items():
            if total_el.lower() in cols.by_lower:
                return set_name, {}
    if not core.issubset(present):
        missing = [el for el, n in sets[name].items() if n in core and n not in present]
        raise InputFileError(
            f"lacks {inst.instrument} elements of the {name!r} set: {', '.join(missing[:6])}"
            + (f" and {len(missing) - 6} more" if len(missing) > 6 else ""),
            file=source.file,
            column=missing[0],
        )
    others = [s for s in scored[1:] if s[0] >= len(core)]
    if others and not source.nda.item_set:
        raise InputFileError(
            f"has data in more than one {inst.instrument} element set ({name!r} and {others[0][2]!r}); "
            "say which one to analyse with nda.item_set",
            file=source.file,
        )
    for c in present.values():
        cols.used.add(c)
    return name, present
