"""Each covariance structure's Sigma against small matrices computed by hand (3 visits)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipelines.stats.mmrm.covariance import STRUCTURES, make_structure

# phi in SAS order -> the hand-computed 3 x 3 Sigma.
HAND = {
    # UN(1,1), UN(2,1), UN(2,2), UN(3,1), UN(3,2), UN(3,3)
    "us": ([4, 1, 9, 0.5, 2, 16], [[4, 1, 0.5], [1, 9, 2], [0.5, 2, 16]]),
    # CS = 2 (common covariance), Residual = 3
    "cs": ([2, 3], [[5, 2, 2], [2, 5, 2], [2, 2, 5]]),
    # Var = 4, 9, 16; CSH rho = 0.5: off-diagonal 0.5 * sd_i * sd_j = 3, 4, 6
    "csh": ([4, 9, 16, 0.5], [[4, 3, 4], [3, 9, 6], [4, 6, 16]]),
    # AR(1) rho = 0.5, Residual = 4: 4 * 0.5^|i-j|
    "ar1": ([0.5, 4], [[4, 2, 1], [2, 4, 2], [1, 2, 4]]),
    # Var = 4, 9, 16; ARH(1) = 0.5: 6 * 0.5 = 3, 8 * 0.25 = 2, 12 * 0.5 = 6
    "ar1h": ([4, 9, 16, 0.5], [[4, 3, 2], [3, 9, 6], [2, 6, 16]]),
    # TOEP(2) = 2 (lag 1), TOEP(3) = 1 (lag 2), Residual = 5
    "toep": ([2, 1, 5], [[5, 2, 1], [2, 5, 2], [1, 2, 5]]),
    # Var = 4, 9, 16; TOEPH(1) = 0.5, TOEPH(2) = 0.25: 6*.5 = 3, 8*.25 = 2, 12*.5 = 6
    "toeph": ([4, 9, 16, 0.5, 0.25], [[4, 3, 2], [3, 9, 6], [2, 6, 16]]),
    # Var = 4; Rho(1) = 0.5, Rho(2) = 0.25: 4*.5 = 2, 4*.25 = 1, 4*.5*.25 = 0.5
    "ad": ([4, 0.5, 0.25], [[4, 2, 0.5], [2, 4, 1], [0.5, 1, 4]]),
    # Var = 4, 9, 16; Rho(1) = 0.5, Rho(2) = 0.25: 6*.5 = 3, 12*.25 = 3, 8*.5*.25 = 1
    "adh": ([4, 9, 16, 0.5, 0.25], [[4, 3, 1], [3, 9, 3], [1, 3, 16]]),
}


@pytest.mark.parametrize("name", list(HAND))
def test_structure_sigma_matches_hand_computation(name):
    phi, expected = HAND[name]
    st = make_structure(name, 3)
    assert st.n_params == len(phi)
    assert np.allclose(st.full_sigma(phi), expected, rtol=0, atol=1e-12)


def test_spatial_exponential_matches_hand_computation():
    # SP(EXP) range 2, Residual 4, coordinates 0, 1, 3: 4 exp(-d/2) with d = 1, 3, 2.
    st = make_structure("sp_exp", 1)
    D = np.array([[[0.0, 1, 3], [1, 0, 2], [3, 2, 0]]])
    S = st.pattern_sigma(np.array([2.0, 4.0]), D)[0]
    e = math.exp
    expected = [[4, 4 * e(-0.5), 4 * e(-1.5)], [4 * e(-0.5), 4, 4 * e(-1.0)], [4 * e(-1.5), 4 * e(-1.0), 4]]
    assert np.allclose(S, expected, rtol=0, atol=1e-12)


def test_spatial_gaussian_matches_hand_computation():
    # SP(GAU) range 2, Residual 4, coordinates 0, 1, 3: 4 exp(-d^2/4) with d = 1, 3, 2.
    st = make_structure("sp_gau", 1)
    D = np.array([[[0.0, 1, 3], [1, 0, 2], [3, 2, 0]]])
    S = st.pattern_sigma(np.array([2.0, 4.0]), D)[0]
    e = math.exp
    expected = [[4, 4 * e(-0.25), 4 * e(-2.25)], [4 * e(-0.25), 4, 4 * e(-1.0)], [4 * e(-2.25), 4 * e(-1.0), 4]]
    assert np.allclose(S, expected, rtol=0, atol=1e-12)


def test_missing_visit_takes_the_submatrix_of_its_levels():
    # A subject seen at visits 1 and 3 under AR(1) (rho 0.5, variance 4): lag 2, covariance 1.
    st = make_structure("ar1", 3)
    S = st.pattern_sigma(np.array([0.5, 4.0]), np.array([[0, 2]]))[0]
    assert np.allclose(S, [[4, 1], [1, 4]])


def test_sas_parameter_names():
    assert make_structure("us", 2).param_names() == ["UN(1,1)", "UN(2,1)", "UN(2,2)"]
    assert make_structure("cs", 3).param_names() == ["CS", "Residual"]
    assert make_structure("ar1", 3).param_names() == ["AR(1)", "Residual"]
    assert make_structure("toep", 3).param_names() == ["TOEP(2)", "TOEP(3)", "Residual"]
    assert make_structure("toeph", 3).param_names() == ["Var(1)", "Var(2)", "Var(3)", "TOEPH(1)", "TOEPH(2)"]
    assert make_structure("adh", 3).param_names() == ["Var(1)", "Var(2)", "Var(3)", "Rho(1)", "Rho(2)"]
    assert make_structure("sp_exp", 1).param_names() == ["SP(EXP)", "Residual"]
    assert make_structure("sp_gau", 2).param_names() == ["SP(GAU)", "Residual"]


@pytest.mark.parametrize("name", sorted(n for n, cls in STRUCTURES.items() if not cls.spatial))
def test_every_theta_gives_a_positive_definite_sigma(name):
    st = make_structure(name, 5)
    rng = np.random.default_rng(7)
    for _ in range(50):
        theta = rng.normal(scale=2.0, size=st.n_params)
        S = st.full_sigma(st.theta_to_phi(theta))
        assert np.all(np.linalg.eigvalsh(S) > 0)


@pytest.mark.parametrize("name", sorted(n for n, cls in STRUCTURES.items() if not cls.spatial))
def test_theta_phi_round_trip(name):
    st = make_structure(name, 4)
    theta = np.random.default_rng(3).normal(scale=0.7, size=st.n_params)
    phi = st.theta_to_phi(theta)
    assert np.allclose(st.theta_to_phi(st.phi_to_theta(phi)), phi, atol=1e-10)


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_complex_step_derivatives_match_finite_differences(name):
    m = 4
    spatial = STRUCTURES[name].spatial
    st = make_structure(name, 2 if spatial else m)
    rng = np.random.default_rng(11)
    phi = st.theta_to_phi(rng.normal(scale=0.5, size=st.n_params))
    if spatial:
        pts = rng.normal(size=(m, 2))
        geom = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))[None]
    else:
        geom = np.array([[0, 1, 3]])
    dS = st.pattern_dsigma(phi, geom)
    d2S = st.pattern_d2sigma(phi, geom)
    h = 1e-6
    for j in range(st.n_params):
        e = np.zeros(st.n_params)
        e[j] = h * max(1.0, abs(phi[j]))
        num = (st.pattern_sigma(phi + e, geom) - st.pattern_sigma(phi - e, geom)) / (2 * e[j])
        assert np.allclose(dS[j], num, rtol=1e-6, atol=1e-6)
        num2 = (st.pattern_dsigma(phi + e, geom) - st.pattern_dsigma(phi - e, geom)) / (2 * e[j])
        assert np.allclose(d2S[:, j], num2, rtol=1e-4, atol=1e-5)
    if st.linear:
        assert np.all(d2S == 0)
