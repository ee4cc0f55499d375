"""Read a data file into an all-text polars frame, or fail with a message naming the place.

Every reader returns the file's cells as text (``pl.String``) exactly as received, plus
``_source_row``: the row number a person sees when opening the file (header lines counted, so the
first data row of a plain CSV is row 2, of an NDA file row 3; XPT/Parquet observations count from
1). Empty cells are empty strings, so "cell left empty" and "column absent" stay distinguishable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.core.errors import InputFileError

ROW_COL = "_source_row"
_DELIMITERS = [",", ";", "\t", "|"]


@dataclass(frozen=True)
class TextTable:
    frame: pl.DataFrame  # all columns String (cells stripped of surrounding whitespace), plus _source_row (Int64)
    columns: list[str]  # the file's own column names, in file order
    header_lines: int  # lines before the first data row (for messages)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def decode_bytes(data: bytes, encoding: str, label: str) -> str:
    """Decode a file's bytes; a UTF-8 BOM is dropped. Invalid bytes give the line and a hint."""
    enc = encoding.lower().replace("_", "-")
    if enc in ("utf-8", "utf8", "utf-8-sig"):
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            bad = data[exc.start : exc.start + 1].hex()
            raise InputFileError(
                f"is not valid UTF-8 (byte 0x{bad} at line {line})",
                file=label,
                row=line,
                hint="if the file was saved as Latin-1/Windows-1252, declare `encoding: latin-1` for this source",
            ) from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(f"cannot be decoded as {encoding} at line {line}", file=label, row=line) from None


def detect_delimiter(header_line: str) -> str:
    """The delimiter that splits the header line into the most fields (',' on a tie or none)."""
    counts = {d: len(next(csv.reader([header_line], delimiter=d))) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > 1 else ","


def _check_header(names: list[str], label: str, header_row: int) -> list[str]:
    cleaned = [n.strip() for n in names]
    seen: dict[str, int] = {}
    for i, name in enumerate(cleaned):
        if name == "":
            raise InputFileError(
                f"column {i + 1} of the header has no name", file=label, row=header_row
            )
        key = name.lower()
        if key in seen:
            raise InputFileError(
                f"the header names column {name!r} twice (columns {seen[key] + 1} and {i + 1}); "
                "column names must be unique",
                file=label,
                row=header_row,
                column=name,
            )
        seen[key] = i
    return cleaned


def read_delimited(
    path: Path,
    *,
    label: str,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    skip_lines: int = 0,
    extra_header_lines: int = 0,
) -> TextTable:
    """Read CSV/TSV text. ``skip_lines`` lines come before the header (NDA template line 1);
    ``extra_header_lines`` lines after the header are dropped (NDA download descriptions)."""
    data = path.read_bytes()
    if not data.strip():
        raise InputFileError("is empty (0 data rows and no header)", file=label)
    text = decode_bytes(data, encoding, label)  # checks the encoding (the error names the line)
    n_head = skip_lines + 1 + extra_header_lines
    lines: list  # the header lines (str), then the rest of the file unsplit (str, or bytes below)
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig") and b"\r" not in data:
        # UTF-8 with \n line ends (checked above): the body goes to the CSV parser as the file's own
        # bytes, not copied through Python text and back
        raw = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
        parts = raw.split(b"\n", n_head)
        lines = [p.decode("utf-8") for p in parts[:n_head]] + parts[n_head:]
    else:
        # Split off only the header lines; the body goes to the CSV parser untouched (fast on big files).
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n", n_head)
    if len(lines) <= skip_lines or not lines[skip_lines].strip():
        raise InputFileError(f"has no header line after line {skip_lines}", file=label)
    header_line = lines[skip_lines]
    if delimiter is None:
        delimiter = detect_delimiter(header_line)
    names = next(csv.reader([header_line], delimiter=delimiter))
    names = _check_header(names, label, skip_lines + 1)
    body_start = skip_lines + 1 + extra_header_lines
    body = lines[body_start] if len(lines) > body_start else ""
    header_lines = body_start
    if _blank(body):
        frame = pl.DataFrame({n: pl.Series(n, [], dtype=pl.String) for n in names})
    else:
        try:
            frame = pl.read_csv(
                body if isinstance(body, bytes) else io.StringIO(body),
                has_header=False,
                new_columns=names,
                separator=delimiter,
                infer_schema=False,
                empty_string_is_null=False,
                truncate_ragged_lines=False,
                raise_if_empty=False,
            )
        except pl.exceptions.PolarsError as exc:
            raise InputFileError(
                f"cannot be parsed as {_delim_name(delimiter)}-delimited text: {str(exc).splitlines()[0]}",
                file=label,
                hint="check for rows with more fields than the header or an unbalanced quote",
            ) from None
        if frame.width != len(names):
            raise InputFileError(
                f"rows have {frame.width} fields but the header has {len(names)}", file=label
            )
        # Polars keeps trailing blank lines out; strip stray whitespace around cells (in the columns
        # that have any: finding them costs half of stripping every cell of every column).
        padded = frame.select(pl.all().str.contains(r"^\s|\s$").any())
        frame = frame.with_columns(pl.col(c).str.strip_chars() for c in padded.columns if padded[c][0])
    frame = frame.with_row_index(ROW_COL, offset=header_lines + 1).with_columns(pl.col(ROW_COL).cast(pl.Int64))
    return TextTable(frame=frame, columns=names, header_lines=header_lines)


def _blank(body: str | bytes) -> bool:
    """Nothing but whitespace (``str.strip`` would leave nothing); a bytes body is decoded for the
    test (Unicode whitespace, as ``str.strip`` sees it), not kept."""
    if isinstance(body, bytes):
        body = body.decode("utf-8")  # valid: checked with the whole file
    return not body or body.isspace()


def _delim_name(d: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(d, repr(d))


def _cell_text(v: object) -> str:
    """Numbers as a person would type them: 2.0 -> '2', 2.5 -> '2.5'; missing -> ''."""
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if v.is_integer():
            return str(int(v))
        return repr(v)
    if isinstance(v, bytes):
        return v.decode("latin-1").strip()
    return str(v).strip()


def _frame_from_records(columns: list[str], data: dict[str, list[object]], label: str) -> TextTable:
    names = _check_header(list(columns), label, 0)
    frame = pl.DataFrame(
        {name: pl.Series(name, [_cell_text(v) for v in data[col]], dtype=pl.String) for name, col in zip(names, columns)}
    )
    frame = frame.with_row_index(ROW_COL, offset=1).with_columns(pl.col(ROW_COL).cast(pl.Int64))
    return TextTable(frame=frame, columns=names, header_lines=0)


def read_parquet(path: Path, *, label: str) -> TextTable:
    try:
        raw = pl.read_parquet(path)
    except Exception as exc:  # pyarrow/polars raise several types for corrupt files
        raise InputFileError(f"is not a readable Parquet file: {str(exc).splitlines()[0]}", file=label) from None
    return _frame_from_records(raw.columns, {c: raw[c].to_list() for c in raw.columns}, label)


def read_xpt(path: Path, *, label: str) -> TextTable:
    import pyreadstat

    if path.stat().st_size == 0:
        raise InputFileError("is empty (0 bytes)", file=label)
    try:
        df, _meta = pyreadstat.read_xport(str(path))
    except Exception as exc:  # pyreadstat.ReadstatError and friends
        raise InputFileError(
            f"is not a readable SAS XPORT (.xpt) file ({str(exc).splitlines()[0] or type(exc).__name__})",
            file=label,
            hint="the file may be truncated or not a transport file; re-export it with SAS XPORT v5",
        ) from None
    return _frame_from_records(list(df.columns), {c: df[c].tolist() for c in df.columns}, label)


def read_any(path: Path, fmt: str, *, label: str, encoding: str = "utf-8", delimiter: str | None = None) -> TextTable:
    if not path.is_file():
        raise InputFileError("does not exist (named in study.yaml)", file=label)
    if fmt in ("csv", "txt"):
        return read_delimited(path, label=label, encoding=encoding, delimiter=delimiter)
    if fmt == "tsv":
        return read_delimited(path, label=label, encoding=encoding, delimiter=delimiter or "\t")
    if fmt == "parquet":
        return read_parquet(path, label=label)
    if fmt == "xpt":
        return read_xpt(path, label=label)
    raise InputFileError(f"unsupported format {fmt!r}", file=label)
