"""``trialpipe mmrm``: fit an MMRM on any CSV.

``--lsmeans SPEC`` syntax:

* ``--lsmeans ARMCD`` -- LS means of every ARMCD level (averaged over the other factors with equal
  weights, covariates at their mean) and each level minus the reference level;
* ``--lsmeans "ARMCD|AVISIT"`` -- the same within each level of AVISIT (e.g. arm difference per visit).

The reference level of the contrasts is the factor's reference (``--ref ARMCD=PBO``, otherwise its
first level in R order). CSV reading: ``NA`` and empty cells are missing; a column whose values are
all numbers is numeric unless a value has a leading zero (``"006"``), which marks an identifier and
keeps the column as text. Blank lines are skipped and short rows padded with missing cells; a row
with more cells than the header is an error naming the row.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import click

from pipelines.core.errors import InputFileError, ModelSpecError

_MISSING = ("NA", "")


def read_columns(path: str) -> dict:
    """Read a CSV for modelling (see module docstring for the typing rule) into {column: numpy
    array}: int64 or float64 (NaN missing) for numeric columns, object (None missing) for text.

    The stdlib csv module, not pandas: importing pandas took 40% of ``trialpipe mmrm``. Blank lines
    are skipped; short rows are padded with missing values; a row longer than the header is an
    error; duplicate and empty header names are renamed as pandas does (``A.1``, ``Unnamed: 2``)."""
    import numpy as np

    from pipelines.stats.mmrm.frame import NUMBER

    p = Path(path)
    if not p.exists():
        raise InputFileError("file not found", file=str(path))
    if p.is_dir():
        raise InputFileError("is a directory, expected a CSV file", file=str(path))
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and (len(r) > 1 or r[0].strip())]
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot be read as CSV: {exc}", file=str(path)) from exc
    if not rows:
        raise InputFileError("the file is empty", file=str(path))
    header, body = _header_names(rows[0]), rows[1:]
    width = len(header)
    for i, r in enumerate(body):
        if len(r) > width:
            raise InputFileError(
                f"cannot be read as CSV: the row has {len(r)} fields, the header {width}", file=str(path), row=i + 1
            )
        if len(r) < width:
            body[i] = r + [""] * (width - len(r))
    numbers = re.compile(rf"(?:{NUMBER}\n)*{NUMBER}")
    integers = re.compile(r"(?:[ \t]*[+-]?[0-9]+[ \t]*\n)*[ \t]*[+-]?[0-9]+[ \t]*")
    leading_zero = re.compile(r"^[ \t]*[+-]?0[0-9]", re.MULTILINE)
    out = {}
    for name, values in zip(header, zip(*body) if body else [()] * width):
        missing = np.fromiter((v in _MISSING for v in values), dtype=bool, count=len(values))
        present = [v for v in values if v not in _MISSING] if missing.any() else values
        text = "\n".join(present)
        one_line = text.count("\n") == len(present) - 1  # no value spans lines (quoted newlines)
        if not present or (one_line and numbers.fullmatch(text) and not leading_zero.search(text)):
            if (
                not missing.any()
                and integers.fullmatch(text or "0")
                and all(len(v) < 19 or -(2**63) <= int(v) < 2**63 for v in present)
            ):
                out[name] = np.fromiter(map(int, present), dtype=np.int64, count=len(present))
            else:
                col = np.full(len(values), math.nan)
                col[~missing] = np.fromiter(map(float, present), dtype=float, count=len(present))
                out[name] = col
        else:
            col = np.array(values, dtype=object)
            col[missing] = None
            out[name] = col
    return out


def _header_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for i, n in enumerate(names):
        n = n or f"Unnamed: {i}"
        base, k = n, 0
        while n in out:
            k += 1
            n = f"{base}.{k}"
        out.append(n)
    return out


def read_csv(path: str):
    """:func:`read_columns` as a pandas frame (text columns of pandas' string dtype)."""
    import pandas as pd

    cols = read_columns(path)
    return pd.DataFrame(
        {k: (v if v.dtype != object else pd.Series(v, dtype="str")) for k, v in cols.items()}
    )


def _parse_refs(refs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in refs:
        if "=" not in item:
            raise ModelSpecError(f"--ref {item!r} must be VAR=LEVEL", hint="e.g. --ref ARMCD=PBO")
        var, level = item.split("=", 1)
        out[var.strip()] = level.strip()
    return out


def _parse_levels(items: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ModelSpecError(
                f"--levels {item!r} must be VAR=LEVEL1,LEVEL2,...", hint="e.g. --levels AVISIT=V1,V7,FU30,FU90"
            )
        var, lv = item.split("=", 1)
        levels = [x.strip() for x in lv.split(",") if x.strip()]
        if not levels:
            raise ModelSpecError(f"--levels {item!r} names no levels", hint="e.g. --levels AVISIT=V1,V7,FU30")
        out[var.strip()] = levels
    return out


def _visit_levels(frame, formula: str, given: dict[str, list[str]]) -> dict[str, list[str]]:
    """Level order of a text time variable: as the data visit it (see ``data_order_levels``), not
    alphabetical (FU30, FU90, V1, V7), unless --levels gives it. ``frame``: a :class:`Frame`."""
    from pipelines.stats.mmrm.covariance import STRUCTURES
    from pipelines.stats.mmrm.formula import data_order_levels, parse_formula

    parsed = parse_formula(formula)
    levels = dict(given)
    tvar = parsed.time[0]
    if (
        not STRUCTURES[parsed.cov_type].spatial
        and tvar not in levels
        and tvar in frame.columns
        and parsed.subject in frame.columns
        and frame[tvar].kind not in ("number", "bool")
    ):
        levels[tvar] = data_order_levels(frame, tvar, parsed.subject)
    return levels


def _parse_lsmeans(spec: str) -> tuple[str, str | None]:
    parts = [p.strip() for p in spec.split("|")]
    if len(parts) > 2 or not all(parts):
        raise ModelSpecError(
            f"--lsmeans {spec!r} is not FACTOR or FACTOR|BY", hint='e.g. --lsmeans "ARMCD|AVISIT"'
        )
    return parts[0], (parts[1] if len(parts) == 2 else None)


def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "."
    if isinstance(x, float):
        if abs(x) != 0 and (abs(x) < 1e-4 or abs(x) >= 1e6):
            return f"{x:.{digits}g}"
        return f"{x:.{digits}f}"
    return str(x)


def _pfmt(p):
    if p is None or not math.isfinite(p):
        return "."
    return "<.0001" if p < 1e-4 else f"{p:.4f}"


_HEADERS = {"std_error": "SE", "statistic": "t", "p_value": "p", "conf_low": "lower", "conf_high": "upper"}


def _table(console, title, frame, columns, text_columns=()):
    """Print rows as a table; ``frame`` is a polars frame or a list of dicts (then
    ``text_columns`` names the left-aligned columns)."""
    from rich.table import Table

    if hasattr(frame, "iter_rows"):
        import polars as pl

        text_columns = {c for c in columns if frame.schema[c] == pl.Utf8}
        frame = list(frame.iter_rows(named=True))
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(
            _HEADERS.get(c, c),
            justify="left" if c in text_columns else "right",
            no_wrap=c == "contrast",
        )
    for row in frame:
        cells = []
        for c in columns:
            v = row[c]
            if c == "p_value":
                cells.append(_pfmt(v))
            elif c == "df":
                cells.append(_fmt(v, 1))
            else:
                cells.append(_fmt(v))
        t.add_row(*cells)
    console.print(t)


@click.command(name="mmrm", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("data", metavar="DATA.csv")
@click.argument("formula")
@click.option("--ml", is_flag=True, help="Maximum likelihood instead of REML.")
@click.option(
    "--df",
    "df_method",
    type=click.Choice(["kenward-roger", "satterthwaite", "residual", "between-within"]),
    default=None,
    help="Denominator df (default satterthwaite, as R mmrm; between-within with --vcov empirical).",
)
@click.option(
    "--vcov",
    type=click.Choice(["empirical", "kenward-roger-linear"]),
    default=None,
    help="Covariance of the fixed effects: sandwich, or SAS DDFM=KR(LINEAR).",
)
@click.option("--weights", default=None, metavar="W", help="Column of observation weights (SAS WEIGHT).")
@click.option(
    "--ref", "refs", multiple=True, metavar="VAR=LEVEL", help="Reference level of a factor (repeatable)."
)
@click.option(
    "--levels",
    "level_opts",
    multiple=True,
    metavar="VAR=A,B,...",
    help="Level order of a factor (repeatable). A text time variable defaults to the order the data visit it.",
)
@click.option(
    "--lsmeans", default=None, metavar="SPEC", help='LS means and differences: "ARMCD" or "ARMCD|AVISIT".'
)
@click.option("--json", "json_out", default=None, metavar="OUT", help="Write results as JSON to OUT.")
def mmrm(data, formula, ml, df_method, vcov, weights, refs, level_opts, lsmeans, json_out):
    """Fit an MMRM on DATA.csv with an R mmrm formula, e.g.

    \b
      trialpipe mmrm fev.csv "FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID)" --ref SEX=Male

    Covariance terms: us, cs, csh, ar1, ar1h, toep, toeph, ad, adh, sp_exp, sp_gau (numeric coordinates);
    us(VISIT | GROUP / SUBJECT) fits a separate covariance per GROUP level. The time variable and text
    columns are factors, factor(X) makes a numeric column one. --lsmeans ARMCD gives the ARMCD LS means
    and each level minus the reference level; --lsmeans "ARMCD|AVISIT" does so within each visit.
    Visits given as text are ordered as the data visit them (V1, V7, FU30, FU90), not alphabetically;
    --levels AVISIT=V1,V7,FU30,FU90 sets an order explicitly.
    """
    from rich.console import Console

    from pipelines.stats.mmrm import fit_mmrm
    from pipelines.stats.mmrm.frame import as_frame

    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
        console = Console(width=120)
    err = Console(stderr=True)
    ref = _parse_refs(refs)
    given_levels = _parse_levels(level_opts)
    ls_spec = _parse_lsmeans(lsmeans) if lsmeans else None
    with err.status(f"reading {data}"):
        frame = as_frame(read_columns(data))
        levels = _visit_levels(frame, formula, given_levels)
    if df_method is None and vcov != "empirical":
        # R mmrm's default, and the DDFM of the SAS listing the reference tests reproduce; the
        # pipeline's primary analysis asks for Kenward-Roger explicitly (contract default).
        df_method = "satterthwaite"
    with err.status("fitting the MMRM") as status:
        res = fit_mmrm(
            frame,
            formula,
            reml=not ml,
            df_method=df_method,
            vcov=vcov,
            weights=weights,
            ref=ref,
            levels=levels,
            file=data,
            progress=lambda msg: status.update(msg),
        )
        ls_frame = contrast_frame = None
        if ls_spec and res.inference is not None:
            status.update("LS means")
            factor, by = ls_spec
            ls_frame = res.lsmean_columns(factor, by=by)  # {column: values}: no polars in this process
            contrast_frame = res.lsmean_contrast_columns(factor, by=by)
        if res.inference is not None:
            from pipelines.stats.mmrm.result import TIDY_COLUMNS

            coefs = [dict(zip(["term", *TIDY_COLUMNS], r)) for r in res.coefficient_rows()]
        else:
            coefs = None

    s = res.summary()
    console.print(f"[bold]MMRM[/bold] {res.formula}")
    console.print(
        f"{res.covariance_type} covariance, {res.method}, df {res.df_method}, vcov {res.vcov_method}; "
        f"{res.n_obs} observations, {res.n_subjects_used} subjects with data ({res.n_subjects} in the file)"
    )
    console.print(
        f"-2 log-likelihood {_fmt(s['neg2_loglik'])}  AIC {_fmt(s['aic'], 2)}  AICC {_fmt(s['aicc'], 2)}  "
        f"BIC {_fmt(s['bic'], 2)}  converged: {'yes' if res.converged else '[red]NO[/red]'}"
    )
    if coefs is not None:
        _table(
            console,
            "Fixed effects",
            coefs,
            ["term", "estimate", "std_error", "df", "statistic", "p_value"],
            text_columns={"term"},
        )
        for g, cv in res.covariance.items():
            if cv["matrix"] is None:
                continue
            labels = list(cv["labels"])
            cov_rows = [
                {"": a, **{b: float(cv["matrix"][i, j]) for j, b in enumerate(labels)}}
                for i, a in enumerate(labels)
            ]
            title = "Covariance matrix" + ("" if g == "all" else f" ({g})")
            _table(console, title, cov_rows, ["", *labels], text_columns={""})
    if ls_frame is not None:
        from pipelines.stats.mmrm.result import TIDY_COLUMNS, records

        lead = [c for c in ls_frame if c not in TIDY_COLUMNS]  # the factors' level columns (text)
        _table(
            console,
            "LS means",
            records(ls_frame),
            lead + ["estimate", "std_error", "df", "conf_low", "conf_high"],
            text_columns=set(lead),
        )
        text = [c for c in contrast_frame if c not in TIDY_COLUMNS]
        lead = [c for c in text if c not in (ls_spec[0], "contrast", "reference")] + ["contrast"]
        _table(
            console,
            "Differences of LS means",
            records(contrast_frame),
            lead + ["estimate", "std_error", "df", "p_value", "conf_low", "conf_high"],
            text_columns=set(text),
        )
    for w in res.warnings:
        err.print(f"[yellow]warning:[/yellow] {w}")
    if json_out:
        payload = res.to_dict(lsmeans=ls_frame, contrasts=contrast_frame)
        try:
            Path(json_out).write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
        except OSError as exc:
            raise InputFileError(f"cannot write the JSON output: {exc.strerror}", file=json_out) from exc
    status_text = "converged" if res.converged else "did NOT converge (see warnings)"
    tail = f"; results written to {json_out}" if json_out else ""
    click.echo(
        f"MMRM {res.covariance_type} {res.method} on {res.n_obs} observations from {res.n_subjects_used} subjects "
        f"{status_text}: -2 log-likelihood {_fmt(s['neg2_loglik'])}{tail}."
    )
