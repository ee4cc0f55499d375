"""Fast refits of a fitted MMRM on re-weighted subjects (jackknife: one subject's weight 0;
bootstrap: multinomial counts).

The engine's likelihood depends on the data only through per-pattern sums of Z_i Z_i' (Z = [X, y]),
so a refit with subject weights w re-sums the per-subject outer products kept from the original
fit and restarts Newton-Raphson from the original optimum. Weight 2 is exactly "this subject twice"
(a bootstrap duplicate)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from pipelines.stats.mmrm.engine import NotPositiveDefinite


@dataclasses.dataclass
class RefitResult:
    beta: np.ndarray  # (p,)
    sigmas: np.ndarray  # (G, V, V) one covariance per covariance group
    converged: bool
    iterations: int


class Refitter:
    def __init__(self, fit):
        self.fit = fit
        self.model = fit.model
        self.theta0 = np.asarray(fit.optim.theta, dtype=float)
        self.n_subjects = self.model.n_subjects
        self._outer = []
        self._rows = []
        for b in self.model.blocks:
            n, _m, _K = b.Z.shape
            self._outer.append(np.einsum("nak,nbl->nabkl", b.Z, b.Z).reshape(n, -1))
        self.full = self._result(self.model, fit.phi, True, 0)

    def _result(self, model, phi, converged, iterations) -> RefitResult:
        ev = model.evaluate(phi)
        sig = np.stack([st.full_sigma(ph) for st, ph in zip(model.structures, model.split_phi(phi))])
        return RefitResult(beta=ev.beta, sigmas=np.real(sig), converged=converged, iterations=iterations)

    def weighted_model(self, w: np.ndarray):
        """The same model with subject weights ``w`` (length n_subjects of the fit)."""
        mod = copy.copy(self.model)
        blocks = []
        N = 0.0
        for b, O in zip(self.model.blocks, self._outer):
            P = len(b.counts)
            A = np.zeros((P, len(b.pat)))
            A[b.pat, np.arange(len(b.pat))] = w[b.subjects]
            C = (A @ O).reshape(P * b.m * b.m, -1)
            counts = A.sum(axis=1)
            N += float(counts.sum()) * b.m
            blocks.append(dataclasses.replace(b, C=C, counts=counts))
        mod.blocks = blocks
        mod.N = round(N)
        return mod

    def refit(self, w: np.ndarray) -> RefitResult | None:
        """Refit with subject weights; None when the fit fails (non-estimable design or no
        convergence)."""
        mod = self.weighted_model(np.asarray(w, dtype=float))
        try:
            with np.errstate(all="ignore"):
                res = mod.optimise(self.theta0)
                if not res.converged:
                    from pipelines.stats.mmrm.model import _lbfgs_fallback

                    alt = _lbfgs_fallback(mod, res)
                    if alt is not None and (alt.converged or alt.f < res.f):
                        res = alt
                if not res.converged or not np.isfinite(res.f):
                    return None
                return self._result(mod, res.phi, True, res.iterations)
        except (NotPositiveDefinite, np.linalg.LinAlgError, ArithmeticError, ValueError):
            return None
