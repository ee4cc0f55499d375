"""CDISC SDTM: QS/RS findings and DM, as SAS XPORT v5 (``.xpt``) or CSV.

* QS / RS: one row per subject x visit x test. The instrument is told by the category
  (``QSCAT``/``RSCAT``), the item by the test code (``QSTESTCD``), the value is the standardized
  numeric result (``--STRESN``; else ``--STRESC``, else ``--ORRES``). Derived total records
  (``--DRVFL = 'Y'`` or a total test code) become the reported total. Rows of categories the study
  does not analyse are skipped and counted.
* DM: one row per subject; the randomized arm is ``ARMCD`` (else ``ARM``). Screen failures and
  subjects not assigned (``SCRNFAIL``, ``NOTASSGN``) are skipped and counted.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.core.errors import InputFileError
from pipelines.ingest import files, guard
from pipelines.ingest.safety import SDTM_DOMAINS, read_safety
from pipelines.ingest.readers import ItemCode, SourceRead, _Cols, add_frame
from pipelines.instruments import Instrument, load_instruments, resolve_instrument
from pipelines.core.manifest import Manifest, Source

NOT_RANDOMIZED_ARMCD = {"SCRNFAIL", "NOTASSGN", "NOTTRT", ""}
FINDINGS = ("QS", "RS")


def read_sdtm(path: Path, manifest: Manifest, source: Source, out: SourceRead) -> None:
    label = source.file
    fmt = source.format or "xpt"
    table = files.read_any(path, fmt, label=label, encoding=source.encoding, delimiter=source.delimiter)
    guard.check(table, manifest, source)
    out.rows_read = table.frame.height
    cols = _Cols(table.columns, label)
    domain = _domain(table, cols, source, path)
    if domain == "DM":
        _read_dm(table, cols, manifest, source, out)
    elif domain in FINDINGS:
        _read_findings(table, cols, domain, manifest, source, out)
    elif domain in SDTM_DOMAINS:
        read_safety(table, cols, SDTM_DOMAINS[domain], manifest, source, out, sdtm=True)
    else:
        raise InputFileError(
            f"is SDTM domain {domain!r}; trialpipe reads QS and RS (ratings), DM (arms), AE, VS, EX and DS",
            file=label,
            value=domain,
        )
    out.unmapped_columns = cols.unmapped()


def _domain(table: files.TextTable, cols: _Cols, source: Source, path: Path) -> str:
    declared = source.sdtm.domain
    col = cols.find("DOMAIN")
    found = None
    if col is not None:
        values = {v for v in table.frame[col].unique().to_list() if v}
        if len(values) > 1:
            raise InputFileError(f"holds several SDTM domains ({', '.join(sorted(values))}); one domain per file", file=source.file, column=col)
        found = next(iter(values), None)
    if found is None:
        stem = path.stem.upper()[:2]
        found = stem if stem in (*FINDINGS, "DM", *SDTM_DOMAINS) else None
    if declared and found and declared != found.upper():
        raise InputFileError(
            f"is SDTM domain {found!r} but study.yaml declares sdtm.domain {declared!r}", file=source.file, value=found
        )
    domain = (declared or found or "").upper()
    if not domain:
        raise InputFileError("has no DOMAIN column and its name does not say the domain; set sdtm.domain", file=source.file)
    return domain


def _read_dm(table: files.TextTable, cols: _Cols, manifest: Manifest, source: Source, out: SourceRead) -> None:
    m = source.columns
    subject = cols.need(m.subject or "USUBJID", "the subject id (USUBJID)")
    arm = cols.find(m.arm) if m.arm else (cols.find("ARMCD") or cols.find("ARM"))
    if arm is None:
        raise InputFileError("DM has neither ARMCD nor ARM; the randomized arm is required", file=source.file, column="ARMCD")
    if m.arm is None and cols.find("ARM") and arm != cols.find("ARM"):
        cols.used.add(cols.find("ARM"))  # ARM is the label of ARMCD; read for the record, not stored
    sel = {"subject": subject, "arm": arm}
    for key, default in (("site", "SITEID"), ("sex", "SEX"), ("age", "AGE"), ("race", "RACE"), ("ethnicity", "ETHNIC")):
        got = cols.find(getattr(m, key) or default)
        if got:
            sel[key] = got
    frame = table.frame.select([pl.col(files.ROW_COL), *[pl.col(c).alias(k) for k, c in sel.items()]])
    keep = ~frame["arm"].str.to_uppercase().is_in(list(NOT_RANDOMIZED_ARMCD))
    n_skip = int((~keep).sum())
    if n_skip:
        out.skipped["not randomized (ARMCD SCRNFAIL/NOTASSGN or empty)"] = n_skip
    add_frame(out, "randomization", frame.filter(keep), manifest)


def _categories(inst: Instrument, source: Source) -> list[str]:
    for key, cats in source.sdtm.categories.items():
        hit = resolve_instrument(key)
        if hit and hit.id == inst.id:
            return cats
    return inst.formats.sdtm.categories if inst.formats.sdtm else []


def _read_findings(
    table: files.TextTable, cols: _Cols, domain: str, manifest: Manifest, source: Source, out: SourceRead
) -> None:
    p = domain  # variable prefix: QS or RS
    m = source.columns
    subject = cols.need(m.subject or "USUBJID", "the subject id (USUBJID)")
    cat = cols.need(f"{p}CAT", "the instrument category")
    testcd = cols.need(f"{p}TESTCD", "the item test code")
    stresn, stresc, orres = cols.find(f"{p}STRESN"), cols.find(f"{p}STRESC"), cols.find(f"{p}ORRES")
    if not (stresn or stresc or orres):
        raise InputFileError(f"has no result column ({p}STRESN, {p}STRESC or {p}ORRES)", file=source.file)
    visit = cols.find(m.visit or "VISIT")
    visitnum = cols.find("VISITNUM")
    if visit is None and visitnum is None:
        raise InputFileError("has neither VISIT nor VISITNUM", file=source.file, column="VISIT")
    day = cols.find(m.study_day or f"{p}DY")
    stat, drvfl = cols.find(f"{p}STAT"), cols.find(f"{p}DRVFL")
    for extra in (f"{p}TEST", f"{p}SEQ", "STUDYID", "DOMAIN", f"{p}REASND", f"{p}EVINTX", f"{p}ORRESU"):
        cols.find(extra)  # read and understood; not stored

    value = pl.coalesce(
        *[pl.col(c).replace("", None) for c in (stresn, stresc, orres) if c]
    ).fill_null("")
    exprs = [
        pl.col(files.ROW_COL),
        pl.col(subject).alias("subject"),
        (pl.col(visit) if visit else pl.col(visitnum)).alias("visit"),
        pl.col(testcd).alias("item"),
        value.alias("value"),
    ]
    if visitnum:
        exprs.append(pl.col(visitnum).alias("visitnum"))
    if day and not m.study_day:
        # SDTM --DY has no day 0: day 1 is the reference start (first dose / baseline), the day
        # before it is -1. trialpipe's study day counts days since baseline (baseline = day 0).
        dy = pl.col(day).str.strip_chars().cast(pl.Int64, strict=False)
        exprs.append(
            pl.when(dy >= 1).then(dy - 1).otherwise(dy).cast(pl.String).fill_null(pl.col(day)).alias("study_day")
        )
    elif day:
        exprs.append(pl.col(day).alias("study_day"))
    tpt = cols.find(m.predose or f"{p}TPT")
    if tpt:
        exprs.append(pl.col(tpt).alias("predose"))  # QSTPT such as PRE-DOSE / 40 MIN POST-DOSE
    if m.time_from_dose:
        exprs.append(pl.col(cols.need(m.time_from_dose, "mapped as columns.time_from_dose")).alias("time_from_dose"))
    if stat:
        exprs.append(pl.col(stat).alias("status"))
    if drvfl:
        exprs.append(pl.col(drvfl).alias("derived"))
    frame = table.frame.select(exprs)

    wanted = [resolve_instrument(k).id for k in source.instruments] if source.instruments else list(load_instruments())  # type: ignore[union-attr]
    cat_values = table.frame[cat].str.strip_chars().str.to_uppercase()
    assigned = pl.Series([None] * frame.height, dtype=pl.String)
    for inst_id in wanted:
        inst = load_instruments()[inst_id]
        cats = [c.upper() for c in _categories(inst, source)]
        hit = cat_values.is_in(cats)
        if hit.any():
            assigned = pl.when(hit).then(pl.lit(inst_id)).otherwise(assigned).alias("x")
            assigned = frame.select(assigned).to_series()
    frame = frame.with_columns(assigned.alias("_inst"))
    unknown = frame.filter(pl.col("_inst").is_null())
    if unknown.height:
        cats_seen = sorted({c for c in table.frame.filter(frame["_inst"].is_null())[cat].to_list()})
        out.skipped[f"{p}CAT not analysed ({', '.join(cats_seen[:5])})"] = unknown.height
    for inst_id in sorted({v for v in frame["_inst"].to_list() if v}):
        inst = load_instruments()[inst_id]
        part = frame.filter(pl.col("_inst") == inst_id).drop("_inst")
        pattern = source.sdtm.testcd_patterns.get(inst_id) or (inst.formats.sdtm.testcd_pattern if inst.formats.sdtm else None)
        if pattern:
            out.item_codes += [ItemCode(inst_id, pattern.format(n=it.n, code=it.code), it.n) for it in inst.items]
        out.item_codes += [ItemCode(inst_id, t, None) for t in (inst.formats.sdtm.total_testcds if inst.formats.sdtm else [])]
        add_frame(out, inst_id, part, manifest)
