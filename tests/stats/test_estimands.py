"""Estimands on a built Feder-sized study (no Dagster): the default estimand, the contract columns,
agreement of the MAR row with a direct imputation analysis of ADQS, a manifest-declared ICE column,
the report section, the headline's J2R line and ``trialpipe sensitivity``."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from pipelines.core import warehouse
from pipelines.core.build import build_study
from pipelines.core.errors import ManifestError
from pipelines.core.manifest import Estimand, load_manifest, parse_manifest
from pipelines.simulate import write_study
from pipelines.stats.estimands import run_estimands

CONTRACT = {
    "results.estimands": [
        "study_id",
        "estimand_id",
        "population",
        "paramcd",
        "avisit",
        "intercurrent_events",
        "strategies",
        "summary_measure",
        "description",
        "run_id",
    ],
    "results.sensitivity": [
        "study_id",
        "estimand_id",
        "paramcd",
        "method",
        "strategy",
        "delta",
        "avisit",
        "estimate",
        "std_error",
        "df",
        "conf_low",
        "conf_high",
        "p_value",
        "n_imputations",
        "seed",
        "run_id",
    ],
    "results.tipping_point": [
        "study_id",
        "estimand_id",
        "paramcd",
        "delta_experimental",
        "delta_control",
        "estimate",
        "p_value",
        "run_id",
    ],
}  # fmt: skip  (docs/contract.md, "The warehouse")


@pytest.fixture(scope="module")
def feder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("est")
    study = write_study(tmp / "demo", formats=("wide",), per_arm=15, seed=20210105)
    db = tmp / "demo.duckdb"
    build_study(study, db)
    con = duckdb.connect(str(db))
    manifest = load_manifest(study)
    from pipelines.stats.efficacy import run_efficacy

    for t, f in run_efficacy(con, manifest, "run-est").tables().items():
        warehouse.write_frame(con, t, f)
    out = run_estimands(con, manifest, "run-est")
    for t, f in out.tables().items():
        warehouse.write_frame(con, t, f)
    yield study, db, con, manifest, out
    con.close()


def test_default_estimand_and_contract_columns(feder):
    _, _, con, _manifest, out = feder
    for table, cols in CONTRACT.items():
        assert set(cols) <= set(out.tables()[table].columns), table
        assert warehouse.table_exists(con, table)
    e = out.estimands.row(0, named=True)
    assert (e["estimand_id"], e["paramcd"], e["avisit"]) == ("primary", "CAPS5TOT", "W2")
    assert "hypothetical" in e["strategies"] and "MAR" in e["strategies"]
    assert e["description"].startswith("Among all randomized participants")
    # the simulator's one ketamine dropout before week 2 (pipelines/simulate/trial.py, n_dropouts)
    assert e["n_ice"] == 1 and e["n_subjects"] == 30
    strategies = out.sensitivity.filter(pl.col("delta") == 0)["strategy"].unique().sort().to_list()
    assert strategies == ["CIR", "CR", "J2R", "MAR"]
    assert out.tipping_point.height == 121


def test_mar_row_equals_a_direct_imputation_analysis_of_adqs(feder):
    # Independent route: the ADQS rows by SQL, ICE from the trailing missing visits, then the library.
    from pipelines.stats import imputation as mi

    _, _, con, _, out = feder
    df = con.execute(
        """select q.usubjid, q.trtp, q.avisit, q.chg, q.base from analysis.adqs q
           where q.paramcd = 'CAPS5TOT' and q.avisit in ('D1', 'W1', 'W2') and q.anl01fl = 'Y'"""
    ).pl()
    ice = mi.ice_from_dropout(df, subject="usubjid", visit="avisit", outcome="chg", visits=["D1", "W1", "W2"])
    ld = mi.prepare(df, "chg ~ base*avisit + trtp*avisit + us(avisit | usubjid)", group="trtp", reference="MID",
                    ice=ice, strategy="MAR", visit_levels=["D1", "W1", "W2"])  # fmt: skip
    r = mi.ImputationAnalysis(ld, mi.draws(ld, "condmean-jackknife")).results()
    want = r.filter((pl.col("visit") == "W2") & (pl.col("parameter") == "difference")).row(0, named=True)
    got = out.sensitivity.filter(
        (pl.col("strategy") == "MAR") & (pl.col("avisit") == "W2") & (pl.col("delta") == 0)
    ).row(0, named=True)
    assert abs(got["estimate"] - want["estimate"]) < 1e-9 and abs(got["std_error"] - want["std_error"]) < 1e-9


def test_tipping_delta_tips_the_p_value(feder):
    _, _, _, _, out = feder
    e = out.estimands.row(0, named=True)
    tip = out.sensitivity.filter((pl.col("delta") != 0) & (pl.col("delta_arm") == "experimental"))
    assert tip.height == 1 and tip["delta"][0] == pytest.approx(e["tipping_delta_experimental"])
    assert abs(tip["p_value"][0] - 0.05) < 2e-3
    # no control-arm subject has an ICE in this simulation: no shift of the control arm can tip it
    assert e["tipping_delta_control"] is None


def test_estimands_block_in_the_manifest(feder):
    study, _, _, manifest, _ = feder
    text = (study / "study.yaml").read_text()
    m = parse_manifest(
        text + "\nestimands:\n  - id: j2r\n    visit: W2\n    intercurrent_events:\n"
        "      - event: discontinuation\n        imputation: J2R\n    sensitivity:\n      strategies: [MAR]\n"
        "      tipping_point: {enabled: false}\n"
    )
    assert [e.id for e in m.default_estimands()] == ["j2r"]
    assert manifest.default_estimands()[0] == Estimand(id="primary")
    with pytest.raises(ManifestError, match="composite"):
        parse_manifest(
            text + "\nestimands:\n  - id: c\n    intercurrent_events:\n      - strategy: composite\n"
        )
    with pytest.raises(ManifestError, match="visit"):
        parse_manifest(text + "\nestimands:\n  - id: c\n    visit: W9\n")


def test_report_section_and_headline(feder, tmp_path):
    from pipelines.report.headline import headline_lines
    from pipelines.report.study import build_report

    _, _, con, manifest, out = feder
    page = build_report(con, manifest.study_id, None, tmp_path).read_text()
    assert 'id="estimand-primary"' in page and "J2R (jump to reference)" in page
    assert 'id="tipping-primary"' in page
    lines = headline_lines(con, manifest.study_id)
    j2r = out.sensitivity.filter(
        (pl.col("strategy") == "J2R") & (pl.col("avisit") == "W2") & (pl.col("delta") == 0)
    )
    assert lines[1].startswith("  jump to reference (J2R")
    assert f"{j2r['estimate'][0]:.2f}" in lines[1]


def test_sensitivity_command_replaces_the_study_rows(feder, tmp_path):
    import shutil

    from click.testing import CliRunner

    from pipelines.cli.sensitivity import sensitivity

    study, db, con, _manifest, out = feder
    copy = tmp_path / "wh.duckdb"
    con.execute("checkpoint")
    shutil.copy(db, copy)
    res = CliRunner().invoke(sensitivity, [str(study), "--warehouse", str(copy)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with duckdb.connect(str(copy), read_only=True) as c:
        n = c.execute("select count(*), count(distinct run_id) from results.sensitivity").fetchone()
    assert n == (out.sensitivity.height, 1)


def test_composite_responders_count_every_randomized_subject(feder):
    _, _, con, _, out = feder
    r = out.responders.sort("missing_data")
    comp = r.filter(pl.col("missing_data") == "composite").row(0, named=True)
    obs = r.filter(pl.col("missing_data") == "observed").row(0, named=True)
    assert comp["is_primary"] and not obs["is_primary"]
    assert (comp["n_experimental"], comp["n_control"]) == (15, 15)
    # independent count: CRIT1FL = 'Y' at W2 among randomized subjects (the dropout has no W2 record)
    n_y = dict(
        con.execute(
            """select s.trt01p, count(*) from analysis.adsl s join analysis.adqs q using (study_id, usubjid)
               where q.paramcd = 'CAPS5TOT' and q.avisit = 'W2' and q.anl01fl = 'Y' and q.crit1fl = 'Y'
               group by 1"""
        ).fetchall()
    )
    assert (comp["n_responders_experimental"], comp["n_responders_control"]) == (n_y["KET"], n_y["MID"])
    assert obs["n_experimental"] == 14 and comp["or_method"] in ("ML", "Firth")


def test_large_study_switches_to_the_grouped_jackknife(feder):
    # The threshold lowered to 20 subjects (the study has 30): the leave-one-out jackknife becomes the
    # delete-a-group jackknife with 6 groups; the rows say so (method, n_imputations, seed, df) and a note
    # explains it; the numbers are the library's grouped jackknife on the same data.
    from pipelines.stats import imputation as mi

    study, _, con, manifest, out = feder
    text = (study / "study.yaml").read_text()
    m = parse_manifest(
        text + "\nestimands:\n  - id: primary\n    sensitivity:\n      strategies: [MAR]\n"
        "      jackknife_max_subjects: 20\n      jackknife_groups: 6\n      tipping_point: {enabled: false}\n"
    )
    big = run_estimands(con, m, "run-grouped")
    sens = big.sensitivity
    assert set(sens["method"]) == {"condmean-grouped-jackknife"}
    assert set(sens["n_imputations"]) == {6} and set(sens["df"]) == {5.0}
    assert set(sens["seed"]) == {m.default_estimands()[0].sensitivity.seed}
    assert any("delete-a-group jackknife with 6 random groups" in n for n in big.notes)
    row = sens.filter(pl.col("avisit") == "W2").row(0, named=True)
    df = con.execute(
        """select q.usubjid, q.trtp, q.avisit, q.chg, q.base from analysis.adqs q
           where q.paramcd = 'CAPS5TOT' and q.avisit in ('D1', 'W1', 'W2') and q.anl01fl = 'Y'"""
    ).pl()
    ice = mi.ice_from_dropout(df, subject="usubjid", visit="avisit", outcome="chg", visits=["D1", "W1", "W2"])
    ld = mi.prepare(df, "chg ~ base*avisit + trtp*avisit + us(avisit | usubjid)", group="trtp", reference="MID",
                    ice=ice, strategy="MAR", visit_levels=["D1", "W1", "W2"])  # fmt: skip
    dr = mi.draws(ld, "condmean-grouped-jackknife", n_samples=6, seed=row["seed"])
    want = mi.ImputationAnalysis(ld, dr).results().filter(
        (pl.col("visit") == "W2") & (pl.col("parameter") == "difference")
    ).row(0, named=True)
    assert abs(row["std_error"] - want["std_error"]) < 1e-9 and abs(row["p_value"] - want["p_value"]) < 1e-9
    # the default (500 subjects) keeps the leave-one-out jackknife at this size
    assert set(out.sensitivity["method"]) == {"condmean-jackknife"}
