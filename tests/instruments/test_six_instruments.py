"""Six instruments added as YAML only (IES-R, HAM-D-17, QIDS-SR16, CADSS, BPRS, CGI-S/CGI-I): scored
by the generic SQL with hand-computed totals, then a simulated study using all of them, half in
wide and half in SDTM files, run end to end through ``trialpipe run``.

Every expected number below is worked out by hand from the items given and the published scoring
rule cited in the instrument's YAML (its ``reference``) - never read back from our own output.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pipelines.cli import cli
from pipelines.instruments import load_instruments
from tests.analysis.harness import Given

SIX = ("iesr", "hamd17", "qidssr16", "cadss", "bprs", "cgis", "cgii")

MANIFEST = """\
study_id: T6
arms:
  - {id: KET, label: Ketamine, role: experimental}
  - {id: MID, label: Midazolam, role: control}
visits:
  - {id: BL, day: 0, baseline: true}
  - {id: W2, day: 14, primary: true}
sources:
  - {file: x.csv, kind: assessments, instruments: {iesr: {items: "iesr_{n}"}}}
analysis:
  primary_parameter: IESRTOT
"""


def _scores(given: Given) -> dict[tuple[str, str, str], float | None]:
    con = given.run("analysis.scores")
    rows = con.execute("select usubjid, visit, paramcd, aval from analysis.scores").fetchall()
    return {(u, v, p): a for u, v, p, a in rows}


def test_definitions_cite_their_source_and_fit_the_contract():
    insts = load_instruments()
    for key in SIX:
        inst = insts[key]
        assert inst.reference, f"{key}: cite the published source"
        for sc in inst.scores:
            assert len(sc.paramcd) <= 8
    assert [s.paramcd for s in insts["iesr"].scores] == ["IESRTOT", "IESRINT", "IESRAVO", "IESRHYP"]
    # Weiss & Marmar 1997: 8 intrusion, 8 avoidance, 6 hyperarousal items, together all 22
    sub = {s.paramcd: s.items for s in insts["iesr"].scores}
    assert sub["IESRINT"] == [1, 2, 3, 6, 9, 14, 16, 20]
    assert sub["IESRAVO"] == [5, 7, 8, 11, 12, 13, 17, 22]
    assert sub["IESRHYP"] == [4, 10, 15, 18, 19, 21]
    assert sorted(sub["IESRINT"] + sub["IESRAVO"] + sub["IESRHYP"]) == list(range(1, 23))
    # ranges: HAM-D-17 0-52 (nine 0-4 items, eight 0-2 items), QIDS-SR16 0-27 (9 domains x 3),
    # CADSS 0-92 (23 x 4), BPRS 18-126 (18 x 1..7), positive subscale 4-28, CGI 1-7
    ranges = {s.paramcd: insts[k].score_range(s) for k in SIX for s in insts[k].scores}
    assert ranges["HAMDTOT"] == (0, 9 * 4 + 8 * 2)
    assert ranges["QIDSTOT"] == (0, 27)
    assert ranges["CADSSTOT"] == (0, 92)
    assert ranges["BPRSTOT"] == (18, 126)
    assert ranges["BPRSPOS"] == (4, 28)
    assert ranges["CGIS"] == ranges["CGII"] == (1, 7)
    assert insts["hamd17"].formats.nda.structure == "hrsd01"


def test_hand_computed_totals():
    # QIDS-SR16 (Rush 2003): sleep = max(items 1-4), weight = max(6-9), psychomotor = max(15-16)
    qids = [3, 1, 0, 2,  2,  0, 1, 3, 0,  1, 2, 0, 1, 2,  1, 3]  # fmt: skip
    # max(3,1,0,2)=3 + item 5 = 2 + max(0,1,3,0)=3 + items 10-14 = 1+2+0+1+2 = 6 + max(1,3)=3 -> 17
    # (the plain sum of the 16 items would be 22)
    iesr = [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2]
    # intrusion 1,2,3,6,9,14,16,20 -> 1+2+3+1+4+4+1+0 = 16; avoidance 5,7,8,11,12,13,17,22 ->
    # 0+2+3+1+2+3+2+2 = 15; hyperarousal 4,10,15,18,19,21 -> 4+0+0+3+4+1 = 12; total 43
    hamd = [4, 3, 2, 2, 1, 0, 3, 2, 1, 3, 2, 2, 1, 0, 2, 1, 2]
    # 4+3+2 + 2+1+0 + 3+2+1+3+2 + 2+1+0 + 2 + 1+2 = 31
    bprs = [1] * 18
    bprs_high = [7, 6, 5, 4, 3, 2, 1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2]
    # total 75 (7+6+5+4+3+2+1+2+3+4+5+6+7+6+5+4+3+2); positive 4, 11, 12, 15 -> 4+5+6+5 = 20
    cadss = [0] * 20 + [4, 4, 4]  # 12
    s = _scores(
        Given(MANIFEST)
        .assessment("S1", "qidssr16", "BL", 0, qids)
        .assessment("S1", "iesr", "BL", 0, iesr)
        .assessment("S1", "hamd17", "BL", 0, hamd)
        .assessment("S1", "bprs", "BL", 0, bprs)
        .assessment("S2", "bprs", "BL", 0, bprs_high)
        .assessment("S1", "cadss", "BL", 0, cadss)
        .assessment("S1", "cgis", "BL", 0, [5])
        .assessment("S1", "cgii", "W2", 14, [2])
    )
    assert s[("S1", "BL", "QIDSTOT")] == 17
    assert (s[("S1", "BL", "IESRINT")], s[("S1", "BL", "IESRAVO")], s[("S1", "BL", "IESRHYP")]) == (16, 15, 12)
    assert s[("S1", "BL", "IESRTOT")] == 43
    assert s[("S1", "BL", "HAMDTOT")] == 31
    assert (s[("S1", "BL", "BPRSTOT")], s[("S1", "BL", "BPRSPOS")]) == (18, 4)
    assert (s[("S2", "BL", "BPRSTOT")], s[("S2", "BL", "BPRSPOS")]) == (75, 20)
    assert s[("S1", "BL", "CADSSTOT")] == 12
    assert s[("S1", "BL", "CGIS")] == 5
    assert s[("S1", "W2", "CGII")] == 2


def test_qids_max_group_with_a_missing_item_is_missing():
    # one sleep item missing: max(1-4) is unknown, so the total is missing (method none); the other
    # 15 items are counted as received
    qids = {n: 1 for n in range(1, 17)}
    qids[2] = None
    con = Given(MANIFEST).assessment("S1", "qidssr16", "BL", 0, qids).run("analysis.scores")
    assert con.execute("select aval, n_items, n_items_missing from analysis.scores").fetchall() == [(None, 16, 1)]


def test_response_remission_and_change_scale_rules():
    con = (
        Given(MANIFEST)
        .subject("S1", "KET").subject("S2", "MID")
        # HAM-D-17: base 20; W2 9 = -55% -> response (>= 50%), not remission (9 > 7)
        .assessment("S1", "hamd17", "BL", 0, [4, 4, 4, 2, 2, 2, 2] + [0] * 10)
        .assessment("S1", "hamd17", "W2", 14, [3, 3, 3] + [0] * 14)
        # S2 base 20; W2 7 = -65% -> response and remission (<= 7)
        .assessment("S2", "hamd17", "BL", 0, [4, 4, 4, 2, 2, 2, 2] + [0] * 10)
        .assessment("S2", "hamd17", "W2", 14, [4, 3] + [0] * 15)
        # QIDS-SR16: base 12 (max sleep 3 + 3 + max weight 3 + 3 from item 10); W2 6 = -50% ->
        # response; 6 > 5 -> not remission
        .assessment("S1", "qidssr16", "BL", 0, [3, 0, 0, 0, 3, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0])
        .assessment("S1", "qidssr16", "W2", 14, [3, 0, 0, 0, 3] + [0] * 11)
        # CGI-I is not rated at baseline; 2 = much improved -> response, 3 -> not
        .assessment("S1", "cgii", "W2", 14, [2])
        .assessment("S2", "cgii", "W2", 14, [3])
        .run("analysis.scores", "analysis.adqs")
    )
    rows = con.execute(
        "select usubjid, paramcd, base, chg, crit1fl, crit2fl, crit1 from analysis.adqs where avisit = 'W2' "
        "order by paramcd, usubjid"
    ).fetchall()
    assert rows == [
        ("S1", "CGII", None, None, "Y", None, "CGII in 1 or 2"),
        ("S2", "CGII", None, None, "N", None, "CGII in 1 or 2"),
        ("S1", "HAMDTOT", 20.0, -11.0, "Y", "N", "HAMDTOT reduction from baseline >= 50%"),
        ("S2", "HAMDTOT", 20.0, -13.0, "Y", "Y", "HAMDTOT reduction from baseline >= 50%"),
        ("S1", "QIDSTOT", 12.0, -6.0, "Y", "N", "QIDSTOT reduction from baseline >= 50%"),
    ]
    assert con.execute("select count(*) from analysis.adqs where paramcd = 'CGII' and ablfl = 'Y'").fetchone() == (0,)


# --------------------------------------------------------------------------------- end to end
def _text(path: Path) -> str:
    import html

    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))))


def _run_six(root: Path) -> Path:
    """A simulated 15 + 15 study of the six instruments, spread over wide and SDTM files, run with
    ``trialpipe run``; returns the published warehouse."""
    study, wh = root / "study", root / "wh" / "trialpipe.duckdb"
    runner = CliRunner()
    sim = runner.invoke(
        cli, ["simulate", str(study), "--format", "wide,sdtm", "--instruments", ",".join(SIX), "--study-id", "SIX"]
    )
    assert sim.exit_code == 0, sim.output
    res = runner.invoke(cli, ["run", str(study), "--warehouse", str(wh)])
    assert res.exit_code == 0, res.output
    return wh


@pytest.mark.slow
def test_six_instruments_run_end_to_end_in_wide_and_sdtm(tmp_path):
    six_study = _run_six(tmp_path)
    study = tmp_path / "study"
    files = sorted(str(p.relative_to(study)) for p in study.rglob("*") if p.is_file())
    # half the instruments in REDCap-style CSV, half in SDTM QS/RS
    assert files == [
        "bprs_redcap.csv", "cgii_redcap.csv", "iesr_redcap.csv", "qidssr16_redcap.csv", "randomization.csv",
        "sdtm/qs.xpt", "sdtm/rs.xpt", "study.yaml",
    ]  # fmt: skip
    con = duckdb.connect(str(six_study), read_only=True)
    paramcds = {r[0] for r in con.execute("select distinct paramcd from analysis.adqs").fetchall()}
    assert paramcds == {
        "IESRTOT", "IESRINT", "IESRAVO", "IESRHYP", "HAMDTOT", "QIDSTOT", "CADSSTOT", "BPRSTOT", "BPRSPOS",
        "CGIS", "CGII",
    }  # fmt: skip
    # QIDS totals in ADQS equal the max-of-groups rule recomputed from the file's own items
    import polars as pl

    raw = pl.read_csv(study / "qidssr16_redcap.csv")
    it = lambda n: pl.col(f"qidssr16_{n}")  # noqa: E731
    expect = raw.select(
        pl.col("record_id").alias("usubjid"),
        pl.col("days_from_baseline").alias("ady"),
        (
            pl.max_horizontal(it(1), it(2), it(3), it(4)) + it(5) + pl.max_horizontal(it(6), it(7), it(8), it(9))
            + it(10) + it(11) + it(12) + it(13) + it(14) + pl.max_horizontal(it(15), it(16))
        ).cast(pl.Float64).alias("aval"),
    )
    got = con.execute("select usubjid, ady, aval from analysis.adqs where paramcd = 'QIDSTOT'").pl()
    joined = expect.join(got, on=["usubjid", "ady"], how="inner", suffix="_adqs")
    assert joined.height == raw.height
    assert (joined["aval"] == joined["aval_adqs"]).all()
    # CGI-I: no baseline; analysed on its value; response = 1 or 2
    assert con.execute("select count(base) from analysis.adqs where paramcd = 'CGII'").fetchone() == (0,)
    fit = con.execute("select formula from results.model_fits where paramcd = 'CGII' and model = 'mmrm'").fetchone()
    assert fit[0].startswith("aval ~ trtp * avisit")
    crit = {r[0] for r in con.execute("select criterion from results.responders where paramcd = 'CGII'").fetchall()}
    assert crit == {"response"}
    te = {r[0] for r in con.execute("select paramcd from results.treatment_effects where model = 'mmrm'").fetchall()}
    assert paramcds <= te
    report = six_study.parent / "reports" / "SIX.html"
    text = _text(report)
    for label in ("IES-R total", "Intrusion", "Hyperarousal", "HAM-D-17 total", "QIDS-SR16 total", "CADSS total",
                  "BPRS total", "Positive symptoms", "CGI-S", "CGI-I: response CGI-I in 1 or 2",
                  "HAM-D-17 total reduction from baseline ≥ 50%", "HAM-D-17 total ≤ 7"):  # fmt: skip
        assert label in text, label
    assert "Primary result. IES-R total at Week 2" in text
