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
        self._outer_cache = None
        self.full = self._result(self.model, fit.phi, True, 0)

    @property
    def _outer(self):
        """Per-subject outer products Z_i Z_i' of each block, (n_b, m*m*K*K): for arbitrary weights.
        Built on first use: n_b * m^2 * K^2 floats (~4 GB at 50,000 subjects with five visits and
        21 columns), so the delete-a-group path (:meth:`without`) never builds them."""
        if self._outer_cache is None:
            self._outer_cache = []
            for b in self.model.blocks:
                n, _m, _K = b.Z.shape
                self._outer_cache.append(np.einsum("nak,nbl->nabkl", b.Z, b.Z).reshape(n, -1))
        return self._outer_cache

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

    def model_without(self, removed: np.ndarray):
        """The same model without the subjects ``removed`` (indices of the fit's subjects): each
        block's sufficient statistics minus those of the removed subjects, O(removed) work and
        memory (the delete-a-group jackknife)."""
        mod = copy.copy(self.model)
        gone = np.zeros(self.n_subjects, dtype=bool)
        gone[np.asarray(removed, dtype=int)] = True
        blocks = []
        N = 0.0
        for b in self.model.blocks:
            P, m = len(b.counts), b.m
            K = b.Z.shape[2]
            sel = gone[b.subjects]
            if not sel.any():
                blocks.append(b)
                N += float(b.counts.sum()) * m
                continue
            D = np.zeros((P, m, m, K, K))
            pat = b.pat[sel]
            Zs = b.Z[sel]
            for p_ in np.unique(pat):
                Zp = Zs[pat == p_].reshape(-1, m * K)
                D[p_] = (Zp.T @ Zp).reshape(m, K, m, K).transpose(0, 2, 1, 3)
            counts = b.counts - np.bincount(pat, minlength=P)
            N += float(counts.sum()) * m
            blocks.append(dataclasses.replace(b, C=b.C - D.reshape(P * m * m, K * K), counts=counts))
        mod.blocks = blocks
        mod.N = round(N)
        return mod

    def refit_without(self, removed: np.ndarray) -> RefitResult | None:
        """Refit without the subjects ``removed``; None when the fit fails."""
        return self._optimise(self.model_without(removed))

    def refit(self, w: np.ndarray) -> RefitResult | None:
        """Refit with subject weights; None when the fit fails (non-estimable design or no
        convergence)."""
        return self._optimise(self.weighted_model(np.asarray(w, dtype=float)))

    def _optimise(self, mod) -> RefitResult | None:
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
