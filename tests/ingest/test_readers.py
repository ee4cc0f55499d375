"""Each reader on small real-format files written by hand, checked against hand-derived values."""

from __future__ import annotations

import pyreadstat
import pandas as pd
import pytest

from pipelines.core.build import build_study
from tests.conftest import ARMS_VISITS, query, write_study

PCL_ITEMS = ",".join(f"pcl5_{i}" for i in range(1, 21))


def _build(tmp_path, manifest, files):
    study = write_study(tmp_path / "study", manifest, files)
    db = tmp_path / "w.duckdb"
    result, _ = build_study(study, db)
    return result, db


def test_redcap_wide_export_loads_through_the_manifest_alone(tmp_path):
    # A REDCap export as received: subject, event, arm and 20 PCL-5 items, plus an unmapped column.
    rows = [
        "scr_id,redcap_event_name,med_cond," + PCL_ITEMS + ",comments",
        "101,baseline_arm_1,1," + ",".join(["3"] * 20) + ",ok",
        "101,week_2_arm_1,1," + ",".join(["1"] * 19 + [""]) + ",",  # item 20 left empty
        "102,baseline_arm_1,0," + ",".join(["2"] * 20) + ",",
        "102,week_1_arm_1,0," + ",".join([""] * 20) + ",",  # form not filled at this event
    ]
    manifest = f"""\
    study_id: REDCAP1
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    sources:
      - file: export.csv
        kind: pcl5
        columns: {{subject: scr_id, visit: redcap_event_name, arm: med_cond}}
        items: "pcl5_{{n}}"
    """
    result, db = _build(tmp_path, manifest, {"export.csv": "\n".join(rows) + "\n"})
    (read,) = result.reads
    assert read.error is None
    assert read.rows_read == 4
    assert read.unmapped_columns == ["comments"]
    # raw keeps every row as text with lineage: file rows 2..5 (header is row 1)
    assert query(db, "select _source_file, _source_row, subject, visit, item_1 from raw.pcl5 order by 2") == [
        ("export.csv", 2, "101", "baseline_arm_1", "3"),
        ("export.csv", 3, "101", "week_2_arm_1", "1"),
        ("export.csv", 4, "102", "baseline_arm_1", "2"),
        ("export.csv", 5, "102", "week_1_arm_1", ""),
    ]
    assert query(db, "select count(*) from raw.pcl5 where _source_sha256 is null or study_id <> 'REDCAP1'") == [(0,)]
    # staging: 3 assessments x 20 items; the empty event row is skipped, not quarantined
    assert query(db, "select visit, count(*), sum(value), count(*) filter (where value is null) "
                     "from staging.item_responses group by 1 order by 1") == [
        ("BL", 40, 3 * 20 + 2 * 20, 0),
        ("W2", 20, 19, 1),
    ]
    assert query(db, "select status, count(*) from staging.assessment_rows group by 1 order by 1") == [
        ("accepted", 3), ("skipped", 1)
    ]
    # with no randomization file the arm comes from the export's arm column (1 = KET, 0 = MID)
    assert query(db, "select usubjid, arm from staging.subjects order by 1") == [("101", "KET"), ("102", "MID")]


NDA_PCL_ITEMS = "bsi_54,bsi_55,bsi_56,bsi_57,bsi_58,bsi_59," + ",".join(f"pcl5_{i}" for i in range(7, 21))


def test_nda_pcl501_submission_template_with_missing_codes(tmp_path):
    # Submission template: line 1 "pcl5,01", line 2 element names, data from line 3.
    # Items 1-6 are bsi_54..bsi_59 (NDA dictionary); 555 = Missing, 999 = No answer.
    header = "subjectkey,src_subject_id,interview_date,interview_age,sex,visit," + NDA_PCL_ITEMS + ",pcl5_total"
    r1 = ["NDAR_INVAB12CD34", "S1", "01/02/2001", "480", "F", "baseline"] + ["4"] * 20 + ["80"]
    r2 = ["NDAR_INVAB12CD34", "S1", "01/16/2001", "480", "F", "week 2"] + ["555", "2"] + ["2"] * 17 + ["999"] + ["38"]
    text = "pcl5,01\n" + header + "\n" + ",".join(r1) + "\n" + ",".join(r2) + "\n"
    manifest = f"""\
    study_id: NDA1
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    dates: {{shifted: true}}
    sources:
      - {{file: rand.csv, kind: randomization, columns: {{subject: id, arm: arm}}}}
      - {{file: pcl501.csv, kind: pcl5, layout: nda}}
    """
    result, db = _build(tmp_path, manifest, {"pcl501.csv": text, "rand.csv": "id,arm\nS1,1\n"})
    nda = result.reads[1]
    assert nda.error is None, nda.error
    assert "pcl501" in nda.notes[0]
    # bsi_54 is item 1 and pcl5_20 is item 20; data rows are file rows 3 and 4
    assert query(db, "select _source_row, item_1, item_7, item_20, total from raw.pcl5 order by 1") == [
        (3, "4", "4", "4", "80"), (4, "555", "2", "999", "38")
    ]
    # shifted interview dates become study days (baseline = day 0) and are not stored
    assert query(db, "select distinct visit, study_day, day_recorded from staging.item_responses order by 2") == [
        ("BL", 0, True), ("W2", 14, True)
    ]
    cols = [r[0] for r in query(db, "select column_name from duckdb_columns() where table_name = 'pcl5' and schema_name = 'raw'")]
    assert "interview_date" not in cols
    # NDA missing codes become NULL values, not numbers
    assert query(db, "select item, value from staging.item_responses where visit = 'W2' and value is null order by 1") == [
        (1, None), (20, None)
    ]
    assert query(db, "select visit, reported_total from staging.reported_totals order by 1") == [("BL", 80.0), ("W2", 38.0)]


def test_nda_madrs01_download_layout_maps_named_elements_in_scale_order(tmp_path):
    # Download package: tab-delimited, line 1 names, line 2 descriptions. NDA order != scale order:
    # the columns below are deliberately shuffled; madrsaps is item 1, madrssui item 10.
    names = ["subjectkey", "src_subject_id", "interview_age", "sex", "visit",
             "madrssui", "madrsaps", "madrssad", "madrsten", "madrsslp", "madrsapp", "madrscon", "madrslas",
             "madrsfee", "madrspes", "madrstot"]
    desc = ["The NDAR Global Unique Identifier (GUID) for research subject", "Subject ID how it's defined in lab/project",
            "Age in months", "Sex", "Visit"] + ["item"] * 10 + ["Total"]
    row = ["NDAR_INVXY98ZW76", "S7", "500", "M", "baseline", "6", "1", "2", "3", "4", "5", "0", "-9999", "2", "1", "24"]
    text = "\t".join(names) + "\n" + "\t".join(desc) + "\n" + "\t".join(row) + "\n"
    manifest = f"""\
    study_id: NDA2
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    sources:
      - {{file: rand.csv, kind: randomization, columns: {{subject: id, arm: arm}}}}
      - {{file: madrs01.txt, kind: nda}}
    """
    result, db = _build(tmp_path, manifest, {"madrs01.txt": text, "rand.csv": "id,arm\nS7,0\n"})
    assert result.reads[1].error is None, result.reads[1].error
    assert query(db, "select item, value from staging.item_responses order by item") == [
        (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0), (6, 0.0), (7, None), (8, 2.0), (9, 1.0), (10, 6.0)
    ]
    assert query(db, "select _source_row from raw.madrs") == [(3,)]  # description line is not data


def test_nda_ptsd_dsm501_past_week_set(tmp_path):
    from pipelines.instruments import load_instruments

    # the 20 symptom items and dissociation 29-30 (the set's diagnostic elements for 21-25 are not in this file)
    week = load_instruments()["caps5"].formats.nda.item_sets["past_week"][:22]
    header = ["subjectkey", "src_subject_id", "interview_age", "sex", "visit", *week, "total_sev_v2"]
    vals = [str(i % 5) for i in range(1, 21)] + ["1", "2"]  # items 1..20 then dissociation 29, 30
    row = ["NDAR_INVAA11BB22", "S9", "400", "F", "week 1", *vals, str(sum(int(v) for v in vals[:20]))]
    text = "ptsd_dsm5,01\n" + ",".join(header) + "\n" + ",".join(row) + "\n"
    manifest = f"""\
    study_id: NDA3
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    sources:
      - {{file: rand.csv, kind: randomization, columns: {{subject: id, arm: arm}}}}
      - {{file: caps.csv, kind: caps5, layout: nda}}
    """
    result, db = _build(tmp_path, manifest, {"caps.csv": text, "rand.csv": "id,arm\nS9,1\n"})
    assert result.reads[1].error is None, result.reads[1].error
    got = dict(query(db, "select item, value from staging.item_responses"))
    assert got[1] == 1 and got[4] == 4 and got[5] == 0 and got[20] == 0 and got[29] == 1 and got[30] == 2
    assert len(got) == 22


def test_nda_pcl01_psychopathy_checklist_is_refused_by_name(tmp_path):
    text = "pcl,01\nsubjectkey,src_subject_id,visit,pcl1\nNDAR_INVAB12CD34,S1,baseline,2\n"
    manifest = f"""\
    study_id: TRAP
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    sources:
      - {{file: pcl01.csv, kind: pcl5, layout: nda}}
    """
    result, db = _build(tmp_path, manifest, {"pcl01.csv": text})
    assert "Psychopathy Checklist" in str(result.reads[0].error)
    assert query(db, "select count(*) from raw.pcl5") == [(0,)]


def test_sdtm_xpt_qs_and_dm(tmp_path):
    study = tmp_path / "study"
    (study / "sdtm").mkdir(parents=True)
    dm = pd.DataFrame({
        "STUDYID": ["X"] * 3, "DOMAIN": ["DM"] * 3, "USUBJID": ["X-001", "X-002", "X-003"],
        "ARMCD": ["KET", "MID", "SCRNFAIL"], "ARM": ["Ketamine", "Midazolam", "Screen Failure"],
        "SEX": ["F", "M", "F"], "AGE": [34.0, 51.0, 40.0],
    })
    pyreadstat.write_xport(dm, str(study / "sdtm" / "dm.xpt"), file_format_version=5, table_name="DM")
    qs_rows = []
    for subj, vis, vnum, day, base in [("X-001", "BASELINE", 1.0, 1.0, 3), ("X-001", "WEEK 2", 3.0, 15.0, 1)]:
        for n in range(1, 21):
            qs_rows.append(("X", "QS", subj, "PCL-5", f"PCL01{n:02d}", str(base), float(base), vis, vnum, day, ""))
        qs_rows.append(("X", "QS", subj, "PCL-5", "PCL01TOT", str(base * 20), float(base * 20), vis, vnum, day, "Y"))
    qs_rows.append(("X", "QS", "X-001", "OTHER", "OTH0101", "1", 1.0, "BASELINE", 1.0, 0.0, ""))
    qs = pd.DataFrame(qs_rows, columns=["STUDYID", "DOMAIN", "USUBJID", "QSCAT", "QSTESTCD", "QSORRES",
                                        "QSSTRESN", "VISIT", "VISITNUM", "QSDY", "QSDRVFL"])
    pyreadstat.write_xport(qs, str(study / "sdtm" / "qs.xpt"), file_format_version=5, table_name="QS")
    manifest = f"""\
    study_id: SDTM1
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    sources:
      - {{file: sdtm/dm.xpt, kind: sdtm}}
      - {{file: sdtm/qs.xpt, kind: sdtm}}
    """
    write_study(study, manifest, {})
    db = tmp_path / "w.duckdb"
    result, _ = build_study(study, db)
    dm_read, qs_read = result.reads
    assert dm_read.error is None and qs_read.error is None, (dm_read.error, qs_read.error)
    assert dm_read.skipped == {"not randomized (ARMCD SCRNFAIL/NOTASSGN or empty)": 1}
    assert list(qs_read.skipped.values()) == [1]  # the OTHER category row, counted not loaded
    assert query(db, "select usubjid, arm, sex, age from staging.subjects order by 1") == [
        ("X-001", "KET", "F", 34.0), ("X-002", "MID", "M", 51.0)
    ]
    assert query(db, "select visit, study_day, count(*), sum(value) from staging.item_responses group by 1, 2 order by 1") == [
        ("BL", 0, 20, 60.0), ("W2", 14, 20, 20.0)  # SDTM QSDY 15 = study day 14 (no day 0)
    ]
    assert query(db, "select visit, reported_total from staging.reported_totals order by 1") == [("BL", 60.0), ("W2", 20.0)]


def test_truncated_xpt_is_a_clear_file_error(tmp_path):
    study = tmp_path / "study"
    (study).mkdir()
    pyreadstat.write_xport(pd.DataFrame({"USUBJID": ["A"], "DOMAIN": ["DM"], "ARMCD": ["KET"]}), str(tmp_path / "full.xpt"),
                           file_format_version=5, table_name="DM")
    data = (tmp_path / "full.xpt").read_bytes()
    manifest = f"""\
    study_id: XPT
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    sources:
      - {{file: dm.xpt, kind: sdtm}}
    """
    result, _ = _build(tmp_path, manifest, {"dm.xpt": data[: len(data) // 3]})
    msg = str(result.reads[0].error)
    assert "dm.xpt" in msg and "SAS XPORT" in msg


@pytest.mark.parametrize(
    ("encoding_decl", "payload", "delimiter"),
    [
        ("", "\ufeffid;visit;{items}\nS1;baseline;{vals}\n".encode("utf-8"), ";"),  # UTF-8 BOM + semicolons
        ("encoding: latin-1", "id\tvisit\t{items}\nSé1\tbaseline\t{vals}\n".encode("latin-1"), "\t"),
    ],
)
def test_bom_semicolon_and_declared_latin1(tmp_path, encoding_decl, payload, delimiter):
    items = delimiter.join(f"madrs_{i}" for i in range(1, 11))
    vals = delimiter.join(["3"] * 10)
    data = payload.replace(b"{items}", items.encode()).replace(b"{vals}", vals.encode())
    manifest = f"""\
    study_id: ENC
    arms: [{{id: KET, role: experimental}}]
    visits: [{{id: BL, day: 0, baseline: true, codes: [baseline]}}]
    sources:
      - file: m.csv
        kind: madrs
        columns: {{subject: id, visit: visit}}
        {encoding_decl}
    """
    result, db = _build(tmp_path, manifest, {"m.csv": data})
    assert result.reads[0].error is None, result.reads[0].error
    assert query(db, "select distinct usubjid from staging.item_responses") == [("S1" if b"S1" in data else "Sé1",)]
    assert query(db, "select sum(value) from staging.item_responses") == [(30.0,)]


def test_latin1_without_declaration_names_line_and_hint(tmp_path):
    items = [f"madrs_{n}" for n in range(1, 11)]
    data = ("id,visit," + ",".join(items) + "\nS1,baseline" + ",3" * 10 + "\nJosé,baseline" + ",2" * 10 + "\n").encode("latin-1")
    manifest = f"""\
    study_id: ENC2
    arms: [{{id: KET, role: experimental}}]
    visits: [{{id: BL, day: 0, baseline: true, codes: [baseline]}}]
    sources:
      - {{file: m.csv, kind: madrs, columns: {{subject: id, visit: visit}}, items: [{", ".join(items)}]}}
    """
    result, _ = _build(tmp_path, manifest, {"m.csv": data})
    msg = str(result.reads[0].error)
    assert "m.csv" in msg and "not valid UTF-8" in msg and "line 3" in msg and "latin-1" in msg


def test_long_csv_and_parquet_wide(tmp_path):
    import polars as pl

    long_rows = ["id,tp,question,score"] + [f"L1,baseline,CAPS_{code},2" for code in
                 ["B1", "B2", "B3", "B4", "B5", "C1", "C2", "D1", "D2", "D3", "D4", "D5", "D6", "D7",
                  "E1", "E2", "E3", "E4", "E5", "E6"]]
    study = tmp_path / "study"
    study.mkdir()
    pl.DataFrame({"sid": ["P1", "P1"], "vis": ["baseline", "week 2"],
                  **{f"pcl5_{i}": [1, 0] for i in range(1, 21)}}).write_parquet(study / "pcl.parquet")
    manifest = f"""\
    study_id: MIX
    arms: [{{id: KET, role: experimental}}]
    {ARMS_VISITS.split('visits:')[1].join(['visits:', '']).replace(chr(10), chr(10) + '    ')}
    sources:
      - file: caps_long.csv
        kind: caps5
        layout: long
        columns: {{subject: id, visit: tp, item: question, value: score}}
        items: {{pattern: "CAPS_{{code}}"}}
      - {{file: pcl.parquet, kind: pcl5, columns: {{subject: sid, visit: vis}}}}
    """
    result, db = _build(tmp_path, manifest, {"caps_long.csv": "\n".join(long_rows) + "\n"})
    assert [r.error for r in result.reads] == [None, None]
    assert query(db, "select instrument, visit, count(*), sum(value) from staging.item_responses group by 1, 2 order by 1, 2") == [
        ("CAPS-5", "BL", 20, 40.0), ("PCL-5", "BL", 20, 20.0), ("PCL-5", "W2", 20, 0.0)
    ]


def test_totals_only_sources_wide_and_nda(tmp_path):
    # A wide export with only a MADRS total column, and an NDA madrs01 with madrstot alone.
    wide = "id,visit,madrs_total\nS1,baseline,31\nS1,week 2,12\n"
    nda = "madrs,01\nsubjectkey,src_subject_id,interview_age,sex,visit,madrstot\nNDAR_INVAB12CD34,S2,400,F,baseline,28\n"
    manifest = f"""\
    study_id: TOTALS
    {ARMS_VISITS.replace(chr(10), chr(10) + '    ')}
    sources:
      - {{file: rand.csv, kind: randomization, columns: {{subject: id, arm: arm}}}}
      - {{file: m.csv, kind: madrs, columns: {{subject: id, visit: visit}}, total: madrs_total}}
      - {{file: madrs01.csv, kind: nda}}
    """
    result, db = _build(tmp_path, manifest, {"m.csv": wide, "madrs01.csv": nda, "rand.csv": "id,arm\nS1,1\nS2,0\n"})
    assert [r.error for r in result.reads] == [None, None, None]
    assert query(db, "select count(*) from staging.item_responses") == [(0,)]
    assert query(db, "select usubjid, visit, reported_total from staging.reported_totals order by 1, 2") == [
        ("S1", "BL", 31.0), ("S1", "W2", 12.0), ("S2", "BL", 28.0)
    ]
    assert query(db, "select usubjid, avisit, aval, avalmeth from analysis.adqs where paramcd = 'MADRSTOT' order by 1, 2") == [
        ("S1", "BL", 31.0, "REPORTED"), ("S1", "W2", 12.0, "REPORTED"), ("S2", "BL", 28.0, "REPORTED")
    ]
