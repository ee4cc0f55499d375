"""analysis.adsl: one row per subject with arm, population flags, completer flag and covariates."""

from __future__ import annotations

from tests.analysis.harness import Given, manifest_text, rows

CAPS_30 = [2] * 15 + [0] * 5   # 15 x 2 = 30
CAPS_10 = [1] * 10 + [0] * 10  # 10
PCL_40 = [2] * 20              # 40


def test_adsl_flags_covariates_and_completers_on_the_primary_parameter():
    con = (
        Given(manifest_text())
        .subject("S1", "KET", site="A", sex="F", age=34.0, age_band="30-39", race="White", ethnicity="Not Hispanic",
                 covariates='{"prior_ssri": "1"}')
        .subject("S2", "MID", site="B", sex="M", age=51.0)
        .subject("S3", None)                                      # seen in assessments only, arm unknown
        .assessment("S1", "caps5", "BL", 0, CAPS_30)
        .assessment("S1", "caps5", "W2", 14, CAPS_10)             # has the primary-visit CAPS-5: completer
        .assessment("S2", "caps5", "BL", 0, CAPS_30)
        .assessment("S2", "caps5", "W1", 7, CAPS_10)              # stopped after week 1
        .assessment("S2", "pcl5", "W2", 14, PCL_40)               # a W2 PCL-5 does not make a CAPS-5 completer
        .assessment("S3", "caps5", "W2", 14, [None] + [1] * 19)  # W2 record without a value: not a completer
        .run("analysis.scores", "analysis.adqs", "analysis.adex", "analysis.adsl")
    )
    assert rows(con, "select usubjid, trt01p, trt01pn, arm_label, arm_role, randfl, ittfl, complfl, primary_paramcd, "
                     "primary_base from analysis.adsl order by 1") == [
        ("S1", "KET", 1, "Ketamine", "experimental", "Y", "Y", "Y", "CAPS5TOT", 30.0),
        ("S2", "MID", 2, "Midazolam", "control", "Y", "Y", "N", "CAPS5TOT", 30.0),
        ("S3", None, None, None, None, "N", "N", "N", "CAPS5TOT", None),
    ]
    assert rows(con, "select site, sex, age, age_band, race, ethnicity, covariates->>'prior_ssri' from analysis.adsl "
                     "where usubjid = 'S1'") == [("A", "F", 34.0, "30-39", "White", "Not Hispanic", "1")]


def test_completer_parameter_falls_back_when_the_primary_parameter_has_no_data():
    # default primary_parameter CAPS5TOT, but the study only has PCL-5
    con = (
        Given(manifest_text())
        .subject("S1", "KET").subject("S2", "MID")
        .assessment("S1", "pcl5", "BL", 0, PCL_40)
        .assessment("S1", "pcl5", "W2", 14, PCL_40)
        .assessment("S2", "pcl5", "BL", 0, PCL_40)
        .run("analysis.scores", "analysis.adqs", "analysis.adex", "analysis.adsl")
    )
    assert rows(con, "select usubjid, complfl, primary_paramcd, primary_base from analysis.adsl order by 1") == [
        ("S1", "Y", "PCL5TOT", 40.0),
        ("S2", "N", "PCL5TOT", 40.0),
    ]


def test_completer_parameter_is_the_manifest_primary_parameter():
    con = (
        Given(manifest_text("primary_parameter: MADRSTOT"))
        .subject("S1", "KET")
        .assessment("S1", "caps5", "W2", 14, CAPS_10)
        .assessment("S1", "madrs", "W1", 7, [1] * 10)
        .run("analysis.scores", "analysis.adqs", "analysis.adex", "analysis.adsl")
    )
    assert rows(con, "select complfl, primary_paramcd from analysis.adsl") == [("N", "MADRSTOT")]


def test_saffl_and_trt01a_come_from_exposure_when_the_study_has_ex_data():
    from pipelines.core import sql

    given = (
        Given(manifest_text())
        .subject("S1", "KET").subject("S2", "MID").subject("S3", "KET")
        .assessment("S1", "caps5", "BL", 0, CAPS_30).assessment("S1", "caps5", "W2", 14, CAPS_10)  # dosed, rated
        .assessment("S2", "caps5", "BL", 0, CAPS_30).assessment("S2", "caps5", "W1", 7, CAPS_10)   # rated, no EX
        .assessment("S3", "caps5", "BL", 0, CAPS_30)                                                # dosed, not rated after
    )
    con = given.run()
    for row, subj in enumerate(("S1", "S1", "S3"), start=2):
        con.execute(
            "insert into staging.ex_rows (study_id, source, _source_file, _source_row, usubjid, extrt, exdose, exdosu, "
            "exstdy, exendy, status) values ('T1', 'ex', 'ex.csv', ?, ?, 'KETAMINE', 0.5, 'mg/kg', ?, ?, 'accepted')",
            [row, subj, row * 2, row * 2],
        )
    for model in ("analysis.scores", "analysis.adqs", "analysis.adex", "analysis.adsl"):
        sql.run_model(con, model)
    # L5 with EX data: SAFFL = any infusion received (S2 was rated after baseline but has no EX record);
    # TRT01A follows SAFFL; NINF counts the infusions
    assert rows(con, "select usubjid, saffl, trt01a, ninf from analysis.adsl order by 1") == [
        ("S1", "Y", "KET", 2),
        ("S2", "N", None, None),
        ("S3", "Y", "KET", 1),
    ]


def test_saffl_without_exposure_data_is_any_post_baseline_assessment():
    con = (
        Given(manifest_text())
        .subject("S1", "KET").subject("S2", "MID").subject("S3", "KET")
        .assessment("S1", "caps5", "BL", 0, CAPS_30).assessment("S1", "caps5", "W2", 14, CAPS_10)
        .assessment("S2", "caps5", "BL", 0, CAPS_30).assessment("S2", "caps5", "W1", 7, CAPS_10)
        .assessment("S3", "caps5", "BL", 0, CAPS_30)
        .run("analysis.scores", "analysis.adqs", "analysis.adex", "analysis.adsl")
    )
    assert rows(con, "select usubjid, saffl, trt01a from analysis.adsl order by 1") == [
        ("S1", "Y", "KET"), ("S2", "Y", "MID"), ("S3", "N", None),
    ]
