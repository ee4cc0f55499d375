"""Likelihood engine of the MMRM: y_i = X_i beta + e_i, e_i ~ N(0, W_i^-1/2 Sigma_i W_i^-1/2).

Subjects are grouped by *pattern* (covariance group + the set of time levels, or coordinates, they
were observed at). All subjects of a pattern share Sigma_i, so every likelihood quantity is a
contraction of that pattern's Sigma^-1 (and its derivatives) with the pattern's sufficient statistic

    C_p[a, b, k, l] = sum_{i in p} Z_i[a, k] Z_i[b, l],   Z_i = W_i^1/2 [X_i, y_i].

A likelihood evaluation therefore costs O(#patterns * m^2 * (p+1)^2), independent of the number of
subjects, and patterns of equal size are processed as one stacked array.

Notation: ``phi`` are SAS's covariance parameters (see covariance.py); ``theta`` the unconstrained
optimiser parameters. The objective is -2 log L (REML or ML) exactly as SAS prints it:

    REML: sum log|V_i| + log|X'V^-1 X| + r'V^-1 r + (N - p) log(2 pi)
    ML:   sum log|V_i| + r'V^-1 r + N log(2 pi)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .covariance import CovarianceStructure

LOG2PI = float(np.log(2 * np.pi))


@dataclass
class Block:
    """All patterns of one covariance group with the same number of observations m."""

    group: int
    m: int
    geom: np.ndarray  # (P, m) time-level indices, or (P, m, m) distances for spatial structures
    counts: np.ndarray  # (P,) subjects per pattern
    C: np.ndarray  # (P*m*m, K*K) sufficient statistics
    Z: np.ndarray  # (n, m, K) weighted [X, y] per subject (for the sandwich estimator)
    pat: np.ndarray  # (n,) pattern of each subject (index into geom)
    subjects: np.ndarray  # (n,) subject index
    rows: np.ndarray  # (n, m) row index (into the analysis data) of each observation
    dS_cache: np.ndarray | None = None


@dataclass
class Evaluation:
    f: float
    beta: np.ndarray
    XtVX: np.ndarray
    grad_phi: np.ndarray | None = None
    fisher_phi: np.ndarray | None = None
    facs: list | None = None  # per block (Sigma, Sigma^-1, log|Sigma|), reused by inference_terms


@dataclass
class OptimResult:
    theta: np.ndarray
    phi: np.ndarray
    f: float
    converged: bool
    iterations: int
    message: str
    start: str = ""
    history: list = field(default_factory=list)


class NotPositiveDefinite(Exception):
    pass


class MarginalModel:
    """The likelihood of one MMRM with fixed design X (full column rank) and covariance structures."""

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        subject: np.ndarray,
        time: np.ndarray,
        group_of_subject: np.ndarray,
        structures: list[CovarianceStructure],
        weights: np.ndarray | None = None,
        coords: np.ndarray | None = None,
        reml: bool = True,
    ):
        """X (N, p), y (N,), subject (N,) int codes 0..n_subj-1, time (N,) int level codes (or
        ordering key for spatial), group_of_subject (n_subj,) int, one structure per group,
        weights (N,) positive or None, coords (N, d) for spatial structures."""
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self.N, self.p = self.X.shape
        self.K = self.p + 1
        self.reml = reml
        self.structures = structures
        self.spatial = structures[0].spatial
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        sizes = [s.n_params for s in structures]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.q = int(self.offsets[-1])
        self.sum_log_w = 0.0 if weights is None else float(np.sum(np.log(self.weights)))
        self.n_subjects = int(subject.max()) + 1 if len(subject) else 0
        self._build_blocks(subject, time, group_of_subject, coords)

    # ------------------------------------------------------------------------------- data layout
    def _build_blocks(self, subject, time, group_of_subject, coords):
        sw = np.ones(self.N) if self.weights is None else np.sqrt(self.weights)
        Zall = np.column_stack([self.X, self.y]) * sw[:, None]
        order = np.lexsort((time, subject))
        subj_sorted = subject[order]
        bounds = np.flatnonzero(np.diff(subj_sorted)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(order)]])
        sizes = ends - starts
        first_rows = order[starts]
        sids = subject[first_rows].astype(int)
        gs = np.asarray(group_of_subject, dtype=int)[sids]
        groups: dict[tuple, dict] = {}
        if self.spatial:
            for k, (s, e) in enumerate(zip(starts, ends)):
                rows = order[s:e]
                key = tuple(map(tuple, coords[rows]))
                d = groups.setdefault(
                    (int(gs[k]), len(rows)), {"patterns": {}, "subj": [], "rows": [], "pat": []}
                )
                d["subj"].append(int(sids[k]))
                d["rows"].append(rows)
                d["pat"].append(d["patterns"].setdefault(key, len(d["patterns"])))
        else:
            # vectorised: a subject's pattern is the set of time levels it was seen at (its rows are
            # sorted by time), keyed by the bytes of a 0/1 row over the levels
            n_levels = int(time.max()) + 1 if len(time) else 1
            seen = np.zeros((len(starts), n_levels), dtype=np.uint8)
            subj_of_row = np.repeat(np.arange(len(starts)), sizes)
            seen[subj_of_row, np.asarray(time)[order]] = 1
            for g, m in sorted(set(zip(gs.tolist(), sizes.tolist()))):
                sel = np.flatnonzero((gs == g) & (sizes == m))
                keys = seen[sel]
                _, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
                inv = inv.reshape(-1)
                rank = np.empty(len(first), dtype=int)  # pattern ids in order of first appearance
                rank[np.argsort(first, kind="stable")] = np.arange(len(first))
                pat = rank[inv]
                rows = order[starts[sel][:, None] + np.arange(m)[None, :]]
                pattern_keys = [None] * len(first)
                for j, f in enumerate(first):
                    pattern_keys[rank[j]] = tuple(int(t) for t in time[rows[f]])
                groups[(g, m)] = {
                    "patterns": {k: i for i, k in enumerate(pattern_keys)},
                    "subj": sids[sel].tolist(),
                    "rows": rows,
                    "pat": pat.tolist(),
                }
        self.blocks: list[Block] = []
        for (g, m), d in sorted(groups.items()):
            keys = sorted(d["patterns"], key=d["patterns"].get)
            if self.spatial:
                pts = np.array(keys, dtype=float)  # (P, m, dim)
                geom = np.sqrt(((pts[:, :, None, :] - pts[:, None, :, :]) ** 2).sum(-1))
            else:
                geom = np.array(keys, dtype=int).reshape(len(keys), m)
            rows = np.array(d["rows"], dtype=int).reshape(-1, m)
            pat = np.array(d["pat"], dtype=int)
            Z = Zall[rows]  # (n, m, K)
            P = len(keys)
            K = self.K
            C = np.zeros((P, m, m, K, K))
            counts = np.bincount(pat, minlength=P)
            for p_ in range(P):
                Zp = Z[pat == p_].reshape(-1, m * K)
                C[p_] = (Zp.T @ Zp).reshape(m, K, m, K).transpose(0, 2, 1, 3)
            self.blocks.append(
                Block(
                    group=g,
                    m=m,
                    geom=geom,
                    counts=counts.astype(float),
                    C=C.reshape(P * m * m, K * K),
                    Z=Z,
                    pat=pat,
                    subjects=np.array(d["subj"], dtype=int),
                    rows=rows,
                )
            )

    @property
    def n_patterns(self) -> int:
        return sum(len(b.counts) for b in self.blocks)

    # ------------------------------------------------------------------------------- parameters
    def split_phi(self, phi):
        return [phi[self.offsets[g] : self.offsets[g + 1]] for g in range(len(self.structures))]

    def theta_to_phi(self, theta):
        return np.concatenate(
            [
                np.real(st.theta_to_phi(np.asarray(t, dtype=float)))
                for st, t in zip(self.structures, self.split_phi(theta))
            ]
        )

    def phi_to_theta(self, phi):
        return np.concatenate([st.phi_to_theta(p) for st, p in zip(self.structures, self.split_phi(phi))])

    def jacobian(self, theta):
        """Block-diagonal dphi/dtheta."""
        J = np.zeros((self.q, self.q))
        for g, (st, t) in enumerate(zip(self.structures, self.split_phi(theta))):
            a, b = self.offsets[g], self.offsets[g + 1]
            J[a:b, a:b] = st.dphi_dtheta(t)
        return J

    def _dS(self, blk: Block, phi_g):
        st = self.structures[blk.group]
        if st.linear:
            if blk.dS_cache is None:
                blk.dS_cache = st.pattern_dsigma(phi_g, blk.geom)
            return blk.dS_cache
        return st.pattern_dsigma(phi_g, blk.geom)

    # ------------------------------------------------------------------------------- core pass
    def _factor(self, phi):
        """Per block: Sigma^-1 and log-determinants. Raises NotPositiveDefinite."""
        out = []
        phis = self.split_phi(phi)
        for blk in self.blocks:
            S = self.structures[blk.group].pattern_sigma(phis[blk.group], blk.geom)
            S = np.real(S)
            try:
                L = np.linalg.cholesky(S)
            except np.linalg.LinAlgError as exc:
                raise NotPositiveDefinite(str(exc)) from exc
            diag = np.diagonal(L, axis1=-2, axis2=-1)
            if not np.all(np.isfinite(diag)) or np.any(diag <= 0):
                raise NotPositiveDefinite("non-finite Cholesky factor")
            Linv = np.linalg.inv(L)
            Sinv = np.swapaxes(Linv, -1, -2) @ Linv
            logdet = 2.0 * np.log(diag).sum(-1)
            out.append((S, Sinv, logdet))
        return out

    def evaluate(self, phi, grad=False, fisher=False) -> Evaluation:
        """-2 log L at phi; optionally its gradient and the (ML) Fisher information in phi."""
        p, K = self.p, self.K
        facs = self._factor(phi)
        A = np.zeros(K * K)
        logdetV = 0.0
        for blk, (S, Sinv, ld) in zip(self.blocks, facs):
            A += Sinv.reshape(-1) @ blk.C
            logdetV += float(blk.counts @ ld)
        A = A.reshape(K, K)
        XtVX, XtVy, yVy = A[:p, :p], A[:p, p], A[p, p]
        try:
            Lx = np.linalg.cholesky(XtVX)
        except np.linalg.LinAlgError as exc:
            raise NotPositiveDefinite("X'V^-1X not positive definite") from exc
        beta = np.linalg.solve(XtVX, XtVy)
        rVr = float(yVy - beta @ XtVy)
        logdetV -= self.sum_log_w
        if self.reml:
            f = logdetV + 2.0 * np.log(np.diag(Lx)).sum() + rVr + (self.N - p) * LOG2PI
        else:
            f = logdetV + rVr + self.N * LOG2PI
        ev = Evaluation(f=float(f), beta=beta, XtVX=XtVX, facs=facs)
        if grad or fisher:
            u = np.concatenate([-beta, [1.0]])
            M = np.outer(u, u)
            if self.reml:
                M[:p, :p] += np.linalg.inv(XtVX)
            g = np.zeros(self.q)
            F = np.zeros((self.q, self.q)) if fisher else None
            phis = self.split_phi(phi)
            for blk, (S, Sinv, ld) in zip(self.blocks, facs):
                a, b = self.offsets[blk.group], self.offsets[blk.group + 1]
                dS = self._dS(blk, phis[blk.group])
                P_, m = len(blk.counts), blk.m
                GR = (blk.C @ M.reshape(-1)).reshape(P_, m, m)
                B = blk.counts[:, None, None] * Sinv - Sinv @ GR @ Sinv
                g[a:b] += dS.reshape(b - a, -1) @ B.reshape(-1)
                if fisher:
                    Aj = Sinv[None] @ dS  # (q, P, m, m)
                    Ajn = Aj * blk.counts[None, :, None, None]
                    F[a:b, a:b] += Ajn.reshape(b - a, -1) @ np.swapaxes(Aj, -1, -2).reshape(b - a, -1).T
            ev.grad_phi = g
            ev.fisher_phi = F
        return ev

    def objective(self, phi) -> float:
        try:
            return self.evaluate(phi).f
        except NotPositiveDefinite:
            return np.inf

    # ------------------------------------------------------------------------------- optimiser
    def _theta_hessian(self, theta, J, grad_phi, H_phi):
        """Hessian of -2 log L in theta near the optimum: J'H_phi J (the term with the gradient
        times d2phi/dtheta2 vanishes at the optimum; leaving it out keeps Newton's local
        superlinear convergence and saves 2q Jacobians per iteration)."""
        H = J.T @ H_phi @ J
        return 0.5 * (H + H.T)

    def optimise(self, theta0, max_iter=100, start="") -> OptimResult:
        """Fisher scoring (expected ML information) far from the optimum, Newton-Raphson with the
        exact observed Hessian close to it; Armijo backtracking line search; stops when the Newton
        decrement g'H^-1 g of -2 log L is below 1e-9 with a positive definite Hessian."""
        theta = np.asarray(theta0, dtype=float).copy()
        try:
            ev = self.evaluate(self.theta_to_phi(theta), grad=True, fisher=True)
        except NotPositiveDefinite as exc:
            return OptimResult(
                theta, self.theta_to_phi(theta), np.inf, False, 0, f"invalid start: {exc}", start
            )
        history = [ev.f]
        newton = False
        tol = max(1e-9, 1e-13 * abs(ev.f))
        for it in range(1, max_iter + 1):
            J = self.jacobian(theta)
            g = J.T @ ev.grad_phi
            F = J.T @ ev.fisher_phi @ J
            F = 0.5 * (F + F.T)
            d = None
            used_newton = False
            if newton or it > 2:
                try:
                    terms = self.inference_terms(self.theta_to_phi(theta), ev=ev)
                    H = self._theta_hessian(theta, J, ev.grad_phi, terms["H_obs"])
                    np.linalg.cholesky(H)
                    d = -np.linalg.solve(H, g)
                    used_newton = True
                except (np.linalg.LinAlgError, NotPositiveDefinite):
                    d = None
            if d is None:
                ridge = 1e-10 * max(1.0, float(np.max(np.abs(np.diag(F)))))
                try:
                    d = -np.linalg.solve(F + ridge * np.eye(self.q), g)
                except np.linalg.LinAlgError:
                    d = -g / max(1.0, float(np.linalg.norm(g)))
            dec = float(-g @ d)
            if not np.isfinite(dec) or dec < 0:
                d = -g / max(1.0, float(np.linalg.norm(g)))
                dec = float(-g @ d)
                used_newton = False
            if dec < tol and (used_newton or it > 1):
                if used_newton:
                    # one last full Newton step polishes the parameters (decrement ~ tol^2)
                    t_new = theta + d
                    f_new = self.objective(self.theta_to_phi(t_new))
                    if np.isfinite(f_new) and f_new <= ev.f + 1e-12 * abs(ev.f):
                        theta = t_new
                        ev = self.evaluate(self.theta_to_phi(theta))
                    return OptimResult(
                        theta, self.theta_to_phi(theta), ev.f, True, it, "converged", start, history
                    )
                newton = True  # confirm with the exact Hessian
                continue
            if dec < 1e-1:
                newton = True
            big = float(np.max(np.abs(d)))
            alpha = min(1.0, 3.0 / big) if big > 0 else 1.0
            accepted = False
            for _ in range(50):
                t_new = theta + alpha * d
                f_new = self.objective(self.theta_to_phi(t_new))
                if np.isfinite(f_new) and f_new <= ev.f - 1e-4 * alpha * dec + 1e-13 * abs(ev.f):
                    accepted = True
                    break
                alpha *= 0.5
            if not accepted:
                if used_newton:
                    newton = False
                    continue
                ok = dec < 1e-6
                return OptimResult(
                    theta,
                    self.theta_to_phi(theta),
                    ev.f,
                    ok,
                    it,
                    "line search failed" + ("" if ok else f" (Newton decrement {dec:.3g})"),
                    start,
                    history,
                )
            theta = t_new
            try:
                ev = self.evaluate(self.theta_to_phi(theta), grad=True, fisher=True)
            except NotPositiveDefinite as exc:  # pragma: no cover - objective was finite just now
                return OptimResult(
                    theta, self.theta_to_phi(theta), np.inf, False, it, str(exc), start, history
                )
            history.append(ev.f)
        return OptimResult(
            theta, self.theta_to_phi(theta), ev.f, False, max_iter, "iteration limit reached", start, history
        )

    # ------------------------------------------------------------------------------- at the optimum
    def inference_terms(self, phi, second_derivatives=True, ev=None):
        """Everything inference needs at phi (all in SAS's phi parameterisation):

        beta, Phi = (X'V^-1X)^-1, P_j = X'V^-1 dV_j V^-1 X (q, p, p), the observed and expected
        Hessians of -2 log L (profiled over beta), and the per-block pieces Kenward-Roger needs.
        """
        p, K, q = self.p, self.K, self.q
        if ev is None:  # ev: an evaluation at this same phi, when the caller has one
            ev = self.evaluate(phi)
        beta = ev.beta
        Phi = np.linalg.inv(ev.XtVX)
        Phi = 0.5 * (Phi + Phi.T)
        u = np.concatenate([-beta, [1.0]])
        Mr = np.outer(u, u)
        Mg = np.zeros((K, K))
        Mg[:p, :p] = Phi
        facs = ev.facs
        phis = self.split_phi(phi)
        PZ = np.zeros((q, K * K))
        T1 = np.zeros((q, q))
        TG = np.zeros((q, q))
        TR = np.zeros((q, q))
        SD = np.zeros((q, q))  # sum_p tr(S_jk B_p)
        per_block = []
        for blk, (S, Sinv, ld) in zip(self.blocks, facs):
            a, b = self.offsets[blk.group], self.offsets[blk.group + 1]
            qg = b - a
            P_, m = len(blk.counts), blk.m
            dS = self._dS(blk, phis[blk.group])  # (qg, P, m, m)
            Aj = Sinv[None] @ dS
            Mj = Aj @ Sinv[None]  # S^-1 dS_j S^-1
            PZ[a:b] += Mj.reshape(qg, -1) @ blk.C
            G = (blk.C @ Mg.reshape(-1)).reshape(P_, m, m)
            R = (blk.C @ Mr.reshape(-1)).reshape(P_, m, m)
            AjT = np.swapaxes(Aj, -1, -2).reshape(qg, -1)
            T1[a:b, a:b] += (Aj * blk.counts[None, :, None, None]).reshape(qg, -1) @ AjT.T
            HG = Sinv @ G
            HR = Sinv @ R
            TG[a:b, a:b] += Aj.reshape(qg, -1) @ np.swapaxes(Aj @ HG[None], -1, -2).reshape(qg, -1).T
            TR[a:b, a:b] += Aj.reshape(qg, -1) @ np.swapaxes(Aj @ HR[None], -1, -2).reshape(qg, -1).T
            if second_derivatives and not self.structures[blk.group].linear:
                d2S = self.structures[blk.group].pattern_d2sigma(phis[blk.group], blk.geom)
                GRm = (G + R) if self.reml else R
                B = blk.counts[:, None, None] * Sinv - Sinv @ GRm @ Sinv
                SD[a:b, a:b] += d2S.reshape(qg, qg, -1) @ B.reshape(-1)
            else:
                d2S = None
            per_block.append({"a": a, "b": b, "Sinv": Sinv, "Aj": Aj, "d2S": d2S})
        PZ = PZ.reshape(q, K, K)
        Pj = PZ[:, :p, :p]
        gj = PZ[:, :p, :] @ u  # X'V^-1 dV_j V^-1 r
        PhiP = Phi[None] @ Pj  # (q, p, p)
        T3 = PhiP.reshape(q, -1) @ np.swapaxes(PhiP, -1, -2).reshape(q, -1).T
        gPg = gj @ Phi @ gj.T
        if self.reml:
            H_obs = -T1 + 2 * TG - T3 + 2 * TR - 2 * gPg + SD
            H_exp = T1 - 2 * TG + T3
        else:
            H_obs = -T1 + 2 * TR - 2 * gPg + SD
            H_exp = T1
        H_obs = 0.5 * (H_obs + H_obs.T)
        H_exp = 0.5 * (H_exp + H_exp.T)
        return {
            "beta": beta,
            "Phi": Phi,
            "P": Pj,
            "H_obs": H_obs,
            "H_exp": H_exp,
            "f": ev.f,
            "per_block": per_block,
            "facs": facs,
        }

    def kr_sums(self, terms, W):
        """sum_jk W_jk Q_jk and sum_jk W_jk R_jk (p x p) for Kenward-Roger."""
        p, K = self.p, self.K
        SQ = np.zeros(K * K)
        SR = np.zeros(K * K)
        for blk, pb in zip(self.blocks, terms["per_block"]):
            a, b = pb["a"], pb["b"]
            Wg = W[a:b, a:b]
            Aj, Sinv = pb["Aj"], pb["Sinv"]
            U = np.einsum("jk,jpab->kpab", Wg, Aj)
            Mq = np.einsum("kpab,kpbc->pac", U, Aj) @ Sinv
            SQ += Mq.reshape(-1) @ blk.C
            if pb["d2S"] is not None:
                D2 = np.einsum("jk,jkpab->pab", Wg, pb["d2S"])
                SR += (Sinv @ D2 @ Sinv).reshape(-1) @ blk.C
        return SQ.reshape(K, K)[:p, :p], SR.reshape(K, K)[:p, :p]

    def score_contributions(self, terms):
        """Per-subject X_i'V_i^-1 r_i (n_subj_with_data, p), for the sandwich estimator."""
        p = self.p
        u = np.concatenate([-terms["beta"], [1.0]])
        out = []
        subj = []
        for blk, (S, Sinv, ld) in zip(self.blocks, terms["facs"]):
            Xb = blk.Z[:, :, :p]
            r = blk.Z @ u
            e = np.einsum("nak,nab,nb->nk", Xb, Sinv[blk.pat], r)
            out.append(e)
            subj.append(blk.subjects)
        return np.concatenate(out), np.concatenate(subj)

    def residual_moments(self, beta):
        """Per group, pairwise-complete moment estimate of Sigma from residuals y - X beta
        (non-spatial), used for starting values."""
        res = []
        u = np.concatenate([-beta, [1.0]])
        for g, st in enumerate(self.structures):
            if st.spatial:
                res.append(None)
                continue
            M = st.m
            sums = np.zeros((M, M))
            cnt = np.zeros((M, M))
            for blk in self.blocks:
                if blk.group != g:
                    continue
                r = blk.Z @ u  # (n, m) (weighted)
                idx = blk.geom[blk.pat]  # (n, m)
                np.add.at(sums, (idx[:, :, None], idx[:, None, :]), r[:, :, None] * r[:, None, :])
                np.add.at(cnt, (idx[:, :, None], idx[:, None, :]), 1.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                S0 = np.where(cnt > 0, sums / np.maximum(cnt, 1), 0.0)
            d = np.diag(S0).copy()
            fill = np.mean(d[d > 0]) if np.any(d > 0) else 1.0
            d[d <= 0] = fill
            S0[np.diag_indices(M)] = d
            res.append(S0)
        return res

    def spatial_moments(self, beta):
        """(variance, mean product / variance, mean distance) of residual pairs for spatial starts."""
        u = np.concatenate([-beta, [1.0]])
        ss, n, prod, npairs, dist = 0.0, 0, 0.0, 0, 0.0
        for blk in self.blocks:
            r = blk.Z @ u
            ss += float((r**2).sum())
            n += r.size
            if blk.m > 1:
                iu = np.triu_indices(blk.m, 1)
                pr = (r[:, :, None] * r[:, None, :])[:, iu[0], iu[1]]
                prod += float(pr.sum())
                npairs += pr.size
                dist += float(blk.geom[blk.pat][:, iu[0], iu[1]].sum())
        var = ss / max(n, 1)
        corr = prod / max(npairs, 1) / var if npairs else 0.5
        return var, corr, (dist / npairs if npairs else 1.0)
