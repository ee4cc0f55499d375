"""Writers for the three layouts people receive: REDCap-style wide CSV, NDA structures, SDTM XPT.

Every writer takes a :class:`~pipelines.simulate.trial.Trial` and writes one file; element names,
test codes, categories and missing codes come from the instrument definitions
(``pipelines/instruments/*.yaml``), not from this module. Files are byte-identical for a seed.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyreadstat

from pipelines.instruments import Instrument, load_instruments
from pipelines.simulate.generic import score_totals
from pipelines.simulate.trial import ARMS, INSTRUMENT_ORDER, Trial

FORMATS = ("wide", "nda", "sdtm")

# Where each instrument goes when several formats are asked for, in order of preference, so that
# every instrument is written exactly once and every requested format gets at least one instrument
# (each format is some instrument's first choice): PCL-5 is self-report and typically collected in
# REDCap; CAPS-5 as NDA ptsd_dsm501 (the past-week set); MADRS, clinician-rated, in SDTM RS.
PREFERENCE = {
    "pcl5": ("wide", "nda", "sdtm"),
    "caps5": ("nda", "sdtm", "wide"),
    "madrs": ("sdtm", "wide", "nda"),
}


@dataclass(frozen=True)
class Plan:
    """Which format holds each instrument, and which file holds the arms."""

    formats: tuple[str, ...]
    instrument_format: dict[str, str]
    arm_source: str  # "wide" (randomization.csv) or "sdtm" (dm.xpt)

    @property
    def instruments(self) -> tuple[str, ...]:
        return tuple(self.instrument_format)


def _preference(key: str, index: int, fmts: tuple[str, ...]) -> tuple[str, ...]:
    """The formats an instrument may go to, best first: PREFERENCE for the default three; any other
    starts at the requested format its position picks (so several instruments spread over the
    requested formats) and can go only where its definition has a map (NDA structure, SDTM codes)."""
    if key in PREFERENCE:
        return PREFERENCE[key]
    inst = load_instruments()[key]
    able = ["wide"] + [f for f in ("sdtm", "nda") if getattr(inst.formats, f) is not None]
    asked = [f for f in fmts if f in able]
    if not asked:
        raise ValueError(
            f"{inst.instrument} cannot be written as {', '.join(fmts)}: its definition has no "
            f"{' or '.join(f.upper() for f in fmts)} map; add wide to --format"
        )
    start = index % len(asked)
    return tuple(asked[start:] + asked[:start])


def plan(formats: str | Iterable[str], instruments: Iterable[str] = INSTRUMENT_ORDER) -> Plan:
    """``formats`` is a sequence such as ("wide", "nda") or a comma list such as "wide,nda"."""
    if isinstance(formats, str):
        formats = formats.split(",")
    fmts = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in fmts if f not in FORMATS]
    if unknown or not fmts:
        raise ValueError(f"unknown format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    where = {
        inst: next(f for f in _preference(inst, i, fmts) if f in fmts) for i, inst in enumerate(instruments)
    }
    # NDA structures carry no arm: arms come from randomization.csv unless SDTM DM is the only option.
    arm_source = "sdtm" if "sdtm" in fmts and "wide" not in fmts else "wide"
    return Plan(fmts, where, arm_source)


# --------------------------------------------------------------------------------------------
# shared helpers


def _observed_rows(trial: Trial) -> list[tuple[int, int]]:
    """(subject index, visit index) of attended visits, sorted by subject id then visit."""
    return [(s, v) for s in range(trial.n) for v in range(len(trial.visits)) if trial.observed[s, v]]


def _totals(trial: Trial, key: str, rows: list[tuple[int, int]]) -> list[int | None]:
    """The instrument total of each (subject, visit) by its definition, None when any item is
    missing (a total is never prorated here)."""
    s_idx = np.array([r[0] for r in rows], dtype=np.int64)
    v_idx = np.array([r[1] for r in rows], dtype=np.int64)
    tot = score_totals(load_instruments()[key], trial.items[key][s_idx, v_idx])
    complete = ~trial.missing[key][s_idx, v_idx].any(axis=-1)
    return [int(t) if c else None for t, c in zip(tot.tolist(), complete.tolist(), strict=True)]


def age_band(years: int) -> str:
    if years < 30:
        return "18-29"
    if years >= 60:
        return "60-65"
    lo = years // 10 * 10
    return f"{lo}-{lo + 9}"


# --------------------------------------------------------------------------------------------
# wide (REDCap-style) exports

# Column names of the REDCap instruments (our choice, REDCap conventions: lower-case field names,
# ``<form>_complete`` status 2 = Complete). ``items`` is the manifest pattern for the item columns.
REDCAP = {
    "pcl5": {"file": "pcl5_redcap.csv", "items": "pcl5_{n}", "total": "pcl5_total", "form": "pcl5"},
    "caps5": {
        "file": "caps5_redcap.csv",
        "items": "caps5_{code_lower}",
        "total": "caps5_total_sev",
        "form": "caps5_past_week",
    },
    "madrs": {"file": "madrs_redcap.csv", "items": "madrs_{n}", "total": "madrs_total", "form": "madrs"},
}
REDCAP_DAY_COLUMN = "days_from_baseline"


def redcap_spec(key: str) -> dict[str, str]:
    """REDCAP's entry, or for another instrument: <id>_redcap.csv with items <id>_<n>, total <id>_total."""
    return REDCAP.get(key) or {"file": f"{key}_redcap.csv", "items": f"{key}_{{n}}", "total": f"{key}_total", "form": key}


def redcap_item_columns(inst: Instrument, pattern: str) -> list[str]:
    return [
        pattern.format(n=it.n, code=it.code, code_lower=it.code.lower())
        for it in inst.items
        if not it.optional
    ]


def write_randomization(trial: Trial, path: Path) -> None:
    """One row per randomized subject: record_id, arm (1 ketamine / 0 midazolam), site, sex, age band,
    age in years (18-65: not an identifier under Safe Harbor, which protects ages over 89) and the
    reason a subject discontinued before week 2 (empty for completers)."""
    code = {a.id: a.code for a in ARMS}
    s = trial.subjects
    cols = {
        "record_id": s["usubjid"],
        "arm": [code[a] for a in s["arm"]],
        "site": s["site"],
        "sex": s["sex"],
        "age_band": [age_band(int(y)) for y in s["age_years"]],
        "age": s["age_years"],
        # the default design's dropout reason; a subject discontinued by the intercurrent-event
        # options (disc_reason) has that reason here too
        "dcsreas": (
            s["dcsreas"].fill_null(s["disc_reason"].cast(pl.String).replace("", None))
            if "disc_reason" in s.columns else s["dcsreas"]
        ),
    }
    for extra in ("disc_visit", "disc_reason", "rescue_visit"):  # only with intercurrent events
        if extra in s.columns:
            cols[extra] = s[extra]
    pl.DataFrame(cols).write_csv(path, line_terminator="\n")


def write_redcap(trial: Trial, key: str, path: Path) -> None:
    """A REDCap longitudinal export: one row per record x event; blank cells for unanswered items."""
    inst = load_instruments()[key]
    spec = redcap_spec(key)
    numbers, values, missing = trial.item_block(key)
    cols = [spec["items"].format(n=n, code=inst.item(n).code, code_lower=inst.item(n).code.lower()) for n in numbers]
    rows = _observed_rows(trial)
    s_idx = np.array([r[0] for r in rows])
    v_idx = np.array([r[1] for r in rows])
    data: dict[str, object] = {
        "record_id": trial.subjects["usubjid"].to_numpy()[s_idx],
        "redcap_event_name": [trial.visits[v].redcap_event for v in v_idx],
        REDCAP_DAY_COLUMN: trial.days[s_idx, v_idx].astype(np.int64),
    }
    for j, col in enumerate(cols):
        vals = values[s_idx, v_idx, j].astype(np.int64)
        miss = missing[s_idx, v_idx, j]
        data[col] = (
            pl.Series(col, vals, dtype=pl.Int64).scatter(np.flatnonzero(miss), None) if miss.any() else vals
        )
    data[spec["total"]] = pl.Series(_totals(trial, key, rows), dtype=pl.Int64)
    data[f"{spec['form']}_complete"] = np.full(len(rows), 2, dtype=np.int64)
    pl.DataFrame(data).write_csv(path, line_terminator="\n")


# --------------------------------------------------------------------------------------------
# NIMH Data Archive structures

# Which item set and missing code each structure uses. CAPS-5 repeated assessments use the
# past-week version (the `_v2` elements); PCL-5 uses the standard past-month form, whose total is
# `pcl5_total`; MADRS has one set. Missing codes: pcl501 555 = Missing; madrs01 -9999 =
# NK/NA/Missing; ptsd_dsm501 -9999 (one of the instrument's NDA missing codes).
NDA = {
    "pcl5": {"item_set": "past_month", "missing": "555", "layout": "template", "file": "pcl501.csv"},
    "caps5": {"item_set": "past_week", "missing": "-9999", "layout": "download", "file": "ptsd_dsm501.txt"},
    "madrs": {"item_set": "scale", "missing": "-9999", "layout": "template", "file": "madrs01.csv"},
}


def nda_spec(key: str) -> dict[str, str]:
    """NDA's entry, or for another instrument with an NDA map: its first item set and missing code,
    the submission-template layout, <structure>.csv."""
    if key in NDA:
        return NDA[key]
    nda = load_instruments()[key].formats.nda
    assert nda is not None, key
    missing = nda.missing_codes[0] if nda.missing_codes else "-9"
    return {"item_set": next(iter(nda.item_sets)), "missing": missing, "layout": "template", "file": f"{nda.structure}.csv"}


NDA_COMMON = ("subjectkey", "src_subject_id", "interview_date", "interview_age", "sex", "visit")
# Descriptions of the common elements as the NDA data dictionary gives them (download layout row 2).
NDA_COMMON_DESCRIPTIONS = {
    "subjectkey": "The NDAR Global Unique Identifier (GUID) for research subject",
    "src_subject_id": "Subject ID how it's defined in lab/project",
    "interview_date": (
        "Date on which the interview/genetic test/sampling/imaging/biospecimen was completed. MM/DD/YYYY"
    ),
    "interview_age": "Age in months at the time of the interview/test/sampling/imaging.",
    "sex": "Sex of subject at birth",
    "visit": "Visit name",
}
_RECALL = {"past_month": "past month", "past_week": "past week"}


def nda_structure(key: str) -> tuple[str, str]:
    """'pcl501' -> ('pcl5', '01'): the template's first line is the name split from its version."""
    name = load_instruments()[key].formats.nda.structure  # type: ignore[union-attr]
    m = re.fullmatch(r"(.+?)(\d{2})", name)
    assert m, name
    return m.group(1), m.group(2)


def nda_columns(key: str, numbers: list[int] | None = None) -> tuple[list[str], str]:
    """The item set's elements of ``numbers`` (default: the core items), and its total element."""
    inst = load_instruments()[key]
    nda = inst.formats.nda
    assert nda is not None
    item_set = nda_spec(key)["item_set"]
    by_number = {n: el for el, n in inst.nda_item_map()[item_set].items()}
    elements = [by_number[n] for n in (numbers or inst.core_items)]
    return elements, nda.totals[item_set]


def _nda_description(inst: Instrument, key: str, n: int) -> str:
    it = inst.item(n)
    # a fact such as the duration of the disturbance (own 0/1 range) has no recall period
    recall = _RECALL.get(nda_spec(key)["item_set"]) if inst.item_range(n) == (inst.item_min, inst.item_max) else None
    return f"{it.code} - {it.label}" + (f" - {recall}" if recall else "") if inst.clusters else it.label


def write_nda(trial: Trial, key: str, path: Path) -> None:
    """An NDA structure in its submission-template (CSV, line 1 'pcl5,01') or download layout
    (tab-delimited .txt, row 1 element names, row 2 element descriptions, every field quoted)."""
    inst = load_instruments()[key]
    numbers, values, missing = trial.item_block(key)
    elements, total = nda_columns(key, numbers)
    spec = nda_spec(key)
    header = [*NDA_COMMON, *elements, total]
    s = trial.subjects
    rows = []
    observed = _observed_rows(trial)
    totals = _totals(trial, key, observed)
    for (si, vi), tot in zip(observed, totals, strict=True):
        day = int(trial.days[si, vi])
        date = s["baseline_date"][si] + dt.timedelta(days=day)
        # NDA: age rounded to the chronological month (15 days -> 0, 16 days -> 1).
        months = int(np.floor((s["age_days"][si] + day) / 30.4375 + 0.5 - 1e-9))
        items = [
            spec["missing"] if missing[si, vi, j] else str(int(values[si, vi, j]))
            for j in range(len(elements))
        ]
        rows.append(
            [
                s["subjectkey"][si],
                s["usubjid"][si],
                date.strftime("%m/%d/%Y"),
                str(months),
                s["sex"][si],
                trial.visits[vi].nda_label,
                *items,
                "" if tot is None else str(tot),
            ]
        )
    with path.open("w", newline="", encoding="utf-8") as fh:
        if spec["layout"] == "template":
            w = csv.writer(fh, lineterminator="\n")
            fh.write(",".join(nda_structure(key)) + "\n")
            w.writerow(header)
        else:
            w = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
            w.writerow(header)
            descr = [NDA_COMMON_DESCRIPTIONS[c] for c in NDA_COMMON]
            descr += [_nda_description(inst, key, n) for n in numbers]
            descr.append(
                f"{inst.instrument} total severity"
                + (f" - {_RECALL[spec['item_set']]}" if spec["item_set"] in _RECALL else "")
            )
            w.writerow(descr)
        w.writerows(rows)


# --------------------------------------------------------------------------------------------
# CDISC SDTM (SAS XPORT v5)

SDTM_FILES = {"DM": "dm.xpt", "QS": "qs.xpt", "RS": "rs.xpt"}
SDTM_DATASET_LABELS = {
    "DM": "Demographics",
    "QS": "Questionnaires",
    "RS": "Disease Response and Clin Classification",
}
DM_LABELS = {
    "STUDYID": "Study Identifier",
    "DOMAIN": "Domain Abbreviation",
    "USUBJID": "Unique Subject Identifier",
    "SUBJID": "Subject Identifier for the Study",
    "SITEID": "Study Site Identifier",
    "AGE": "Age",
    "AGEU": "Age Units",
    "SEX": "Sex",
    "ARMCD": "Planned Arm Code",
    "ARM": "Description of Planned Arm",
    "ACTARMCD": "Actual Arm Code",
    "ACTARM": "Description of Actual Arm",
}
FINDINGS_LABELS = {
    "STUDYID": "Study Identifier",
    "DOMAIN": "Domain Abbreviation",
    "USUBJID": "Unique Subject Identifier",
    "--SEQ": "Sequence Number",
    "--TESTCD": "Short Name of Question or Assessment",
    "--TEST": "Name of Question or Assessment",
    "--CAT": "Category",
    "--ORRES": "Result or Finding in Original Units",
    "--STRESC": "Character Result/Finding in Std Format",
    "--STRESN": "Numeric Result/Finding in Standard Units",
    "--STAT": "Completion Status",
    "--DRVFL": "Derived Flag",
    "VISITNUM": "Visit Number",
    "VISIT": "Visit Name",
    "--DY": "Study Day of Finding",
}
# SDTM SEX is a non-extensible codelist (F, M, U, UNDIFFERENTIATED); the registry's "other" sex or
# gender has no code there, so DM writes U (unknown) for it.
SDTM_SEX = {"F": "F", "M": "M", "O": "U"}
_XPT_TIMESTAMP = re.compile(rb"\d{2}[A-Z]{3}\d{2}:\d{2}:\d{2}:\d{2}")
# Fixed header timestamp (the SAS epoch), so files are byte-identical for a seed.
XPT_FIXED_TIMESTAMP = b"01JAN60:00:00:00"


def _write_xpt(df: pd.DataFrame, path: Path, domain: str, labels: dict[str, str]) -> None:
    assert all(len(c) <= 8 for c in df.columns), df.columns
    assert all(len(v) <= 40 for v in labels.values()), labels
    pyreadstat.write_xport(
        df,
        str(path),
        file_label=SDTM_DATASET_LABELS[domain],
        column_labels=labels,
        table_name=domain,
        file_format_version=5,
    )
    # XPORT headers carry the creation time; pin it so a seed gives byte-identical files.
    raw = path.read_bytes()
    obs = raw.find(b"HEADER RECORD*******OBS     HEADER RECORD")
    head = _XPT_TIMESTAMP.sub(XPT_FIXED_TIMESTAMP, raw[:obs])
    path.write_bytes(head + raw[obs:])


def sdtm_day(study_day: int) -> int:
    """SDTM --DY has no day 0: day 1 is the reference start (the first infusion, our day 0)."""
    return study_day + 1 if study_day >= 0 else study_day


def write_dm(trial: Trial, path: Path) -> None:
    s = trial.subjects
    arm = {a.id: a for a in ARMS}
    df = pd.DataFrame(
        {
            "STUDYID": trial.study_id,
            "DOMAIN": "DM",
            "USUBJID": s["usubjid"].to_list(),
            "SUBJID": s["subjid"].to_list(),
            "SITEID": s["site"].to_list(),
            "AGE": s["age_years"].cast(pl.Float64).to_list(),
            "AGEU": "YEARS",
            "SEX": [SDTM_SEX[x] for x in s["sex"]],
            "ARMCD": s["arm"].to_list(),
            "ARM": [arm[a].sdtm_arm for a in s["arm"]],
            "ACTARMCD": s["arm"].to_list(),
            "ACTARM": [arm[a].sdtm_arm for a in s["arm"]],
        }
    )
    _write_xpt(df, path, "DM", DM_LABELS)


def sdtm_test_name(inst: Instrument, n: int) -> str:
    """--TEST (<= 40 characters, < 8 words): item code and label, cut at a word boundary."""
    it = inst.item(n)
    text = f"{it.code}-{it.label}" if inst.clusters else it.label
    if len(text) > 40:
        text = text[:40].rsplit(" ", 1)[0]
    # at most 7 words: the ingest guard reads 8 or more words in a column as free text
    while len(re.findall(r"[A-Za-z]{2,}", text)) >= 8:
        text = text.rsplit(" ", 1)[0]
    return text


def write_findings(trial: Trial, domain: str, keys: list[str], path: Path) -> None:
    """QS or RS: one record per subject x visit x item, plus a derived total (--DRVFL = 'Y') when all
    items are answered; an unanswered item is a record with --STAT = 'NOT DONE' and no result.
    Records are ordered by subject, visit, instrument (in ``keys`` order) and item, total last;
    --SEQ numbers them within the subject."""
    insts = load_instruments()
    p = domain
    parts = []  # per instrument: record arrays before sorting
    for rank, key in enumerate(keys):
        inst = insts[key]
        sd = inst.formats.sdtm
        assert sd is not None
        numbers, vals, miss = trial.item_block(key)
        k = vals.shape[2]
        n_core = len(inst.core_items)
        lo, hi = inst.item_min, inst.item_max
        total_score = next(sc for sc in inst.scores if sc.primary_total)
        # lookup tables: column j < k is item numbers[j], column k is the derived total
        testcd = np.array(
            [inst.sdtm_testcd(n) for n in numbers] + [sd.total_testcds[0]], dtype=object
        )
        test = np.array(
            [sdtm_test_name(inst, n) for n in numbers] + [total_score.param[:40]], dtype=object
        )
        anchor = np.array([inst.anchors.get(v, str(v)) for v in range(lo, hi + 1)], dtype=object)
        # an item with a range of its own (CAPS-5 item 22, 0/1) has no anchor text: ORRES is the number
        own_range = np.array([inst.item_range(n) != (lo, hi) for n in numbers] + [True])
        s_idx, v_idx = np.nonzero(trial.observed)
        # items
        si = np.repeat(s_idx, k)
        vi = np.repeat(v_idx, k)
        j = np.tile(np.arange(k), s_idx.size)
        val = vals[si, vi, j].astype(np.int64)
        is_miss = miss[si, vi, j]
        # derived totals, only for administrations whose core items are complete
        complete = ~miss[s_idx, v_idx, :n_core].any(axis=1)
        ts, tv = s_idx[complete], v_idx[complete]
        tot = score_totals(inst, vals[ts, tv, :n_core])
        rec_s = np.concatenate([si, ts])
        rec_v = np.concatenate([vi, tv])
        rec_j = np.concatenate([j, np.full(ts.size, k)])
        rec_val = np.concatenate([val, tot])
        rec_miss = np.concatenate([is_miss, np.zeros(ts.size, dtype=bool)])
        is_total = rec_j == k
        num_text = rec_val.astype(str).astype(object)
        orres = np.where(is_total | own_range[rec_j], num_text, anchor[np.clip(rec_val, lo, hi) - lo])
        parts.append(
            {
                "s": rec_s,
                "v": rec_v,
                "rank": np.full(rec_s.size, rank),
                "j": rec_j,
                "TESTCD": testcd[rec_j],
                "TEST": test[rec_j],
                "CAT": np.full(rec_s.size, sd.categories[0], dtype=object),
                "ORRES": np.where(rec_miss, "", orres).astype(object),
                "STRESC": np.where(rec_miss, "", num_text).astype(object),
                "STRESN": np.where(rec_miss, np.nan, rec_val.astype(float)),
                "STAT": np.where(rec_miss, "NOT DONE", "").astype(object),
                "DRVFL": np.where(is_total, "Y", "").astype(object),
            }
        )
    rec = {c: np.concatenate([part[c] for part in parts]) for c in parts[0]}
    order = np.lexsort((rec["j"], rec["rank"], rec["v"], rec["s"]))
    rec = {c: x[order] for c, x in rec.items()}
    first = np.r_[True, rec["s"][1:] != rec["s"][:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(rec["s"].size), 0))
    visitnum = np.array([float(v.visitnum) for v in trial.visits])
    visit = np.array([v.sdtm_label for v in trial.visits], dtype=object)
    cols = {
        "USUBJID": trial.subjects["usubjid"].to_numpy().astype(object)[rec["s"]],
        f"{p}SEQ": (np.arange(rec["s"].size) - start + 1).astype(float),
        f"{p}TESTCD": rec["TESTCD"],
        f"{p}TEST": rec["TEST"],
        f"{p}CAT": rec["CAT"],
        f"{p}ORRES": rec["ORRES"],
        f"{p}STRESC": rec["STRESC"],
        f"{p}STRESN": rec["STRESN"],
        f"{p}STAT": rec["STAT"],
        f"{p}DRVFL": rec["DRVFL"],
        "VISITNUM": visitnum[rec["v"]],
        "VISIT": visit[rec["v"]],
        f"{p}DY": np.vectorize(sdtm_day, otypes=[float])(trial.days[rec["s"], rec["v"]].astype(np.int64)),
    }
    n_rec = rec["s"].size
    cols = {
        "STUDYID": np.full(n_rec, trial.study_id, dtype=object),
        "DOMAIN": np.full(n_rec, domain, dtype=object),
        **cols,
    }
    df = pd.DataFrame({c: pd.Series(x, dtype=object if x.dtype == object else None) for c, x in cols.items()})
    labels = {c: FINDINGS_LABELS.get(c.replace(p, "--", 1) if c.startswith(p) else c, c) for c in df.columns}
    if domain == "QS":
        labels.update(
            {"QSTESTCD": "Question Short Name", "QSTEST": "Question Name", "QSCAT": "Category of Question"}
        )
    else:
        labels.update(
            {
                "RSTESTCD": "Assessment Short Name",
                "RSTEST": "Assessment Name",
                "RSCAT": "Category for Assessment",
                "RSDY": "Study Day of Assessment",
            }
        )
    _write_xpt(df, path, domain, labels)
