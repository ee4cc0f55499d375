"""``trialpipe simulate``: write a simulated, Feder-2021-calibrated study folder."""

from __future__ import annotations

from pathlib import Path

import click

from pipelines.simulate.formats import FORMATS
from pipelines.simulate.study import write_study_files
from pipelines.simulate.trial import DEFAULT_PER_ARM, DEFAULT_SEED, INSTRUMENT_ORDER, check_instruments


def _instruments(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return check_instruments(x.strip() for x in value.split(",") if x.strip())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _formats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    fmts = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise click.BadParameter(
            f"{', '.join(bad) or 'nothing given'}; "
            f"choose one or more of {','.join(FORMATS)} (comma-separated)"
        )
    return fmts


_RATE = click.FloatRange(0, 1, max_open=True)
# Every option of the command: (flags, click keywords). The names are build_trial's keywords
# (pipelines.simulate.trial), passed through as they are; --format goes to the writers.
OPTIONS: tuple[tuple[tuple[str, ...], dict], ...] = (
    (("--per-arm",), {"type": click.IntRange(min=1), "default": DEFAULT_PER_ARM,
                      "help": "Subjects randomized to each arm (Feder 2021: 15)."}),
    (("--seed",), {"type": click.IntRange(min=0), "default": DEFAULT_SEED,
                   "help": "Random seed; the same seed writes byte-identical files."}),
    (("--format", "formats"), {"default": "wide", "callback": _formats,
                               "help": "Comma list of wide (REDCap CSV), nda (NIMH Data Archive), sdtm (SAS XPORT); "
                               "with several, each instrument is written in exactly one of them."}),
    (("--study-id",), {"default": None, "show_default": False, "help": "Study id (default FEDERSIM-<seed>)."}),
    (("--missing-item-rate",), {"type": _RATE, "default": 0.0,
                                "help": "Share of item responses written as the format's missing code."}),
    (("--follow-up",), {"is_flag": True, "default": False,
                        "help": "Add a fifth visit W4 (week 4 follow-up, day 28) after the primary week-2 visit."}),
    (("--follow-up-weeks",), {"type": click.IntRange(min=0, max=52), "default": 0,
                              "help": "Weekly follow-up assessments W3.. after the primary week-2 visit (durability "
                              "of response; not in the efficacy models)."}),
    (("--safety",), {"is_flag": True, "default": False,
                     "help": "Also write exposure (EX), adverse events (AE), vital signs around each infusion (VS) "
                     "and disposition (DS)."}),
    (("--discontinuation", "discontinuation_rate"), {
        "type": _RATE, "default": 0.0,
        "help": "Probability that a subject stops treatment after D1 or W1 (intercurrent event; no data after)."}),
    (("--mnar",), {"is_flag": True, "default": False,
                   "help": "Discontinuation likelier when not improving; ketamine benefit lost after stopping."}),
    (("--rescue", "rescue_rate"), {"type": _RATE, "default": 0.0,
                                   "help": "Probability of starting rescue medication before W2 (recorded intercurrent event)."}),
    (("--instruments",), {"default": ",".join(INSTRUMENT_ORDER), "callback": _instruments,
                          "help": "Comma list of instrument ids or names (any definition in pipelines/instruments, e.g. "
                          "iesr,hamd17,qidssr16,cadss,bprs,cgis,cgii); the default three follow the calibrated model."}),
    (("--effect-scale",), {"type": click.FloatRange(min=0), "default": 1.0,
                           "help": "Multiplies the ketamine-specific change (0 = a null trial)."}),
)  # fmt: skip


def _with_options(command):
    for flags, kw in reversed(OPTIONS):
        command = click.option(*flags, **{"show_default": True, **kw})(command)
    return command


@click.command("simulate")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@_with_options
def simulate(out_dir: Path, formats: tuple[str, ...], **options) -> None:
    """Write a simulated ketamine-vs-midazolam trial (calibrated to Feder et al. 2021) to OUT_DIR:
    the data files in the requested formats and a study.yaml that reads them."""
    try:
        written = write_study_files(out_dir, formats=formats, **options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    follow = ", W4 follow-up" if options["follow_up"] else ""
    if options["follow_up_weeks"]:
        follow += f", {options['follow_up_weeks']} weekly follow-up visits"
    if options["safety"]:
        follow += ", safety domains"
    ice = [options["discontinuation_rate"], options["rescue_rate"], options["mnar"]]
    if any(ice):
        follow += (
            f", discontinuation {options['discontinuation_rate']:g}{' MNAR' if options['mnar'] else ''}, "
            f"rescue {options['rescue_rate']:g}"
        )
    click.echo(
        f"Wrote {len(written.files)} files ({written.n_subjects} subjects, {options['per_arm']} per arm, "
        f"seed {options['seed']}, {','.join(formats)}{follow}) to {written.folder}: "
        f"{', '.join(str(f) for f in written.files)}"
    )
