"""The study report: sections, the fixture's numbers as a clinical report prints them, the forest
plot, valid self-contained HTML, and graceful degradation (single arm, missing results, a model
that did not converge)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import duckdb
import pytest

from pipelines.report.study import build_report
from pipelines.report.validation import summarize
from tests.report.fixtures import RUN, STUDY, write_results
from tests.report.html_check import check_html, figure_svg, row_cells, text_of

TWO_ARM_SECTIONS = [
    "flow",
    "baseline",
    "primary",
    "forest",
    "change",
    "trajectories",
    "responders",
    "sensitivity",
    "models",
    "validation",
    "provenance",
]
PRIMARY_ORDER = [
    "CAPS5TOT",
    "CAPS5B",
    "CAPS5C",
    "CAPS5D",
    "CAPS5E",
    "PCL5TOT",
    "PCL5B",
    "PCL5C",
    "PCL5D",
    "PCL5E",
    "MADRSTOT",
]


def _report(db, tmp_path, name="r", **kwargs) -> str:
    with duckdb.connect(str(db), read_only=True) as con:
        path = build_report(con, STUDY, RUN, tmp_path / f"{name}.html", **kwargs)
    assert path == tmp_path / f"{name}.html"
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def two_arm_page(built, tmp_path_factory) -> str:
    return _report(built["two"], tmp_path_factory.mktemp("two_arm_report"))


@pytest.fixture(scope="module")
def single_arm_page(built, tmp_path_factory) -> str:
    return _report(built["one"], tmp_path_factory.mktemp("single_arm_report"))


def test_directory_target_gets_study_id_name(built, tmp_path):
    with duckdb.connect(str(built["one"]), read_only=True) as con:
        path = build_report(con, STUDY, RUN, tmp_path)
    assert path == tmp_path / f"{STUDY}.html"


def test_two_arm_report_is_valid_self_contained_html(two_arm_page):
    c = check_html(two_arm_page)
    assert len(c.images) == 7  # flow, forest, change, small multiples, spaghetti, responders, sensitivity
    assert all(i["src"].startswith("data:image/svg+xml;base64,") for i in c.images)


def test_two_arm_report_has_every_section(two_arm_page):
    for section in TWO_ARM_SECTIONS:
        assert f'id="{section}"' in two_arm_page, section
    text = text_of(two_arm_page)
    for heading in [
        "Participant flow",
        "Demographics and baseline characteristics",
        "Primary results at Week 2",
        "Cluster effects",
        "Change from baseline over visits",
        "Individual trajectories",
        "Response and remission at Week 2",
        "Sensitivity: prorated scores and random-effects models",
        "Model fits",
        "Data validation",
        "Provenance",
    ]:
        assert heading in text, heading


def test_header_names_study_arms_visits_and_model(two_arm_page):
    text = text_of(two_arm_page)
    assert "Simulated IV ketamine vs midazolam for chronic PTSD" in text
    assert "Ketamine 0.5 mg/kg (experimental, N = 15); Midazolam 0.045 mg/kg (control, N = 15)" in text
    assert (
        "Baseline (day 0) baseline · Day 1 (24 h after infusion 1) (day 1) · Week 1 (day 7) · Week 2 (day 14) primary"
        in text
    )
    assert "Change from baseline in CAPS-5 Total Symptom Severity Score (CAPS5TOT) at Week 2" in text
    assert "chg ~ base + trtp * avisit + us(avisit | usubjid)" in text
    assert "denominator df: kenward-roger" in text
    assert "used: us for all parameters except CAPS-5 cluster C (Avoidance): toeph" in text


def test_primary_result_sentence(two_arm_page):
    assert (
        "CAPS-5 total at Week 2: Ketamine 0.5 mg/kg − Midazolam 0.045 mg/kg = -11.88 points "
        "(95% CI -20.01 to -3.75), p = 0.006, Cohen's d = -1.13."
    ) in text_of(two_arm_page)


def test_primary_table_rows_in_order_with_clusters_indented(two_arm_page):
    assert re.findall(r'data-paramcd="([A-Z0-9]+)"', two_arm_page) == PRIMARY_ORDER
    cls, _ = row_cells(two_arm_page, "CAPS5TOT")
    assert "primary" in cls and "indent" not in cls
    for p in ("CAPS5B", "PCL5E"):
        assert "indent" in row_cells(two_arm_page, p)[0]
    assert "indent" not in row_cells(two_arm_page, "MADRSTOT")[0]


def test_primary_table_formats_the_fixture_numbers(two_arm_page):
    # fixtures.EFFECTS_W2 / LSMEANS_CAPS_W2: -11.88 (3.96), CI -20.01..-3.75, p .0058, no adjusted p, d -1.13
    assert row_cells(two_arm_page, "CAPS5TOT")[1] == [
        "CAPS-5 total",
        "-13.92 (3.40)",
        "-2.04 (3.40)",
        "-11.88",
        "(-20.01, -3.75)",
        "0.006",
        "—",
        "-1.13",
    ]
    # B: p .0084 -> 0.008, Holm .0336 -> 0.034; E: CI crosses zero
    assert row_cells(two_arm_page, "CAPS5B")[1][3:] == ["-3.41", "(-5.87, -0.95)", "0.008", "0.034", "-0.98"]
    assert row_cells(two_arm_page, "CAPS5E")[1][3:] == ["-2.49", "(-6.75, 1.77)", "0.240", "0.240", "-0.45"]
    assert row_cells(two_arm_page, "MADRSTOT")[1][3:] == ["-9.80", "(-16.98, -2.62)", "0.009", "—", "-1.05"]


def test_multiplicity_method_and_family_under_the_table(two_arm_page):
    assert (
        "Testing hierarchy (serial gatekeeping) at Week 2: level 1: CAPS-5 total; level 2: Cluster B "
        "(Intrusion), Cluster C (Avoidance), Cluster D (Cognitions and mood), Cluster E (Arousal and "
        "reactivity); level 3: PCL-5 total, MADRS total."
    ) in text_of(two_arm_page)


def test_forest_plot_has_one_row_per_cluster(two_arm_page):
    svg = figure_svg(two_arm_page, "forest-figure")
    rows = re.findall(r'id="forest-row-([A-Z0-9]+)"', svg)
    assert rows == ["CAPS5B", "CAPS5C", "CAPS5D", "CAPS5E", "PCL5B", "PCL5C", "PCL5D", "PCL5E"]
    text = text_of(two_arm_page)
    assert "Left of zero favours Ketamine 0.5 mg/kg; right of zero favours Midazolam 0.045 mg/kg." in text


def test_sensitivity_table_puts_random_effects_next_to_mmrm(two_arm_page):
    text = text_of(two_arm_page)
    assert "MMRM us (unstructured) -11.88 (3.96) 27.0 (-20.01, -3.75) 0.006 -1.13" in text
    assert (
        "Random intercept (lmm_ri) residual σ²I -11.20 (3.80) 27.9 (-18.65, -3.75) 0.003 -1.07" in text
    )
    assert (
        "Random intercept + slope (lmm_rs) residual σ²I -10.90 (4.10) 26.4 (-18.94, -2.86) 0.008 -1.04"
        in text
    )
    svg = figure_svg(two_arm_page, "sensitivity-figure")
    assert re.findall(r'id="sensitivity-row-([a-z_]+)"', svg) == ["mmrm", "lmm_ri", "lmm_rs"]


def test_responder_table(two_arm_page):
    text = text_of(two_arm_page)
    assert (
        "CAPS-5 total: response CAPS-5 total reduction from baseline ≥ 30% 10/15 (66.7%) (38.4, 88.2) "
        "3/15 (20.0%) (4.3, 48.1) 46.7 (15.0, 78.3) 0.025 Fisher exact"
    ) in text
    assert "MADRS total: remission MADRS total ≤ 10 6/15 (40.0%) (16.3, 67.7)" in text
    assert 'id="responder-figure"' in two_arm_page


def test_participant_flow_and_baseline(two_arm_page, built):
    with duckdb.connect(str(built["two"]), read_only=True) as con:
        completed = dict(
            con.execute(
                "select trt01p, count(*) from analysis.adsl where complfl = 'Y' group by 1"
            ).fetchall()
        )
    text = text_of(two_arm_page)
    assert "Randomized 15 15 30" in text
    # CONSORT: discontinued before the primary visit, out of the randomized, with the reason
    disc = {a: 15 - completed.get(a, 0) for a in ("KET", "MID")}
    assert (
        f"Discontinued before Week 2 (EOSSTT = DISCONTINUED) {disc['KET']} {disc['MID']} {disc['KET'] + disc['MID']}"
    ) in text
    assert "Physician decision 1 0 1" in text
    assert "Analysed by the MMRM (CAPS-5 total: a baseline and at least one post-baseline value) 15 15 30" in text
    for label in (
        "Age, years, mean (SD)",
        "Sex, n (%)",
        "CAPS-5 total (0–80)",
        "PCL-5 total (0–80)",
        "MADRS total (0–60)",
    ):
        assert label in text


def test_model_fits_flag_fallback_and_provenance(two_arm_page, built):
    text = text_of(two_arm_page)
    assert "Model fallbacks CAPS-5 cluster C (Avoidance): toeph" in text
    assert re.search(r"toeph</abbr><span class=\"flag\">fallback</span>", two_arm_page)
    with duckdb.connect(str(built["two"]), read_only=True) as con:
        hashes = con.execute("select _source_file, _source_sha256 from qc.source_files").fetchall()
    assert len(hashes) == 4
    for f, sha in hashes:
        assert f"{f} {sha}" in text
    assert "Report code 0.1.0+g" in text
    assert "Run local" in text


def test_validation_summary_from_the_qc_tables(two_arm_page):
    text = text_of(two_arm_page)
    assert "Every file loaded and every blocking check passed." in text
    assert "caps5_redcap.csv loaded 119 119 0 0 none" in text


def test_validation_summary_passed_in(built, tmp_path):
    with duckdb.connect(str(built["two"]), read_only=True) as con:
        summary = summarize(con, STUDY, RUN)
    summary.files[0].quarantined = 3
    summary.files[0].reasons = [("CAPS-5 item 4 (caps5_b4): value 7 is outside 0-4", 3)]
    page = _report(
        built["two"],
        tmp_path,
        validation=summary,
        provenance={
            "input_sha256s": {"study.yaml": "ab" * 32},
            "code_version": "9.9.9+gdeadbeef",
            "finished_at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        },
    )
    text = text_of(page)
    assert "3 × CAPS-5 item 4 (caps5_b4): value 7 is outside 0-4" in text
    assert f"study.yaml {'ab' * 32}" in text
    assert "Analysis code 9.9.9+gdeadbeef" in text
    assert "Analysis date 2026-03-01 09:30 UTC (report generated" in text


# ----------------------------------------------------------------------------------- single arm
def test_single_arm_report_has_no_between_arm_sections(single_arm_page):
    check_html(single_arm_page)
    for section in ("primary", "forest", "sensitivity"):
        assert f'id="{section}"' not in single_arm_page
    for section in (
        "flow",
        "baseline",
        "within",
        "change",
        "trajectories",
        "responders",
        "models",
        "validation",
    ):
        assert f'id="{section}"' in single_arm_page
    text = text_of(single_arm_page)
    assert "Single-arm study: there is no control arm, so no between-arm comparison is made." in text
    assert "Risk difference" not in text and "Difference (SE)" not in text
    assert "chg ~ base + avisit + us(avisit | usubjid)" in text


def test_single_arm_within_arm_change_and_proportions(single_arm_page):
    text = text_of(single_arm_page)
    assert "Within-arm change from baseline at Week 2" in text
    assert re.search(
        r"CAPS-5 total 14 -?\d+\.\d\d \(\d+\.\d\d\) \(-?\d+\.\d\d, -?\d+\.\d\d\) -13\.92 \(3\.40\) "
        r"\(-20\.90, -6\.94\)",
        text,
    )
    assert (
        "CAPS-5 total: response CAPS-5 total reduction from baseline ≥ 30% 10/15 (66.7%) (38.4, 88.2)" in text
    )
    assert "PCL-5 has no data in this study." in text
    assert "Enrolled 15" in text


# ------------------------------------------------------------------------------- degradation
def test_report_without_results_tables_says_what_is_missing(bare, tmp_path):
    page = _report(bare, tmp_path)
    check_html(page)
    text = text_of(page)
    assert (
        "results.treatment_effects does not exist (the statistics have not run for this warehouse)." in text
    )
    assert "No LS means for CAPS-5 Total Symptom Severity Score (results.lsmeans, model mmrm)." in text
    assert "No cluster-level treatment effects are stored" in text
    assert "No model fits are stored (results.model_fits)." in text
    # observed data still shown
    assert "Randomized 15 15 30" in text
    assert 'id="spaghetti-figure"' in page
    # responders fall back to counts from the ADQS flags
    assert "Counted from ADQS (CRIT1FL response, CRIT2FL remission)" in text


def test_report_with_empty_results_tables(two_arm, tmp_path):
    with duckdb.connect(str(two_arm)) as con:
        for t in ("lsmeans", "treatment_effects", "responders", "model_fits"):
            con.execute(f"delete from results.{t}")
    text = text_of(check_html_page := _report(two_arm, tmp_path))
    check_html(check_html_page)
    assert f"results.lsmeans has no rows for {STUDY}." in text


def test_parameter_without_results_and_non_converged_model(two_arm, tmp_path):
    with duckdb.connect(str(two_arm)) as con:
        write_results(con, drop=("PCL5TOT", "PCL5B", "PCL5C", "PCL5D", "PCL5E"), not_converged=("MADRSTOT",))
    page = _report(two_arm, tmp_path)
    check_html(page)
    _, pcl = row_cells(page, "PCL5TOT")
    assert pcl[0] == "PCL-5 total no model results" and pcl[3:] == ["—"] * 5
    _, madrs = row_cells(page, "MADRSTOT")
    assert madrs[0] == "MADRS total model did not converge"
    assert madrs[3] == "-9.80"
    text = text_of(page)
    assert "No model results for: PCL-5 total, Cluster B (Intrusion)" in text
    assert "1 model(s) did not converge" in text
    svg = figure_svg(page, "forest-figure")
    assert re.findall(r'id="forest-row-([A-Z0-9]+)"', svg) == ["CAPS5B", "CAPS5C", "CAPS5D", "CAPS5E"]


def test_report_for_an_unknown_study_does_not_crash(built, tmp_path):
    with duckdb.connect(str(built["two"]), read_only=True) as con:
        page = build_report(con, "NOSUCH", None, tmp_path / "x.html").read_text()
    check_html(page)
    assert "No arms found" in text_of(page)
