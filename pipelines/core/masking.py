"""What may be echoed back from a data file: short numbers and short codes; everything else by shape.

Messages (quarantine reasons, ``raw_values``, logs, Dagster event metadata, HTML reports, the CLI)
repeat a value from a file only when it cannot identify anyone: a number of at most 4 digits
(``7``, ``2.5``, ``-1``) or a single short code (``Moderately``, ``PCL0199``). Anything else is
described by its shape - ``[10-digit number]``, ``[text, 23 characters]``, ``[text with control
characters, 3 characters]`` - so a phone number, an SSN, a name or a NUL byte never travels on.
Visit and arm labels that are not mapped are always described by shape (a label can hold a
clinician's name); the row they are in says where they are.

The same rules exist as DuckDB macros (:data:`SQL_MACROS`) for the SQL models.
"""

from __future__ import annotations

import re

_SHORT_NUMBER = re.compile(r"-?\d{1,4}([.,]\d{1,3})?")
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}")
_NUMBERISH = re.compile(r"\+?[\d ().\-/]*\d[\d ().\-/]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shape(value: object) -> str:
    text = str(value)
    if _CONTROL.search(text):
        return f"[text with control characters, {len(text)} characters]"
    if _NUMBERISH.fullmatch(text.strip()):
        return f"[{sum(c.isdigit() for c in text)}-digit number]"
    return f"[text, {len(text)} characters]"


def show(value: object) -> str:
    """The value itself if it is a short number or a short code, else its shape."""
    text = str(value).strip()
    if _SHORT_NUMBER.fullmatch(text) or _CODE.fullmatch(text):
        return text
    return shape(value)


def quote(value: object) -> str:
    shown = show(value)
    return shown if shown.startswith("[") else repr(shown)


# The same in SQL. tp_show/tp_quote for values and codes; tp_label for visit/arm labels.
SQL_MACROS = r"""
create or replace temp macro tp_shape(v) as
    case
        when v is null then '(empty)'
        when regexp_matches(v, '[\x00-\x1f\x7f]') then '[text with control characters, ' || length(v) || ' characters]'
        when regexp_full_match(trim(v), '\+?[0-9 ().\-/]*[0-9][0-9 ().\-/]*')
            then '[' || length(regexp_replace(v, '[^0-9]', '', 'g')) || '-digit number]'
        else '[text, ' || length(v) || ' characters]'
    end;
create or replace temp macro tp_safe(v) as
    regexp_full_match(trim(v), '-?[0-9]{1,4}([.,][0-9]{1,3})?') or regexp_full_match(trim(v), '[A-Za-z][A-Za-z0-9_]{0,15}');
create or replace temp macro tp_show(v) as case when v is null then null when tp_safe(v) then trim(v) else tp_shape(v) end;
create or replace temp macro tp_quote(v) as case when tp_safe(v) then '''' || trim(v) || '''' else tp_shape(v) end;
create or replace temp macro tp_label(v) as
    case when regexp_full_match(trim(v), '[0-9]{1,4}') then '''' || trim(v) || '''' else tp_shape(v) end;
"""
