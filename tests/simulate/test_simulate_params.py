"""The calibrated latent model reads its constants from the instrument definitions (issue 10: the
simulator takes instruments from the YAML), through one params type."""

from __future__ import annotations

import dataclasses

import pytest

from pipelines.instruments import Simulation, load_instruments
from pipelines.simulate import calibrate, model


def test_each_calibrated_scale_gives_its_constants_and_calibration_in_its_yaml():
    required = {f.name for f in dataclasses.fields(model.LatentParams) if f.default is dataclasses.MISSING}
    draws, is_ket = calibrate._sample(20, 1, model.CALIBRATED)
    statistics = set(calibrate.summary(draws, is_ket, model.CALIBRATED))
    for scale in calibrate.STAGES:
        sim = load_instruments()[scale].simulation
        assert required <= set(sim.constants), scale
        assert set(sim.calibration.solve) <= set(sim.constants), scale  # it solves constants it gives
        assert set(sim.calibration.targets) <= statistics, scale


def test_a_yaml_edit_changes_the_model_and_an_unknown_key_is_an_error():
    madrs = load_instruments()["madrs"]
    edited = madrs.model_copy(update={"simulation": Simulation.model_validate({**madrs.simulation.constants, "level": 3})})
    assert edited.simulation_params(model.LatentParams).level == 3.0
    assert model.CALIBRATED.madrs == madrs.simulation_params(model.LatentParams)
    typo = madrs.model_copy(update={"simulation": Simulation.model_validate({**madrs.simulation.constants, "levle": 3})})
    with pytest.raises(ValueError, match=r"madrs: unknown simulation keys \['levle'\]"):
        typo.simulation_params(model.LatentParams)
