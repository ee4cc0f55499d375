"""The demo's closing lines, exactly."""

from __future__ import annotations

from types import SimpleNamespace

import duckdb
from rich.console import Console

from pipelines.report.headline import headline_lines, print_headline
from tests.report.fixtures import STUDY

TWO_ARM = [
    "CAPS-5 total at Week 2, Ketamine 0.5 mg/kg - Midazolam 0.045 mg/kg: -11.88 (95% CI -20.01 to -3.75), p = 0.006, d = -1.13",
    "  Cluster B (Intrusion): -3.41 (95% CI -5.87 to -0.95), p = 0.008, adjusted p = 0.034",
    "  Cluster C (Avoidance): -1.52 (95% CI -2.77 to -0.27), p = 0.019, adjusted p = 0.038",
    "  Cluster D (Cognitions and mood): -4.46 (95% CI -7.78 to -1.14), p = 0.011, adjusted p = 0.034",
    "  Cluster E (Arousal and reactivity): -2.49 (95% CI -6.75 to 1.77), p = 0.240, adjusted p = 0.240",
    "PCL-5 total: -12.40 (95% CI -22.04 to -2.76), p = 0.014, d = -0.95",
    "MADRS total: -9.80 (95% CI -16.98 to -2.62), p = 0.009, d = -1.05",
    (
        "CAPS-5 total response (reduction from baseline >= 30%): Ketamine 0.5 mg/kg 10/15 (66.7%) vs "
        "Midazolam 0.045 mg/kg 3/15 (20.0%), Fisher p = 0.025"
    ),
    (
        "PCL-5 total response (reduction from baseline >= 30%): Ketamine 0.5 mg/kg 9/15 (60.0%) vs "
        "Midazolam 0.045 mg/kg 4/15 (26.7%), Fisher p = 0.139"
    ),
    (
        "PCL-5 total below the probable-PTSD cut-off (PCL-5 total < 33): Ketamine 0.5 mg/kg 5/15 (33.3%) vs Midazolam 0.045 mg/kg 2/15 (13.3%), "
        "Fisher p = 0.390"
    ),
    (
        "MADRS total response (reduction from baseline >= 50%): Ketamine 0.5 mg/kg 7/15 (46.7%) vs "
        "Midazolam 0.045 mg/kg 2/15 (13.3%), Fisher p = 0.109"
    ),
    (
        "MADRS total remission (MADRS total <= 10): Ketamine 0.5 mg/kg 6/15 (40.0%) vs Midazolam 0.045 mg/kg 1/15 (6.7%), "
        "Fisher p = 0.080"
    ),
]


def test_two_arm_headline_lines(built):
    with duckdb.connect(str(built["two"]), read_only=True) as con:
        assert headline_lines(con, STUDY) == TWO_ARM


def test_single_arm_headline_lines(built):
    with duckdb.connect(str(built["one"]), read_only=True) as con:
        lines = headline_lines(con, STUDY)
    assert lines[0] == "Single-arm study (Ketamine 0.5 mg/kg): change from baseline at Week 2, no control arm"
    assert lines[1] == "CAPS-5 total: LS-mean change -13.92 (95% CI -20.90 to -6.94)"
    assert lines[-1] == "MADRS total remission (MADRS total <= 10): Ketamine 0.5 mg/kg 6/15 (40.0%)"


def test_headline_without_results(built):
    with duckdb.connect(str(built["bare"]), read_only=True) as con:
        assert headline_lines(con, STUDY) == [
            f"{STUDY}: no treatment effects stored (results.treatment_effects is missing or empty)."
        ]


def test_print_headline_adds_the_report_path(built, tmp_path):
    (tmp_path / f"{STUDY}.html").write_text("<!doctype html>")
    console = Console(record=True, width=300)
    print_headline(SimpleNamespace(warehouse=built["two"], study_id=STUDY, report_dir=tmp_path), console)
    out = console.export_text().splitlines()
    assert out[0] == "  " + TWO_ARM[0]
    assert out[-1] == f"  report: {(tmp_path / f'{STUDY}.html').resolve()}"
