"""The lines ``trialpipe demo`` ends with: the primary result, its clusters, the other instruments'
totals and the responder rates, formatted like the report (ASCII only, for any terminal).

Example (two-arm)::

    CAPS-5 total at Week 2, Ketamine - Midazolam: -11.88 (95% CI -20.01 to -3.75), p = 0.006, d = -1.13
      jump to reference (J2R, condmean-jackknife): -10.90 (95% CI -18.20 to -3.60), p = 0.003
      Cluster B (Intrusion): -3.41 (95% CI -5.87 to -0.95), p = 0.008, adjusted p = 0.034
      ...
    PCL-5 total: -12.40 (95% CI -22.04 to -2.76), p = 0.014, d = -0.95
    MADRS total: -9.80 (95% CI -16.98 to -2.62), p = 0.009, d = -1.05
    CAPS-5 total response (reduction from baseline >= 30%): Ketamine 10/15 (66.7%) vs Midazolam 3/15 (20.0%), Fisher p = 0.025
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.core.warehouse import open_database
from pipelines.report import fmt
from pipelines.report import tables as T
from pipelines.report.data import StudyData, load_study


def _effect_text(e: dict, level: float, *, d: bool = True, adjusted: bool = False) -> str:
    parts = [
        f"{fmt.num(e.get('estimate'), missing='n/a')} ({fmt.ci_words(e.get('conf_low'), e.get('conf_high'), level)})",
        fmt.p_text(e.get("p_value")),
    ]
    if adjusted and fmt.is_num(e.get("p_adjusted")):
        parts.append(fmt.p_text(e.get("p_adjusted"), name="adjusted p"))
    if d and fmt.is_num(e.get("cohens_d")):
        parts.append(f"d = {fmt.num(e.get('cohens_d'))}")
    return ", ".join(parts)


def _ascii(text: str) -> str:
    return text.replace("\u2265", ">=").replace("\u2264", "<=").replace("\u2212", "-").replace("\u2014", "-")


def _flags(data: StudyData, paramcd: str, model: str = "mmrm") -> str:
    notes = T.fit_notes(data, paramcd, model)
    return f" [{'; '.join(notes)}]" if notes else ""


def _two_arm_lines(data: StudyData) -> list[str]:
    lines = []
    pcd = data.primary_parameter
    primary = data.param(pcd)
    visit = data.visit_label(data.primary_visit)
    exp, ctl = data.experimental.label, data.control.label
    e = data.effect(pcd)
    head = f"{primary.full_label} at {visit}, {exp} - {ctl}: "
    lines.append(head + (_effect_text(e, data.level) + _flags(data, pcd) if e else "no result"))
    lost = T.missing_item_lines(data, pcd)
    if lost:
        lines.append(f"  {primary.full_label} scores lost to missing items (lost / assessed):")
        lines += [f"    {x}" for x in lost]
    ep = data.effect(pcd, model="mmrm_prorated")
    if ep:
        lines.append(
            "  sensitivity, prorated scores (mmrm_prorated): "
            + _effect_text(ep, data.level)
            + _flags(data, pcd, "mmrm_prorated")
        )
    for c in data.paramcds():
        p = data.param(c)
        if p.instrument == primary.instrument and p.cluster:
            ec = data.effect(c)
            lines.append(
                f"  {p.label}: "
                + (
                    _effect_text(ec, data.level, d=False, adjusted=True) + _flags(data, c)
                    if ec
                    else "no result"
                )
            )
    for c in data.paramcds():
        p = data.param(c)
        if p.is_total and c != pcd:
            ec = data.effect(c)
            lines.append(
                f"{p.full_label}: " + (_effect_text(ec, data.level) + _flags(data, c) if ec else "no result")
            )
    lines += _responder_lines(data)
    return lines


def _responder_lines(data: StudyData) -> list[str]:
    lines = []
    for g in T.responder_groups(data):
        if g["missing_data"] != "observed" and g["paramcd"] != data.primary_parameter:
            continue  # non-responder imputation is shown for the primary parameter only
        arms = []
        for a in data.arms:
            r = g["arms"].get(a.id)
            if r is not None:
                arms.append(f"{a.label} {fmt.count_pct(r.get('n_responders'), r.get('n_evaluable'))}")
        if not arms:
            continue
        label = data.param(g["paramcd"] or "").full_label
        rule = g["rule"]
        if rule.startswith(label + " reduction"):
            rule = rule[len(label) + 1 :]
        text = f"{g['label'].replace(': ', ' ')}" + (f" ({rule})" if rule else "") + ": " + " vs ".join(arms)
        comp = g["comp"]
        if fmt.is_num(comp.get("p_value")):
            name = "Fisher p" if "fisher" in (g["test"] or "").lower() else "p"
            text += ", " + fmt.p_text(comp.get("p_value"), name=name)
        lines.append(_ascii(text))
    return lines


def _single_arm_lines(data: StudyData) -> list[str]:
    arm = data.arms[0]
    visit = data.visit_label(data.primary_visit)
    lines = [f"Single-arm study ({arm.label}): change from baseline at {visit}, no control arm"]
    for c in data.paramcds():
        p = data.param(c)
        ls = data.lsmean(c, arm.id)
        if not ls or not (p.is_total or p.instrument == data.param(data.primary_parameter).instrument):
            continue
        lines.append(
            ("  " if not p.is_total else "") + f"{p.full_label if p.is_total else p.label}: LS-mean change "
            f"{fmt.num(ls.get('estimate'), missing='n/a')} "
            f"({fmt.ci_words(ls.get('conf_low'), ls.get('conf_high'), data.level)})" + _flags(data, c)
        )
    return lines + _responder_lines(data)


def headline_lines(con: duckdb.DuckDBPyConnection, study_id: str) -> list[str]:
    """The demo's closing lines for ``study_id`` (a sentence saying what is missing when results are)."""
    data = load_study(con, study_id)
    if not data.arms:
        return [f"{study_id}: no arms or results found in the warehouse."]
    if data.single_arm:
        lines = _single_arm_lines(data)
        return lines if len(lines) > 1 else lines + ["  no LS means stored (results.lsmeans)"]
    if not data.has_rows("results.treatment_effects"):
        return [
            f"{study_id}: no treatment effects stored (results.treatment_effects is missing or empty)."
        ] + _responder_lines(data)
    lines = _two_arm_lines(data)
    j2r = _j2r_line(con, data)
    if j2r:
        lines.insert(1, j2r)
    return [_ascii(line) for line in lines]


def _j2r_line(con: duckdb.DuckDBPyConnection, data: StudyData) -> str | None:
    """The primary contrast under jump to reference (results.sensitivity), shown beside the primary."""
    from pipelines.report.data import has_table

    if not has_table(con, "results.sensitivity"):
        return None
    row = con.execute(
        """
        select estimate, conf_low, conf_high, p_value, method from results.sensitivity
        where study_id = ? and paramcd = ? and avisit = ? and strategy = 'J2R' and delta = 0
        order by estimand_id = 'primary' desc, estimand_id limit 1
        """,
        [data.study_id, data.primary_parameter, data.primary_visit],
    ).fetchone()
    if row is None:
        return None
    e = dict(zip(("estimate", "conf_low", "conf_high", "p_value"), row[:4]))
    return f"  jump to reference (J2R, {row[4]}): " + _effect_text(e, data.level, d=False)


def missing_item_summary(con: duckdb.DuckDBPyConnection, study_id: str) -> list[str]:
    """CLI lines for every instrument total that lost scores to missing items (lost / assessed per arm
    and visit), and the prorated-score sensitivity result beside the primary when it ran."""
    data = load_study(con, study_id)
    lines = []
    for g in T.missing_item_groups(data):
        lines.append(f"{g['label']} scores lost to missing items (lost / assessed):")
        lines += [
            f"  {v['visit']}: " + ", ".join(f"{data.arm_label(a)} {t}" for a, t in v["arms"].items())
            for v in g["visits"]
        ]
    pcd = data.primary_parameter
    e, ep = data.effect(pcd), data.effect(pcd, model="mmrm_prorated")
    if ep:
        label = data.param(pcd).full_label
        lines.append(f"{label} at {data.visit_label(data.primary_visit)}, primary MMRM: "
                     + (_effect_text(e, data.level) if e else "no result"))
        lines.append(f"  sensitivity, prorated scores (mmrm_prorated): {_effect_text(ep, data.level)}"
                     + _flags(data, pcd, "mmrm_prorated"))
    return [_ascii(x) for x in lines]


def _print_lines(outcome, console, lines_of, *, say_unreadable: bool) -> bool:
    """Print ``lines_of(con, study_id)`` read from the run's published warehouse, indented; False
    when the warehouse cannot be opened (said on the console when ``say_unreadable``)."""
    try:
        con = open_database(outcome.warehouse, read_only=True)
    except duckdb.Error as exc:
        if say_unreadable:
            console.print(f"  could not open {outcome.warehouse}: {exc}", markup=False, highlight=False)
        return False
    try:
        lines = lines_of(con, outcome.study_id)
    finally:
        con.close()
    for line in lines:
        console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    return True


def print_missing_items(outcome, console) -> None:
    _print_lines(outcome, console, missing_item_summary, say_unreadable=False)


def print_headline(outcome, console) -> None:
    """Print :func:`headline_lines` for a finished run, then where its report is (when written)."""
    if not _print_lines(outcome, console, headline_lines, say_unreadable=True):
        return
    report = Path(outcome.report_dir) / f"{outcome.study_id}.html"
    if report.exists():
        console.print(f"  report: {report.resolve()}", markup=False, highlight=False)
