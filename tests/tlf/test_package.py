"""The TLF package on a built study: real RTF, HTML, XPT and Define-XML files, read back.

Expected counts are worked by hand in tests/tlf/safety_data.py (docstring); XPT files are read back
with pandas' own XPORT reader (independent of pyreadstat, which wrote them) and with pyreadstat."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import duckdb
import pandas as pd
import pyreadstat
import pytest

from pipelines.tlf.rtf import rtf_table_rows, rtf_text
from pipelines.tlf.shells import load_shells

ODM = "{http://www.cdisc.org/ns/odm/v1.3}"


def _out(pkg, label):
    return next(o for o in pkg.outputs if o.shell.label == label)


def _rows(path) -> list[list[str]]:
    return rtf_table_rows(path)


def test_every_shell_is_written_as_rtf_and_html(safety_package):
    pkg = safety_package
    assert [o.shell.label for o in pkg.outputs] == [s.label for s in load_shells()]
    for o in pkg.outputs:
        raw = o.rtf.read_text(encoding="latin-1")
        assert raw.startswith("{\\rtf1"), o.rtf
        assert raw.count("{") == raw.count("}"), f"{o.rtf.name}: unbalanced braces"
        text = rtf_text(o.rtf)
        assert o.shell.label in text and o.shell.title.split(" - ")[0] in text, o.rtf.name
        assert "Source: " in text and o.shell.population in text
        html = o.html.read_text(encoding="utf-8")
        assert o.shell.label in html and "index.html" in html
    # with safety data every output has data but the responder estimands (no estimands analysis stored)
    assert [(o.shell.label, o.reason) for o in pkg.absent] == [
        ("Table 14.2.7", "results.responder_estimands is not in the warehouse for this study (no estimands analysis)")
    ]
    index = pkg.index.read_text(encoding="utf-8")
    for o in pkg.outputs:
        assert o.rtf.name in index and o.html.name in index
    assert "define.xml" in index and "adsl.xpt" in index


def test_figures_are_embedded_pngs(safety_package):
    for o in safety_package.outputs:
        raw = o.rtf.read_text(encoding="latin-1")
        if o.shell.kind == "figure":
            assert "\\pngblip" in raw, o.rtf.name
            assert o.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert "data:image/png;base64," in o.html.read_text(encoding="utf-8")
        else:
            assert "\\trowd" in raw, o.rtf.name  # a real RTF table


def test_teae_table_counts_match_hand_counts(safety_package):
    rows = _rows(_out(safety_package, "Table 14.3.1").rtf)
    header, body = rows[0], rows[1:]
    assert header[1:] == ["Ketamine 0.5 mg/kg (N=15)", "Midazolam 0.045 mg/kg (N=14)", "Total (N=29)"]
    assert [r[0] for r in body] == [
        "Participants with at least one TEAE",
        "Nervous system disorders",
        "Dizziness",
        "Headache",
        "Gastrointestinal disorders",
        "Nausea",
    ]
    assert [r[1:] for r in body] == [
        ["2 (13.3)", "1 (7.1)", "3 (10.3)"],
        ["2 (13.3)", "1 (7.1)", "3 (10.3)"],
        ["2 (13.3)", "0 (0.0)", "2 (6.9)"],
        ["1 (6.7)", "1 (7.1)", "2 (6.9)"],
        ["1 (6.7)", "0 (0.0)", "1 (3.4)"],
        ["1 (6.7)", "0 (0.0)", "1 (3.4)"],
    ]


def test_severity_counts_the_worst_event_once(safety_package):
    rows = _rows(_out(safety_package, "Table 14.3.2").rtf)
    any_teae = next(r for r in rows if r[0] == "Any TEAE")
    # Ketamine mild, moderate, severe | Midazolam mild, moderate, severe
    assert any_teae[1:] == ["0 (0.0)", "1 (6.7)", "1 (6.7)", "1 (7.1)", "0 (0.0)", "0 (0.0)"]


def test_vitals_durability_exposure_and_disposition(safety_package):
    pkg = safety_package
    vit = _rows(_out(pkg, "Table 14.3.3").rtf)
    ket = next(r for r in vit if r[2] == "Ketamine 0.5 mg/kg")
    assert ket[3:] == ["2", "25.0 (7.07)", "25.0", "20, 30"]
    dur = _rows(_out(pkg, "Table 14.2.6").rtf)
    ket = next(r for r in dur if r[1] == "Ketamine 0.5 mg/kg")
    assert ket[2:6] == ["6", "4 (66.7)", "2 (33.3)", "30.0"]
    mid = next(r for r in dur if r[1] == "Midazolam 0.045 mg/kg")
    assert mid[2:6] == ["3", "2 (66.7)", "1 (33.3)", "12.0"]
    exp = _rows(_out(pkg, "Table 14.3.5").rtf)
    assert next(r for r in exp if r[1] == "Ketamine 0.5 mg/kg")[2:4] == ["2", "6.0 (0.00)"]
    disp = _rows(_out(pkg, "Table 14.1.1").rtf)
    assert any(r[0] == "Withdrawal by subject" for r in disp)
    lost = next(r for r in disp if r[0] == "Lost to follow-up")
    assert lost[1:] == ["0 (0.0)", "2 (13.3)", "2 (6.7)"]


def test_a_study_without_safety_or_results_still_gets_its_outputs(tlf_studies, tmp_path):
    from pipelines.tlf.package import build_package

    with duckdb.connect(str(tlf_studies["bare"]), read_only=True) as con:
        pkg = build_package(con, "FEDERSIM-7", tmp_path)
    written = {o.shell.label for o in pkg.written}
    assert {"Table 14.1.1", "Table 14.1.2", "Table 14.2.1"} <= written
    reasons = {o.shell.label: o.reason for o in pkg.absent}
    assert "analysis.adae" in reasons["Table 14.3.1"]
    assert "results.lsmeans" in reasons["Table 14.2.2"]
    assert f"No data: {reasons['Table 14.3.1']}" in rtf_text(tmp_path / "t14_3_1.rtf")
    assert [d.name for d in pkg.datasets] == ["ADSL", "ADQS"]


# ----------------------------------------------------------------------------------- XPT
def _pandas_xpt(path):
    with pd.read_sas(path, format="xport", iterator=True, encoding="ascii") as reader:
        labels = {f["name"].decode("ascii"): f["label"].decode("ascii").strip() for f in reader.fields}
        frame = reader.read()
    return frame, labels


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, str) or isinstance(b, str):
        return (a or "") == (b or "")
    return a == pytest.approx(b, rel=1e-12, abs=1e-12)


def test_xpt_files_read_back_identically_with_two_readers(safety_package):
    pkg = safety_package
    assert [d.name for d in pkg.datasets] == ["ADSL", "ADQS", "ADAE", "ADVS", "ADEX", "ADTTE"]
    for ds, path in zip(pkg.datasets, pkg.xpt, strict=True):
        pdf, plabels = _pandas_xpt(path)
        rdf, meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True)
        names = [v.name for v in ds.variables]
        assert list(pdf.columns) == names == list(rdf.columns), ds.name
        assert plabels == {v.name: v.label for v in ds.variables} == dict(zip(meta.column_names, meta.column_labels, strict=True))
        assert meta.table_name == ds.name and len(pdf) == len(rdf) == ds.frame.height
        expected = ds.frame.to_dicts()
        for i in range(len(pdf)):
            for name in names:
                want = expected[i][name]
                want = float("nan") if want is None and ds.variables[names.index(name)].type == "num" else want
                assert _same(pdf.at[i, name], rdf.at[i, name]), (ds.name, i, name)
                assert _same(pdf.at[i, name], want), (ds.name, i, name, want)


def test_xpt_lengths_and_dates(safety_package):
    ds = next(d for d in safety_package.datasets if d.name == "ADAE")
    v = {x.name: x for x in ds.variables}
    assert v["AEDECOD"].type == "char" and v["AEDECOD"].length == len("Dizziness")
    assert v["ASTDT"].display_format == "DATE9."
    path = next(p for p in safety_package.xpt if p.name == "adae.xpt")
    df, meta = pyreadstat.read_xport(str(path))  # with the date format applied
    assert str(df["ASTDT"].iloc[0]) == "2021-01-05"
    assert meta.variable_storage_width["AEDECOD"] == len("Dizziness")


# ------------------------------------------------------------------------------ Define-XML
def test_define_xml_lists_every_dataset_and_variable_written(safety_package):
    pkg = safety_package
    root = ET.parse(pkg.define).getroot()  # well-formed
    mdv = root.find(f"{ODM}Study/{ODM}MetaDataVersion")
    assert mdv.get("{http://www.cdisc.org/ns/def/v2.1}DefineVersion") == "2.1.0"
    items = {i.get("OID"): i for i in mdv.findall(f"{ODM}ItemDef")}
    groups = mdv.findall(f"{ODM}ItemGroupDef")
    assert [g.get("Name") for g in groups] == [d.name for d in pkg.datasets]
    for g, path in zip(groups, pkg.xpt, strict=True):
        frame, labels = _pandas_xpt(path)
        refs = [items[r.get("ItemOID")] for r in g.findall(f"{ODM}ItemRef")]
        assert [i.get("Name") for i in refs] == list(frame.columns), g.get("Name")
        for item in refs:
            assert item.find(f"{ODM}Description/{ODM}TranslatedText").text == labels[item.get("Name")]
            assert item.get("DataType") in ("text", "integer", "float")
        leaf = g.find("{http://www.cdisc.org/ns/def/v2.1}leaf")
        assert leaf.get("{http://www.w3.org/1999/xlink}href") == path.name
    # derivations come from the SQL headers: RANDFL and ITTFL cite rule L2 of analysis.adsl
    methods = {m.get("OID"): m.find(f"{ODM}Description/{ODM}TranslatedText").text for m in mdv.findall(f"{ODM}MethodDef")}
    assert methods["MT.ADSL.ITTFL"].startswith("L2: RANDFL = 'Y' when the subject has an arm")
    assert "CHG = AVAL - BASE" in methods["MT.ADQS.CHG"]
    # codelists of coded variables with decodes
    cls = {c.get("OID"): c for c in mdv.findall(f"{ODM}CodeList")}
    sev = [e.get("CodedValue") for e in cls["CL.ADAE.ASEV"]]
    assert sev == ["MILD", "MODERATE", "SEVERE"]
    pcd = {e.get("CodedValue"): e.find(f"{ODM}Decode/{ODM}TranslatedText").text for e in cls["CL.ADQS.PARAMCD"]}
    assert pcd["CADSSTOT"] == "CADSS total score"
    assert re.match(r"^[A-Z]", next(iter(pcd)))


def test_define_xml_is_valid_against_the_cdisc_define_2_1_schema(safety_package, tmp_path):
    """CDISC's own XML Schema for Define-XML 2.1 (define2-1-0.xsd with ODM 1.3.2, as shipped in
    odmlib, a CDISC-maintained library) validates the document; a document with one wrong data type
    and one unknown attribute is rejected, so the check is live."""
    odmlib = pytest.importorskip("odmlib", reason="the dev dependency group carries odmlib (CDISC schemas)")
    xmlschema = pytest.importorskip("xmlschema")
    from pathlib import Path

    schema = xmlschema.XMLSchema(str(Path(odmlib.__file__).parent / "schemas" / "define" / "2.1" / "define2-1-0.xsd"))
    errors = [f"{e.path}: {e.reason}" for e in schema.iter_errors(str(safety_package.define))]
    assert errors == []
    text = safety_package.define.read_text(encoding="utf-8")
    broken = tmp_path / "define.xml"
    broken.write_text(text.replace('DataType="text"', 'DataType="txt"', 1).replace("<ItemDef ", '<ItemDef Colour="red" ', 1),
                      encoding="utf-8")
    assert len(list(schema.iter_errors(str(broken)))) >= 2


def test_sensitivity_table_shows_stored_estimand_analyses_at_the_primary_visit(tlf_studies, tmp_path):
    from pipelines.tlf.builders import BUILDERS, Context, TableOut
    from pipelines.report.data import load_study
    from pipelines.tlf.shells import load_shells

    db = tmp_path / "s.duckdb"
    db.write_bytes(tlf_studies["efficacy"].read_bytes())
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table results.sensitivity as select * from (values "
            "('FEDERSIM-7', 'E1', 'CAPS5TOT', 'condmean-jackknife', 'J2R', 0.0, 'W2', -9.5, 3.1, -15.6, -3.4, 0.004, 30),"
            "('FEDERSIM-7', 'E1', 'CAPS5TOT', 'condmean-jackknife', 'J2R', 0.0, 'W1', -7.0, 3.0, -12.9, -1.1, 0.02, 30)) "
            "t(study_id, estimand_id, paramcd, method, strategy, delta, avisit, estimate, std_error, conf_low, conf_high, p_value, n_imputations)"
        )
        shell = next(s for s in load_shells() if s.builder == "sensitivity")
        out = BUILDERS["sensitivity"](Context(con, load_study(con, "FEDERSIM-7")))
    assert isinstance(out, TableOut) and shell.number == "14.2.5"
    j2r = [r for r in out.rows if r[1] == "J2R"]
    assert j2r == [["E1 condmean-jackknife", "J2R", "0.0", "Week 2", "-9.50 (3.10)", "(-15.60, -3.40)", "0.004"]]
    assert out.rows[0][0] == "MMRM"  # the model-based rows first


def test_responder_estimands_table_shows_composite_first(tlf_studies, tmp_path):
    from pipelines.report.data import load_study
    from pipelines.tlf.builders import BUILDERS, Context, TableOut

    db = tmp_path / "r.duckdb"
    db.write_bytes(tlf_studies["efficacy"].read_bytes())
    with duckdb.connect(str(db)) as con:
        con.execute(
            "create table results.responder_estimands as select * from (values "
            "('FEDERSIM-7', 'E1', 'CAPS5TOT', 'W2', 'CAPS5TOT reduction from baseline >= 30%', 'observed', false, 10, 14, 4, 15, 0.4476, 0.10, 0.72, 0.026, 5.1, 1.1, 24.0, 0.04, 'ML', null),"
            "('FEDERSIM-7', 'E1', 'CAPS5TOT', 'W2', 'CAPS5TOT reduction from baseline >= 30%', 'composite', true, 10, 15, 3, 15, 0.4667, 0.13, 0.74, 0.025, 6.0, 1.2, 30.0, 0.03, 'Firth', 'separation')) "
            "t(study_id, estimand_id, paramcd, avisit, criterion, missing_data, is_primary, n_responders_experimental, n_experimental, "
            "n_responders_control, n_control, risk_difference, conf_low, conf_high, p_value, odds_ratio, or_conf_low, or_conf_high, or_p_value, or_method, warning)"
        )
        out = BUILDERS["responder_estimands"](Context(con, load_study(con, "FEDERSIM-7")))
    assert isinstance(out, TableOut)
    # composite (primary) first; counts as n/N (%); risk difference in percentage points
    assert out.rows[0][2:8] == ["Composite (primary)", "CAPS-5 total reduction from baseline \u2265 30%", "10/15 (66.7%)", "3/15 (20.0%)", "46.7 (13.0, 74.0)", "0.025"]
    assert out.rows[1][2] == "Observed" and out.rows[1][4] == "10/14 (71.4%)"
    assert out.notes == ["E1 CAPS5TOT composite: separation"]


def test_submitted_avisit_is_the_visit_label_and_the_warehouse_keeps_the_id(safety_package, tlf_studies):
    # ADaM IG: AVISIT describes the visit (the study.yaml labels the simulator writes), AVISITN numbers it
    ds = next(d for d in safety_package.datasets if d.name == "ADQS")
    pairs = set(ds.frame.select("AVISITN", "AVISIT").unique().iter_rows())
    assert {"Baseline", "Day 1 (24 h after infusion 1)", "Week 1", "Week 2"} <= {v for _, v in pairs}
    assert len(pairs) == len({n for n, _ in pairs})  # one label per AVISITN
    assert not {v for _, v in pairs} & {"BL", "D1", "W1", "W2"}
    with duckdb.connect(str(tlf_studies["safety"]), read_only=True) as con:
        ids = {r[0] for r in con.execute("select distinct avisit from analysis.adqs").fetchall()}
    assert {"BL", "D1", "W1", "W2"} <= ids
    # Define-XML: the AVISITN codelist decodes to the same labels, AVISIT's codelist lists them
    mdv = ET.parse(safety_package.define).getroot().find(f"{ODM}Study/{ODM}MetaDataVersion")
    cls = {c.get("OID"): c for c in mdv.findall(f"{ODM}CodeList")}
    assert "Week 2" in [e.get("CodedValue") for e in cls["CL.ADQS.AVISIT"]]
