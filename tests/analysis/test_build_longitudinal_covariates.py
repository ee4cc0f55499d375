"""A REDCap-style longitudinal export carrying arm, sex and age on every row: the same file is the
randomization source (columns.visit mapped: repeated rows are skipped, not duplicates) and the PCL-5
source (subject-level sex and age declared). ADSL gets SEX and AGE; a conflicting sex is
quarantined with its reason; the model block's `base:avisit + sex` is fitted and its formula stored.
Item ratings are generated from a fixed seed; expectations are counts and values written into the
file, not the pipeline's own output."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
import pytest

from pipelines.core.build import build_study
from pipelines.core.manifest import load_manifest
from pipelines.core.validation import check_rows_reconcile
from pipelines.stats.efficacy import run_efficacy
from tests.conftest import write_study

N = 24
EVENTS = ["baseline_arm_1", "week_1_arm_1", "week_2_arm_1"]


def export() -> tuple[str, dict[str, tuple[str, str, int]]]:
    rng = np.random.default_rng(12)
    lines = ["record_id,redcap_event_name,arm,sex,age," + ",".join(f"pcl5_{i}" for i in range(1, 21))]
    truth = {}
    for k in range(N):
        sid = f"{500 + k}"
        arm = "1" if k % 2 == 0 else "0"
        sex = "F" if k % 3 else "M"
        age = 25 + k
        truth[sid] = (arm, sex, age)
        level = rng.uniform(2.0, 3.2)
        for j, ev in enumerate(EVENTS):
            drop = j * (0.6 if arm == "1" else 0.2)
            items = np.clip(np.round(rng.normal(level - drop, 0.7, 20)), 0, 4).astype(int)
            row_sex = ("F" if sex == "M" else "M") if (sid == "503" and j == 2) else sex  # 503: conflict at W2
            lines.append(",".join([sid, ev, arm, row_sex, str(age), *map(str, items)]))
    return "\n".join(lines) + "\n", truth


MANIFEST = """\
study_id: LONGCOV
arms:
  - {id: KET, label: Ketamine, role: experimental, codes: ["1"]}
  - {id: MID, label: Midazolam, role: control, codes: ["0"]}
visits:
  - {id: BL, day: 0, baseline: true, codes: [baseline_arm_1]}
  - {id: W1, day: 7, codes: [week_1_arm_1]}
  - {id: W2, day: 14, primary: true, codes: [week_2_arm_1]}
sources:
  - file: export.csv
    name: randomization
    kind: randomization
    columns: {subject: record_id, arm: arm, visit: redcap_event_name}
  - file: export.csv
    name: pcl5
    kind: pcl5
    columns: {subject: record_id, visit: redcap_event_name, sex: sex, age: age}
    items: "pcl5_{n}"
analysis:
  primary_parameter: PCL5TOT
  sensitivity_models: none
  model:
    covariates: "base:avisit + sex"
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("longcov")
    text, truth = export()
    study = write_study(tmp / "study", MANIFEST, {"export.csv": text})
    db = tmp / "w.duckdb"
    result, _ = build_study(study, db)
    assert [r.error for r in result.reads] == [None, None]
    con = duckdb.connect(str(db))
    yield study, con, truth
    con.close()


def test_adsl_takes_sex_and_age_from_the_longitudinal_rows(built):
    _, con, truth = built
    got = {u: (a, s, g) for u, a, s, g in con.execute("select usubjid, trt01p, sex, age from analysis.adsl").fetchall()}
    assert len(got) == N
    for sid, (arm, sex, age) in truth.items():
        assert got[sid][0] == ("KET" if arm == "1" else "MID")
        assert got[sid][2] == float(age)
        assert got[sid][1] == (None if sid == "503" else sex)  # 503's rows disagree: left empty


def test_a_conflicting_subject_level_value_is_quarantined_with_its_reason(built):
    _, con, _ = built
    q = con.execute("select _source_row, raw_table, reason from qc.quarantine where raw_table = 'raw.subject_columns' "
                    "order by 1").fetchall()
    # subject 503 = the 4th subject: file rows 2 + 3*3 .. = 11, 12, 13 (header is row 1)
    assert [r[0] for r in q] == [11, 12, 13]
    assert all("sex differs across the rows of subject 503" in r[2] for r in q)
    assert "'F' in pcl5: export.csv row 13" in q[0][2]
    # the ratings of those rows are still accepted
    assert con.execute("select count(*) from staging.assessment_rows where usubjid = '503' and status = 'accepted'"
                       ).fetchone() == (3,)


def test_one_file_feeding_two_sources_reconciles_and_says_which_source_claimed_which_rows(built):
    _, con, _ = built
    out = check_rows_reconcile(con)
    assert out.success, out.summary
    rules = sorted(e.rule for e in out.expectations)
    assert rules == [
        f"source pcl5 (export.csv (this file also feeds randomization)): {3 * N} rows read = {3 * N} accepted + 0 quarantined + 0 skipped",
        f"source randomization (export.csv (this file also feeds pcl5)): {3 * N} rows read = {N} accepted + 0 quarantined + {2 * N} skipped",
    ]
    assert con.execute("select count(*) from staging.randomization_rows where status = 'skipped' "
                       "and skip_reason like 'repeated row of a longitudinal file%'").fetchone() == (2 * N,)


def test_model_block_covariates_are_fitted_and_the_formula_stored(built):
    study, con, _ = built
    out = run_efficacy(con, load_manifest(study), "r", parameters=["PCL5TOT"])
    fit = out.model_fits.filter((pl.col("paramcd") == "PCL5TOT") & (pl.col("model") == "mmrm")).row(0, named=True)
    assert fit["converged"]
    assert fit["formula"] == f"chg ~ base + trtp * avisit + base:avisit + sex + {fit['covariance']}(avisit | usubjid)"
    # 503 has no sex: its rows leave the model (an independent count from ADQS)
    n_obs = con.execute("select count(*) from analysis.adqs where paramcd = 'PCL5TOT' and anl01fl = 'Y' "
                        "and chg is not null and usubjid <> '503'").fetchone()[0]
    assert fit["n_obs"] == n_obs
    assert any("covariate sex: missing for 1 subject" in n for n in out.notes)


def test_an_unknown_covariate_is_a_clear_error(built):
    from pipelines.core.errors import ManifestError

    study, con, _ = built
    m = load_manifest(study).model_copy(deep=True)
    m.analysis.model.covariates = ["weight"]
    with pytest.raises(ManifestError, match="no subject-level variable 'weight'"):
        run_efficacy(con, m, "r", parameters=["PCL5TOT"])
