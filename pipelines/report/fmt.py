"""Numbers as a clinical report prints them; one place so the HTML report, the Dagster metadata and
the CLI headline agree.

Rules: estimates, SEs, CIs and effect sizes 2 decimals; p values 3 decimals, ``<0.001`` below
0.001 and ``>0.999`` above 0.999; a CI is ``(lo, hi)`` in tables and ``95% CI lo to hi`` in
sentences; percentages 1 decimal; a missing or non-finite number prints as an em dash (tables) or
``n/a`` (sentences). Minus signs are ASCII so numbers copy into other tools unchanged.
"""

from __future__ import annotations

import math

DASH = "\u2014"


def is_num(x) -> bool:
    """True for a finite int/float (None, NaN, inf and non-numbers are False)."""
    if x is None or isinstance(x, bool):
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def num(x, digits: int = 2, missing: str = DASH) -> str:
    """``-11.88``; a value that rounds to zero prints without a minus sign."""
    if not is_num(x):
        return missing
    s = f"{float(x):.{digits}f}"
    if s.startswith("-") and float(s) == 0:
        s = s[1:]
    return s


def p_value(p, missing: str = DASH) -> str:
    """``0.006``, ``<0.001``, ``>0.999``."""
    if not is_num(p):
        return missing
    p = float(p)
    if p < 0.001:
        return "<0.001"
    if p > 0.999:
        return ">0.999"
    return f"{p:.3f}"


def p_text(p, name: str = "p", missing: str = "n/a") -> str:
    """``p = 0.006``, ``p < 0.001``, ``adjusted p > 0.999``."""
    s = p_value(p, missing=missing)
    if s.startswith(("<", ">")):
        return f"{name} {s[0]} {s[1:]}"
    return f"{name} = {s}"


def ci(lo, hi, digits: int = 2) -> str:
    """``(-20.01, -3.75)``; a dash when either limit is missing."""
    if not (is_num(lo) and is_num(hi)):
        return DASH
    return f"({num(lo, digits)}, {num(hi, digits)})"


def ci_words(lo, hi, level: float = 95, digits: int = 2) -> str:
    """``95% CI -20.01 to -3.75`` (``95% CI n/a`` when a limit is missing)."""
    lev = f"{level:g}%"
    if not (is_num(lo) and is_num(hi)):
        return f"{lev} CI n/a"
    return f"{lev} CI {num(lo, digits)} to {num(hi, digits)}"


def est_se(est, se, digits: int = 2) -> str:
    """``-13.92 (3.40)`` - an estimate with its SE in brackets."""
    if not is_num(est):
        return DASH
    return f"{num(est, digits)} ({num(se, digits)})" if is_num(se) else num(est, digits)


def mean_sd(mean, sd, digits: int = 1) -> str:
    """``45.2 (8.3)`` - descriptive mean (SD)."""
    if not is_num(mean):
        return DASH
    return f"{num(mean, digits)} ({num(sd, digits)})" if is_num(sd) else num(mean, digits)


def pct(x, digits: int = 1) -> str:
    """A proportion 0-1 as a percentage: ``66.7%``."""
    if not is_num(x):
        return DASH
    return f"{num(100 * float(x), digits)}%"


def count_pct(k, n, digits: int = 1) -> str:
    """``10/15 (66.7%)``."""
    if not (is_num(k) and is_num(n)):
        return DASH
    k, n = int(k), int(n)
    return f"{k}/{n} ({num(100 * k / n, digits)}%)" if n else f"{k}/{n}"


def level_of(alpha) -> float:
    """Confidence level in percent for a two-sided alpha (95 for 0.05; 95 when alpha is unknown)."""
    return round(100 * (1 - float(alpha)), 6) if is_num(alpha) and 0 < float(alpha) < 1 else 95.0
