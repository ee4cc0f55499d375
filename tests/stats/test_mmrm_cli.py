"""``trialpipe mmrm`` end to end: SAS listing numbers from the JSON it writes, and user errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.cli.mmrm import mmrm, read_csv

FORMULA = "FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID)"


def _run(args):
    result = CliRunner().invoke(mmrm, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_cli_json_matches_sas_listing(refdata_dir, tmp_path):
    out = tmp_path / "out.json"
    res = _run(
        [
            str(refdata_dir / "fev_data.csv"),
            FORMULA,
            "--ref",
            "SEX=Male",
            "--df",
            "satterthwaite",
            "--lsmeans",
            "ARMCD|AVISIT",
            "--json",
            str(out),
        ]
    )
    payload = json.loads(out.read_text())
    # openpharma/mmrm design/SAS/sas_log_reml.txt
    assert abs(payload["neg2_loglik"] - 3386.44987722) <= 1e-3
    assert abs(payload["aic"] - 3406.4) <= 0.06 and abs(payload["bic"] - 3439.4) <= 0.06
    assert (payload["n_obs"], payload["n_subjects"], payload["converged"]) == (537, 200, True)
    trt = next(c for c in payload["coefficients"] if c["term"] == "ARMCDTRT")
    assert abs(trt["estimate"] - 3.7745) <= 0.01 * 1.0741 and abs(trt["std_error"] - 1.0741) <= 0.002 * 1.0741
    assert abs(trt["df"] - 146) <= 0.51
    assert set(trt) >= {"term", "estimate", "std_error", "df", "statistic", "p_value"}
    assert payload["covariance"]["labels"] == ["VIS1", "VIS2", "VIS3", "VIS4"]
    assert abs(payload["covariance"]["matrix"][3][3] - 95.5528) <= 0.05
    vis2 = next(c for c in payload["contrasts"] if c["AVISIT"] == "VIS2")
    assert (
        abs(vis2["estimate"] - 3.7322) <= 0.01 * 0.8588 and abs(vis2["std_error"] - 0.8588) <= 0.002 * 0.8588
    )
    assert len(payload["lsmeans"]) == 8
    assert res.output.strip().splitlines()[-1].startswith("MMRM us REML on 537 observations")


def test_cli_done_when_command(refdata_dir, tmp_path):
    """The issue's command as written (default df = Satterthwaite, as R mmrm) reproduces the SAS listing."""
    out = tmp_path / "out.json"
    _run([str(refdata_dir / "fev_data.csv"), FORMULA, "--ref", "SEX=Male", "--json", str(out)])
    payload = json.loads(out.read_text())
    assert payload["df_method"] == "satterthwaite"
    # openpharma/mmrm design/SAS/sas_log_reml.txt
    assert abs(payload["neg2_loglik"] - 3386.44987722) <= 1e-3
    trt = next(c for c in payload["coefficients"] if c["term"] == "ARMCDTRT")
    assert abs(trt["estimate"] - 3.7745) <= 0.01 * 1.0741  # SAS: 3.7745
    assert abs(trt["std_error"] - 1.0741) <= 0.002 * 1.0741  # SAS: 1.0741
    assert abs(trt["df"] - 146) <= 0.51  # SAS: 146


def test_cli_kenward_roger_inflates_the_se(refdata_dir, tmp_path):
    out = tmp_path / "out.json"
    _run([str(refdata_dir / "fev_data.csv"), FORMULA, "--ref", "SEX=Male", "--df", "kenward-roger", "--json", str(out)])
    payload = json.loads(out.read_text())
    assert payload["df_method"] == "kenward-roger"
    trt = next(c for c in payload["coefficients"] if c["term"] == "ARMCDTRT")
    assert abs(trt["estimate"] - 3.7745) <= 0.011 and abs(trt["df"] - 146) <= 0.51
    assert trt["std_error"] > 1.0741  # KR adjusts the model-based SE (SAS DDFM=KR always does)


def test_cli_reports_non_convergence_with_exit_zero(tmp_path):
    rows = ["id,visit,y"] + [
        f"S{s},{v},{(s * 7 + ord(v)) % 5}" for s in range(40) for v in (["A", "C"] if s % 2 else ["B", "C"])
    ]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "o.json"
    result = CliRunner().invoke(mmrm, [str(path), "y ~ visit + us(visit | id)", "--json", str(out)])
    assert result.exit_code == 0
    assert "did NOT converge" in result.output
    assert json.loads(out.read_text())["converged"] is False


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["missing.csv", "y ~ us(v | id)"], "missing.csv: file not found"),
        (["{fev}", "FEV1 ~ RACEX + us(AVISIT | USUBJID)"], "column 'RACEX'"),
        (["{fev}", "FEV1 ~ RACE + us(AVISIT | USUBJID)", "--ref", "RACE=Martian"], "value 'Martian'"),
        (["{fev}", "ARMCD ~ RACE + us(AVISIT | USUBJID)"], "column 'ARMCD', value 'TRT'"),
        (["{fev}", "FEV1 ~ RACE + us(AVISIT | USUBJID)", "--ref", "RACE"], "VAR=LEVEL"),
    ],
)
def test_cli_user_errors_have_no_traceback(refdata_dir, capsys, args, fragment):
    args = [a.replace("{fev}", str(refdata_dir / "fev_data.csv")) for a in args]
    with pytest.raises(SystemExit) as info:
        main(["mmrm", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_csv_reader_keeps_identifier_codes_as_text(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,site,x,y\n1,006,1.5,NA\n2,010,,3\n")
    d = read_csv(str(path))
    assert d["site"].tolist() == ["006", "010"]
    assert d["x"].isna().tolist() == [False, True] and d["y"].isna().tolist() == [True, False]
    assert str(d["id"].dtype).startswith("int") or str(d["id"].dtype).startswith("float")


def test_cli_orders_text_visits_as_the_data_visit_them(refdata_dir, tmp_path):
    """Issue 12: visits named V1, V7, FU30, FU90 were ordered alphabetically (FU30, FU90, V1, V7),
    which scrambles an AR(1) and the covariance display. fev_data with its visits renamed, and PT1's
    VIS1 row (FEV1 missing there) dropped so that the first subject does not start at the first visit:
    the AR(1) fit must still be SAS's (openpharma/mmrm design/SAS/sas_ar1_reml.txt, -2 Res Log
    Likelihood 3875.49945459, AR(1) 0.4272)."""
    import pandas as pd

    fev = pd.read_csv(refdata_dir / "fev_data.csv")
    fev = fev[~((fev["USUBJID"] == "PT1") & (fev["AVISIT"] == "VIS1"))]
    fev["AVISIT"] = fev["AVISIT"].map({"VIS1": "V1", "VIS2": "V7", "VIS3": "FU30", "VIS4": "FU90"})
    csv = tmp_path / "renamed.csv"
    fev.to_csv(csv, index=False)
    out = tmp_path / "out.json"
    _run([str(csv), "FEV1 ~ ar1(AVISIT | USUBJID)", "--json", str(out)])
    payload = json.loads(out.read_text())
    assert payload["covariance"]["labels"] == ["V1", "V7", "FU30", "FU90"]
    assert abs(payload["neg2_loglik"] - 3875.49945459) <= 1e-3
    assert abs(payload["covariance_parameters"][0]["estimate"] - 0.4272) <= 5e-4
    # an explicit order wins (here the alphabetical one, which is a different AR(1) model)
    out2 = tmp_path / "out2.json"
    _run([str(csv), "FEV1 ~ ar1(AVISIT | USUBJID)", "--levels", "AVISIT=FU30,FU90,V1,V7", "--json", str(out2)])
    alpha = json.loads(out2.read_text())
    assert alpha["covariance"]["labels"] == ["FU30", "FU90", "V1", "V7"]
    assert abs(alpha["neg2_loglik"] - 3875.49945459) > 1.0


def test_data_order_levels_rules():
    import pandas as pd

    from pipelines.stats.mmrm.formula import data_order_levels

    # first subject starts late and skips; the order comes from all subjects together
    df = pd.DataFrame(
        {
            "id": ["a", "a", "b", "b", "b", "c", "c"],
            "v": ["W4", "W12", "BL", "W4", "W12", "BL", "W2"],
        }
    )
    # (no subject has both W2 and W4: the numeric-aware sort breaks that tie)
    assert data_order_levels(df, "v", "id") == ["BL", "W2", "W4", "W12"]
    # the data decide against the alphabet and against the numbers
    df2 = pd.DataFrame({"id": ["a", "a", "a", "a"], "v": ["V1", "V7", "FU30", "FU90"]})
    assert data_order_levels(df2, "v", "id") == ["V1", "V7", "FU30", "FU90"]
    # subjects disagree (rows not sorted by time): numeric-aware sort, V2 before V10
    bad = pd.DataFrame({"id": ["a", "a", "b", "b"], "v": ["V10", "V2", "V2", "V10"]})
    assert data_order_levels(bad, "v", "id") == ["V2", "V10"]
