"""The simulator's ``effect_scale`` option (0 = null trial), used by the efficacy tests and the
calibration benchmark. Expectations are structural (which draws may change) or plain arithmetic on
the simulated items, never the simulator's own formulas."""

from __future__ import annotations

import numpy as np

from pipelines.simulate import build_trial

W2 = 3  # visit index of week 2 (BL, D1, W1, W2)
E_ITEMS = slice(14, 20)  # CAPS-5 items 15-20 = cluster E (pipelines/instruments/caps5.yaml)


def test_default_scale_changes_nothing():
    a = build_trial(per_arm=20, seed=11)
    b = build_trial(per_arm=20, seed=11, effect_scale=1.0)
    for key in a.items:
        assert np.array_equal(a.items[key], b.items[key])


def test_null_trial_changes_only_ketamine_post_baseline_items():
    full = build_trial(per_arm=30, seed=12)
    null = build_trial(per_arm=30, seed=12, effect_scale=0.0)
    ket = (full.subjects["arm"] == "KET").to_numpy()
    for key in full.items:
        # the same random draws: baseline and every midazolam value are identical ...
        assert np.array_equal(full.items[key][:, 0], null.items[key][:, 0])
        assert np.array_equal(full.items[key][~ket], null.items[key][~ket])
    # ... CAPS-5 cluster E never carried an effect, so it is identical too ...
    assert np.array_equal(full.items["caps5"][:, :, E_ITEMS], null.items["caps5"][:, :, E_ITEMS])
    # ... and without the effect the ketamine arm is worse off at week 2 (higher total) than with it
    tot_full = full.items["caps5"][ket, W2].sum(dtype=np.int64)
    tot_null = null.items["caps5"][ket, W2].sum(dtype=np.int64)
    assert tot_null > tot_full


def test_null_trial_has_no_arm_difference_in_a_large_sample():
    t = build_trial(per_arm=3000, seed=13, effect_scale=0.0)
    caps = t.items["caps5"].sum(axis=2, dtype=np.int64).astype(float)
    ok = t.observed[:, W2]
    chg = caps[:, W2] - caps[:, 0]
    ket = (t.subjects["arm"] == "KET").to_numpy()
    diff = chg[ket & ok].mean() - chg[~ket & ok].mean()
    # SD of the week-2 change is about 9.5 points (test_simulate_calibration.py): SE of the
    # difference about 9.5 * sqrt(2 / 3000) = 0.25, so 1.0 is 4 SE
    assert abs(diff) < 1.0
