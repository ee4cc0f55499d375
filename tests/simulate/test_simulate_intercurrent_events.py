"""Simulator intercurrent events: off by default (files unchanged, pinned elsewhere by SHA-256),
discontinuation at the requested rate with no data after it, MNAR selection on non-improvement,
ketamine benefit lost after stopping, and a study.yaml whose estimands read the new columns."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.core.manifest import load_manifest
from pipelines.simulate import write_study
from pipelines.simulate.trial import build_trial


def test_default_trial_has_no_ice_columns_and_same_items():
    a = build_trial(per_arm=15, seed=7)
    b = build_trial(per_arm=15, seed=7, discontinuation_rate=0.0, rescue_rate=0.0)
    assert "disc_visit" not in a.subjects.columns
    assert all(np.array_equal(a.items[k], b.items[k]) for k in a.items)


def test_discontinuation_rate_and_no_data_after():
    t = build_trial(per_arm=2000, seed=11, discontinuation_rate=0.2)
    d = t.subjects["disc_visit"].to_numpy()
    frac = np.mean(d != "")
    assert 0.17 < frac < 0.24  # 20% of the subjects still on treatment + the calibrated Feder dropouts
    ids = [v.id for v in t.visits]
    for s in np.flatnonzero(d != "")[:200]:
        k = ids.index(d[s])
        assert t.observed[s, : k + 1].all() and not t.observed[s, k + 1 :].any()
    base = build_trial(per_arm=2000, seed=11)
    # the other draws are untouched: items of every subject equal the default trial's (no MNAR drift)
    assert np.array_equal(base.items["caps5"], t.items["caps5"])


def test_mnar_selects_non_improvers_and_removes_the_ketamine_benefit():
    t = build_trial(per_arm=2000, seed=12, discontinuation_rate=0.2, mnar=True)
    base = build_trial(per_arm=2000, seed=12)
    caps = base.items["caps5"].sum(axis=2).astype(float)
    change_d1 = caps[:, 1] - caps[:, 0]
    disc = (t.subjects["disc_visit"].to_numpy() != "") & (
        t.subjects["disc_reason"].to_numpy() != "PHYSICIAN DECISION"
    )
    assert change_d1[disc].mean() > change_d1[~disc].mean() + 2  # less improvement among those who stop
    ket = t.subjects["arm"].to_numpy() == "KET"
    w2 = [v.id for v in t.visits].index("W2")
    sel = ket & (t.subjects["disc_visit"].to_numpy() == "D1")
    # at W2 (two visits after stopping at D1) ketamine's specific change is gone: scores are higher
    moved = t.items["caps5"][sel, w2].sum(1).astype(float) - base.items["caps5"][sel, w2].sum(1)
    assert moved.mean() > 5


def test_study_folder_declares_the_events_and_estimands(tmp_path):
    study = write_study(tmp_path / "s", per_arm=15, seed=20210105, discontinuation_rate=0.2, rescue_rate=0.1)
    rnd = pl.read_csv(study / "randomization.csv", infer_schema_length=0)
    assert {"disc_visit", "disc_reason", "rescue_visit"} <= set(rnd.columns)
    m = load_manifest(study)
    e = m.default_estimands()[0]
    assert [(x.event, x.column, x.strategy) for x in e.intercurrent_events] == [
        ("discontinuation", "disc_visit", "hypothetical"),
        ("rescue", "rescue_visit", "treatment_policy"),
    ]
