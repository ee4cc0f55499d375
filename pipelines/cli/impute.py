"""``trialpipe impute``: reference-based / MAR imputation analysis of any CSV (the rbmi workflow).

Intercurrent events (ICEs), i.e. the first visit from which a subject's data are imputed under
``--strategy``:

* default: from the data, as in rbmi's antidepressant example -- a subject whose outcome is missing
  at the last visit(s) discontinued at the first visit of that trailing run; intermittent gaps are
  not ICEs and are imputed under MAR;
* ``--ice COL``: a column of the data holding, for each subject, the first visit affected by the
  ICE (empty when none);
* ``--ice-file CSV``: one row per subject with an ICE: the subject and visit columns (named as in the
  data) and optionally a ``strategy`` column overriding ``--strategy`` for that subject.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from pipelines.core.errors import InputFileError, ModelSpecError

from .mmrm import _fmt, _parse_refs, _pfmt, read_csv


def _float_list(text: str | None, what: str):
    if text is None:
        return 0.0
    try:
        vals = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError as exc:
        raise ModelSpecError(
            f"{what} {text!r} must be a number or comma-separated numbers (one per visit)"
        ) from exc
    return vals[0] if len(vals) == 1 else vals


def _ice_from_column(frame, col, subject, file):
    from pipelines.stats.mmrm.formula import format_level

    if col not in frame.columns:
        raise ModelSpecError("--ice column is not in the data", file=file, column=col)
    out = {}
    for r, (s, v) in enumerate(zip(frame[subject], frame[col])):
        if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
            continue
        s, v = format_level(s), format_level(v)
        if out.get(s, v) != v:
            raise ModelSpecError(
                f"subject {s!r} has two different ICE visits", file=file, row=r + 2, column=col
            )
        out[s] = v
    return out


def _ice_from_file(path, subject, visit, strategy):
    from pipelines.stats.imputation import normalise_strategy
    from pipelines.stats.mmrm.formula import format_level

    frame = read_csv(path)
    for c in (subject, visit):
        if c not in frame.columns:
            raise ModelSpecError(
                "the ICE file needs the data's subject and visit columns", file=path, column=c
            )
    out = {}
    for r, row in enumerate(frame.to_dict("records")):
        s = format_level(row[subject])
        if s in out:
            raise ModelSpecError(
                f"subject {s!r} has more than one ICE row", file=path, row=r + 2, column=subject
            )
        st = row.get("strategy") or strategy
        out[s] = (format_level(row[visit]), normalise_strategy(st, file=path, column="strategy"))
    return out


# the fields of each estimate in the --json output, in order
JSON_ESTIMATE_FIELDS = ("visit", "parameter", "arm", "estimate", "std_error", "df", "conf_low", "conf_high", "p_value")


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@click.command(name="impute", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("data", metavar="DATA.csv")
@click.argument("formula")
@click.option("--group", required=True, metavar="COL", help="Arm column (two arms).")
@click.option("--reference", required=True, metavar="LEVEL", help="Control arm: the reference of J2R/CR/CIR.")
@click.option(
    "--strategy",
    type=click.Choice(["MAR", "J2R", "CR", "CIR", "LMCF"], case_sensitive=False),
    default="MAR",
    show_default=True,
    help="Imputation strategy after the intercurrent event.",
)
@click.option(
    "--method",
    type=click.Choice(["condmean-jackknife", "condmean-bootstrap", "approx-bayes"]),
    default="condmean-jackknife",
    show_default=True,
)
@click.option(
    "--ice", "ice_col", default=None, metavar="COL", help="Column: first visit affected by the ICE."
)
@click.option("--ice-file", default=None, metavar="CSV", help="CSV of subject, visit[, strategy] per ICE.")
@click.option(
    "--covariates",
    default=None,
    metavar="A,B",
    help="ANCOVA covariates of the analysis step (default: the formula's variables other than arm and visit).",
)
@click.option(
    "--n-samples", type=int, default=None, help="Bootstrap samples / imputations (default 200 / 100)."
)
@click.option("--seed", type=int, default=None, help="Random seed (bootstrap and approximate Bayes).")
@click.option(
    "--delta-experimental",
    default=None,
    metavar="D",
    help="Shift of imputed post-ICE values, experimental arm (one value or one per visit).",
)
@click.option("--delta-control", default=None, metavar="D", help="Same for the control arm.")
@click.option("--cumulative", is_flag=True, help="Deltas accumulate over post-ICE visits.")
@click.option(
    "--percentile", is_flag=True, help="Bootstrap: percentile CI and p instead of the normal approximation."
)
@click.option(
    "--ref", "refs", multiple=True, metavar="VAR=LEVEL", help="Reference level of a factor of the formula."
)
@click.option(
    "--json", "json_out", default=None, metavar="OUT", help="Write pooled estimates per visit as JSON."
)
def impute(
    data,
    formula,
    group,
    reference,
    strategy,
    method,
    ice_col,
    ice_file,
    covariates,
    n_samples,
    seed,
    delta_experimental,
    delta_control,
    cumulative,
    percentile,
    refs,
    json_out,
):
    """Impute missing outcomes under MAR or a reference-based strategy and analyse each visit by
    ANCOVA, as R's rbmi does, e.g. the rbmi antidepressant example:

    \b
      trialpipe impute antidepressant_data.csv \\
        "CHANGE ~ BASVAL*VISIT + THERAPY*VISIT + us(VISIT | PATIENT)" \\
        --group THERAPY --reference PLACEBO --strategy J2R --method condmean-jackknife --json out.json

    Estimates are the other arm minus --reference. Subjects missing the last visit(s) are taken to
    have discontinued at the first missing one unless --ice or --ice-file says otherwise.
    """
    from rich.console import Console

    from pipelines.stats import imputation as mi
    from pipelines.stats.mmrm.formula import parse_formula

    err = Console(stderr=True)
    strategy = mi.normalise_strategy(strategy)
    if ice_col and ice_file:
        raise ModelSpecError("give either --ice or --ice-file, not both")
    if method == "condmean-jackknife" and n_samples is not None:
        raise ModelSpecError("--n-samples does not apply to the jackknife (one refit per subject)")
    if n_samples is None:
        n_samples = {"condmean-bootstrap": 200, "approx-bayes": 100}.get(method)
    if method != "condmean-jackknife" and seed is None:
        seed = 20260101
    parsed = parse_formula(formula)
    with err.status(f"reading {data}"):
        frame = read_csv(data)
    if ice_file:
        ice = _ice_from_file(ice_file, parsed.subject, parsed.time[0], strategy)
    elif ice_col:
        ice = _ice_from_column(frame, ice_col, parsed.subject, data)
    else:
        if parsed.response not in frame.columns:
            raise ModelSpecError(
                "column named in the formula is not in the data", file=data, column=parsed.response
            )
        ice = mi.ice_from_dropout(
            frame, subject=parsed.subject, visit=parsed.time[0], outcome=parsed.response
        )
    cov = [c.strip() for c in covariates.split(",") if c.strip()] if covariates else None
    d_e = _float_list(delta_experimental, "--delta-experimental")
    d_c = _float_list(delta_control, "--delta-control")
    with err.status("fitting the imputation model") as status:
        ld = mi.prepare(
            frame,
            formula,
            group=group,
            reference=reference,
            ice=ice,
            strategy=strategy,
            covariates=cov,
            ref=_parse_refs(refs),
            file=data,
        )
        status.update(f"{method}: refitting the imputation model")
        dr = mi.draws(ld, method, n_samples=n_samples, seed=seed, progress=lambda m: status.update(m))
        status.update("imputing and analysing")
        run = mi.ImputationAnalysis(ld, dr, bootstrap_ci="percentile" if percentile else "normal")
        res = run.results(d_e, d_c, cumulative=cumulative)

    from .mmrm import _table

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    n_ice = int((ld.ice_index < ld.V).sum())
    console.print(f"[bold]Imputation[/bold] {formula}")
    console.print(
        f"{method}, strategy {strategy} after the ICE for {n_ice} of {ld.n} subjects "
        f"(reference {ld.groups[0]}); analysis: ANCOVA per visit on {', '.join([group] + ld.covariate_names)}"
    )
    diff = res.filter(res["parameter"] == "difference")
    _table(
        console,
        f"{ld.groups[1]} - {ld.groups[0]}",
        diff,
        ["visit", "estimate", "std_error", "conf_low", "conf_high", "p_value"],
    )
    for w in ld.notes:
        err.print(f"[yellow]warning:[/yellow] {w}")
    if json_out:
        payload = {
            "formula": formula,
            "group": group,
            "reference": ld.groups[0],
            "experimental": ld.groups[1],
            "strategy": strategy,
            "method": method,
            "n_subjects": ld.n,
            "n_ice": n_ice,
            "strategies": ld.strategy_counts(),
            "n_samples": int(res["n_samples"][0]),
            "n_failed_fits": dr.n_failed,
            "seed": seed,
            "delta_experimental": d_e,
            "delta_control": d_c,
            "cumulative_delta": cumulative,
            "analysis_covariates": ld.covariate_names,
            "estimates": [
                {k: _clean(v) for k, v in row.items()} for row in res.select(JSON_ESTIMATE_FIELDS).iter_rows(named=True)
            ],
            "warnings": ld.notes,
        }
        try:
            Path(json_out).write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
        except OSError as exc:
            raise InputFileError(f"cannot write the JSON output: {exc.strerror}", file=json_out) from exc
    last = diff.row(-1, named=True)
    tail = f"; results written to {json_out}" if json_out else ""
    click.echo(
        f"{method} {strategy} imputation of {ld.n} subjects: {ld.groups[1]} - {ld.groups[0]} at "
        f"{ld.visit} {last['visit']} = {_fmt(last['estimate'])} (SE {_fmt(last['std_error'])}, p {_pfmt(last['p_value'])}){tail}."
    )
