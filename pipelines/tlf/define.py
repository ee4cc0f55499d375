"""Define-XML 2.1 for the submission datasets written.

Datasets (ItemGroupDef with class, structure, keys and the file), variables (ItemDef with name,
label, data type, length, display format), codelists of the values present for coded variables
(with decodes where the warehouse has them: PARAMCD -> PARAM, arm id -> arm label), and the
derivations in words (MethodDef) taken from the rules in the header of ``sql/<schema>/<table>.sql``:
a variable's method is every rule whose text names it (e.g. rule L2 of analysis.adsl names RANDFL
and ITTFL). Variables no rule names carry their column comment from ``_schema.yml`` as origin.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from pipelines.core.paths import SQL_DIR
from pipelines.tlf.submission import Dataset, spec

ODM = "http://www.cdisc.org/ns/odm/v1.3"
DEF = "http://www.cdisc.org/ns/def/v2.1"
XLINK = "http://www.w3.org/1999/xlink"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ET.register_namespace("", ODM)
ET.register_namespace("def", DEF)
ET.register_namespace("xlink", XLINK)


def _o(tag: str) -> str:
    return f"{{{ODM}}}{tag}"


def _d(tag: str) -> str:
    return f"{{{DEF}}}{tag}"


def sql_header(table: str) -> tuple[str, dict[str, str]]:
    """(description, {rule id: rule text}) from the leading comment of sql/<schema>/<name>.sql."""
    schema, name = table.split(".")
    path = SQL_DIR / schema / f"{name}.sql"
    if not path.exists():
        return "", {}
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:])
    desc = lines[0].split(":", 1)[-1].strip() if lines else ""
    rules: dict[str, str] = {}
    current = None
    in_rules = False
    for line in lines[1:]:
        if "Rules, in words" in line:
            in_rules = True
            continue
        if not in_rules:
            continue
        m = re.match(r"^\s{1,4}([A-Z]\d+[a-z]?)\s+(.*)$", line)
        if m:
            current = m.group(1)
            rules[current] = m.group(2).strip()
        elif current and line.strip():
            rules[current] += " " + line.strip()
    return desc, rules


def _methods_for(name: str, rules: dict[str, str]) -> list[str]:
    pat = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
    return [rid for rid, text in rules.items() if pat.search(text)]


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, tag)
    tt = ET.SubElement(el, _o("TranslatedText"))
    tt.set(XML_LANG, "en")
    tt.text = text
    return el


def _data_type(v) -> tuple[str, str | None]:
    """(Define DataType, Length) of a variable."""
    if v.type == "char":
        return "text", str(v.length)
    if v.kind in ("int", "date", "datetime"):
        return "integer", "8"
    return "float", "8"


def _decodes(ds: Dataset, name: str) -> dict[str, str]:
    f = ds.frame
    pairs = {"PARAMCD": "PARAM", "TRT01P": "ARM", "AVISITN": "AVISIT"}
    if name in pairs and pairs[name] in f.columns:
        rows = f.select(name, pairs[name]).drop_nulls().unique(name).iter_rows()
        return {str(a): str(b) for a, b in rows}
    return {}


def write_define(datasets: list[Dataset], path: Path, study_id: str, *, study_title: str | None = None, code_version: str = "") -> Path:
    """Define-XML 2.1 describing ``datasets`` (as written) into ``path``."""
    coded = set(spec()["coded"])
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    root = ET.Element(
        _o("ODM"),
        {
            "ODMVersion": "1.3.2",
            "FileType": "Snapshot",
            "FileOID": f"DEFINE.{study_id}",
            "CreationDateTime": now,
            "Originator": "trialpipe",
            "SourceSystem": "trialpipe",
            "SourceSystemVersion": code_version or "unknown",
            f"{{{DEF}}}Context": "Submission",
        },
    )
    study = ET.SubElement(root, _o("Study"), {"OID": f"STUDY.{study_id}"})
    gv = ET.SubElement(study, _o("GlobalVariables"))
    ET.SubElement(gv, _o("StudyName")).text = study_id
    ET.SubElement(gv, _o("StudyDescription")).text = study_title or study_id
    ET.SubElement(gv, _o("ProtocolName")).text = study_id
    mdv = ET.SubElement(
        study,
        _o("MetaDataVersion"),
        {"OID": f"MDV.{study_id}.ADaM", "Name": f"{study_id} ADaM", "Description": "ADaM datasets written by trialpipe tlf", _d("DefineVersion"): "2.1.0"},
    )
    stds = ET.SubElement(mdv, _d("Standards"))
    ET.SubElement(stds, _d("Standard"), {"OID": "STD.ADaMIG", "Name": "ADaMIG", "Type": "IG", "Version": "1.3", "Status": "Final"})

    item_defs, codelists, methods = [], [], []
    for ds in datasets:
        desc, rules = sql_header(ds.source)
        ig = ET.SubElement(
            mdv,
            _o("ItemGroupDef"),
            {
                "OID": f"IG.{ds.name}",
                "Name": ds.name,
                "SASDatasetName": ds.name,
                "Repeating": "No" if ds.name == "ADSL" else "Yes",
                "IsReferenceData": "No",
                "Purpose": "Analysis",
                _d("Structure"): ds.structure,
                _d("StandardOID"): "STD.ADaMIG",
                _d("ArchiveLocationID"): f"LF.{ds.name}",
            },
        )
        _text(ig, _o("Description"), ds.label)
        for v in ds.variables:
            oid = f"IT.{ds.name}.{v.name}"
            ref = {"ItemOID": oid, "OrderNumber": str(v.order), "Mandatory": "Yes" if v.name in ds.keys else "No"}
            if v.name in ds.keys:
                ref["KeySequence"] = str(ds.keys.index(v.name) + 1)
            rids = _methods_for(v.name, rules)
            if rids:
                moid = f"MT.{ds.name}.{v.name}"
                ref["MethodOID"] = moid
                methods.append((moid, v.name, ds.source, rids, rules))
            ET.SubElement(ig, _o("ItemRef"), ref)
            dtype, length = _data_type(v)
            attrs = {"OID": oid, "Name": v.name, "SASFieldName": v.name, "DataType": dtype}
            if length:
                attrs["Length"] = length
            if v.display_format:
                attrs[_d("DisplayFormat")] = v.display_format
            item_defs.append((attrs, v, ds, rids))
        ET.SubElement(ig, _d("Class"), {"Name": ds.klass})
        leaf = ET.SubElement(ig, _d("leaf"), {"ID": f"LF.{ds.name}", f"{{{XLINK}}}href": ds.file_name})
        ET.SubElement(leaf, _d("title")).text = ds.file_name
        if desc:
            ig.set(_d("CommentOID"), f"COM.{ds.name}")
            methods.append((f"COM.{ds.name}", None, ds.source, [], {"": desc}))

    for attrs, v, ds, rids in item_defs:
        el = ET.SubElement(mdv, _o("ItemDef"), attrs)
        _text(el, _o("Description"), v.label)
        is_coded = v.type == "char" and (v.name in coded or v.name.endswith("FL"))
        if is_coded:
            values = sorted({str(x) for x in ds.frame[v.name].drop_nulls().to_list()})
            if 0 < len(values) <= 60:
                cl_oid = f"CL.{ds.name}.{v.name}"
                ET.SubElement(el, _o("CodeListRef"), {"CodeListOID": cl_oid})
                codelists.append((cl_oid, v.name, values, _decodes(ds, v.name)))
        origin = ET.SubElement(el, _d("Origin"), {"Type": "Derived" if rids else "Predecessor"})
        if not rids:
            from pipelines.core.warehouse import table_docs

            comment = (table_docs().get(ds.source, {}).get("columns", {}) or {}).get(v.column)
            _text(origin, _o("Description"), f"{ds.source}.{v.column}" + (f": {' '.join(str(comment).split())}" if comment else ""))

    for oid, name, values, decodes in codelists:
        cl = ET.SubElement(mdv, _o("CodeList"), {"OID": oid, "Name": name, "DataType": "text"})
        for val in values:
            if decodes:
                item = ET.SubElement(cl, _o("CodeListItem"), {"CodedValue": val})
                _text(item, _o("Decode"), decodes.get(val, val))
            else:
                ET.SubElement(cl, _o("EnumeratedItem"), {"CodedValue": val})

    for oid, name, source, rids, rules in methods:
        if name is None:  # dataset comment
            com = ET.SubElement(mdv, _d("CommentDef"), {"OID": oid})
            _text(com, _o("Description"), f"{source}: {rules['']}")
            continue
        md = ET.SubElement(mdv, _o("MethodDef"), {"OID": oid, "Name": f"Algorithm for {name}", "Type": "Computation"})
        _text(md, _o("Description"), " ".join(f"{rid}: {rules[rid]}" for rid in rids) + f" (rules of {source})")

    # ODM order inside MetaDataVersion: Standards, ItemGroupDef, ItemDef, CodeList, MethodDef, CommentDef, leaf
    order = {_d("Standards"): 0, _o("ItemGroupDef"): 1, _o("ItemDef"): 2, _o("CodeList"): 3, _o("MethodDef"): 4, _d("CommentDef"): 5}
    children = sorted(list(mdv), key=lambda e: order.get(e.tag, 9))
    for c in list(mdv):
        mdv.remove(c)
    mdv.extend(children)
    tree = ET.ElementTree(root)
    ET.indent(tree, space="  ")
    tree.write(path, encoding="UTF-8", xml_declaration=True)
    return path
