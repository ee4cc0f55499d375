"""User-facing errors.

A ``TrialpipeError`` is a problem with the user's input or configuration. Its message must let a
biostatistician fix the input without reading code: it names the file, the row, the column and the
value at fault, and what was expected. The CLI prints it without a traceback.

Every kind of user error is declared here, so this module is the catalogue of what a user can be
told; a run shows any subclass as its message (``runner.user_error_names``).
"""

from __future__ import annotations


class TrialpipeError(Exception):
    """A problem the user can fix: bad input, bad manifest, bad option."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        value: object | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        self.value = value
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.value is not None:
            from pipelines.core.masking import quote

            where.append(f"value {quote(self.value)}")  # by shape unless a short number or code
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ManifestError(TrialpipeError):
    """The study manifest (study.yaml) is missing, malformed or inconsistent."""


class InputFileError(TrialpipeError):
    """A data file cannot be read or does not have the shape its manifest entry declares."""


class ModelSpecError(TrialpipeError):
    """A model formula or option cannot be fitted as written (unknown column, bad structure...)."""


class DuplicateStudyError(TrialpipeError):
    """Two study folders declare the same study_id."""


class IdentifiableDataError(InputFileError):
    """The file holds (or looks like it holds) identifiers; it was not loaded."""


class StorageError(TrialpipeError):
    """The disk or the file system refused a write or a read (full, read-only, no permission)."""


class WarehouseBusyError(TrialpipeError):
    """Another process has the published warehouse open for writing."""


class SubmissionError(TrialpipeError):
    """A dataset cannot be written as a version 5 transport file as it stands."""
