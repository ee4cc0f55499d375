"""Results of an MMRM fit as tidy polars frames (and the contract's JSON shape)."""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import special

from pipelines.core.errors import ModelSpecError

from .frame import Column, Frame
from .inference import independent_rows


class _LazyPolars:
    """``pl`` imported on first use: `trialpipe mmrm` prints from plain rows and never needs polars
    (whose import is a fifth of the command's start-up); the API's frames are polars as before."""

    def __getattr__(self, name):
        import polars

        return getattr(polars, name)


pl = _LazyPolars()

TIDY_COLUMNS = ["estimate", "std_error", "df", "statistic", "p_value", "conf_low", "conf_high"]


def _nan_to_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _ci(est, se, df, level):
    if not (np.isfinite(se) and np.isfinite(df) and df > 0):
        return np.nan, np.nan
    t = float(special.stdtrit(df, 0.5 + level / 2))  # = scipy.stats.t.ppf
    return est - t * se, est + t * se


class MMRMResult:
    """A fitted MMRM. Attributes: ``converged``, ``warnings``, ``neg2_loglik``, ``aic``, ``aicc``,
    ``bic``, ``n_obs``, ``n_subjects`` (SAS's count: subjects in the data read), ``n_subjects_used``
    (subjects with at least one analysed observation, R mmrm's count), ``coefficients``,
    ``covariance``, ``covariance_parameters``; methods ``lsmeans``, ``lsmean_contrasts``, ``type3``,
    ``test``, ``estimate``, ``to_dict``."""

    def __init__(
        self,
        *,
        design,
        model,
        parsed,
        reml,
        df_method,
        vcov,
        phi,
        f,
        converged,
        warnings,
        inference,
        W,
        optim,
        kr_pieces=None,
        conf_level=0.95,
    ):
        self.design = design
        self.model = model
        self.parsed = parsed
        self.formula = parsed.formula
        self.covariance_type = parsed.cov_type
        self.reml = reml
        self.method = "REML" if reml else "ML"
        self.df_method = df_method
        self.vcov_method = vcov or (
            "kenward-roger-adjusted" if df_method.startswith("kenward") else "model-based"
        )
        self.phi = np.asarray(phi, dtype=float)
        self.converged = converged
        self.warnings = list(warnings)
        self.inference = inference
        self.W = W
        self.optim = optim
        self.kr_pieces = kr_pieces
        self.conf_level = conf_level
        self.n_obs = int(model.N) if model is not None else len(design.y)
        self.n_subjects = int(design.n_subjects_read)
        self.n_subjects_used = len(design.subject_labels)
        self.n_cov_params = int(sum(s.n_params for s in model.structures)) if model is not None else 0
        self.rank = int(design.keep.sum())
        self.neg2_loglik = float(f)
        d = self.n_cov_params + (0 if reml else self.rank)
        n_star = self.n_obs - self.rank if reml else self.n_obs
        self.aic = self.neg2_loglik + 2 * d
        self.aicc = self.neg2_loglik + 2 * d * n_star / (n_star - d - 1) if n_star - d - 1 > 0 else np.nan
        self.bic = self.neg2_loglik + d * np.log(self.n_subjects)

    @classmethod
    def failed(cls, design, model, parsed, reml, df_method, vcov, warnings, phi=None, f=np.nan):
        """A fit that did not converge: -2LL of the last iterate when it is finite, no information
        criteria, no inference."""
        obj = cls(
            design=design, model=model, parsed=parsed, reml=reml, df_method=df_method, vcov=vcov or "model-based",
            phi=np.full(model.q, np.nan) if phi is None else phi, f=f if np.isfinite(f) else np.nan,
            converged=False, warnings=warnings, inference=None, W=None, optim=None,
        )
        obj.n_cov_params = int(model.q)
        obj.aic = obj.aicc = obj.bic = np.nan
        return obj

    # ------------------------------------------------------------------------------ coefficients
    @property
    def beta(self) -> np.ndarray:
        return self.inference.beta if self.inference else np.full(self.rank, np.nan)

    @property
    def vcov(self) -> np.ndarray:
        """Covariance of the estimable coefficients used for inference (KR-adjusted, empirical or model-based)."""
        return self.inference.V

    @property
    def vcov_model(self) -> np.ndarray:
        return self.inference.Phi

    @property
    def term_names(self) -> list[str]:
        return list(self.design.names)

    def _term_df(self, term):
        if self.inference is not None and self.inference.bw is not None:
            return self.inference.bw["term_df"].get(term)
        return None

    @property
    def coefficients(self) -> pl.DataFrame:
        return pl.DataFrame(self.coefficient_rows(), schema=["term"] + TIDY_COLUMNS, orient="row")

    def coefficient_rows(self) -> list[list]:
        """The rows of :attr:`coefficients` as lists (term + TIDY_COLUMNS), without polars."""
        rows = []
        kept = np.flatnonzero(self.design.keep)
        pos = {c: i for i, c in enumerate(kept)}
        for j, name in enumerate(self.design.names):
            term = self.design.term_of_col[j]
            if j in pos and self.inference is not None:
                c = np.zeros(self.rank)
                c[pos[j]] = 1.0
                r = self.inference.t_test(c, self._term_df(term))
                lo, hi = _ci(r.estimate, r.std_error, r.df, self.conf_level)
                rows.append([name, r.estimate, r.std_error, r.df, r.statistic, r.p_value, lo, hi])
            else:
                rows.append([name] + [np.nan] * 7)
        return rows

    # ------------------------------------------------------------------------------ covariance
    def _group_phis(self):
        return self.model.split_phi(self.phi)

    @property
    def covariance_parameters(self) -> pl.DataFrame:
        return pl.DataFrame(
            self.covariance_parameter_rows(), schema={"group": pl.Utf8, "name": pl.Utf8, "estimate": pl.Float64}
        )

    def covariance_parameter_rows(self) -> list[dict]:
        """The rows of :attr:`covariance_parameters` as dicts, without polars."""
        rows = []
        for g, st, ph in zip(self.design.group_levels, self.model.structures, self._group_phis()):
            for n, v in zip(st.param_names(), ph):
                rows.append(
                    {
                        "group": None if len(self.design.group_levels) == 1 else g,
                        "name": n,
                        "estimate": float(v),
                    }
                )
        return rows

    @property
    def covariance(self) -> dict:
        """{group: {"labels": [...], "matrix": ndarray}} in natural time order ("all" if ungrouped).

        For spatial structures the labels are the distinct observed coordinates (when there are at most 50)."""
        out = {}
        for g, st, ph in zip(self.design.group_levels, self.model.structures, self._group_phis()):
            if st.spatial:
                pts = np.unique(self.design.coords, axis=0)
                if len(pts) > 50:
                    out[g] = {"labels": None, "matrix": None}
                    continue
                D = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
                S = np.real(st.pattern_sigma(ph, D[None]))[0]
                labels = [", ".join(format_coord(c) for c in row) for row in pts]
            else:
                S = st.full_sigma(ph)
                labels = list(self.design.time_levels)
            out[g] = {"labels": labels, "matrix": S}
        return out

    @property
    def covariance_long(self) -> pl.DataFrame:
        rows = []
        for g, cv in self.covariance.items():
            if cv["matrix"] is None:
                continue
            for i, a in enumerate(cv["labels"]):
                for j, b in enumerate(cv["labels"]):
                    rows.append({"group": g, "row": a, "col": b, "value": float(cv["matrix"][i, j])})
        return pl.DataFrame(rows)

    # ------------------------------------------------------------------------------ LS means
    def _grid(self):
        d = self.design
        facs = d.fixed_factors
        lv = [d.factors[f] for f in facs]
        size = int(np.prod([len(x) for x in lv])) if lv else 1
        if size > 2_000_000:
            raise ModelSpecError("the LS-means reference grid is too large (more than 2 million cells)")
        codes = np.array(list(itertools.product(*[range(len(x)) for x in lv])), dtype=np.int64).reshape(size, -1)
        grid = Frame({f: Column(codes[:, i], "factor", d.factors[f]) for i, f in enumerate(facs)}, np.arange(size))
        for v in d.fixed_continuous:
            grid[v] = Column(np.full(size, d.data[v].mean()), "number")
        Xg = d.model_spec.matrix(grid)
        return grid, Xg

    def _estimable(self, L_all):
        d = self.design
        if not hasattr(self, "_null"):
            # null space of X from the p x p cross-product: an SVD of X itself with full
            # matrices builds an N x N U (7 GB at 30,000 rows)
            X = d.X_all
            _U, s, Vt = np.linalg.svd(X.T @ X)
            r = int(np.sum(s > 1e-12 * s[0])) if s.size and s[0] > 0 else 0  # s: squared singular values of X
            self._null = Vt[r:].T
        if self._null.shape[1] == 0:
            return np.ones(L_all.shape[0], dtype=bool)
        viol = np.abs(L_all @ self._null).max(axis=1)
        return viol <= 1e-6 * np.maximum(1.0, np.abs(L_all).max(axis=1))

    def _require_fit(self):
        if self.inference is None:
            raise ModelSpecError(
                "the model could not be fitted, so there are no standard errors to test with",
                hint="; ".join(self.warnings[-2:]) or None,
            )

    def _lsmean_rows(self, spec: list[str]):
        self._require_fit()
        d = self.design
        for f in spec:
            if f not in d.fixed_factors:
                raise ModelSpecError(
                    f"LS means need a factor of the fixed effects; {f!r} is not one",
                    column=f,
                    hint=f"factors are {', '.join(d.fixed_factors) or 'none'}",
                )
        grid, Xg = self._grid()
        keys = list(itertools.product(*[d.natural_levels[f] for f in spec]))
        L = np.zeros((len(keys), Xg.shape[1]))
        if spec:
            gk = list(zip(*[grid[f].labels().tolist() for f in spec]))
            index = {}
            for i, k in enumerate(gk):
                index.setdefault(k, []).append(i)
            for r, k in enumerate(keys):
                L[r] = Xg[index[k]].mean(axis=0)
        else:
            L[0] = Xg.mean(axis=0)
        return keys, L

    def _tidy_rows(self, L_all, term_df=None):
        est_ok = self._estimable(L_all)
        out = []
        for row, ok in zip(L_all, est_ok):
            if not ok or self.inference is None:
                out.append([np.nan] * 7)
                continue
            c = row[self.design.keep]
            r = self.inference.t_test(c, term_df)
            lo, hi = _ci(r.estimate, r.std_error, r.df, self.conf_level)
            out.append([r.estimate, r.std_error, r.df, r.statistic, r.p_value, lo, hi])
        return out

    def _spec_term_df(self, spec):
        if self.inference is None or self.inference.bw is None:
            return None
        want = frozenset(spec)
        for t, vs in self.design.term_vars.items():
            if vs == want:
                return self.inference.bw["term_df"].get(t)
        return None

    def lsmeans(self, spec, by=None) -> pl.DataFrame:
        """LS means (SAS LSMEANS / emmeans): equal weights over the levels of the other factors,
        continuous covariates at their mean over the analysis rows. ``spec`` a factor (or list),
        ``by`` an optional factor (or list) -- the result has one row per combination."""
        return pl.DataFrame(self.lsmean_columns(spec, by))

    def lsmean_columns(self, spec, by=None) -> dict[str, list]:
        """:meth:`lsmeans` as {column: values}, without polars (``trialpipe mmrm`` prints these)."""
        spec = [spec] if isinstance(spec, str) else list(spec)
        by = [] if by is None else ([by] if isinstance(by, str) else list(by))
        allf = spec + [b for b in by if b not in spec]
        keys, L = self._lsmean_rows(allf)
        rows = self._tidy_rows(L, self._spec_term_df(allf))
        cols = {f: [k[i] for k in keys] for i, f in enumerate(allf)}
        tidy = {c: [float(r[i]) for r in rows] for i, c in enumerate(TIDY_COLUMNS)}
        return {**cols, **tidy}

    def lsmean_contrasts(self, spec: str, by=None, ref=None, pairs: str = "reference") -> pl.DataFrame:
        """Differences of LS means of factor ``spec`` within each level of ``by``: every level minus
        ``ref`` (default: the factor's reference level), or all pairs (``pairs="all"``, level i minus
        level j for i before j, as SAS PDIFF)."""
        return pl.DataFrame(self.lsmean_contrast_columns(spec, by, ref, pairs))

    def lsmean_contrast_columns(self, spec: str, by=None, ref=None, pairs: str = "reference") -> dict[str, list]:
        """:meth:`lsmean_contrasts` as {column: values}, without polars."""
        if not isinstance(spec, str):
            raise ModelSpecError("lsmean_contrasts takes a single factor")
        by = [] if by is None else ([by] if isinstance(by, str) else list(by))
        d = self.design
        allf = [spec] + by
        keys, L = self._lsmean_rows(allf)
        lv = d.natural_levels.get(spec, [])
        ref = d.factors[spec][0] if ref is None else format_coord(ref)
        if ref not in lv:
            raise ModelSpecError(f"reference level {ref!r} does not occur in {spec}", column=spec, value=ref)
        idx = {k: i for i, k in enumerate(keys)}
        out_keys, out_L = [], []
        by_combos = list(itertools.product(*[d.natural_levels[b] for b in by])) if by else [()]
        if pairs == "reference":
            pair_list = [(a, ref) for a in lv if a != ref]
        elif pairs == "all":
            pair_list = [(a, b) for i, a in enumerate(lv) for b in lv[i + 1 :]]
        else:
            raise ModelSpecError(f"pairs must be 'reference' or 'all', got {pairs!r}")
        for bc in by_combos:
            for a, b in pair_list:
                out_keys.append((a, b) + tuple(bc))
                out_L.append(L[idx[(a,) + tuple(bc)]] - L[idx[(b,) + tuple(bc)]])
        Lc = np.array(out_L) if out_L else np.zeros((0, L.shape[1]))
        rows = self._tidy_rows(Lc, self._spec_term_df(allf))
        return {
            **{b: [k[2 + i] for k in out_keys] for i, b in enumerate(by)},
            "contrast": [f"{k[0]} - {k[1]}" for k in out_keys],
            spec: [k[0] for k in out_keys],
            "reference": [k[1] for k in out_keys],
            **{c: [float(r[i]) for r in rows] for i, c in enumerate(TIDY_COLUMNS)},
        }

    # ------------------------------------------------------------------------------ tests
    def test(self, L, term=None) -> pl.DataFrame:
        """F test of the linear hypothesis L beta = 0; L has one column per coefficient (all columns
        of ``term_names``, aliased ones included) or per estimable coefficient."""
        self._require_fit()
        L = np.atleast_2d(np.asarray(L, dtype=float))
        d = self.design
        if L.shape[1] == len(d.names):
            if not np.all(self._estimable(L)):
                raise ModelSpecError("the hypothesis is not estimable (it involves aliased coefficients)")
            L = L[:, d.keep]
        elif L.shape[1] != self.rank:
            raise ModelSpecError(f"L must have {len(d.names)} (or {self.rank}) columns, got {L.shape[1]}")
        L = independent_rows(L)
        num, den, F, p = self.inference.f_test(L, self._term_df(term) if term else None)
        return pl.DataFrame({"num_df": [num], "den_df": [den], "f_value": [F], "p_value": [p]})

    def estimate(self, L, labels=None) -> pl.DataFrame:
        """t tests of each row of L (like SAS ESTIMATE)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        d = self.design
        L_all = L if L.shape[1] == len(d.names) else None
        if L_all is None:
            L_all = np.zeros((L.shape[0], len(d.names)))
            L_all[:, d.keep] = L
        rows = self._tidy_rows(L_all)
        labels = labels or [f"L{i + 1}" for i in range(L.shape[0])]
        return pl.DataFrame(
            {"label": labels, **{c: [r[i] for r in rows] for i, c in enumerate(TIDY_COLUMNS)}}
        )

    def type3_contrast(self, term: str) -> np.ndarray:
        """SAS Type III hypothesis matrix for ``term`` in the estimable-coefficient parameterisation.

        Built in the sum-to-zero coding of every factor (where the Type III hypothesis of a term is
        'its coefficients are zero'; covariates enter uncentred, so class effects in covariate
        interactions are tested at covariate 0, as in SAS), projected on the estimable functions,
        made orthogonal to the terms the term contains, and mapped to the fitted parameterisation."""
        d = self.design
        Xs, sum_cols = d.sum_coded()  # a method of the design: result.py does not import model.py
        vars_t = d.term_vars[term]
        cols_t = sum_cols.get(vars_t)
        if cols_t is None:
            raise ModelSpecError(f"term {term!r} not found in the sum-coded design")
        pinv = np.linalg.pinv(Xs)
        P_est = pinv @ Xs
        E = np.zeros((len(cols_t), Xs.shape[1]))
        E[np.arange(len(cols_t)), cols_t] = 1.0
        Lt = E @ P_est
        contained = [c for vs, c in sum_cols.items() if vs < vars_t]
        if contained:
            cc = sorted(set(itertools.chain.from_iterable(contained)))
            Ec = np.zeros((len(cc), Xs.shape[1]))
            Ec[np.arange(len(cc)), cc] = 1.0
            Bc = independent_rows(Ec @ P_est)
            if Bc.shape[0]:
                Q, _ = np.linalg.qr(Bc.T)
                Lt = Lt - (Lt @ Q) @ Q.T
        Lt = independent_rows(Lt)
        Xk = d.X_all[:, d.keep]
        kept_terms = [t for t, k in zip(d.term_of_col, d.keep) if k]
        own = [i for i, t in enumerate(kept_terms) if t == term]
        if not own:  # every column of the term is aliased with earlier columns: nothing to test (SAS: 0 df)
            return np.zeros((0, Xk.shape[1]))
        Lu = independent_rows(Lt @ pinv @ Xk)
        # Basis: one row per treatment-coded column of the term, with unit weight on it (the
        # rows SAS's Hermite form gives: each level against the reference level). F tests are
        # basis-free except SAS's multi-df Satterthwaite, which depends on it.
        if len(own) == Lu.shape[0]:
            sub = Lu[:, own]
            if np.linalg.cond(sub) < 1e10:
                Lu = np.linalg.solve(sub, Lu)
                Lu[np.abs(Lu) < 1e-12] = 0.0
        return Lu

    def type3(self) -> pl.DataFrame:
        """Type III F tests of each term (SAS "Type 3 Tests of Fixed Effects")."""
        self._require_fit()
        rows = []
        for term in self.design.terms:
            if term == "(Intercept)":
                continue
            L = self.type3_contrast(term)
            if L.shape[0] == 0:
                rows.append([term, 0, np.nan, np.nan, np.nan])
                continue
            num, den, F, p = self.inference.f_test(L, self._term_df(term))
            rows.append([term, num, den, F, p])
        return pl.DataFrame(rows, schema=["term", "num_df", "den_df", "f_value", "p_value"], orient="row")

    # ------------------------------------------------------------------------------ output
    def summary(self) -> dict:
        return {
            "formula": self.formula,
            "covariance_structure": self.covariance_type,
            "estimation": self.method,
            "df_method": self.df_method,
            "vcov": self.vcov_method,
            "neg2_loglik": self.neg2_loglik,
            "aic": self.aic,
            "aicc": self.aicc,
            "bic": self.bic,
            "n_obs": self.n_obs,
            "n_subjects": self.n_subjects,
            "n_subjects_used": self.n_subjects_used,
            "n_cov_params": self.n_cov_params,
            "rank_x": self.rank,
            "converged": self.converged,
            "warnings": list(self.warnings),
        }

    def to_dict(self, lsmeans=None, contrasts=None) -> dict:
        """The contract's JSON shape; ``lsmeans``/``contrasts``: tables from :meth:`lsmeans` and
        :meth:`lsmean_contrasts` (polars) or their ``*_columns`` twins."""
        out = {k: _nan_to_none(v) if isinstance(v, float) else v for k, v in self.summary().items()}
        out["coefficients"] = [
            {k: _nan_to_none(float(v) if k != "term" else v) for k, v in zip(["term", *TIDY_COLUMNS], row)}
            for row in self.coefficient_rows()
        ]
        cov = self.covariance

        def mat(cv):
            m = cv["matrix"]
            return {
                "labels": cv["labels"],
                "matrix": None if m is None else [[float(x) for x in r] for r in m],
            }

        if len(cov) == 1:
            out["covariance"] = mat(next(iter(cov.values())))
        else:
            out["covariance"] = {"groups": [{"group": g, **mat(cv)} for g, cv in cov.items()]}
        out["covariance_parameters"] = self.covariance_parameter_rows()
        if lsmeans is not None:
            out["lsmeans"] = [{k: _nan_to_none(v) for k, v in r.items()} for r in records(lsmeans)]
        if contrasts is not None:
            out["contrasts"] = [{k: _nan_to_none(v) for k, v in r.items()} for r in records(contrasts)]
        return out

    def __repr__(self):
        return (
            f"<MMRMResult {self.formula!r} {self.method} {self.df_method}: -2LL {self.neg2_loglik:.6f}, "
            f"converged={self.converged}>"
        )


def records(table) -> list[dict]:
    """Rows as dicts of a polars frame or of {column: values}."""
    if isinstance(table, dict):
        return [dict(zip(table, vals)) for vals in zip(*table.values())]
    return list(table.iter_rows(named=True))


def format_coord(v):
    from .formula import format_level

    return format_level(v)
