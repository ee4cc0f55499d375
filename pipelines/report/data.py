"""Everything the study report, the Dagster metadata and the headline read from the warehouse.

One reader, :func:`load_study`, turns a DuckDB connection holding a study's tables (contract
names: ``ref.*``, ``analysis.adsl``, ``analysis.adqs``, ``results.*``, ``qc.*``, ``meta.runs``) into
a :class:`StudyData` of small Python objects. It never raises for missing tables, columns or rows:
what is absent is listed in ``StudyData.notes`` and the sections that need it say so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field

import duckdb
import polars as pl

from pipelines.core import warehouse
from pipelines.instruments import all_paramcds, load_instruments, parameter_order, score_of_paramcd
from pipelines.report.fmt import is_num
from pipelines.stats.efficacy.schema import TABLES as RESULT_TABLES

log = logging.getLogger(__name__)

MODELS = ("mmrm", "mmrm_prorated", "lmm_ri", "lmm_rs")
MODEL_LABEL = {
    "mmrm": "MMRM",
    "mmrm_prorated": "MMRM, prorated scores (mmrm_prorated)",
    "lmm_ri": "Random intercept (lmm_ri)",
    "lmm_rs": "Random intercept + slope (lmm_rs)",
}
# The columns of each results table the report reads (sql/results/_schema.yml, through the efficacy
# schema): missing ones are added as NULL so callers can rely on them.
CONTRACT_COLUMNS = {table: list(cols) for table, cols in RESULT_TABLES.items()}


@dataclass
class Arm:
    id: str
    label: str
    role: str  # experimental | control | "" when unknown
    n: int | None = None  # randomized


@dataclass
class Visit:
    id: str
    label: str
    day: int | None
    order: int
    is_baseline: bool = False
    is_primary: bool = False
    phase: str = "treatment"  # manifest visits[].phase: treatment | follow_up | infusion


@dataclass
class Param:
    paramcd: str
    label: str  # e.g. "CAPS-5 total", "Cluster B (Intrusion)"
    long_label: str  # the PARAM text
    instrument: str  # the instrument's name (CAPS-5, HAM-D-17, ...) or "other"
    is_total: bool
    cluster: str | None  # the cluster a subscale covers (CAPS-5 B..E); None for totals and others
    max_score: float | None  # top of the score range
    min_score: float = 0.0  # bottom of the score range (BPRS total 18)
    change_scale: bool = False  # rated as change itself (CGI-I): no baseline, analysed as AVAL

    @property
    def full_label(self) -> str:
        """Unambiguous across instruments: 'CAPS-5 total', 'PCL-5 cluster B (Intrusion)'."""
        if self.is_total or self.instrument == "other":
            return self.label
        return f"{self.instrument} {self.label[0].lower()}{self.label[1:]}"

    @property
    def axis_label(self) -> str:
        rng = f" ({self.min_score:g}\u2013{self.max_score:g})" if self.max_score else ""
        return f"{self.instrument} {'total' if self.is_total else self.label}{rng}"


@dataclass
class StudyData:
    """One study's tables and options as the report and the Dagster metadata draw them."""

    study_id: str
    run_id: str | None
    arms: list[Arm]
    visits: list[Visit]
    primary_visit: str | None
    baseline_visit: str | None
    primary_parameter: str
    options: dict  # the study's ref.study row (title, alpha, multiplicity, covariance, ...)
    params: dict[str, Param]
    adsl: pl.DataFrame | None
    adqs: pl.DataFrame | None  # ANL01FL = 'Y' records only
    results: dict[str, pl.DataFrame | None]  # contract name -> rows of this study (None: table missing)
    run: dict | None  # meta.runs row
    source_files: list[dict]
    notes: list[str] = field(default_factory=list)
    named_instruments: list[str] = field(default_factory=list)  # instruments study.yaml names
    # instruments rated only at time points around an infusion (ADQS ANL02FL; CADSS/BPRS): safety data, not
    # in the by-visit sections, summarised in the safety section
    timepoint_instruments: list[str] = field(default_factory=list)

    # -- study options (ref.study) ---------------------------------------------------------------
    @property
    def title(self) -> str | None:
        return self.options.get("title")

    @property
    def alpha(self) -> float:
        alpha = self.options.get("alpha")
        return float(alpha) if is_num(alpha) else 0.05

    @property
    def multiplicity(self) -> str | None:
        return self.options.get("multiplicity")

    # -- lookups -------------------------------------------------------------------------------
    @property
    def single_arm(self) -> bool:
        return len(self.arms) < 2

    @property
    def experimental(self) -> Arm | None:
        return next((a for a in self.arms if a.role == "experimental"), self.arms[0] if self.arms else None)

    @property
    def control(self) -> Arm | None:
        if self.single_arm:
            return None
        return next((a for a in self.arms if a.role == "control"), self.arms[-1])

    def arm_label(self, arm_id) -> str:
        a = next((a for a in self.arms if a.id == arm_id), None)
        return a.label if a else str(arm_id)

    def visit(self, visit_id) -> Visit | None:
        return next((v for v in self.visits if v.id == visit_id), None)

    def visit_label(self, visit_id) -> str:
        v = self.visit(visit_id)
        return v.label if v else str(visit_id)

    def param(self, paramcd: str) -> Param:
        return self.params.get(paramcd) or _param_from_code(paramcd, None)

    def rows(self, table: str, **where) -> list[dict]:
        """Rows of a results table matching ``column=value`` filters (``[]`` when the table is missing)."""
        df = self.results.get(table)
        if df is None or df.is_empty():
            return []
        out = df.to_dicts()
        for k, v in where.items():
            out = [r for r in out if r.get(k) == v]
        return out

    def has_rows(self, table: str) -> bool:
        df = self.results.get(table)
        return df is not None and not df.is_empty()

    def instruments_present(self) -> list[str]:
        """Instruments with any analysis value or any result, in report order."""
        codes = set()
        if self.adqs is not None and not self.adqs.is_empty():
            codes |= set(self.adqs["paramcd"].unique().to_list())
        for df in self.results.values():
            if df is not None and "paramcd" in df.columns and not df.is_empty():
                codes |= set(df["paramcd"].drop_nulls().unique().to_list())
        present = {self.param(c).instrument for c in codes}
        defined = [i.instrument for i in load_instruments().values()]
        return [i for i in defined if i in present] + sorted(present - set(defined))

    def instruments_expected(self) -> list[str]:
        """Instruments the manifest names (ref.instruments.in_manifest), in definition order."""
        return self.named_instruments

    def paramcds(self) -> list[str]:
        """Parameters with analysis values or results, in report order."""
        codes = set()
        if self.adqs is not None and not self.adqs.is_empty():
            codes |= set(self.adqs["paramcd"].drop_nulls().unique().to_list())
        for df in self.results.values():
            if df is not None and "paramcd" in df.columns and not df.is_empty():
                codes |= set(df["paramcd"].drop_nulls().unique().to_list())
        return order_params(codes)

    def model_fit(self, paramcd: str, model: str = "mmrm") -> dict | None:
        rows = self.rows("results.model_fits", paramcd=paramcd, model=model)
        return rows[0] if rows else None

    def effect(self, paramcd: str, visit: str | None = None, model: str = "mmrm") -> dict | None:
        visit = visit or self.primary_visit
        rows = self.rows("results.treatment_effects", paramcd=paramcd, model=model)
        hit = [r for r in rows if r.get("avisit") == visit] or [
            r for r in rows if r.get("is_primary") and visit is None
        ]
        return hit[0] if hit else None

    def lsmean(self, paramcd: str, arm: str, visit: str | None = None, model: str = "mmrm") -> dict | None:
        visit = visit or self.primary_visit
        rows = self.rows("results.lsmeans", paramcd=paramcd, model=model, trtp=arm, avisit=visit)
        return rows[0] if rows else None

    @property
    def level(self) -> float:
        from pipelines.report.fmt import level_of

        return level_of(self.alpha)


def order_params(codes) -> list[str]:
    return parameter_order(codes)


def _param_from_code(paramcd: str, long_label: str | None) -> Param:
    """A parameter's labels and range from its instrument definition (pipelines/instruments/*.yaml)."""
    found = score_of_paramcd(paramcd)
    if found is None:
        return Param(paramcd, long_label or paramcd, long_label or paramcd, "other", False, None, None)
    inst, sc = found
    lo, hi = inst.score_range(sc)
    return Param(
        paramcd,
        inst.score_label(sc),
        long_label or sc.param,
        inst.instrument,
        sc.primary_total,
        inst.score_cluster(sc),
        hi,
        lo,
        inst.change_scale,
    )


# ------------------------------------------------------------------------------------------ reading
has_table = warehouse.table_exists  # a table or a view


columns = warehouse.column_names  # in order; [] for a missing table


def read_table(
    con: duckdb.DuckDBPyConnection, table: str, study_id: str, where: str = ""
) -> pl.DataFrame | None:
    """The study's rows of ``table`` (all rows when it has no study_id column); None when it does not exist."""
    if not has_table(con, table):
        return None
    cols = columns(con, table)
    clauses, params = [], []
    if "study_id" in cols:
        clauses.append("study_id = ?")
        params.append(study_id)
    if where:
        clauses.append(where)
    sql = f"select * from {table}" + (" where " + " and ".join(clauses) if clauses else "")
    try:
        return con.execute(sql, params).pl()
    except duckdb.Error as exc:  # a malformed table must not stop the report
        log.warning("could not read %s: %s", table, exc)
        return None


def with_columns(df: pl.DataFrame | None, cols: list[str]) -> pl.DataFrame | None:
    if df is None:
        return None
    missing = [c for c in cols if c not in df.columns]
    return df.with_columns([pl.lit(None).alias(c) for c in missing]) if missing else df


def _first(df: pl.DataFrame | None) -> dict:
    if df is None or df.is_empty():
        return {}
    return df.row(0, named=True)


def latest_run(con: duckdb.DuckDBPyConnection, study_id: str) -> str | None:
    """The study's latest run id: meta.runs (successful first), else results, else qc.source_files."""
    if has_table(con, "meta.runs"):
        row = con.execute(
            "select run_id from meta.runs where study_id = ? order by status = 'success' desc, "
            "finished_at desc nulls last limit 1",
            [study_id],
        ).fetchone()
        if row:
            return row[0]
    for table in ("results.treatment_effects", "qc.source_files"):
        if has_table(con, table) and "run_id" in columns(con, table):
            row = con.execute(f"select max(run_id) from {table} where study_id = ?", [study_id]).fetchone()
            if row and row[0]:
                return row[0]
    return None


def content_digest(*values) -> str | None:
    """A digest of what ``values`` hold (a :class:`StudyData`, frames, rows, plain values), equal for
    equal contents within this process; None when a value shows no content (a repr with its
    address), so a cache keyed on it is never wrong, only missed. Frames count by schema and
    row hashes (polars ``hash_rows``, stable within a process), in any order."""
    h = hashlib.blake2b(digest_size=16)

    def feed(v) -> bool:
        if isinstance(v, pl.DataFrame):
            h.update(repr(v.schema).encode())
            h.update(str(v.height).encode())
            if v.height and v.width:
                try:
                    # sorted: the same rows in another order (a scan without ORDER BY) are the same content
                    h.update(v.hash_rows(seed=0).sort().to_numpy().tobytes())
                except pl.exceptions.PolarsError:  # a column type polars cannot hash
                    return False
            return True
        if isinstance(v, StudyData):
            return all(feed(getattr(v, f.name)) for f in dataclasses.fields(v))
        if isinstance(v, dict):
            h.update(b"{")
            ok = all(feed(k) and feed(x) for k, x in v.items())
            h.update(b"}")
            return ok
        if isinstance(v, (list, tuple)):
            h.update(b"[")
            ok = all(feed(x) for x in v)
            h.update(b"]")
            return ok
        text = repr(v)
        h.update(text.encode())
        h.update(b"|")
        return " at 0x" not in text

    return h.hexdigest() if all(feed(v) for v in values) else None


def load_study(con: duckdb.DuckDBPyConnection, study_id: str, run_id: str | None = None) -> StudyData:
    notes: list[str] = []
    run_id = run_id or latest_run(con, study_id)

    study = _first(read_table(con, "ref.study", study_id))
    if not study:
        notes.append(
            "ref.study is missing: study options (visits, primary visit, alpha) are inferred from the data."
        )

    adsl = read_table(con, "analysis.adsl", study_id)
    if adsl is None:
        notes.append("analysis.adsl is missing: no participant flow or baseline characteristics.")
    adqs = (
        read_table(con, "analysis.adqs", study_id, "anl01fl = 'Y'")
        if has_table(con, "analysis.adqs")
        else None
    )
    if adqs is None:
        notes.append("analysis.adqs is missing: no observed values, trajectories or baseline scores.")

    results: dict[str, pl.DataFrame | None] = {}
    for table, cols in CONTRACT_COLUMNS.items():
        df = read_table(con, table, study_id)
        if df is None:
            notes.append(f"{table} does not exist (the statistics have not run for this warehouse).")
        elif df.is_empty():
            notes.append(f"{table} has no rows for {study_id}.")
        results[table] = with_columns(df, cols)
    # optional tables (not in the contract): absent in older warehouses, no note
    for table in ("results.missing_items",):
        results[table] = read_table(con, table, study_id) if has_table(con, table) else None

    # arms
    arms: list[Arm] = []
    ref_arms = read_table(con, "ref.arms", study_id)
    if ref_arms is not None and not ref_arms.is_empty():
        for r in ref_arms.sort("armn").to_dicts() if "armn" in ref_arms.columns else ref_arms.to_dicts():
            arms.append(Arm(str(r["arm"]), r.get("arm_label") or str(r["arm"]), r.get("arm_role") or ""))
    elif adsl is not None and not adsl.is_empty() and "trt01p" in adsl.columns:
        seen = {}
        for r in adsl.to_dicts():
            if r.get("trt01p") and r["trt01p"] not in seen:
                seen[r["trt01p"]] = Arm(
                    r["trt01p"], r.get("arm_label") or r["trt01p"], r.get("arm_role") or ""
                )
        arms = list(seen.values())
    else:
        ls = results.get("results.lsmeans")
        if ls is not None and not ls.is_empty():
            arms = [Arm(str(a), str(a), "") for a in sorted(ls["trtp"].drop_nulls().unique().to_list())]
    arms.sort(key=lambda a: {"experimental": 0, "control": 1}.get(a.role, 2))
    if adsl is not None and "trt01p" in adsl.columns:
        counts = (
            dict(adsl.filter(pl.col("randfl") == "Y").group_by("trt01p").len().iter_rows())
            if "randfl" in adsl.columns
            else {}
        )
        for a in arms:
            a.n = int(counts.get(a.id, 0))
    if not arms:
        notes.append("No arms found (ref.arms, analysis.adsl and results.lsmeans are empty).")

    # visits
    visits: list[Visit] = []
    ref_visits = read_table(con, "ref.visits", study_id)
    if ref_visits is not None and not ref_visits.is_empty():
        for r in ref_visits.sort("avisitn").to_dicts():
            visits.append(
                Visit(
                    str(r["visit"]),
                    r.get("visit_label") or str(r["visit"]),
                    r.get("nominal_day"),
                    int(r["avisitn"]),
                    bool(r.get("is_baseline")),
                    bool(r.get("is_primary")),
                    str(r.get("phase") or "treatment"),
                )
            )
    elif adqs is not None and not adqs.is_empty():
        vs = adqs.group_by("avisit").agg(pl.col("avisitn").min(), pl.col("ady").median()).sort("avisitn")
        for r in vs.to_dicts():
            visits.append(
                Visit(
                    r["avisit"], r["avisit"], int(r["ady"]) if is_num(r["ady"]) else None, int(r["avisitn"])
                )
            )

    primary_visit = study.get("primary_visit")
    if not primary_visit:
        te = results.get("results.treatment_effects")
        prim = te.filter(pl.col("is_primary") == True) if te is not None and not te.is_empty() else None
        if prim is not None and not prim.is_empty():
            primary_visit = prim["avisit"][0]
        else:
            primary_visit = next((v.id for v in visits if v.is_primary), visits[-1].id if visits else None)
    for v in visits:
        v.is_primary = v.id == primary_visit
    baseline_visit = study.get("baseline_visit") or next((v.id for v in visits if v.is_baseline), None)
    for v in visits:
        v.is_baseline = v.id == baseline_visit

    # parameters
    labels: dict[str, str] = {}
    if adqs is not None and not adqs.is_empty() and "param" in adqs.columns:
        labels = dict(adqs.select("paramcd", "param").unique("paramcd").iter_rows())
    codes = set(labels) | set(all_paramcds())
    params = {c: _param_from_code(c, labels.get(c)) for c in sorted(codes)}  # one order in every process

    run = None
    runs = read_table(con, "meta.runs", study_id)
    if runs is not None and not runs.is_empty():
        match = runs.filter(pl.col("run_id") == run_id) if run_id else runs.head(0)
        run = _first(match) or None
    source_files: list[dict] = []
    sf = read_table(con, "qc.source_files", study_id)
    if sf is not None and not sf.is_empty():
        if run_id and "run_id" in sf.columns and not sf.filter(pl.col("run_id") == run_id).is_empty():
            sf = sf.filter(pl.col("run_id") == run_id)
        source_files = sf.sort("_source_file").to_dicts() if "_source_file" in sf.columns else sf.to_dicts()

    if len(arms) < 2:  # a single-arm study has no between-arm results by design
        notes = [n for n in notes if not n.startswith("results.treatment_effects")]
    primary_parameter = study.get("primary_parameter") or next(
        (c for c in order_params(labels) if params[c].is_total), all_paramcds()[0]
    )
    return StudyData(
        study_id=study_id,
        run_id=run_id,
        arms=arms,
        visits=visits,
        primary_visit=primary_visit,
        baseline_visit=baseline_visit,
        primary_parameter=primary_parameter,
        options=study,
        params=params,
        adsl=adsl,
        adqs=adqs,
        results=results,
        run=run,
        source_files=source_files,
        notes=notes,
        named_instruments=_named_instruments(con, study_id),
        timepoint_instruments=_timepoint_instruments(con, study_id),
    )


def _timepoint_instruments(con: duckdb.DuckDBPyConnection, study_id: str) -> list[str]:
    if not has_table(con, "analysis.adqs"):
        return []
    if "anl02fl" not in con.execute("select * from analysis.adqs limit 0").pl().columns:
        return []
    return [
        r[0]
        for r in con.execute(
            "select distinct parcat1 from analysis.adqs where study_id = ? and anl02fl = 'Y' order by 1", [study_id]
        ).fetchall()
    ]


def _named_instruments(con: duckdb.DuckDBPyConnection, study_id: str) -> list[str]:
    ref = read_table(con, "ref.instruments", study_id)
    if ref is None or "in_manifest" not in ref.columns:
        return []
    named = set(ref.filter(pl.col("in_manifest"))["instrument"].to_list())
    return [i.instrument for i in load_instruments().values() if i.instrument in named]


def input_hashes(data: StudyData, provenance: dict | None = None) -> dict[str, str]:
    """file -> SHA-256: given provenance first, then meta.runs.input_sha256s, then qc.source_files."""
    if provenance and provenance.get("input_sha256s"):
        v = provenance["input_sha256s"]
        return dict(json.loads(v) if isinstance(v, str) else v)
    if data.run and data.run.get("input_sha256s"):
        try:
            recorded = dict(json.loads(data.run["input_sha256s"]))
        except (TypeError, ValueError):
            recorded = {}
        if recorded:
            return recorded
    return {
        r["_source_file"]: r.get("_source_sha256") or "" for r in data.source_files if r.get("_source_file")
    }
