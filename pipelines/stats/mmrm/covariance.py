"""Within-subject covariance structures for the MMRM.

Every structure has two parameterisations:

* ``phi`` -- SAS PROC MIXED's own ("natural") covariance parameters, in the order SAS prints them in
  "Covariance Parameter Estimates" (UN: the variances and covariances themselves; CS: the common
  covariance and the residual variance; AR(1): rho and the variance; ...). Inference (the asymptotic
  covariance of the parameters, Satterthwaite, Kenward-Roger) is computed in ``phi`` so that the
  second-derivative terms of Kenward-Roger are SAS's (they vanish for structures linear in ``phi``).
* ``theta`` -- an unconstrained parameterisation used only by the optimiser: log-variances,
  log-Cholesky for UN, and correlations mapped from the real line so that every ``theta`` gives a
  positive definite matrix (partial autocorrelations for Toeplitz).

``theta_to_phi`` and ``sigma`` are written with complex-safe operations only, so derivatives are taken
by complex-step differentiation (exact to rounding error) instead of hand-written Jacobians.

Mapping of our formula terms to SAS ``REPEATED / TYPE=``:

========  ======================  =====================================================
term      SAS TYPE=               Sigma[i, j]
========  ======================  =====================================================
us        UN                      free
cs        CS                      sigma1 + sigma2 * (i == j)
csh       CSH                     sqrt(v_i v_j) * (rho + (1 - rho) * (i == j))
ar1       AR(1)                   sigma2 * rho^|i-j|
ar1h      ARH(1)                  sqrt(v_i v_j) * rho^|i-j|
toep      TOEP                    sigma_|i-j|   (TOEP(k+1) = lag-k covariance, Residual = lag 0)
toeph     TOEPH                   sqrt(v_i v_j) * rho_|i-j|
ad        (no SAS type)           sigma2 * prod(rho_i .. rho_{j-1})     homogeneous ante-dependence
adh       ANTE(1)                 sqrt(v_i v_j) * prod(rho_i .. rho_{j-1})
sp_exp    SP(EXP)(coords)         sigma2 * exp(-d_ij / range), d = Euclidean distance of coordinates
sp_gau    SP(GAU)(coords)         sigma2 * exp(-d_ij^2 / range^2)
rs        RANDOM INT t/TYPE=UN    g11 + g21 (t_i + t_j) + g22 t_i t_j + sigma2 * (i == j)
          + REPEATED (VC)         (random intercept and slope on t, G unstructured, R = sigma2 I)
========  ======================  =====================================================

``rs`` is the marginal covariance of a random intercept and slope model, ``Z G Z' + sigma2 I`` with
``Z = [1, t]``; the slope variable ``t`` is the numeric value of each time level (the levels of the
time factor must be numbers, e.g. nominal weeks). G is kept positive definite (log-Cholesky),
so a fit whose G is (nearly) singular is a boundary fit, as in SAS/lme4.

Positions i, j of the non-spatial structures are the indices of the time factor's levels (as SAS
uses the levels of the REPEATED effect), not the order of a subject's rows.
"""

from __future__ import annotations

import numpy as np

_H_COMPLEX = 1e-30  # complex-step size; any tiny value works


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p):
    return np.log(p / (1.0 - p))


def _pacf_to_acf(pacf):
    """Durbin-Levinson: partial autocorrelations (..., K) -> autocorrelations r_1..r_K (..., K).

    Any pacf in (-1, 1)^K gives a positive definite Toeplitz correlation matrix.
    """
    K = pacf.shape[-1]
    acf = []
    coefs = []  # AR(k-1) coefficients phi_{k-1, j}
    v = np.ones_like(pacf[..., 0]) if K else None
    for k in range(K):
        p = pacf[..., k]
        if k == 0:
            r = p
            coefs = [p]
        else:
            r = sum(coefs[j] * acf[k - 1 - j] for j in range(k)) + p * v
            coefs = [coefs[j] - p * coefs[k - 1 - j] for j in range(k)] + [p]
        acf.append(r)
        v = v * (1.0 - p * p)
    return np.stack(acf, axis=-1) if K else pacf


def _acf_to_pacf(acf, clip=0.95):
    """Inverse of :func:`_pacf_to_acf` for real input; pacf clipped into (-clip, clip)."""
    acf = np.asarray(acf, dtype=float)
    K = acf.shape[-1]
    pacf = np.zeros(K)
    coefs = np.zeros(0)
    v = 1.0
    for k in range(K):
        num = acf[k] - (coefs @ acf[:k][::-1] if k else 0.0)
        p = float(np.clip(num / v, -clip, clip)) if v > 1e-12 else 0.0
        pacf[k] = p
        coefs = np.concatenate([coefs - p * coefs[::-1], [p]])
        v = v * (1.0 - p * p)
    return pacf


def _lag_matrix(m):
    i = np.arange(m)
    return np.abs(i[:, None] - i[None, :])


def _powers(rho, m):
    """rho^0..rho^(m-1) by repeated multiplication (complex-safe, no log). rho (...,) -> (..., m)."""
    out = [np.ones_like(rho)]
    for _ in range(1, m):
        out.append(out[-1] * rho)
    return np.stack(out, axis=-1)


def _hetero(v, corr):
    """sqrt(v_i v_j) * corr_ij for v (..., m), corr (..., m, m)."""
    sd = np.sqrt(v)
    return sd[..., :, None] * sd[..., None, :] * corr


def _nearest_pd(S, floor=1e-6):
    S = np.asarray(S, dtype=float)
    S = (S + S.T) / 2
    w, U = np.linalg.eigh(S)
    scale = max(float(np.mean(np.abs(np.diag(S)))), 1e-12)
    w = np.maximum(w, floor * scale)
    return (U * w) @ U.T


class CovarianceStructure:
    """One covariance structure for one group. Subclasses define the maps; this class the plumbing."""

    name: str = ""
    sas_type: str = ""
    linear: bool = False  # Sigma linear in phi: Kenward-Roger second-derivative terms vanish
    spatial: bool = False

    def __init__(self, m: int):
        self.m = int(m)  # number of time levels (non-spatial) or coordinate dimension (spatial)

    # --- to be provided by subclasses -------------------------------------------------------
    def param_names(self) -> list[str]:
        """The SAS names of phi's elements, in order (their count is ``n_params``)."""
        raise NotImplementedError

    def theta_to_phi(self, theta):
        raise NotImplementedError

    def phi_to_theta(self, phi) -> np.ndarray:
        raise NotImplementedError

    def sigma(self, phi):
        """Full m x m matrix for phi (..., q) -> (..., m, m). Non-spatial structures only."""
        raise NotImplementedError

    def init_phi(self, S0: np.ndarray) -> np.ndarray:
        """Starting phi from a moment estimate S0 (m x m) of the covariance matrix."""
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return len(self.param_names())

    def pattern_sigma(self, phi, geom):
        """Sigma for each pattern: phi (..., q), geom = index array (P, mp) -> (..., P, mp, mp)."""
        full = self.sigma(phi)
        return full[..., geom[:, :, None], geom[:, None, :]]

    def full_dsigma(self, phi):
        """dSigma/dphi_j of the full m x m matrix -> (q, m, m), by complex step."""
        q = self.n_params
        pc = np.asarray(phi, dtype=complex)[None, :] + 1j * _H_COMPLEX * np.eye(q)
        return self.sigma(pc).imag / _H_COMPLEX

    def full_d2sigma(self, phi):
        """d2Sigma/dphi_j dphi_k of the full matrix -> (q, q, m, m); zero for linear structures.

        Central differences of the (exact) complex-step first derivative."""
        q = self.n_params
        phi = np.asarray(phi, dtype=float)
        out = np.zeros((q, q, self.m, self.m))
        if self.linear:
            return out
        for k in range(q):
            h = 1e-5 * max(abs(phi[k]), 1e-2)
            e = np.zeros(q)
            e[k] = h
            out[:, k] = (self.full_dsigma(phi + e) - self.full_dsigma(phi - e)) / (2 * h)
        return 0.5 * (out + out.transpose(1, 0, 2, 3))

    def pattern_dsigma(self, phi, geom):
        """dSigma/dphi_j for each pattern -> (q, P, mp, mp)."""
        return self.full_dsigma(phi)[:, geom[:, :, None], geom[:, None, :]]

    def pattern_d2sigma(self, phi, geom):
        """d2Sigma/dphi_j dphi_k for each pattern -> (q, q, P, mp, mp)."""
        return self.full_d2sigma(phi)[:, :, geom[:, :, None], geom[:, None, :]]

    def dphi_dtheta(self, theta) -> np.ndarray:
        """Jacobian J[l, j] = dphi_l / dtheta_j by complex step."""
        q = self.n_params
        tc = np.asarray(theta, dtype=complex)[None, :] + 1j * _H_COMPLEX * np.eye(q)
        return (self.theta_to_phi(tc).imag / _H_COMPLEX).T

    def full_sigma(self, phi) -> np.ndarray:
        return np.real(self.sigma(np.asarray(phi, dtype=float)))


# --------------------------------------------------------------------------------------------
class Unstructured(CovarianceStructure):
    name, sas_type, linear = "us", "UN", True

    def _tril(self):
        # row-wise lower triangle: (1,1),(2,1),(2,2),(3,1)...; cached (called in every evaluation)
        if not hasattr(self, "_tril_cache"):
            self._tril_cache = np.tril_indices(self.m)
            self._diag_mask = self._tril_cache[0] == self._tril_cache[1]
        return self._tril_cache

    def param_names(self):
        r, c = self._tril()
        return [f"UN({i + 1},{j + 1})" for i, j in zip(r, c)]

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        m = self.m
        r, c = self._tril()
        L = np.zeros(theta.shape[:-1] + (m, m), dtype=theta.dtype)
        vals = theta.copy()
        vals[..., self._diag_mask] = np.exp(theta[..., self._diag_mask])
        L[..., r, c] = vals
        S = L @ np.swapaxes(L, -1, -2)
        return S[..., r, c]

    def phi_to_theta(self, phi):
        S = np.real(self.sigma(np.asarray(phi, dtype=float)))
        L = np.linalg.cholesky(_nearest_pd(S))
        r, c = self._tril()
        vals = L[r, c].copy()
        vals[r == c] = np.log(vals[r == c])
        return vals

    def sigma(self, phi):
        phi = np.asarray(phi)
        m = self.m
        r, c = self._tril()
        S = np.zeros(phi.shape[:-1] + (m, m), dtype=phi.dtype)
        S[..., r, c] = phi
        S[..., c, r] = phi
        return S

    def init_phi(self, S0):
        S = _nearest_pd(S0)
        r, c = self._tril()
        return S[r, c]


class CompoundSymmetry(CovarianceStructure):
    """SAS CS: phi = (CS = common covariance, Residual)."""

    name, sas_type, linear = "cs", "CS", True

    def param_names(self):
        return ["CS", "Residual"]

    def _lo(self):
        return -1.0 / (self.m - 1) if self.m > 1 else -0.999

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        tot = np.exp(theta[..., 0])
        lo = self._lo()
        rho = lo + (1 - lo) * _sigmoid(theta[..., 1])
        return np.stack([rho * tot, (1 - rho) * tot], axis=-1)

    def phi_to_theta(self, phi):
        tot = phi[0] + phi[1]
        lo = self._lo()
        rho = np.clip(phi[0] / tot, lo + 1e-6, 1 - 1e-6)
        return np.array([np.log(tot), _logit((rho - lo) / (1 - lo))])

    def sigma(self, phi):
        phi = np.asarray(phi)
        m = self.m
        eye = np.eye(m)
        return phi[..., 0, None, None] * np.ones((m, m)) + phi[..., 1, None, None] * eye

    def init_phi(self, S0):
        m = self.m
        v = float(np.mean(np.diag(S0)))
        off = float(np.mean(S0[~np.eye(m, dtype=bool)])) if m > 1 else 0.0
        rho = np.clip(off / v, self._lo() + 0.05, 0.9)
        return np.array([rho * v, (1 - rho) * v])


class HeterogeneousCS(CovarianceStructure):
    """SAS CSH: phi = (Var(1)..Var(m), CSH = rho)."""

    name, sas_type = "csh", "CSH"

    def param_names(self):
        return [f"Var({i + 1})" for i in range(self.m)] + ["CSH"]

    def _lo(self):
        return -1.0 / (self.m - 1) if self.m > 1 else -0.999

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        lo = self._lo()
        v = np.exp(theta[..., : self.m])
        rho = lo + (1 - lo) * _sigmoid(theta[..., self.m])
        return np.concatenate([v, rho[..., None]], axis=-1)

    def phi_to_theta(self, phi):
        lo = self._lo()
        rho = np.clip(phi[self.m], lo + 1e-6, 1 - 1e-6)
        return np.concatenate([np.log(phi[: self.m]), [_logit((rho - lo) / (1 - lo))]])

    def sigma(self, phi):
        phi = np.asarray(phi)
        m = self.m
        rho = phi[..., m, None, None]
        eye = np.eye(m)
        corr = rho * (1 - eye) + eye
        return _hetero(phi[..., :m], corr)

    def init_phi(self, S0):
        m = self.m
        v = np.maximum(np.diag(S0), 1e-8)
        C = S0 / np.sqrt(np.outer(v, v))
        rho = float(np.mean(C[~np.eye(m, dtype=bool)])) if m > 1 else 0.0
        return np.concatenate([v, [np.clip(rho, self._lo() + 0.05, 0.9)]])


class AR1(CovarianceStructure):
    """SAS AR(1): phi = (AR(1) = rho, Residual = variance)."""

    name, sas_type = "ar1", "AR(1)"

    def param_names(self):
        return ["AR(1)", "Residual"]

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        return np.stack([np.tanh(theta[..., 0]), np.exp(theta[..., 1])], axis=-1)

    def phi_to_theta(self, phi):
        return np.array([np.arctanh(np.clip(phi[0], -0.999, 0.999)), np.log(phi[1])])

    def sigma(self, phi):
        phi = np.asarray(phi)
        m = self.m
        pw = _powers(phi[..., 0], m)
        corr = pw[..., _lag_matrix(m)]
        return phi[..., 1, None, None] * corr

    def init_phi(self, S0):
        m = self.m
        v = float(np.mean(np.diag(S0)))
        r1 = float(np.mean(np.diag(S0, 1))) / v if m > 1 else 0.0
        return np.array([np.clip(r1, -0.9, 0.9), v])


class HeterogeneousAR1(CovarianceStructure):
    """SAS ARH(1): phi = (Var(1)..Var(m), ARH(1) = rho)."""

    name, sas_type = "ar1h", "ARH(1)"

    def param_names(self):
        return [f"Var({i + 1})" for i in range(self.m)] + ["ARH(1)"]

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        return np.concatenate([np.exp(theta[..., : self.m]), np.tanh(theta[..., self.m])[..., None]], axis=-1)

    def phi_to_theta(self, phi):
        return np.concatenate([np.log(phi[: self.m]), [np.arctanh(np.clip(phi[self.m], -0.999, 0.999))]])

    def sigma(self, phi):
        phi = np.asarray(phi)
        m = self.m
        corr = _powers(phi[..., m], m)[..., _lag_matrix(m)]
        return _hetero(phi[..., :m], corr)

    def init_phi(self, S0):
        m = self.m
        v = np.maximum(np.diag(S0), 1e-8)
        C = S0 / np.sqrt(np.outer(v, v))
        r1 = float(np.mean(np.diag(C, 1))) if m > 1 else 0.0
        return np.concatenate([v, [np.clip(r1, -0.9, 0.9)]])


class Toeplitz(CovarianceStructure):
    """SAS TOEP: phi = (TOEP(2)..TOEP(m) = lag 1..m-1 covariances, Residual = lag-0 variance)."""

    name, sas_type, linear = "toep", "TOEP", True

    def param_names(self):
        return [f"TOEP({k + 1})" for k in range(1, self.m)] + ["Residual"]

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        s0 = np.exp(theta[..., 0])
        acf = _pacf_to_acf(np.tanh(theta[..., 1:]))
        return np.concatenate([s0[..., None] * acf, s0[..., None]], axis=-1)

    def phi_to_theta(self, phi):
        s0 = phi[-1]
        pacf = _acf_to_pacf(np.asarray(phi[:-1]) / s0)
        return np.concatenate([[np.log(s0)], np.arctanh(pacf)])

    def sigma(self, phi):
        phi = np.asarray(phi)
        m = self.m
        bands = np.concatenate([phi[..., -1:], phi[..., :-1]], axis=-1)  # lag 0..m-1
        return bands[..., _lag_matrix(m)]

    def init_phi(self, S0):
        m = self.m
        s0 = float(np.mean(np.diag(S0)))
        acf = np.array([np.mean(np.diag(S0, k)) / s0 for k in range(1, m)])
        pacf = _acf_to_pacf(acf, clip=0.9)
        return np.concatenate([s0 * np.real(_pacf_to_acf(pacf)) if m > 1 else [], [s0]])


class _VariancesAndCorrelations(CovarianceStructure):
    """phi = (Var(1)..Var(m), <label>(1)..<label>(m-1)): m variances on the log scale and m-1
    correlation parameters reached from tanh(theta); a subclass says how (``_from_tanh``/``_to_tanh``)."""

    label = ""

    def param_names(self):
        return [f"Var({i + 1})" for i in range(self.m)] + [f"{self.label}({k})" for k in range(1, self.m)]

    def _from_tanh(self, t):
        return t

    def _to_tanh(self, corr):
        return corr

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        m = self.m
        return np.concatenate([np.exp(theta[..., :m]), self._from_tanh(np.tanh(theta[..., m:]))], axis=-1)

    def phi_to_theta(self, phi):
        m = self.m
        return np.concatenate([np.log(phi[:m]), np.arctanh(self._to_tanh(phi[m:]))])


class HeterogeneousToeplitz(_VariancesAndCorrelations):
    """SAS TOEPH: phi = (Var(1)..Var(m), TOEPH(1)..TOEPH(m-1) = lag correlations), the lag
    correlations reached through partial autocorrelations (tanh(theta)) so that Sigma stays positive definite."""

    name, sas_type, label = "toeph", "TOEPH", "TOEPH"

    def _from_tanh(self, t):
        return _pacf_to_acf(t)

    def _to_tanh(self, corr):
        return _acf_to_pacf(np.asarray(corr))

    def sigma(self, phi):
        phi = np.asarray(phi)
        m = self.m
        ones = np.ones_like(phi[..., :1])
        corr = np.concatenate([ones, phi[..., m:]], axis=-1)[..., _lag_matrix(m)]
        return _hetero(phi[..., :m], corr)

    def init_phi(self, S0):
        m = self.m
        v = np.maximum(np.diag(S0), 1e-8)
        C = S0 / np.sqrt(np.outer(v, v))
        acf = np.array([np.mean(np.diag(C, k)) for k in range(1, m)])
        pacf = _acf_to_pacf(acf, clip=0.9)
        return np.concatenate([v, np.real(_pacf_to_acf(pacf)) if m > 1 else []])


def _ante_corr(rho, m):
    """corr[i, j] = prod(rho[min(i,j) : max(i,j)]) for rho (..., m-1) -> (..., m, m)."""
    shape = rho.shape[:-1]
    corr = np.zeros(shape + (m, m), dtype=rho.dtype)
    for i in range(m):
        corr[..., i, i] = 1.0
        acc = np.ones(shape, dtype=rho.dtype)
        for j in range(i + 1, m):
            acc = acc * rho[..., j - 1]
            corr[..., i, j] = acc
            corr[..., j, i] = acc
    return corr


class AnteDependence(CovarianceStructure):
    """Homogeneous first-order ante-dependence (mmrm ``ad``): phi = (Var, Rho(1)..Rho(m-1)).

    SAS has no homogeneous ANTE type; the parameters are named as for ANTE(1).
    """

    name, sas_type = "ad", "ANTE(1), homogeneous"

    def param_names(self):
        return ["Var"] + [f"Rho({k})" for k in range(1, self.m)]

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        return np.concatenate([np.exp(theta[..., :1]), np.tanh(theta[..., 1:])], axis=-1)

    def phi_to_theta(self, phi):
        return np.concatenate([[np.log(phi[0])], np.arctanh(np.clip(phi[1:], -0.999, 0.999))])

    def sigma(self, phi):
        phi = np.asarray(phi)
        return phi[..., 0, None, None] * _ante_corr(phi[..., 1:], self.m)

    def init_phi(self, S0):
        v = np.maximum(np.diag(S0), 1e-8)
        C = S0 / np.sqrt(np.outer(v, v))
        return np.concatenate([[float(np.mean(v))], np.clip(np.diag(C, 1), -0.9, 0.9)])


class HeterogeneousAnteDependence(_VariancesAndCorrelations):
    """SAS ANTE(1) (mmrm ``adh``): phi = (Var(1)..Var(m), Rho(1)..Rho(m-1)), Rho(k) = tanh(theta)
    the correlation of times k and k+1."""

    name, sas_type, label = "adh", "ANTE(1)", "Rho"

    def _to_tanh(self, corr):
        return np.clip(corr, -0.999, 0.999)

    def sigma(self, phi):
        phi = np.asarray(phi)
        m = self.m
        return _hetero(phi[..., :m], _ante_corr(phi[..., m:], m))

    def init_phi(self, S0):
        v = np.maximum(np.diag(S0), 1e-8)
        C = S0 / np.sqrt(np.outer(v, v))
        return np.concatenate([v, np.clip(np.diag(C, 1), -0.9, 0.9)])


class SpatialStructure(CovarianceStructure):
    """Spatial structures: Sigma_ij = sigma2 * corr(d_ij / range); phi = (range, Residual).

    ``m`` is the number of coordinates; patterns carry their own distance matrices (Euclidean
    distance of the coordinates), so there is no fixed visit grid. Subclasses give ``_corr``.
    """

    spatial = True

    def param_names(self):
        return [self.sas_type, "Residual"]

    @staticmethod
    def _corr(u):
        """Correlation at scaled distance u = d / range (complex-safe)."""
        raise NotImplementedError

    def range_for(self, corr, dist):
        """The range at which two points ``dist`` apart have correlation ``corr`` (starting values)."""
        raise NotImplementedError

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        return np.stack([np.exp(theta[..., 0]), np.exp(theta[..., 1])], axis=-1)

    def phi_to_theta(self, phi):
        return np.log(np.asarray(phi, dtype=float))

    def dphi_dtheta(self, theta):
        return np.diag(np.exp(np.asarray(theta, dtype=float)))

    def pattern_sigma(self, phi, geom):
        # geom: distance matrices (P, mp, mp)
        phi = np.asarray(phi)
        rng = phi[..., 0, None, None, None]
        s2 = phi[..., 1, None, None, None]
        return s2 * self._corr(geom / rng)

    def pattern_dsigma(self, phi, geom):
        q = 2
        pc = np.asarray(phi, dtype=complex)[None, :] + 1j * _H_COMPLEX * np.eye(q)
        return self.pattern_sigma(pc, geom).imag / _H_COMPLEX

    def pattern_d2sigma(self, phi, geom):
        q = 2
        phi = np.asarray(phi, dtype=float)
        out = np.zeros((q, q) + geom.shape)
        for k in range(q):
            h = 1e-5 * max(abs(phi[k]), 1e-2)
            e = np.zeros(q)
            e[k] = h
            out[:, k] = (self.pattern_dsigma(phi + e, geom) - self.pattern_dsigma(phi - e, geom)) / (2 * h)
        return 0.5 * (out + out.transpose(1, 0, 2, 3, 4))

    def sigma(self, phi):  # only meaningful at unit distance; used for display
        raise NotImplementedError(f"{self.name} has no fixed visit grid; use pattern_sigma")

    def init_phi(self, S0):
        return np.array([1.0, float(np.mean(np.diag(S0)))])


class SpatialExponential(SpatialStructure):
    """SAS SP(EXP)(coords): Sigma_ij = sigma2 * exp(-d_ij / range); phi = (SP(EXP) = range, Residual)."""

    name, sas_type = "sp_exp", "SP(EXP)"

    @staticmethod
    def _corr(u):
        return np.exp(-u)

    def range_for(self, corr, dist):
        return dist / -np.log(corr)


class SpatialGaussian(SpatialStructure):
    """SAS SP(GAU)(coords): Sigma_ij = sigma2 * exp(-d_ij^2 / range^2); phi = (SP(GAU) = range, Residual).

    R mmrm's ``sp_gau`` is the same model (it writes the correlation as rho^(d^2), rho = exp(-1/range^2))."""

    name, sas_type = "sp_gau", "SP(GAU)"

    @staticmethod
    def _corr(u):
        return np.exp(-(u * u))

    def range_for(self, corr, dist):
        return dist / np.sqrt(-np.log(corr))


class RandomInterceptSlope(CovarianceStructure):
    """Random intercept + slope: phi = (UN(1,1) = var intercept, UN(2,1) = cov, UN(2,2) = var slope,
    Residual). Linear in phi. ``times``: the slope variable's value at each time level."""

    name, sas_type, linear = "rs", "RI+RS(UN)", True

    def __init__(self, m: int, times=None):
        super().__init__(m)
        self.times = np.arange(m, dtype=float) if times is None else np.asarray(times, dtype=float)

    def param_names(self):
        return ["UN(1,1)", "UN(2,1)", "UN(2,2)", "Residual"]

    def theta_to_phi(self, theta):
        theta = np.asarray(theta)
        l11, l21, l22 = np.exp(theta[..., 0]), theta[..., 1], np.exp(theta[..., 2])
        return np.stack([l11 * l11, l21 * l11, l21 * l21 + l22 * l22, np.exp(theta[..., 3])], axis=-1)

    def phi_to_theta(self, phi):
        g = _nearest_pd(np.array([[phi[0], phi[1]], [phi[1], phi[2]]], dtype=float), floor=1e-6)
        L = np.linalg.cholesky(g)
        return np.array([np.log(L[0, 0]), L[1, 0], np.log(L[1, 1]), np.log(max(float(phi[3]), 1e-10))])

    def sigma(self, phi):
        phi = np.asarray(phi)
        t = self.times
        one = np.ones((self.m, self.m))
        return (
            phi[..., 0, None, None] * one
            + phi[..., 1, None, None] * (t[:, None] + t[None, :])
            + phi[..., 2, None, None] * np.outer(t, t)
            + phi[..., 3, None, None] * np.eye(self.m)
        )

    def init_phi(self, S0):
        v = float(np.mean(np.diag(S0)))
        off = float(np.mean(S0[~np.eye(self.m, dtype=bool)])) if self.m > 1 else 0.0
        g11 = float(np.clip(off, 0.1 * v, 0.8 * v))
        span = float(np.ptp(self.times)) or 1.0
        return np.array([g11, 0.0, 0.05 * v / span**2, max(v - g11, 0.1 * v)])


STRUCTURES: dict[str, type[CovarianceStructure]] = {
    cls.name: cls
    for cls in (
        Unstructured,
        CompoundSymmetry,
        HeterogeneousCS,
        AR1,
        HeterogeneousAR1,
        Toeplitz,
        HeterogeneousToeplitz,
        AnteDependence,
        HeterogeneousAnteDependence,
        SpatialExponential,
        SpatialGaussian,
        RandomInterceptSlope,
    )
}


def make_structure(name: str, m: int, time_levels=None) -> CovarianceStructure:
    if name == "rs":
        times = None
        if time_levels is not None:
            try:
                times = [float(str(t)) for t in time_levels]
            except ValueError:
                from pipelines.core.errors import ModelSpecError

                raise ModelSpecError(
                    f"rs() needs a time variable whose levels are numbers (the slope variable); got {list(time_levels)[:4]}",
                    hint="use a column of nominal times, e.g. weeks since baseline",
                ) from None
        return RandomInterceptSlope(m, times)
    return STRUCTURES[name](m)
