"""Simulator: safety domains (--safety) and weekly follow-up (--follow-up-weeks) are additive.

The treatment-phase item values are the same with and without the options (they draw from streams of
their own); the generated study loads without a quarantined row; the safety files follow the
schedule Feder 2021 describes (six infusions, three a week over two weeks). The slow test checks the
done-when line: on a 2,000-per-arm study the ketamine responders' Kaplan-Meier median time to loss of
response, computed by the pipeline (ADTTE + results), is within 3 days of the simulator's target
27.5 days (Feder 2021).
"""

from __future__ import annotations

import polars as pl
import pyreadstat
import pytest

from pipelines.core import warehouse
from pipelines.core.build import build_study
from pipelines.core.manifest import load_manifest
from pipelines.simulate import simulate_trial, write_study
from pipelines.simulate.trial import build_trial

TARGET_MEDIAN_DAYS = 27.5  # Feder 2021: median time to loss of response among ketamine responders
TOLERANCE_DAYS = 3.0  # the done-when line


def test_treatment_phase_values_unchanged_by_follow_up_weeks():
    base = simulate_trial(per_arm=15)
    longer = build_trial(per_arm=15, follow_up_weeks=4).long()
    same = longer.filter(pl.col("visit").is_in(["BL", "D1", "W1", "W2"]))
    assert same.sort(base.columns).equals(base.sort(base.columns))
    assert sorted(set(longer["visit"]) - set(base["visit"])) == ["W3", "W4", "W5", "W6"]


def test_follow_up_and_w4_option_are_exclusive():
    with pytest.raises(ValueError, match="not both"):
        build_trial(per_arm=2, follow_up=True, follow_up_weeks=2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("safety") / "study"
    # the demo's size and formats (trialpipe demo: 15 per arm), fewer follow-up weeks
    write_study(folder, per_arm=15, formats=("wide", "nda", "sdtm"), safety=True, follow_up_weeks=3)
    db = folder.parent / "w.duckdb"
    build_study(folder, db)
    return folder, db


def test_safety_study_loads_without_quarantine(study):
    folder, db = study
    m = load_manifest(folder)
    assert [v.id for v in m.follow_up_visits] == ["W3", "W4", "W5"]
    assert [v.id for v in m.treatment_visits] == ["BL", "D1", "W1", "W2"]
    # CADSS/BPRS time points: 6 infusions x (pre, 40 min, 240 min), listed after the scheduled visits
    infusion = [v for v in m.visits if v.phase == "infusion"]
    assert [(v.infusion, v.elapsed_min) for v in infusion] == [(k, t) for k in range(1, 7) for t in (-15, 40, 240)]
    assert [v.id for v in m.visits][: -len(infusion)] == ["BL", "D1", "W1", "W2", "W3", "W4", "W5"]
    with warehouse.connect(db, read_only=True) as con:
        files = dict(con.execute("select _source_file, status from qc.source_files").fetchall())
        assert {
            files[f] for f in ("sdtm/ex.xpt", "sdtm/ae.xpt", "sdtm/ds.xpt", "safety/vs.csv", "safety/cadss.csv", "safety/bprs.csv")
        } == {"loaded"}
        assert con.execute("select count(*) from qc.quarantine").fetchone()[0] == 0
        n_inf = dict(con.execute("select usubjid, ninf from analysis.adsl").fetchall())
        eos = dict(con.execute("select usubjid, eosstt from analysis.adsl").fetchall())
    # Feder 2021: six infusions over two weeks for everyone who completed the treatment phase
    completed = [u for u, n in n_inf.items() if n == 6]
    assert len(completed) >= 10
    assert set(eos.values()) <= {"COMPLETED", "DISCONTINUED"}


def test_ex_schedule_is_three_a_week_for_two_weeks(study):
    folder, _ = study
    ex, _meta = pyreadstat.read_xport(str(folder / "sdtm" / "ex.xpt"))
    days = ex.groupby("USUBJID")["EXSTDY"].apply(lambda s: tuple(int(x) for x in s))
    full = [d for d in days if len(d) == 6]
    # SDTM days (day 1 = first infusion): Monday/Wednesday/Friday of two consecutive weeks
    assert set(full) == {(1, 3, 5, 8, 10, 12)}
    assert set(ex["EXDUR"]) == {"PT40M"}


def test_infusion_scales_leave_every_other_file_unchanged(tmp_path, monkeypatch):
    """CADSS/BPRS come from a stream of their own: the other files are byte-identical without them."""
    from pipelines.simulate import infusion_scales

    with_scales = tmp_path / "a"
    write_study(with_scales, per_arm=4, formats=("wide", "sdtm"), safety=True)
    monkeypatch.setattr(infusion_scales, "write", lambda trial, target: None)
    without = tmp_path / "b"
    write_study(without, per_arm=4, formats=("wide", "sdtm"), safety=True)
    files = sorted(p.relative_to(without) for p in without.rglob("*") if p.is_file() and p.name != "study.yaml")
    assert len(files) >= 7  # randomization, instruments, EX/AE/VS/DS
    assert all((with_scales / f).read_bytes() == (without / f).read_bytes() for f in files)
    assert (with_scales / "safety" / "cadss.csv").exists() and not (without / "safety" / "cadss.csv").exists()


def test_table_14_3_4_has_a_row_per_parameter_infusion_timepoint_and_arm(study):
    """Demo-sized study: Table 14.3.4 is filled from the per-infusion ADQS records (not "no data")."""
    from pipelines.report.data import load_study
    from pipelines.tlf.builders import Context, TableOut, dissociation

    folder, db = study
    with warehouse.connect(db, read_only=True) as con:
        out = dissociation(Context(con, load_study(con, load_manifest(folder).study_id, None)))
    assert isinstance(out, TableOut), out
    cols = out.columns
    rows = [dict(zip(cols, r, strict=True)) for r in out.rows]
    # 3 parameters x 6 infusions x 3 time points x 2 arms, every infusion given to someone in each arm
    assert len(rows) == 3 * 6 * 3 * 2
    assert [r["Parameter"] for r in rows[:: 36]] == ["CADSS Total Score", "BPRS Total Score", "BPRS Positive Symptom Subscale"]
    change = cols[-1]
    assert all(r[change] == "\u2014" for r in rows if r["Timepoint"] == "PRE-INFUSION")
    assert all(r[change] != "\u2014" for r in rows if r["Timepoint"] != "PRE-INFUSION")
    # ketamine dissociation peaks at 40 min (the simulator's Feder-like shape) and settles by 240 min
    ket = [r for r in rows if r["Parameter"] == "CADSS Total Score" and r["Treatment"].startswith("Ketamine")]
    mean = {(r["Infusion"], r["Timepoint"]): float(r["Mean (SD)"].split()[0]) for r in ket}
    for k in range(1, 7):
        inf = f"Infusion {k}"
        assert mean[(inf, "40 MIN")] > mean[(inf, "PRE-INFUSION")] + 5
        assert mean[(inf, "240 MIN")] < mean[(inf, "40 MIN")] - 5


@pytest.mark.slow
def test_durability_median_near_target_on_2000_per_arm(tmp_path):
    from pipelines.stats.durability import run_durability

    folder = tmp_path / "study"
    write_study(folder, per_arm=2000, seed=11, formats=("wide",), follow_up_weeks=10)
    db = tmp_path / "w.duckdb"
    build_study(folder, db)
    with warehouse.connect(db) as con:
        summary, _curves = run_durability(con, load_manifest(folder), "test")
    ket = summary.filter(pl.col("trtp") == "KET").row(0, named=True)
    assert ket["n_subjects"] > 1000  # about 67 % of 2,000 respond at week 2 (Feder 2021 calibration)
    assert abs(ket["median"] - TARGET_MEDIAN_DAYS) <= TOLERANCE_DAYS, ket
    comparison = summary.filter(pl.col("trtp") == "COMPARISON").row(0, named=True)
    assert comparison["p_value"] < 0.001  # midazolam responders lose response sooner (simulation assumption)
