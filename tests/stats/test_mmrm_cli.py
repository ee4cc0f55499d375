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


def test_cli_process_imports_no_pandas(refdata_dir):
    """`trialpipe mmrm` reads its CSV, fits and prints without pandas or polars (importing pandas was
    40% of the process, polars adds 0.14 s; benchmarks/mmrm.py): a fresh interpreter runs the
    command, with LS means and JSON output too."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pipelines.cli import main\n"
        "for extra in ([], ['--lsmeans', 'ARMCD|AVISIT', '--json', sys.argv[2]]):\n"
        "    main(['mmrm', sys.argv[1], 'FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID)', *extra])\n"
        "print('heavy:', sorted(m for m in ('pandas', 'polars', 'formulaic', 'scipy.stats') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(refdata_dir / "fev_data.csv"), "/dev/null"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "MMRM us REML on 537 observations" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "heavy: []"


def test_csv_reader_typing_rule(tmp_path):
    """The documented rule, value by value: NA and empty are missing; a column of numbers is numeric
    (int64 when all are integers and none is missing, else float64) unless a leading zero marks an
    identifier; anything else is text, kept verbatim; blank lines skipped, short rows padded."""
    import numpy as np

    from pipelines.cli.mmrm import read_columns

    path = tmp_path / "d.csv"
    path.write_text(
        "id,site,x,word,sci,flag,empty,,id\r\n"
        '1,006,1.5,"a, b",1e3,TRUE,NA,7,x\r\n'
        "\r\n"
        " 2 ,010,,NA,-.5,nan,,8\r\n"
        "3,011, 2 ,c,inf,NA,,9,z\r\n"
    )
    d = read_columns(str(path))
    assert list(d) == ["id", "site", "x", "word", "sci", "flag", "empty", "Unnamed: 7", "id.1"]
    assert d["id"].dtype == np.int64 and d["id"].tolist() == [1, 2, 3]
    assert d["site"].tolist() == ["006", "010", "011"]
    assert d["x"].dtype == np.float64 and d["x"].tolist()[0::2] == [1.5, 2.0] and np.isnan(d["x"][1])
    assert d["word"].tolist() == ["a, b", None, "c"]
    assert d["sci"].tolist() == [1000.0, -0.5, float("inf")]
    assert d["flag"].tolist() == ["TRUE", "nan", None]  # "nan" is not NA: the column is text
    assert d["empty"].dtype == np.float64 and np.isnan(d["empty"]).all()
    assert d["Unnamed: 7"].tolist() == [7, 8, 9]
    assert d["id.1"].tolist() == ["x", None, "z"]


def test_csv_reader_rejects_rows_longer_than_the_header(tmp_path):
    from pipelines.core.errors import InputFileError

    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(InputFileError) as info:
        read_csv(str(path))
    assert "row 2" in str(info.value) and "3 fields" in str(info.value)


def test_fit_on_numpy_columns_equals_fit_on_pandas(refdata_dir):
    """The CLI hands fit_mmrm a dict of numpy columns; the pipeline hands it pandas frames: the same
    data give bit-identical results."""
    import numpy as np

    from pipelines.cli.mmrm import read_columns
    from pipelines.stats.mmrm import fit_mmrm

    cols = read_columns(str(refdata_dir / "fev_data.csv"))
    frame = read_csv(str(refdata_dir / "fev_data.csv"))
    kw = {"ref": {"SEX": "Male"}, "df_method": "kenward-roger"}
    a = fit_mmrm(cols, FORMULA, **kw)
    b = fit_mmrm(frame, FORMULA, **kw)
    assert a.coefficient_rows() == b.coefficient_rows() and a.neg2_loglik == b.neg2_loglik
    assert np.array_equal(a.phi, b.phi)
    assert a.lsmean_contrasts("ARMCD", by="AVISIT").equals(b.lsmean_contrasts("ARMCD", by="AVISIT"))
