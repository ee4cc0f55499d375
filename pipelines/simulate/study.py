"""Write a complete simulated study folder: the data files and the ``study.yaml`` that reads them."""

from __future__ import annotations

import importlib.metadata
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.instruments import load_instruments
from pipelines.core.manifest import MANIFEST_NAME, load_manifest
from pipelines.simulate import formats as F
from pipelines.simulate.trial import (
    ARMS,
    INSTRUMENT_ORDER,
    Trial,
    VisitSpec,
    build_trial,
)

STUDY_ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")  # as pipelines.core.manifest.Manifest.study_id
NDA_SUBJECT_ID_MAX = 45  # NDA src_subject_id is String(45)


@dataclass(frozen=True)
class WrittenStudy:
    folder: Path
    files: list[Path]  # relative to folder, study.yaml last
    n_subjects: int


def _version() -> str:
    try:
        return importlib.metadata.version("trialpipe")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _q(value: str) -> str:
    """A YAML scalar that survives as text (JSON strings are valid YAML)."""
    return json.dumps(value)


def _flow(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def instrument_file(plan: F.Plan, key: str) -> str:
    """The file (relative to the study folder) that holds an instrument under this plan."""
    fmt = plan.instrument_format[key]
    if fmt == "wide":
        return F.redcap_spec(key)["file"]
    if fmt == "nda":
        return f"nda/{F.nda_spec(key)['file']}"
    return f"sdtm/{F.SDTM_FILES[load_instruments()[key].formats.sdtm.domain]}"  # type: ignore[union-attr]


def _visit_codes(plan: F.Plan, visits: tuple[VisitSpec, ...]) -> tuple[list[list[str]], str]:
    fmts = set(plan.instrument_format.values())
    codes: list[list[str]] = [[] for _ in visits]
    says = []
    if "wide" in fmts:
        says.append("REDCap event")
        for c, v in zip(codes, visits, strict=True):
            c.append(v.redcap_event)
    if "nda" in fmts or "sdtm" in fmts:
        says.append("NDA visit / SDTM VISIT (matched case-insensitively)")
        for c, v in zip(codes, visits, strict=True):
            c.append(v.nda_label)
    if "sdtm" in fmts:
        says.append("SDTM VISITNUM")
        for c, v in zip(codes, visits, strict=True):
            c.append(str(v.visitnum))
    return codes, ", ".join(says)


def _source_blocks(plan: F.Plan) -> list[tuple[str, str]]:
    """(relative file path, YAML block) per source, arms first."""
    inst = load_instruments()
    out: list[tuple[str, str]] = []
    if plan.arm_source == "wide":
        codes = ", ".join(f"{_q(a.code)}: {a.id}" for a in ARMS)
        why = "" if "wide" in plan.formats else " (written because NDA structures carry no arm)"
        out.append(
            (
                "randomization.csv",
                f"""\
  # One row per randomized subject{why}: arm 1 = ketamine, 0 = midazolam;
  # age in years and as a band; dcsreas = why a subject discontinued (empty: completed).
  - file: randomization.csv
    kind: randomization
    layout: wide
    delimiter: ","
    columns: {{subject: record_id, arm: arm, site: site, sex: sex, age: age, age_band: age_band, discontinuation_reason: dcsreas}}
    recode:
      arm: {{{codes}}}
""",
            )
        )
    else:
        out.append(
            (
                "sdtm/dm.xpt",
                """\
  # SDTM DM (SAS XPORT v5): one record per subject; arms from ARMCD (KET / MID). No dates.
  # SEX uses the SDTM codelist (the registry's "other" is written as U).
  - file: sdtm/dm.xpt
    kind: sdtm
    layout: sdtm
    columns: {subject: USUBJID, arm: ARMCD, site: SITEID, sex: SEX, age: AGE}
    sdtm: {domain: DM}
""",
            )
        )
    for key in plan.instruments:
        fmt = plan.instrument_format[key]
        name = inst[key].instrument
        if fmt == "wide":
            spec = F.redcap_spec(key)
            out.append(
                (
                    spec["file"],
                    f"""\
  # {name}, REDCap longitudinal export: one row per record x event; unanswered items are blank
  # and {spec["total"]} (a REDCap calculated field) is blank when any item is.
  - file: {spec["file"]}
    kind: {key}
    layout: wide
    delimiter: ","
    columns: {{subject: record_id, visit: redcap_event_name, study_day: {F.REDCAP_DAY_COLUMN}}}
    items: {_q(spec["items"])}
    total: {spec["total"]}
""",
                )
            )
        elif fmt == "nda":
            spec = F.nda_spec(key)
            structure = inst[key].formats.nda.structure  # type: ignore[union-attr]
            layout = (
                "submission template (line 1 " + ",".join(F.nda_structure(key)) + ", line 2 element names)"
                if spec["layout"] == "template"
                else "download layout (tab-delimited, row 1 element names, row 2 descriptions)"
            )
            delim = '","' if spec["layout"] == "template" else "tab"
            out.append(
                (
                    f"nda/{spec['file']}",
                    f"""\
  # {name} as NDA {structure}, {layout};
  # item set {spec["item_set"]}, {spec["missing"]} = missing; interview_date is shifted per subject.
  - file: nda/{spec["file"]}
    kind: nda
    layout: nda
    delimiter: {delim}
    columns: {{subject: src_subject_id, visit: visit, date: interview_date,
              age_months: interview_age, sex: sex}}
    nda: {{structure: {structure}, item_set: {spec["item_set"]}}}
    missing_codes: [{_q(spec["missing"])}]
""",
                )
            )
    sdtm_keys = [k for k in plan.instruments if plan.instrument_format[k] == "sdtm"]
    for domain in ("QS", "RS"):
        keys = [k for k in sdtm_keys if inst[k].formats.sdtm.domain == domain]  # type: ignore[union-attr]
        if not keys:
            continue
        file = f"sdtm/{F.SDTM_FILES[domain]}"
        cats = ", ".join(f"{k}: {_flow([inst[k].formats.sdtm.categories[0]])}" for k in keys)  # type: ignore[union-attr]
        pats = ", ".join(f"{k}: {_q(inst[k].formats.sdtm.testcd_pattern)}" for k in keys)  # type: ignore[union-attr]
        names = " and ".join(inst[k].instrument for k in keys)
        totals = ", ".join(inst[k].formats.sdtm.total_testcds[0] for k in keys)  # type: ignore[union-attr]
        out.append(
            (
                file,
                f"""\
  # {names} in SDTM {domain} (SAS XPORT v5): one record per item, derived totals {totals}
  # ({domain}DRVFL = Y, only when every item is answered); an unanswered item has {domain}STAT = NOT DONE and
  # no result. {domain}DY is the SDTM study day (day 1 = baseline, SDTM has no day 0), so it is not
  # mapped as study_day.
  - file: {file}
    kind: sdtm
    layout: sdtm
    columns: {{subject: USUBJID, visit: VISIT}}
    sdtm:
      domain: {domain}
      categories: {{{cats}}}
      testcd_patterns: {{{pats}}}
""",
            )
        )
    return out


_DEFAULT_ANALYSIS = """\
analysis:                       # the contract's defaults, spelled out
  primary_parameter: CAPS5TOT
  baseline: visit
  repeated_assessments: last
  missing_items: {method: none, max_missing: 0, scope: scale, rounding: none}
  response: {CAPS5TOT: 30, PCL5TOT: 30, MADRSTOT: 50}
  remission: {MADRSTOT: {op: "<=", value: 10}, PCL5TOT: {op: "<", value: 33}}
  pcl5_cutoff: 33
  model: {covariance: us, df_method: kenward-roger, fallbacks: [toeph, ar1h, cs], reml: true}
  multiplicity: holm
  alpha: 0.05
  min_baseline_fraction: 0.8
"""


def _analysis_block(plan: F.Plan) -> str:
    """The analysis options: the contract's defaults spelled out for the default instruments; for
    other instruments the primary parameter is the first one's total and every rule comes from the
    instrument definitions (pipelines/instruments/*.yaml)."""
    if plan.instruments == INSTRUMENT_ORDER:
        return _DEFAULT_ANALYSIS
    inst = load_instruments()
    primary = inst[plan.instruments[0]].total.paramcd
    return f"""\
analysis:                       # response, remission and cut-offs: the instrument definitions' own
  primary_parameter: {primary}
  baseline: visit
  repeated_assessments: last
  missing_items: {{method: none, max_missing: 0, scope: scale, rounding: none}}
  model: {{covariance: us, df_method: kenward-roger, fallbacks: [toeph, ar1h, cs], reml: true}}
  multiplicity: holm
  alpha: 0.05
  min_baseline_fraction: 0.8
"""


def manifest_text(
    trial: Trial, plan: F.Plan, missing_item_rate: float, effect_scale: float = 1.0, safety: dict[str, str] | None = None
) -> str:
    inst = load_instruments()
    blocks = _source_blocks(plan)
    split = [f"#   {inst[k].instrument:7s}-> {instrument_file(plan, k)}" for k in plan.instruments]
    split.append(f"#   arms   -> {blocks[0][0]}")
    codes, codes_say = _visit_codes(plan, trial.visits)
    visits = []
    for v, c in zip(trial.visits, codes, strict=True):
        lines = [f"  - id: {v.id}", f"    label: {_q(v.label)}", f"    day: {v.day}"]
        if v.day == 0:
            lines.append("    baseline: true")
        if v.id == trial.primary_visit:
            lines.append("    primary: true")
        if trial.follow_up_weeks and v.day > 14:
            lines.append("    phase: follow_up")
        lines.append(f"    codes: {_flow(c)}")
        visits.append("\n".join(lines))
    if safety:
        # CADSS/BPRS time points around each infusion, listed after the scheduled visits so that the
        # visit numbers (AVISITN) of BL..W2 and the follow-up visits are as without them
        from pipelines.simulate import infusion_scales

        visits.append(infusion_scales.manifest_visits())
    arms = "\n".join(f"  - id: {a.id}\n    label: {a.label}\n    role: {a.role}" for a in ARMS)
    nda = "nda" in plan.formats
    dates = (
        (
            "  shifted: true                 # NDA interview_date: per-subject random shift (NDA masking);\n"
            "                                # every other file holds study days only"
        )
        if nda
        else "  shifted: false               # no file holds a calendar date; only study days"
    )
    title = f"Simulated IV ketamine vs midazolam for chronic PTSD (Feder 2021 calibration, seed {trial.seed})"
    scale_note = (
        ""
        if effect_scale == 1.0
        else f"\n# Ketamine-specific effect scaled by {effect_scale:g} (0 = null trial: no true arm difference)."
    )
    if trial.follow_up_weeks:
        scale_note += (
            f"\n# Weekly follow-up visits W3..W{2 + trial.follow_up_weeks} (phase follow_up) after the primary visit "
            f"{trial.primary_visit}: each subject's\n# treatment-course change stays until a relapse time (ketamine "
            "latent median calibrated to Feder 2021's 27.5 days to loss of\n# response among responders); they feed "
            "the durability analysis only, not the efficacy models."
        )
    if safety:
        scale_note += (
            "\n# Safety domains (EX, AE, VS, DS) simulated; see pipelines/simulate/safety.py for the assumptions."
            "\n# CADSS and BPRS before, 40 min and 240 min after each infusion (visits of phase infusion; "
            "pipelines/simulate/infusion_scales.py)."
        )
    for v in (() if trial.follow_up_weeks else trial.follow_up_visits):
        scale_note += (
            f"\n# Follow-up visit {v.id} (nominal day {v.day}) after the primary visit {trial.primary_visit}: "
            "the ketamine-specific\n# change partly wanes by then (a simulation assumption)."
        )
    allow = "[]"
    safety_blocks = ""
    if safety:
        from pipelines.simulate import safety as S

        # the simulated verbatim AE terms are synthetic and were cleared for loading
        allow = "[AETERM, aeterm]           # verbatim AE terms: synthetic, cleared for loading"
        from pipelines.simulate import infusion_scales

        safety_blocks = S.manifest_blocks(safety) + infusion_scales.manifest_blocks()
    durability = ""
    if trial.follow_up_weeks:
        durability = (
            "  durability: {consecutive: 1}   # loss of response: the primary parameter no longer meets its response\n"
            "                                 # criterion (CAPS-5 >= 30 % below baseline) at a follow-up assessment\n"
        )
    return f"""\
# study.yaml - generated by `trialpipe simulate` (pipelines.simulate, trialpipe {_version()}):
# seed {trial.seed}, {trial.per_arm} subjects per arm, formats {",".join(plan.formats)}, \
missing-item rate {missing_item_rate:g}.{scale_note}
# Synthetic data calibrated to Feder et al. 2021 (Am J Psychiatry 178:193-202); no real person.
# Each instrument is written exactly once; the split across the requested formats:
{chr(10).join(split)}

study_id: {trial.study_id}
title: {_q(title)}

arms:
{arms}

visits:                         # codes: {codes_say}
{chr(10).join(visits)}

dates:
{dates}

deidentification:
  ages_top_coded: false         # adults 18-65: no age above 89 to top-code
  allow_columns: {allow}

sources:
{"".join(block for _, block in blocks)}{safety_blocks}
{_analysis_block(plan)}{durability}"""


def _with_intercurrent_events(text: str) -> str:
    """Declare the ICE columns of randomization.csv and add the estimands they feed."""
    old = (
        "    columns: {subject: record_id, arm: arm, site: site, sex: sex, age: age, age_band: age_band, "
        "discontinuation_reason: dcsreas}\n"
    )
    assert old in text, "randomization block changed"
    new = old + (
        "    # intercurrent events: last visit on treatment (blank = completed), reason, rescue medication\n"
        "    covariates: {disc_visit: disc_visit, disc_reason: disc_reason, rescue_visit: rescue_visit}\n"
    )
    return (
        text.replace(old, new)
        + """
# Estimands (ICH E9(R1)). Primary: hypothetical strategy for treatment discontinuation (as if
# participants had stayed on their infusions; missing values imputed under MAR), treatment policy for
# rescue medication. The sensitivity analyses impute under J2R, CR and CIR as well.
estimands:
  - id: primary
    label: Hypothetical (MAR)
    intercurrent_events:
      - {event: discontinuation, column: disc_visit, timing: after, strategy: hypothetical, imputation: MAR}
      - {event: rescue, column: rescue_visit, timing: at, strategy: treatment_policy, imputation: MAR}
"""
    )


def write_study_files(
    out_dir: str | Path,
    *,
    formats: str | tuple[str, ...] | list[str] = ("wide",),
    **options: Any,
) -> WrittenStudy:
    """Like :func:`write_study`, also returning the files written. ``options`` are
    :func:`~pipelines.simulate.trial.build_trial`'s (per_arm, seed, study_id, missing_item_rate,
    effect_scale, follow_up, follow_up_weeks, discontinuation_rate, mnar, rescue_rate, instruments), plus
    ``safety`` (write EX/AE/VS/DS, pipelines/simulate/safety.py)."""
    study_id = options.get("study_id")
    if study_id is not None and not STUDY_ID_PATTERN.match(study_id):
        raise ValueError(
            f"study id {study_id!r} must start with a letter and hold only letters, digits, _ . - (max 64)"
        )
    safety = options.pop("safety", False)
    trial = build_trial(**options)
    plan = F.plan(formats, trial.instruments)
    missing_item_rate = options.get("missing_item_rate", 0.0)
    effect_scale = options.get("effect_scale", 1.0)
    if "nda" in plan.formats:
        longest = max(len(u) for u in trial.subjects["usubjid"])
        if longest > NDA_SUBJECT_ID_MAX:
            raise ValueError(
                f"subject ids like {trial.subjects['usubjid'][0]!r} exceed NDA's "
                f"{NDA_SUBJECT_ID_MAX}-character "
                "src_subject_id; choose a shorter --study-id"
            )
    folder = Path(out_dir)
    files: list[Path] = []

    def target(rel: str) -> Path:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        files.append(Path(rel))
        return path

    if plan.arm_source == "wide":
        F.write_randomization(trial, target("randomization.csv"))
    else:
        F.write_dm(trial, target(f"sdtm/{F.SDTM_FILES['DM']}"))
    for key in plan.instruments:
        fmt = plan.instrument_format[key]
        if fmt == "wide":
            F.write_redcap(trial, key, target(F.redcap_spec(key)["file"]))
        elif fmt == "nda":
            F.write_nda(trial, key, target(f"nda/{F.nda_spec(key)['file']}"))
    inst = load_instruments()
    for domain in ("QS", "RS"):
        keys = [
            k
            for k in plan.instruments
            if plan.instrument_format[k] == "sdtm" and inst[k].formats.sdtm.domain == domain
        ]  # type: ignore[union-attr]
        if keys:
            F.write_findings(trial, domain, keys, target(f"sdtm/{F.SDTM_FILES[domain]}"))
    safety_plan = None
    if safety:
        from pipelines.simulate.safety import write_safety

        from pipelines.simulate import infusion_scales

        safety_plan = write_safety(trial, plan.formats, target)
        infusion_scales.write(trial, target)
    text = manifest_text(trial, plan, missing_item_rate, effect_scale, safety_plan)
    if "disc_visit" in trial.subjects.columns:
        if plan.arm_source != "wide":
            raise ValueError("intercurrent events are written to randomization.csv: include the wide format")
        text = _with_intercurrent_events(text)
    (folder / MANIFEST_NAME).write_text(text, encoding="utf-8")
    files.append(Path(MANIFEST_NAME))
    load_manifest(folder)  # the generated manifest must parse; a failure here is a simulator bug
    return WrittenStudy(folder, files, trial.n)


def write_study(
    out_dir: str | Path,
    *,
    formats: str | tuple[str, ...] | list[str] = ("wide",),
    **options: Any,
) -> Path:
    """Simulate a Feder-2021-calibrated trial and write it as a study folder; returns the folder.

    ``formats`` is any of ``wide`` (REDCap-style CSV), ``nda`` (NIMH Data Archive structures) and
    ``sdtm`` (SAS XPORT v5). With one format every instrument is written in it; with several, the
    instruments are split so that each is written exactly once (see ``formats.PREFERENCE``); the
    arms come from ``randomization.csv`` unless only SDTM is asked for (then ``dm.xpt``). The same
    seed gives byte-identical files; ``missing_item_rate`` blanks that share of item responses
    using each format's own missing code; ``effect_scale`` multiplies the ketamine-specific change
    (0 = a null trial, for type-I error checks); ``follow_up`` adds a fifth visit W4 (week 4, day
    28) after the primary W2 in every file and in study.yaml, leaving BL..W2 as without it;
    ``follow_up_weeks`` adds that many weekly follow-up visits W3.. (phase follow_up: durability of
    response only) and ``safety`` the EX/AE/VS/DS files (pipelines/simulate/safety.py), each from
    random streams of its own so every other value stays as without them.
    ``discontinuation_rate``, ``mnar``, ``rescue_rate``: intercurrent events (see
    :func:`trial.build_trial`), written as randomization.csv columns disc_visit, disc_reason,
    rescue_visit, declared as subject covariates and used by an ``estimands:`` block in study.yaml
    (needs the wide randomization file).
    """
    return write_study_files(out_dir, formats=formats, **options).folder
