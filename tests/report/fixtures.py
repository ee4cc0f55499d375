"""Results fixtures for the report tests: a simulated study's ADaM tables plus hand-made results rows
with the contract's columns.

The primary-visit (W2) rows of results.treatment_effects, the CAPS5TOT W2 LS means, results.responders
and results.model_fits are literal, Feder-2021-like numbers the tests check the formatting of
(CAPS-5 total: -11.88, SE 3.96, t(27) CI -20.01 to -3.75, d -1.13; responders 10/15 vs 3/15, Fisher
p 0.025 - domain.md section 1). The other LS means are observed mean changes by arm and visit of the
simulated ADQS (mean, SE, t CI) so the figures have a realistic shape; they are fixture data only.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import polars as pl
from scipy import stats

from pipelines.core.build import build_study
from pipelines.simulate import write_study

STUDY = "FEDERSIM-7"
RUN = "local"
NAN = float("nan")

# paramcd: (estimate, se, df, lo, hi, p, p_adjusted, d) at W2, model mmrm, KET - MID.
# Adjusted p: Holm within each instrument's clusters, worked by hand:
#   CAPS-5 p B .0084, D .0105, C .0190, E .2400 -> x4 .0336, x3 .0315 (-> .0336), x2 .0380, x1 .2400.
#   PCL-5  p C .0222, B .0232, D .0400, E .1070 -> x4 .0888, x3 .0696 (-> .0888), x2 .0800 (-> .0888), x1 .1070.
EFFECTS_W2 = {
    "CAPS5TOT": (-11.88, 3.96, 27.0, -20.01, -3.75, 0.0058, None, -1.13),
    "CAPS5B": (-3.41, 1.20, 27.3, -5.87, -0.95, 0.0084, 0.0336, -0.98),
    "CAPS5C": (-1.52, 0.61, 27.8, -2.77, -0.27, 0.0190, 0.0380, -0.83),
    "CAPS5D": (-4.46, 1.62, 26.9, -7.78, -1.14, 0.0105, 0.0336, -0.91),
    "CAPS5E": (-2.49, 2.08, 27.5, -6.75, 1.77, 0.2400, 0.2400, -0.45),
    "PCL5TOT": (-12.40, 4.70, 27.1, -22.04, -2.76, 0.0136, None, -0.95),
    "PCL5B": (-3.60, 1.50, 27.0, -6.68, -0.52, 0.0232, 0.0888, -0.80),
    "PCL5C": (-1.70, 0.70, 27.4, -3.14, -0.26, 0.0222, 0.0888, -0.85),
    "PCL5D": (-4.10, 1.90, 27.2, -8.00, -0.20, 0.0400, 0.0888, -0.70),
    "PCL5E": (-3.00, 1.80, 27.3, -6.69, 0.69, 0.1070, 0.1070, -0.55),
    "MADRSTOT": (-9.80, 3.50, 27.2, -16.98, -2.62, 0.0093, None, -1.05),
}
# The testing hierarchy (results.treatment_effects.family) the literal rows belong to.
FAMILY = {
    "CAPS5TOT": "hierarchy 1: primary endpoint CAPS5TOT at W2",
    **{p: "hierarchy 2: CAPS-5 clusters at W2" for p in ("CAPS5B", "CAPS5C", "CAPS5D", "CAPS5E")},
    "PCL5TOT": "hierarchy 3: secondary totals at W2",
    "MADRSTOT": "hierarchy 3: secondary totals at W2",
}
# Random-effects sensitivity for CAPS5TOT at W2 (marginal models with Kenward-Roger df).
LMM_W2 = {
    "lmm_ri": (-11.20, 3.80, 27.9, -18.65, -3.75, 0.0032, None, -1.07),
    "lmm_rs": (-10.90, 4.10, 26.4, -18.94, -2.86, 0.0078, None, -1.04),
}
# CAPS5TOT LS means at W2 (estimate, se, df, lo, hi); their difference is EFFECTS_W2's -11.88.
LSMEANS_CAPS_W2 = {"KET": (-13.92, 3.40, 27.0, -20.90, -6.94), "MID": (-2.04, 3.40, 27.0, -9.02, 4.94)}
# (paramcd, criterion): {arm: (k, n, proportion, lo, hi)}, comparison (rd, lo, hi, p)
RESPONDERS = {
    ("CAPS5TOT", "response"): (
        {"KET": (10, 15, 10 / 15, 0.3838, 0.8818), "MID": (3, 15, 0.2, 0.0433, 0.4809)},
        (0.4667, 0.1500, 0.7833, 0.0253),
    ),
    ("PCL5TOT", "response"): (
        {"KET": (9, 15, 0.6, 0.3229, 0.8366), "MID": (4, 15, 4 / 15, 0.0779, 0.5510)},
        (0.3333, -0.0100, 0.6767, 0.1394),
    ),
    ("PCL5TOT", "remission"): (
        {"KET": (5, 15, 5 / 15, 0.1182, 0.6162), "MID": (2, 15, 2 / 15, 0.0166, 0.4046)},
        (0.2000, -0.0900, 0.4900, 0.3898),
    ),
    ("MADRSTOT", "response"): (
        {"KET": (7, 15, 7 / 15, 0.2127, 0.7341), "MID": (2, 15, 2 / 15, 0.0166, 0.4046)},
        (0.3333, 0.0300, 0.6367, 0.1086),
    ),
    ("MADRSTOT", "remission"): (
        {"KET": (6, 15, 0.4, 0.1634, 0.6771), "MID": (1, 15, 1 / 15, 0.0017, 0.3195)},
        (0.3333, 0.0600, 0.6067, 0.0801),
    ),
}
# Covariance used per parameter (CAPS5C fell back to heterogeneous Toeplitz).
COVARIANCE = {p: "us" for p in EFFECTS_W2} | {"CAPS5C": "toeph"}


def _observed_lsmeans(con: duckdb.DuckDBPyConnection) -> list[dict]:
    q = con.execute(
        "select paramcd, trtp, avisit, count(chg) n, avg(chg) m, stddev_samp(chg) s from analysis.adqs "
        "where anl01fl = 'Y' and chg is not null group by all"
    ).fetchall()
    rows = []
    for paramcd, trtp, avisit, n, m, s in q:
        se = s / math.sqrt(n)
        t = stats.t.ppf(0.975, n - 1)
        rows.append(
            {
                "paramcd": paramcd,
                "trtp": trtp,
                "avisit": avisit,
                "estimate": m,
                "std_error": se,
                "df": float(n - 1),
                "conf_low": m - t * se,
                "conf_high": m + t * se,
            }
        )
    return rows


def write_results(
    con: duckdb.DuckDBPyConnection,
    *,
    drop: tuple[str, ...] = (),
    not_converged: tuple[str, ...] = (),
    arms: tuple[str, ...] = ("KET", "MID"),
) -> None:
    """results.* for the study in ``con``; parameters in ``drop`` get no rows; ``not_converged``
    parameters' MMRM fits are converged = false."""
    con.execute("create schema if not exists results")
    ls = []
    for r in _observed_lsmeans(con):
        if r["paramcd"] in drop or r["trtp"] not in arms:
            continue
        if r["paramcd"] == "CAPS5TOT" and r["avisit"] == "W2":
            r.update(
                zip(
                    ("estimate", "std_error", "df", "conf_low", "conf_high"),
                    LSMEANS_CAPS_W2[r["trtp"]],
                    strict=True,
                )
            )
        ls.append({"study_id": STUDY, "model": "mmrm", **r})
    two_arm = len(arms) == 2
    te, fits = [], []
    for paramcd, vals in EFFECTS_W2.items():
        if paramcd in drop:
            continue
        fits.append(
            {
                "study_id": STUDY,
                "paramcd": paramcd,
                "model": "mmrm",
                "covariance": COVARIANCE[paramcd],
                "estimation": "REML",
                "df_method": "kenward-roger",
                "converged": paramcd not in not_converged,
                "neg2_loglik": 400.0 + len(te),
                "aic": 420.0 + len(te),
                "n_subjects": 30,
                "n_obs": 89,
                "warnings": '["did not converge"]' if paramcd in not_converged else "[]",
            }
        )
        if not two_arm:
            continue
        est, se, df, lo, hi, p, padj, d = vals
        te.append(
            {
                "study_id": STUDY,
                "paramcd": paramcd,
                "model": "mmrm",
                "avisit": "W2",
                "is_primary": True,
                "estimate": est,
                "std_error": se,
                "df": df,
                "df_method": "kenward-roger",
                "conf_low": lo,
                "conf_high": hi,
                "p_value": p,
                "p_adjusted": padj,
                "adjust_method": "holm + hierarchy" if padj is not None else None,
                "cohens_d": d,
                "run_id": RUN,
                "family": FAMILY.get(paramcd),
            }
        )
    if two_arm and "CAPS5TOT" not in drop:
        for model, (est, se, df, lo, hi, p, padj, d) in LMM_W2.items():
            te.append(
                {
                    "study_id": STUDY,
                    "paramcd": "CAPS5TOT",
                    "model": model,
                    "avisit": "W2",
                    "is_primary": True,
                    "estimate": est,
                    "std_error": se,
                    "df": df,
                    "df_method": "wald-z",
                    "conf_low": lo,
                    "conf_high": hi,
                    "p_value": p,
                    "p_adjusted": None,
                    "adjust_method": None,
                    "cohens_d": d,
                    "run_id": RUN,
                }
            )
            fits.append(
                {
                    "study_id": STUDY,
                    "paramcd": "CAPS5TOT",
                    "model": model,
                    "covariance": None,
                    "estimation": "REML",
                    "df_method": "wald-z",
                    "converged": True,
                    "neg2_loglik": 610.0,
                    "aic": 618.0,
                    "n_subjects": 30,
                    "n_obs": 89,
                    "warnings": "[]",
                }
            )
    resp = []
    for (paramcd, crit), (by_arm, (rd, lo, hi, p)) in RESPONDERS.items():
        if paramcd in drop:
            continue
        for arm, (k, n, prop, plo, phi) in by_arm.items():
            if arm in arms:
                resp.append(
                    {
                        "study_id": STUDY,
                        "paramcd": paramcd,
                        "criterion": crit,
                        "trtp": arm,
                        "n_responders": k,
                        "n_evaluable": n,
                        "proportion": prop,
                        "risk_difference": None,
                        "conf_low": plo,
                        "conf_high": phi,
                        "p_value": None,
                        "test": None,
                    }
                )
        if two_arm:
            resp.append(
                {
                    "study_id": STUDY,
                    "paramcd": paramcd,
                    "criterion": crit,
                    "trtp": None,
                    "n_responders": None,
                    "n_evaluable": None,
                    "proportion": None,
                    "risk_difference": rd,
                    "conf_low": lo,
                    "conf_high": hi,
                    "p_value": p,
                    "test": "Fisher exact",
                }
            )
    schemas = {
        "lsmeans": {
            "study_id": pl.String,
            "paramcd": pl.String,
            "model": pl.String,
            "trtp": pl.String,
            "avisit": pl.String,
            "estimate": pl.Float64,
            "std_error": pl.Float64,
            "df": pl.Float64,
            "conf_low": pl.Float64,
            "conf_high": pl.Float64,
        },
        "treatment_effects": {
            "study_id": pl.String,
            "paramcd": pl.String,
            "model": pl.String,
            "avisit": pl.String,
            "is_primary": pl.Boolean,
            "estimate": pl.Float64,
            "std_error": pl.Float64,
            "df": pl.Float64,
            "df_method": pl.String,
            "conf_low": pl.Float64,
            "conf_high": pl.Float64,
            "p_value": pl.Float64,
            "p_adjusted": pl.Float64,
            "adjust_method": pl.String,
            "cohens_d": pl.Float64,
            "run_id": pl.String,
            "family": pl.String,
        },
        "responders": {
            "study_id": pl.String,
            "paramcd": pl.String,
            "criterion": pl.String,
            "trtp": pl.String,
            "n_responders": pl.Int64,
            "n_evaluable": pl.Int64,
            "proportion": pl.Float64,
            "risk_difference": pl.Float64,
            "conf_low": pl.Float64,
            "conf_high": pl.Float64,
            "p_value": pl.Float64,
            "test": pl.String,
        },
        "model_fits": {
            "study_id": pl.String,
            "paramcd": pl.String,
            "model": pl.String,
            "covariance": pl.String,
            "estimation": pl.String,
            "df_method": pl.String,
            "converged": pl.Boolean,
            "neg2_loglik": pl.Float64,
            "aic": pl.Float64,
            "n_subjects": pl.Int64,
            "n_obs": pl.Int64,
            "warnings": pl.String,
        },
    }
    for name, rows in (
        ("lsmeans", ls),
        ("treatment_effects", te),
        ("responders", resp),
        ("model_fits", fits),
    ):
        frame = (
            pl.DataFrame(rows, schema=schemas[name], orient="row")
            if rows
            else pl.DataFrame(schema=schemas[name])
        )
        con.register("_frame", frame.to_arrow())
        con.execute(f"create or replace table results.{name} as select * from _frame")
        con.unregister("_frame")


def build_two_arm(root: Path) -> Path:
    """Simulated 15 + 15 study (seed 7, wide files) built into root/study.duckdb (no results tables)."""
    study = write_study(root / "study", per_arm=15, seed=7, formats=("wide",))
    db = root / "study.duckdb"
    build_study(study, db, run_id=RUN)
    return db


def build_single_arm(root: Path) -> Path:
    """The simulated study cut to its ketamine arm, with a one-arm manifest and without PCL-5."""
    src = write_study(root / "src", per_arm=15, seed=7, formats=("wide",))
    study = root / "single"
    study.mkdir()
    keep = set(
        pl.read_csv(src / "randomization.csv", infer_schema=False).filter(pl.col("arm") == "1")["record_id"]
    )
    for name in ("randomization.csv", "caps5_redcap.csv", "madrs_redcap.csv"):
        frame = pl.read_csv(src / name, infer_schema=False)
        frame.filter(pl.col("record_id").is_in(keep)).write_csv(study / name)
    text = (src / "study.yaml").read_text()
    text = text.replace("  - id: MID\n    label: Midazolam 0.045 mg/kg\n    role: control\n", "")
    text = text.replace('arm: {"1": KET, "0": MID}', 'arm: {"1": KET}')
    text = text.replace(
        'title: "Simulated IV ketamine vs midazolam', 'title: "Single-arm cut of the simulated IV ketamine'
    )
    # drop the PCL-5 source block
    start = text.index("  # PCL-5, REDCap")
    end = text.index("  # CAPS-5, REDCap")
    text = text[:start] + text[end:]
    text = text.replace(
        "response: {CAPS5TOT: 30, PCL5TOT: 30, MADRSTOT: 50}", "response: {CAPS5TOT: 30, MADRSTOT: 50}"
    )
    text = text.replace(
        'remission: {MADRSTOT: {op: "<=", value: 10}, PCL5TOT: {op: "<", value: 33}}',
        'remission: {MADRSTOT: {op: "<=", value: 10}}',
    )
    (study / "study.yaml").write_text(text)
    db = root / "single.duckdb"
    build_study(study, db, run_id=RUN)
    return db


def copy_db(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst
