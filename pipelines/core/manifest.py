"""The study manifest, ``study.yaml``: a typed schema and its loader.

A study folder holds ``study.yaml`` and the data files it names. The manifest says everything
trialpipe needs to read the files as they were received (REDCap/EDC exports, NDA structures,
SDTM XPT, plain wide or long CSV/Parquet) without code: arms and their roles, the visit schedule,
each source file with its layout, column mappings, code mappings and missing-value codes, and the
analysis options. ``docs/study.example.yaml`` is a complete commented example.

Errors point at the key at fault (``sources[1].columns.subject``) and, for YAML syntax errors, the
line.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.core.errors import ManifestError
from pipelines.instruments import load_instruments, resolve_instrument

MANIFEST_NAME = "study.yaml"

Layout = Literal["wide", "long", "nda", "sdtm"]
# Safety and exposure domains: one record per row (SDTM AE/VS/EX/DS, or a CSV/REDCap export with
# the same content mapped through ``fields``); see pipelines/ingest/safety.py.
SAFETY_KINDS = ("ae", "vs", "ex", "ds")
# A source's kind: one of these, or an instrument id (pipelines/instruments/*.yaml: pcl5, caps5, ...)
# for a file holding that one instrument.
KINDS = ("randomization", "assessments", "nda", "sdtm", *SAFETY_KINDS)
FileFormat = Literal["csv", "tsv", "txt", "parquet", "xpt"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _as_str_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (str, int, float)):
        return [str(v)]
    return [str(x) for x in v]


class Arm(_Strict):
    """A treatment arm. ``id`` is what outputs show (TRTP/TRT01P); ``codes`` are how the data spell it."""

    id: str
    label: str | None = None
    role: Literal["experimental", "control"]
    codes: list[str] = Field(default_factory=list)

    _codes = field_validator("codes", mode="before")(lambda cls, v: _as_str_list(v))

    @property
    def display(self) -> str:
        return self.label or self.id


class Visit(_Strict):
    """A scheduled visit: its id (AVISIT), nominal study day, and the labels the data use for it."""

    id: str
    label: str | None = None
    day: int
    baseline: bool = False
    primary: bool = False
    # treatment: the visit belongs to the randomized treatment phase and enters the efficacy models;
    # follow_up: an assessment after the treatment phase (durability of response only)
    phase: Literal["treatment", "follow_up", "infusion"] = "treatment"
    # phase infusion: an assessment at a time point of an infusion (CADSS/BPRS around each dose):
    # the infusion number, the time point's name and minutes from the start of the infusion
    # (ADQS INFNO / ATPT / ATPTN); such visits stay out of the efficacy models
    infusion: int | None = Field(None, ge=1)
    timepoint: str | None = None
    elapsed_min: int | None = None
    codes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _infusion_fields(self) -> Visit:
        if self.phase == "infusion" and self.infusion is None:
            raise ValueError(f"visit {self.id}: phase infusion needs infusion (the infusion number)")
        if self.phase != "infusion" and (self.infusion is not None or self.timepoint or self.elapsed_min is not None):
            raise ValueError(f"visit {self.id}: infusion, timepoint and elapsed_min are for visits of phase infusion")
        if self.phase == "infusion" and (self.baseline or self.primary):
            raise ValueError(f"visit {self.id}: an infusion time point cannot be the baseline or primary visit")
        return self

    _codes = field_validator("codes", mode="before")(lambda cls, v: _as_str_list(v))


class Columns(_Strict):
    """Our names (keys) -> the file's own column names (values). Only mapped columns are loaded."""

    subject: str | None = None
    visit: str | None = None
    study_day: str | None = None
    date: str | None = None
    # when a rating was taken relative to the dose (for the pre-dose baseline rule): a pre-dose
    # flag (Y/yes/1/true/pre/pre-dose vs N/no/0/false/post/post-dose) or minutes from the dose
    # (negative or zero = pre-dose, positive = post-dose)
    predose: str | None = None
    time_from_dose: str | None = None
    arm: str | None = None
    site: str | None = None
    sex: str | None = None
    age: str | None = None
    age_months: str | None = None
    age_band: str | None = None
    race: str | None = None
    ethnicity: str | None = None
    # randomization files: why the subject discontinued the study (empty = completed) -> ADSL DCSREAS
    discontinuation_reason: str | None = None
    # long layouts: one row per item
    item: str | None = None
    value: str | None = None
    instrument: str | None = None
    total: str | None = None


class Items(_Strict):
    """Where an instrument's items are.

    Wide layouts: ``columns`` (explicit list in the instrument's standard item order) or
    ``pattern`` (``pcl5_{n}``; ``{n:02d}`` for zero padding; ``{code}``/``{code_lower}`` for
    the item code such as ``B1``). Long layouts: ``codes`` maps the item column's values to item
    numbers, or ``pattern`` describes them; plain item numbers are accepted as they are.
    """

    columns: list[str] | None = None
    pattern: str | None = None
    codes: dict[str, int] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """``items: "pcl5_{n}"`` is a pattern, ``items: [a, b, ...]`` the columns."""
        if isinstance(v, str):
            return {"pattern": v}
        if isinstance(v, list):
            return {"columns": v}
        return v

    @model_validator(mode="after")
    def _one_way(self) -> Items:
        given = [x for x in (self.columns, self.pattern, self.codes) if x]
        if len(given) > 1:
            raise ValueError("give only one of 'columns', 'pattern' or 'codes'")
        seen: dict[str, int] = {}
        for i, col in enumerate(self.columns or [], start=1):
            if col in seen:
                raise ValueError(
                    f"columns: {col!r} is named twice, as item {seen[col]} and as item {i}; every item needs its own "
                    "column (one column twice would shift every later item by one)"
                )
            seen[col] = i
        return self


class InstrumentMap(_Strict):
    items: Items = Field(default_factory=Items)
    total: str | None = None


class Recode(_Strict):
    """Value mappings from the file's codes to manifest ids (matched after trimming, case-insensitive)."""

    visit: dict[str, str] = Field(default_factory=dict)
    arm: dict[str, str] = Field(default_factory=dict)
    instrument: dict[str, str] = Field(default_factory=dict)

    @field_validator("visit", "arm", "instrument", mode="before")
    @classmethod
    def _keys_as_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): str(val) for k, val in v.items()}
        return v


class NdaOptions(_Strict):
    structure: str | None = None
    item_set: str | None = None


class SdtmOptions(_Strict):
    domain: Literal["QS", "RS", "DM", "AE", "VS", "EX", "DS"] | None = None
    # instrument id -> category values (QSCAT/RSCAT) that mean it
    categories: dict[str, list[str]] = Field(default_factory=dict)
    # instrument id -> test-code pattern such as "PCL01{n:02d}"
    testcd_patterns: dict[str, str] = Field(default_factory=dict)


class Source(_Strict):
    """One data file and how to read it."""

    file: str
    name: str | None = None
    kind: str
    layout: Layout = "wide"
    format: FileFormat | None = None
    encoding: str = "utf-8"
    delimiter: str | None = None
    columns: Columns = Field(default_factory=Columns)
    # shorthand for single-instrument sources (kind: an instrument id such as pcl5)
    items: Items | None = None
    total: str | None = None
    # several instruments in one wide/long file: instrument id -> where its items are
    instruments: dict[str, InstrumentMap] = Field(default_factory=dict)
    recode: Recode = Field(default_factory=Recode)
    missing_codes: list[str] = Field(default_factory=list)
    nda: NdaOptions = Field(default_factory=NdaOptions)
    sdtm: SdtmOptions = Field(default_factory=SdtmOptions)
    # randomization files: extra baseline covariates, our name -> file column
    covariates: dict[str, str] = Field(default_factory=dict)
    # safety sources (kind ae | vs | ex | ds, CSV/REDCap): our field -> the file's column; fields
    # not given are looked up by their SDTM variable name (pipelines/ingest/safety.py FIELDS)
    fields: dict[str, str] = Field(default_factory=dict)

    _mc = field_validator("missing_codes", mode="before")(lambda cls, v: _as_str_list(v))

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in KINDS and v not in load_instruments():
            known = [*KINDS, *load_instruments()]
            raise ValueError(f"unknown kind {v!r}; choose one of {', '.join(known)}")
        return v

    @field_validator("delimiter", mode="before")
    @classmethod
    def _delim(cls, v: Any) -> Any:
        if isinstance(v, str) and v.lower() in ("tab", "\\t"):
            return "\t"
        return v

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        import codecs

        try:
            codecs.lookup(v)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {v!r} (use e.g. utf-8 or latin-1)") from exc
        return v

    @model_validator(mode="after")
    def _normalise(self) -> Source:
        if self.name is None:
            self.name = re.sub(r"[^A-Za-z0-9_]+", "_", Path(self.file).stem).strip("_").lower() or "source"
        if self.format is None:
            ext = Path(self.file).suffix.lower().lstrip(".")
            if ext in ("csv", "tsv", "txt", "parquet", "xpt"):
                self.format = ext  # type: ignore[assignment]
            elif ext == "pq":
                self.format = "parquet"
            else:
                raise ValueError(
                    f"cannot tell the format of {self.file!r} from its extension; set format: csv|tsv|parquet|xpt"
                )
        if self.kind in load_instruments():
            if self.kind in self.instruments:
                raise ValueError(f"kind {self.kind} already names the instrument; do not repeat it under 'instruments'")
            if self.items is not None or self.total is not None or self.layout in ("wide", "long"):
                self.instruments = {
                    self.kind: InstrumentMap(items=self.items or Items(), total=self.total),
                    **self.instruments,
                }
        for inst_id in self.instruments:
            if resolve_instrument(inst_id) is None:
                raise ValueError(
                    f"unknown instrument {inst_id!r}; known: {', '.join(sorted(load_instruments()))}"
                )
        if self.kind == "nda" and self.layout != "nda":
            self.layout = "nda"
        if self.kind == "sdtm" and self.layout != "sdtm":
            self.layout = "sdtm"
        if self.kind in SAFETY_KINDS:
            from pipelines.ingest.schema import check_fields

            check_fields(self.kind, self.fields)
            return self
        if self.fields:
            raise ValueError("'fields' is for safety sources (kind ae, vs, ex or ds)")
        if self.layout in ("wide", "long") and self.kind == "assessments" and not self.instruments:
            raise ValueError("kind 'assessments' needs 'instruments' saying where each instrument's items are")
        if self.layout == "long" and self.kind != "randomization":
            missing = [c for c in ("item", "value") if getattr(self.columns, c) is None]
            if missing:
                raise ValueError(f"layout long needs columns.{' and columns.'.join(missing)}")
        if self.layout == "wide":
            claimed: dict[str, str] = {}
            for inst_id, imap in self.instruments.items():
                for col in [*(imap.items.columns or []), *([imap.total] if imap.total else [])]:
                    other = claimed.get(col)
                    if other is not None and other != inst_id:
                        raise ValueError(
                            f"column {col!r} is claimed by both instruments {other!r} and {inst_id!r}; "
                            "a column can hold one instrument's item only"
                        )
                    claimed[col] = inst_id
        return self

    @property
    def instrument_ids(self) -> list[str]:
        return list(self.instruments)


class MissingItems(_Strict):
    """What to do when some items of a score are missing.

    ``none`` (default): the score is missing if any of its items is missing.
    ``prorate``: when at most ``max_missing`` items of the score are missing (scope ``scale``:
    counted over the whole score; ``cluster``: counted per DSM-5 cluster), the score is the mean
    of its answered items times its item count; under ``cluster`` each cluster is prorated on its
    own and a total is the sum of its prorated clusters (a scale without clusters is one group).
    ``rounding`` is applied once, to the prorated score: none (exact), half_up (x.5 up), floor,
    ceil. The record gets DTYPE = 'PRORATED'. See sql/analysis/scores.sql.
    """

    method: Literal["none", "prorate"] = "none"
    max_missing: int = Field(0, ge=0)
    scope: Literal["scale", "cluster"] = "scale"
    rounding: Literal["none", "half_up", "floor", "ceil"] = "none"

    @model_validator(mode="after")
    def _consistent(self) -> MissingItems:
        if self.method == "prorate" and self.max_missing < 1:
            raise ValueError("method prorate needs max_missing of at least 1 (with 0 nothing is ever prorated)")
        if self.method == "none" and self.max_missing > 0:
            raise ValueError("max_missing is used only with method: prorate; set method: prorate or drop max_missing")
        return self


class ProratedSensitivity(_Strict):
    """The prorated-score sensitivity MMRM run beside the primary when the study's rule is
    ``missing_items.method: none`` and any primary-parameter score was lost to missing items
    (no official PCL-5/CAPS-5 proration rule exists: this is the study's choice)."""

    enabled: bool = True
    max_missing: int = Field(2, ge=1)
    scope: Literal["scale", "cluster"] = "scale"


class Remission(_Strict):
    op: Literal["<", "<=", ">", ">="]
    value: float


_TERM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\s*[:*]\s*[A-Za-z_][A-Za-z0-9_]*)*$")


def _terms(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        v = v.split("+")
    out = [str(t).strip() for t in v if str(t).strip()]
    for t in out:
        if not _TERM.match(t):
            raise ValueError(
                f"{t!r} is not a model term; use the formula syntax of `trialpipe mmrm`: a variable (sex), "
                "an interaction (base:avisit) or a crossing (site*avisit)"
            )
    return out


class Model(_Strict):
    """The primary MMRM (contract default: chg ~ base + trtp * avisit + us(avisit | usubjid)).

    ``covariates`` and ``strata`` add fixed-effect terms in the formula syntax of ``trialpipe mmrm``
    (a list, or one string joined by ``+``): e.g. ``covariates: "base:avisit + sex + age"`` (the SAS
    reference model's BASVAL*VISIT is ``base:avisit``), ``strata: [site]`` (randomization
    stratification factors, main effects). Variables are ADQS's (base, avisit, trtp) or ADSL's
    (site, sex, age, age_band, race, ethnicity, or a declared covariate). The formula actually
    fitted is stored in results.model_fits.formula and printed in the report."""

    covariance: Literal["us", "cs", "csh", "ar1", "ar1h", "toep", "toeph", "ad", "adh"] = "us"
    df_method: Literal["kenward-roger", "satterthwaite", "residual", "between-within"] = "kenward-roger"
    fallbacks: list[str] = Field(default_factory=lambda: ["toeph", "ar1h", "cs"])
    reml: bool = True
    covariates: list[str] = Field(default_factory=list)
    strata: list[str] = Field(default_factory=list)

    _cov = field_validator("covariates", "strata", mode="before")(lambda cls, v: _terms(v))

    @property
    def extra_terms(self) -> list[str]:
        return [*self.strata, *self.covariates]


class Durability(_Strict):
    """Durability of response among responders at the primary visit (analysis.adtte LOSSRESP).

    Loss of response: at a follow-up assessment (a visit of phase follow_up) the parameter no longer
    meets its response criterion (CRIT1FL = 'N'); with ``consecutive: k`` only a run of k such
    assessments in a row counts, and the event day is the first of them. ``paramcd`` defaults to
    the primary parameter."""

    paramcd: str | None = None
    consecutive: int = Field(1, ge=1, le=10)


class Safety(_Strict):
    """Treatment-emergent AEs: onset on or after the first dose (EX) and, when
    ``teae_window_days`` is set, no later than that many days after the last dose."""

    teae_window_days: int | None = Field(None, ge=0)


class Analysis(_Strict):
    # default: the total of the first instrument definition (by its ``order``: CAPS-5)
    primary_parameter: str = Field(default_factory=lambda: next(iter(load_instruments().values())).total.paramcd)
    baseline: Literal["visit", "last_on_or_before_day0"] = "visit"
    repeated_assessments: Literal["last", "first", "mean"] = "last"
    missing_items: MissingItems = Field(default_factory=MissingItems)
    prorated_sensitivity: ProratedSensitivity = Field(default_factory=ProratedSensitivity)
    # PARAMCD -> minimum % reduction from baseline that counts as response
    response: dict[str, float] = Field(default_factory=dict)
    # PARAMCD -> remission threshold
    remission: dict[str, Remission] = Field(default_factory=dict)
    # PARAMCD -> diagnosis cut-off (score at or above it = provisional diagnosis); overrides the
    # instrument definition's diagnosis.cutoff
    cutoffs: dict[str, float] = Field(default_factory=dict)
    # Responder criterion "loss of diagnosis" (ADQS CRIT3FL, results.responders) for every instrument
    # whose definition has a diagnostic rule (diagnosis.rule, e.g. CAPS-5 DSM-5 PTSD) and whose
    # assessments carry its items; false = no CRIT3 / loss-of-diagnosis rows (DSMDXFL is still derived)
    loss_of_diagnosis: bool = True
    # Deprecated: the PCL-5 cut-off, kept so existing manifests keep working; use cutoffs: {PCL5TOT: 33}.
    pcl5_cutoff: float | None = None
    model: Model = Field(default_factory=Model)
    multiplicity: Literal["holm", "hochberg", "fdr_bh", "fixed_sequence", "bonferroni", "none"] = "holm"
    # random-effects sensitivity models (statsmodels MixedLM): instrument totals, every parameter, or none
    sensitivity_models: Literal["totals", "all", "none"] = "totals"
    alpha: float = Field(0.05, gt=0, lt=1)
    min_baseline_fraction: float = Field(0.8, ge=0, le=1)
    durability: Durability = Field(default_factory=Durability)
    safety: Safety = Field(default_factory=Safety)

    @model_validator(mode="after")
    def _known_parameters(self) -> Analysis:
        from pipelines.instruments import all_paramcds

        if self.pcl5_cutoff is not None:
            warnings.warn(
                "analysis.pcl5_cutoff is deprecated; write analysis.cutoffs: {PCL5TOT: "
                f"{self.pcl5_cutoff:g}}} instead",
                DeprecationWarning,
                stacklevel=2,
            )
            if "PCL5TOT" in self.cutoffs and self.cutoffs["PCL5TOT"] != self.pcl5_cutoff:
                raise ValueError("pcl5_cutoff and cutoffs.PCL5TOT disagree; keep cutoffs.PCL5TOT only")
            self.cutoffs = {"PCL5TOT": float(self.pcl5_cutoff), **self.cutoffs}
        known = all_paramcds()
        used = [("primary_parameter", self.primary_parameter)]
        used += [(f"response.{k}", k) for k in self.response]
        used += [(f"remission.{k}", k) for k in self.remission]
        used += [(f"cutoffs.{k}", k) for k in self.cutoffs]
        if self.durability.paramcd:
            used.append(("durability.paramcd", self.durability.paramcd))
        for key, paramcd in used:
            if paramcd not in known:
                raise ValueError(f"{key}: unknown parameter {paramcd!r}; known: {', '.join(known)}")
        for paramcd, pct in self.response.items():
            if not 0 < pct <= 100:
                raise ValueError(f"response.{paramcd}: {pct} is not a percent reduction between 0 (exclusive) and 100")
        return self


class IntercurrentEvent(_Strict):
    """An intercurrent event (ICH E9(R1)): how it is recognised in the data and the strategy for it.

    Recognition: ``column`` names a subject-level column (a randomization/subject source's
    ``covariates:`` key) holding a visit (id, label or code of the manifest's visits): with
    ``timing: after`` (default; e.g. the last visit on treatment) the visits after it are affected,
    with ``timing: at`` (e.g. the visit rescue medication started) that visit and the later ones. An
    empty value means the subject had no such event. Without ``column``, a discontinuation is
    recognised from the data as rbmi does: a subject whose values of the parameter are missing at the
    last visit(s) discontinued at the first visit of that trailing run.

    Strategies: ``hypothetical`` (post-event values are not used; they and missing values are imputed
    under ``imputation``: MAR, or a reference-based assumption J2R, CR, CIR, LMCF),
    ``treatment_policy`` (observed post-event values are used; missing ones imputed under
    ``imputation``), ``composite`` (the event makes the subject a non-responder; responder
    summaries only). ``while_on_treatment`` is accepted as an attribute but analysed as
    hypothetical MAR up to the event (values after it are not used), which the report says.
    """

    event: str = "discontinuation"
    column: str | None = None
    timing: Literal["after", "at"] = "after"
    strategy: Literal["hypothetical", "treatment_policy", "composite", "while_on_treatment"] = "hypothetical"
    imputation: Literal["MAR", "J2R", "CR", "CIR", "LMCF"] = "MAR"


class TippingPoint(_Strict):
    """Delta grid of the tipping-point analysis: shifts added to imputed post-event values of each arm
    (in units of the parameter; default: 11 steps from 0 to twice the primary estimate in the
    direction that removes the effect)."""

    enabled: bool = True
    experimental: list[float] | None = None
    control: list[float] | None = None
    cumulative: bool = False


class EstimandSensitivity(_Strict):
    """Missing-data sensitivity analyses of an estimand (reference-based imputation, see
    pipelines.stats.imputation)."""

    strategies: list[Literal["MAR", "J2R", "CR", "CIR", "LMCF"]] = Field(
        default_factory=lambda: ["MAR", "J2R", "CR", "CIR"]
    )
    method: Literal["condmean-jackknife", "condmean-bootstrap", "approx-bayes"] = "condmean-jackknife"
    n_samples: int | None = Field(None, ge=2)
    seed: int = 20260101
    # above this many subjects the leave-one-out jackknife (one refit per subject: cost grows as n^2)
    # becomes the delete-a-group jackknife with ``jackknife_groups`` random groups (Kott 2001); the
    # results' method column says which ran
    jackknife_max_subjects: int = Field(500, ge=2)
    jackknife_groups: int = Field(100, ge=2)
    tipping_point: TippingPoint = Field(default_factory=TippingPoint)


class Estimand(_Strict):
    """An estimand (ICH E9(R1)): treatment (the manifest's arms), population, variable (parameter at a
    visit), intercurrent events with their strategies, population-level summary.

    Without an ``estimands:`` block a study has one default estimand, id ``primary``: all
    randomized subjects, the primary parameter's change from baseline at the primary visit,
    treatment discontinuation (recognised from dropout) handled by the hypothetical strategy under
    MAR, summarised as the difference in LS-mean change -- what the primary MMRM estimates."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$")
    label: str | None = None
    population: Literal["randomized"] = "randomized"
    parameter: str | None = None
    visit: str | None = None
    intercurrent_events: list[IntercurrentEvent] = Field(default_factory=lambda: [IntercurrentEvent()])
    summary: Literal["difference_in_lsmean_change", "difference_in_response"] = "difference_in_lsmean_change"
    sensitivity: EstimandSensitivity = Field(default_factory=EstimandSensitivity)

    @model_validator(mode="after")
    def _consistent(self) -> Estimand:
        comp = [e for e in self.intercurrent_events if e.strategy == "composite"]
        if comp and self.summary != "difference_in_response":
            raise ValueError("a composite strategy needs summary: difference_in_response")
        events = [e.event for e in self.intercurrent_events]
        if len(set(events)) != len(events):
            raise ValueError(f"intercurrent_events: event names must be unique, got {events}")
        return self


class Dates(_Strict):
    """Calendar dates are identifiers unless shifted. ``shifted: true`` declares every date in the
    files as already shifted per subject (NDA masking); they are turned into study days and dropped."""

    shifted: bool = False


class Deidentification(_Strict):
    ages_top_coded: bool = False
    # columns the guard must not flag (reviewed by the study's privacy officer)
    allow_columns: list[str] = Field(default_factory=list)


class Manifest(_Strict):
    study_id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
    title: str | None = None
    arms: list[Arm] = Field(min_length=1, max_length=2)
    visits: list[Visit] = Field(min_length=1)
    sources: list[Source] = Field(min_length=1)
    dates: Dates = Field(default_factory=Dates)
    deidentification: Deidentification = Field(default_factory=Deidentification)
    analysis: Analysis = Field(default_factory=Analysis)
    # Source files live inside the study folder. A data directory elsewhere that a data manager has
    # reviewed can be allowed here by its absolute path; files may then be named by absolute path
    # (or reached through a symlink) inside it, and nowhere else.
    allow_outside: list[str] = Field(default_factory=list)
    # ICH E9(R1) estimands; empty = the documented default (see Estimand and default_estimands)
    estimands: list[Estimand] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistency(self) -> Manifest:
        ids = [a.id for a in self.arms]
        if len(set(ids)) != len(ids):
            raise ValueError(f"arms: duplicate arm id in {ids}")
        roles = [a.role for a in self.arms]
        if len(self.arms) == 2 and sorted(roles) != ["control", "experimental"]:
            raise ValueError("arms: a two-arm study needs one arm with role experimental and one with role control")
        _unique_codes("arms", [(a.id, [a.id, a.label, *a.codes]) for a in self.arms])
        vids = [v.id for v in self.visits]
        if len(set(vids)) != len(vids):
            raise ValueError(f"visits: duplicate visit id in {vids}")
        baselines = [v.id for v in self.visits if v.baseline]
        if len(baselines) != 1:
            raise ValueError(f"visits: exactly one visit needs baseline: true (found {len(baselines)})")
        primaries = [v.id for v in self.visits if v.primary]
        if len(primaries) > 1:
            raise ValueError(f"visits: at most one visit may be primary: true (found {primaries})")
        if not primaries:
            treatment = [v for v in self.visits if v.phase == "treatment"]
            (treatment or self.visits)[-1].primary = True
        order = [v.id for v in self.visits]
        primary = self.primary_visit.id
        for v in self.visits:
            if v.phase == "follow_up" and (v.baseline or order.index(v.id) <= order.index(primary)):
                raise ValueError(
                    f"visits: {v.id} has phase follow_up but is not after the primary visit {primary}; "
                    "follow-up visits come after the treatment phase"
                )
        _unique_codes("visits", [(v.id, [v.id, v.label, *v.codes]) for v in self.visits])
        for d in self.allow_outside:
            if not Path(d).is_absolute() or ".." in Path(d).parts:
                raise ValueError(f"allow_outside: {d!r} must be an absolute directory path without '..'")
        for i, s in enumerate(self.sources):
            p = Path(s.file)
            if ".." in p.parts:
                raise ValueError(f"sources[{i}].file: {s.file!r} climbs out of the study folder with '..'; "
                                 "put the file in the study folder (or list its reviewed directory in allow_outside)")
            if p.is_absolute() and not any(_inside(p, Path(d)) for d in self.allow_outside):
                raise ValueError(f"sources[{i}].file: {s.file!r} is an absolute path outside the study folder; "
                                 "name files relative to the study folder (or list a reviewed directory in allow_outside)")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"sources: two sources have the same name {names}; set 'name' to tell them apart")
        for i, s in enumerate(self.sources):
            for code, target in s.recode.visit.items():
                if target not in vids:
                    raise ValueError(f"sources[{i}].recode.visit: {code!r} maps to unknown visit {target!r}; visits are {vids}")
            arm_targets: dict[str, str] = {}
            for code, target in s.recode.arm.items():
                if target not in ids:
                    raise ValueError(f"sources[{i}].recode.arm: {code!r} maps to unknown arm {target!r}; arms are {ids}")
                arm_targets.setdefault(target, code)
            if len(s.recode.arm) > 1 and len(set(s.recode.arm.values())) == 1 and len(self.arms) == 2:
                raise ValueError(
                    f"sources[{i}].recode.arm: every code maps to {next(iter(s.recode.arm.values()))!r}; "
                    "both arms cannot share one code"
                )
        eids = [e.id for e in self.estimands]
        if len(set(eids)) != len(eids):
            raise ValueError(f"estimands: duplicate estimand id in {eids}")
        for i, e in enumerate(self.estimands):
            if e.visit is not None and e.visit not in vids:
                raise ValueError(f"estimands[{i}].visit: unknown visit {e.visit!r}; visits are {vids}")
            declared = {k for src in self.sources for k in src.covariates}
            for j, ev in enumerate(e.intercurrent_events):
                if ev.column is not None and ev.column not in declared:
                    raise ValueError(
                        f"estimands[{i}].intercurrent_events[{j}].column: {ev.column!r} is not a declared "
                        f"subject covariate; add it to a randomization source's covariates: (declared: "
                        f"{', '.join(sorted(declared)) or 'none'})"
                    )
            if e.parameter is not None:
                from pipelines.instruments import all_paramcds

                if e.parameter not in all_paramcds():
                    raise ValueError(f"estimands[{i}].parameter: unknown parameter {e.parameter!r}")
        return self

    def default_estimands(self) -> list[Estimand]:
        """The manifest's estimands, or the documented default (primary MMRM = hypothetical, MAR)."""
        return list(self.estimands) or [Estimand(id="primary")]

    # -- convenience -----------------------------------------------------------------------
    def source_path(self, study_dir: str | Path, source: Source) -> Path:
        """Where a source file is, checked to be inside the study folder (symlinks followed) or
        inside a directory listed in allow_outside."""
        study_dir = Path(study_dir).resolve()
        path = (study_dir / source.file).resolve()  # an absolute source.file stays as it is
        roots = [study_dir, *(Path(d).resolve() for d in self.allow_outside)]
        if not any(_inside(path, r) for r in roots):
            raise ManifestError(
                f"{source.file!r} resolves to a file outside the study folder (through a symlink or a path); "
                "copy the file into the study folder, or list its reviewed directory in allow_outside",
                file=str(study_dir / MANIFEST_NAME),
            )
        return path

    def visit_codes(self, source: Source) -> dict[str, str]:
        """code (as written) -> visit id: visits[].id/label/codes, then the source's recode.visit."""
        return {**_codes([(v.id, [v.id, v.label, *v.codes]) for v in self.visits]), **source.recode.visit}

    def arm_codes(self, source: Source) -> dict[str, str]:
        """code (as written) -> arm id: arms[].id/label/codes, then the source's recode.arm."""
        return {**_codes([(a.id, [a.id, a.label, *a.codes]) for a in self.arms]), **source.recode.arm}

    def named_instruments(self) -> list[str]:
        """Instrument ids the manifest names: by its sources (kind, instruments, NDA structure, SDTM
        maps) or its analysis options (primary parameter when given, response, remission, cut-offs)."""
        from pipelines.instruments import instrument_of_paramcd

        named: set[str] = set()
        for s in self.sources:
            named |= set(s.instruments) | set(s.sdtm.categories) | set(s.sdtm.testcd_patterns)
            if s.nda.structure:
                named |= {
                    i.id for i in load_instruments().values() if i.formats.nda and i.formats.nda.structure == s.nda.structure
                }
        a = self.analysis
        codes = [*a.response, *a.remission, *a.cutoffs]
        if "primary_parameter" in a.model_fields_set:
            codes.append(a.primary_parameter)
        named |= {inst.id for c in codes if (inst := instrument_of_paramcd(c)) is not None}
        return [i for i in load_instruments() if i in named]

    @property
    def baseline_visit(self) -> Visit:
        return next(v for v in self.visits if v.baseline)

    @property
    def primary_visit(self) -> Visit:
        return next(v for v in self.visits if v.primary)

    @property
    def treatment_visits(self) -> list[Visit]:
        """The visits of the treatment phase (the efficacy models use these only)."""
        return [v for v in self.visits if v.phase == "treatment"]

    @property
    def follow_up_visits(self) -> list[Visit]:
        return [v for v in self.visits if v.phase == "follow_up"]

    @property
    def experimental_arm(self) -> Arm | None:
        return next((a for a in self.arms if a.role == "experimental"), None)

    @property
    def control_arm(self) -> Arm | None:
        return next((a for a in self.arms if a.role == "control"), None)

    @property
    def single_arm(self) -> bool:
        return len(self.arms) == 1


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _codes(entries: list[tuple[str, list[str | None]]]) -> dict[str, str]:
    return {code: target for target, codes in entries for code in codes if code}


def _unique_codes(what: str, entries: list[tuple[str, list[str | None]]]) -> None:
    """A code (compared trimmed, case-insensitively) may name only one arm / visit."""
    seen: dict[str, str] = {}
    for target, codes in entries:
        for code in codes:
            if not code:
                continue
            key = code.strip().lower()
            if key in seen and seen[key] != target:
                raise ValueError(f"{what}: code {code!r} is given for both {seen[key]!r} and {target!r}")
            seen[key] = target


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _yaml_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line number of a key path in the YAML text (for error messages)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == part:
                    node, line = v, k.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


MAX_MANIFEST_BYTES = 1_000_000
MAX_MANIFEST_NODES = 100_000  # values after expanding aliases; a real study.yaml has a few hundred


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (with both lines)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[object, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key; the base class says so
                    break
                if first is not None:
                    raise ManifestError(
                        f"key {key!r} is given twice, at line {first} and at line {line}; "
                        "YAML would silently keep the second - keep one",
                        file=self._tp_file,
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node, limit: int) -> int:
    """Nodes in the document with every alias expanded, stopping at ``limit`` (an alias bomb
    composes to a small graph but expands to billions of values)."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(n) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        if key in active:
            raise ManifestError("an alias refers to itself (a recursive YAML anchor)")
        active.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            for child in n.value:
                total += size(child)
                if total > limit:
                    break
        elif isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += size(k) + size(v)
                if total > limit:
                    break
        active.discard(key)
        memo[key] = total
        return total

    return size(node)


def _load_yaml(text: str, file: str):
    if len(text.encode("utf-8", "replace")) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"is larger than {MAX_MANIFEST_BYTES // 1_000_000} MB; a study manifest is a few KB", file=file)
    loader = _StrictLoader(text)
    loader._tp_file = file
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            n = _expanded_size(node, MAX_MANIFEST_NODES)
        except ManifestError as exc:
            raise ManifestError(exc.message, file=file) from None
        if n > MAX_MANIFEST_NODES:
            raise ManifestError(
                f"expands to more than {MAX_MANIFEST_NODES:,} values through YAML aliases (&anchor / *alias); "
                "write the manifest out without aliases", file=file,
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def parse_manifest(text: str, *, file: str = MANIFEST_NAME) -> Manifest:
    try:
        data = _load_yaml(text, file)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ManifestError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", file=file) from None
    if not isinstance(data, dict):
        raise ManifestError("must be a YAML mapping with study_id, arms, visits and sources", file=file)
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            # pydantic puts the validator name into loc for unions; keep the keys people wrote
            key = _format_loc(loc)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see docs/study.example.yaml)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            line = _yaml_line(text, loc)
            lines.append(f"{key}{f' (line {line})' if line else ''}: {msg}")
        raise ManifestError("; ".join(lines), file=file) from None


def load_manifest(study_dir: str | Path) -> Manifest:
    """Read and check ``study.yaml`` in ``study_dir``; data files are checked when read."""
    study_dir = Path(study_dir)
    path = study_dir / MANIFEST_NAME
    if not study_dir.is_dir():
        raise ManifestError(f"study folder {study_dir} does not exist")
    if not path.is_file():
        raise ManifestError(f"no {MANIFEST_NAME} in {study_dir}; a study folder needs a manifest", file=str(path))
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"is larger than {MAX_MANIFEST_BYTES // 1_000_000} MB; a study manifest is a few KB", file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"is not UTF-8 text (byte {exc.start})", file=str(path)) from None
    except OSError as exc:
        raise ManifestError(f"cannot be read: {exc.strerror}", file=str(path)) from None
    manifest = parse_manifest(text, file=str(path))
    for s in manifest.sources:
        manifest.source_path(study_dir, s)  # raises for a file reached outside the study folder
    return manifest
