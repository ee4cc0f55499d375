"""R mmrm-style formulas: parsing, variable typing and the fixed-effects design.

Syntax: ``Y ~ fixed effects + COV(TIME | SUBJECT)`` or ``COV(TIME | GROUP / SUBJECT)``, with COV one of
``us cs csh ar1 ar1h toep toeph ad adh sp_exp sp_gau``. For the spatial ``sp_exp`` and ``sp_gau`` TIME is
one or more numeric coordinate columns (``sp_exp(VISITN | USUBJID)``, ``sp_gau(X, Y | USUBJID)``). The fixed-effects part is written
as in R and expanded by formulaic (``a*b``, ``a:b``, ``I(x**2)``, ``log(x)``...).

Variable typing (the rule is the same for the CLI and the API):

* the time variable of a non-spatial covariance term is a factor;
* string, boolean and categorical columns are factors;
* ``factor(X)`` or ``C(X)`` in the formula makes column X a factor (everywhere in the formula);
* any other numeric column is a continuous covariate.

Factor levels are sorted as R sorts them (numerically for numeric columns, by string otherwise)
unless ``levels={"X": [...]}`` gives the order; ``ref={"X": "level"}`` moves that level first. Contrasts
are treatment contrasts against the first level (R's default), so coefficient names follow R/mmrm:
``(Intercept)``, ``ARMCDTRT``, ``ARMCDTRT:AVISITVIS2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from pipelines.core.errors import ModelSpecError

from .covariance import STRUCTURES
from .frame import Frame, as_column, as_frame

_COV_RE = re.compile(
    r"^\s*(" + "|".join(sorted(STRUCTURES, key=len, reverse=True)) + r")\s*\((.*)\)\s*$", re.DOTALL
)
_FACTOR_RE = re.compile(r"\b(?:factor|as\.factor|C)\(\s*`?([A-Za-z_.][\w.]*)`?\s*\)")
_IDENT = r"[A-Za-z_.][\w.]*"


@dataclass
class ParsedFormula:
    formula: str
    response: str
    fixed_rhs: str
    cov_type: str
    time: list[str]
    group: str | None
    subject: str
    forced_factors: set[str] = field(default_factory=set)


def _split_top_level(text: str, sep: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_formula(formula: str) -> ParsedFormula:
    if not isinstance(formula, str) or "~" not in formula:
        raise ModelSpecError(
            f"formula {formula!r} has no '~'",
            hint='write it as "Y ~ A + B*VISIT + us(VISIT | SUBJECT)"',
        )
    lhs, rhs = formula.split("~", 1)
    response = lhs.strip().strip("`")
    if not re.fullmatch(_IDENT, response):
        raise ModelSpecError(
            f"the response {lhs.strip()!r} must be a single column name", hint="derive it in the data first"
        )
    forced = set(_FACTOR_RE.findall(rhs))
    rhs = _FACTOR_RE.sub(lambda m: m.group(1), rhs)
    cov_terms, fixed_terms = [], []
    for term in _split_top_level(rhs, "+"):
        if not term.strip():
            continue
        if _COV_RE.match(term):
            cov_terms.append(term)
        else:
            fixed_terms.append(term.strip())
    if len(cov_terms) != 1:
        known = ", ".join(sorted(STRUCTURES))
        raise ModelSpecError(
            f"formula {formula!r} needs exactly one covariance term, found {len(cov_terms)}",
            hint=f"add e.g. us(VISIT | SUBJECT); known structures: {known}",
        )
    m = _COV_RE.match(cov_terms[0])
    cov_type, inner = m.group(1), m.group(2)
    if "|" not in inner:
        raise ModelSpecError(
            f"covariance term {cov_terms[0].strip()!r} needs 'TIME | SUBJECT'",
            hint="e.g. us(AVISIT | USUBJID) or us(AVISIT | ARMCD / USUBJID)",
        )
    time_part, subj_part = inner.split("|", 1)
    group = None
    if "/" in subj_part:
        group, subject = (s.strip().strip("`") for s in subj_part.split("/", 1))
    else:
        subject = subj_part.strip().strip("`")
    time = [t.strip().strip("`") for t in re.split(r"[,+]", time_part) if t.strip()]
    for name in time + [subject] + ([group] if group else []):
        if not re.fullmatch(_IDENT, name):
            raise ModelSpecError(f"{name!r} in {cov_terms[0].strip()!r} is not a column name")
    if not STRUCTURES[cov_type].spatial and len(time) != 1:
        raise ModelSpecError(
            f"{cov_type}() takes one time variable, got {', '.join(time)}",
            hint="only the spatial sp_exp and sp_gau take several coordinates",
        )
    fixed_rhs = " + ".join(fixed_terms) if fixed_terms else "1"
    return ParsedFormula(
        formula=formula,
        response=response,
        fixed_rhs=fixed_rhs,
        cov_type=cov_type,
        time=time,
        group=group,
        subject=subject,
        forced_factors=forced,
    )


def r_column_name(name: str) -> str:
    """formulaic column name -> R model.matrix name: ``ARMCD[T.TRT]:AVISIT[T.VIS2]`` -> ``ARMCDTRT:AVISITVIS2``."""
    if name == "Intercept":
        return "(Intercept)"
    parts = []
    for part in name.split(":"):
        part = re.sub(r"^(.*)\[(?:T\.|S\.)?(.*)\]$", r"\1\2", part)
        parts.append(part)
    return ":".join(parts)


def format_level(value) -> str:
    """Level label as R prints it: 4.0 -> '4', 'VIS1' -> 'VIS1'."""
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (float, np.floating)):
        if float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    return str(value)


def check_reference(ref_label: str, levels: list[str], column: str, file: str | None, what: str = "level") -> None:
    """A reference ``what`` (level, arm) must be one of the column's ``levels``."""
    if ref_label not in levels:
        raise ModelSpecError(
            f"reference {what} {ref_label!r} does not occur in column {column}",
            file=file,
            column=column,
            value=ref_label,
            hint=f"{what}s are {', '.join(levels[:10])}{' ...' if len(levels) > 10 else ''}",
        )


def check_one_row_per_visit(subjects: np.ndarray, visits: np.ndarray, n_visits: int, *, subject_labels, visit_labels,
                            rows, column: str, file: str | None) -> None:
    """Each subject has at most one row per visit. ``subjects``/``visits`` are integer codes per row
    (labels by code), ``rows`` the file row of each data row, for the message."""
    key = np.asarray(subjects, dtype=np.int64) * (n_visits + 1) + np.asarray(visits, dtype=np.int64)
    _, first = np.unique(key, return_index=True)
    if len(first) < len(key):
        i = int(np.setdiff1d(np.arange(len(key)), first)[0])
        raise ModelSpecError(
            f"subject {subject_labels[subjects[i]]!r} has more than one row at {column} = {visit_labels[visits[i]]!r}",
            file=file,
            row=int(rows[i]),
            column=column,
            value=visit_labels[visits[i]],
            hint="each subject may have one observation per visit",
        )


def _unique_labels(series) -> list[str]:
    uniq = as_column(series).factorize()[1]
    return list(dict.fromkeys(format_level(v) for v in uniq))


def factor_levels(series, column: str, given: list | None, ref, file: str | None) -> list[str]:
    """Level order for a factor column (R order unless given), with the reference level first."""
    return factor_info(series, column, given, ref, file)[1]


def factor_info(series, column: str, given: list | None, ref, file: str | None):
    """(natural level order, coding order with the reference first, codes into ``labels``, labels)
    for a factor column (a :class:`.frame.Column`, pandas Series or array); codes are -1 for
    missing values."""
    col = as_column(series)
    codes, uniq = col.factorize()
    labels = [format_level(u) for u in uniq]
    if given is not None:
        natural = [format_level(v) for v in given]
        unknown = sorted(set(labels) - set(natural))
        if unknown:
            raise ModelSpecError(
                f"levels given for {column} do not include {unknown[0]!r}",
                file=file,
                column=column,
                value=unknown[0],
            )
    elif col.kind == "factor":
        natural = [format_level(v) for v in col.categories]
    elif col.kind in ("number", "bool"):
        natural = [format_level(v) for v in sorted(uniq)]
    else:
        natural = sorted(set(labels))
    order = natural
    if ref is not None:
        ref_label = format_level(ref)
        check_reference(ref_label, natural, column, file)
        order = [ref_label] + [lv for lv in natural if lv != ref_label]
    return natural, order, codes, labels


def _natural_key(label: str):
    """Numeric-aware sort key: 'V2' < 'V10', 'W4' < 'W12'."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", label)]


def data_order_levels(frame, column: str, subject: str) -> list[str]:
    """Levels of a (text) time column in the order the data visit them.

    Within each subject the rows say which level comes before which; the levels are put in an order
    that agrees with every subject (a topological order of "a is followed by b in some subject");
    where the data do not decide (no subject has both levels) the numeric-aware sort does ('W2'
    before 'W4'). A subject that skipped a visit does not matter. When subjects disagree (rows not in
    time order) the levels are sorted numeric-aware ('V2' before 'V10') instead."""
    frame = as_frame(frame)
    keep = ~(frame[subject].na | frame[column].na)
    if not keep.any():
        return []
    col_codes, col_uniq = frame[column].take(keep).factorize()
    codes, labels = as_column([format_level(v) for v in col_uniq]).factorize()  # labels may coincide: 4 and 4.0
    codes = codes[col_codes]
    subj = frame[subject].take(keep).factorize()[0]
    same = subj[1:] == subj[:-1]
    a, b = codes[:-1][same], codes[1:][same]
    keep = a != b
    edges = set(zip(a[keep].tolist(), b[keep].tolist()))
    n = len(labels)
    succ: dict[int, set[int]] = {i: set() for i in range(n)}
    indeg = [0] * n
    for x, y in edges:
        if y not in succ[x]:
            succ[x].add(y)
            indeg[y] += 1
    keys = [_natural_key(lab) for lab in labels]
    ready = [i for i in range(n) if indeg[i] == 0]
    out = []
    while ready:
        ready.sort(key=lambda k: keys[k])
        i = ready.pop(0)
        out.append(i)
        for j in succ[i]:
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(j)
    if len(out) < n:  # subjects disagree on the order
        return sorted(labels, key=_natural_key)
    return [labels[i] for i in out]


def sum_coded_rhs(rhs: str, factors: list[str]) -> str:
    """Wrap every factor in C(., contr.sum): the parameterisation in which SAS Type III hypotheses are
    the hypotheses 'all of this term's coefficients are zero'."""
    out = rhs
    for f in sorted(factors, key=len, reverse=True):
        out = re.sub(rf"(?<![\w.`]){re.escape(f)}(?![\w.`(])", f"C({f}, contr.sum)", out)
    return out


def full_rank_columns(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Boolean mask of the columns SAS keeps: sweeping columns in order, a column linearly dependent
    on the columns before it is aliased (its estimate set to zero by SAS's generalised inverse)."""
    n, k = X.shape
    keep = np.zeros(k, dtype=bool)
    if k == 0:
        return keep
    norms = np.linalg.norm(X, axis=0)
    Q = np.zeros((n, 0))
    for j in range(k):
        if norms[j] == 0:
            continue
        v = X[:, j] / norms[j]
        for _ in range(2):  # re-orthogonalise for stability
            v = v - Q @ (Q.T @ v)
        r = np.linalg.norm(v)
        if r > tol:
            keep[j] = True
            Q = np.column_stack([Q, v / r])
    return keep


_SIMPLE_RHS = re.compile(r"[\w.\s+*:]*")


def simple_terms(rhs: str) -> list[list[str]] | None:
    """Terms of a fixed-effects formula made only of column names, ``+``, ``*`` and ``:`` (the usual
    MMRM), expanded and ordered as formulaic and R do: intercept first, then terms by degree in
    order of appearance, ``a*b`` = ``a + b + a:b``. None for anything else (transforms, ``-``,
    ``0``, parentheses...), which then goes through formulaic. Saves importing formulaic (a
    quarter of ``trialpipe mmrm``'s start-up) for the common case; tests check it against formulaic."""
    text = rhs.strip()
    if not _SIMPLE_RHS.fullmatch(text):
        return None
    terms: list[tuple[str, ...]] = []
    for piece in text.split("+"):
        piece = piece.strip()
        if piece == "1":
            continue
        if not piece:
            return None
        groups = []
        for g in piece.split("*"):
            names = [n.strip() for n in g.split(":")]
            if not all(re.fullmatch(_IDENT, n) for n in names):
                return None
            groups.append(tuple(dict.fromkeys(names)))
        subsets = [()]
        for g in groups:  # R's expansion order: a, b, a:b, c, a:c, b:c, a:b:c
            subsets += [tuple(dict.fromkeys(sub + g)) for sub in subsets]
        terms += [t for t in subsets if t]
    seen: dict[frozenset, tuple[str, ...]] = {}
    for t in terms:
        key = frozenset(t)
        if key in seen:
            if seen[key] != t:  # the same term spelt in two factor orders: leave it to formulaic
                return None
            continue
        seen[key] = t
    ordered = sorted(seen.values(), key=len)  # stable: by degree, then order of appearance
    return [[]] + [list(t) for t in ordered]


class DesignBuilder:
    """Builds the fixed-effects matrix for a data frame (the analysis rows or an LS-means grid).

    Hierarchical formulas of plain column names (the usual MMRM) are materialised directly with
    numpy -- treatment contrasts, interaction columns with the first factor varying fastest, as
    formulaic and R order them; anything else (transforms such as ``log(x)``, non-hierarchical
    terms) goes through formulaic. Both give formulaic's column names."""

    def __init__(self, rhs: str, data, factors: set[str]):
        data = as_frame(data)
        self.rhs = rhs
        self.factors = set(factors)
        self.spec = None
        simple = simple_terms(rhs)
        fast = True
        if simple is not None:
            self.term_factors = simple
        else:
            import formulaic

            self.term_factors = []
            for t in formulaic.Formula(rhs):
                fs = []
                for f in t.factors:
                    ev = getattr(f.eval_method, "value", str(f.eval_method))
                    if ev == "literal" and str(f) == "1":
                        continue
                    if ev != "lookup":
                        fast = False
                    fs.append(str(f))
                self.term_factors.append(fs)
        sets = {frozenset(fs) for fs in self.term_factors}
        has_intercept = frozenset() in sets
        for fs in self.term_factors:
            for f in fs:
                if f in self.factors:
                    rest = frozenset(fs) - {f}
                    if rest not in sets or (not rest and not has_intercept):
                        fast = False
        self.fast = fast
        if fast:
            self.levels = {f: list(data[f].categories) for f in self.factors if f in data.columns}
            self.columns = []
            self.term_indices = {}
            for fs in self.term_factors:
                names = [""]
                for f in fs:
                    if f in self.factors:
                        labs = [f"{f}[T.{lv}]" for lv in self.levels[f][1:]]
                    else:
                        labs = [f]
                    names = [f"{n}:{lab}" if n else lab for lab in labs for n in names]
                label = "1" if not fs else ":".join(fs)
                start = len(self.columns)
                self.columns += ["Intercept"] if not fs else names
                self.term_indices[label] = list(range(start, len(self.columns)))
        else:
            import formulaic

            mm = formulaic.model_matrix(rhs, data.to_pandas(), na_action="raise")
            self.spec = mm.model_spec
            self.columns = list(mm.columns)
            self.term_indices = {}
            self.term_factors = []
            for term, cols in self.spec.term_indices.items():
                fs = [str(f) for f in term.factors if str(f) != "1"]
                self.term_factors.append(fs)
                self.term_indices["1" if str(term) == "1" else str(term)] = list(cols)
            self._first = np.asarray(mm.values, dtype=float)

    def matrix(self, data) -> np.ndarray:
        """The design of ``data`` (a :class:`.frame.Frame` with the factors as factor columns, or a
        pandas frame with them as Categorical); None: the frame the builder was made with (formulaic path)."""
        if not self.fast:
            if getattr(self, "_first", None) is not None and data is None:
                return self._first
            data = data.to_pandas() if isinstance(data, Frame) else data
            return np.asarray(self.spec.get_model_matrix(data, na_action="raise").values, dtype=float)
        data = as_frame(data)
        n = len(data)
        blocks = []
        for fs in self.term_factors:
            cur = np.ones((n, 1))
            for f in fs:
                if f in self.factors:
                    codes = np.asarray(data[f].values, dtype=int)
                    k = len(self.levels[f])
                    D = np.zeros((n, k))
                    D[np.arange(n), codes] = 1.0
                    if np.any(codes < 0):
                        D[codes < 0] = np.nan
                    F = D[:, 1:]
                else:
                    F = data[f].to_float()[:, None]
                # new factor's columns outer, existing columns inner (first factor fastest)
                cur = (F[:, :, None] * cur[:, None, :]).reshape(n, -1)
            blocks.append(cur)
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0))
