"""Errors that reach the user as one clear line and a non-zero exit.

Every reader and validator raises :class:`InputError` for bad input, naming the
file (or API field), the line and the field. The CLI turns it into one line on
stderr and exit code 2; the API turns it into an HTTP 4xx. Nothing else about
bad input should ever surface as a traceback.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad user input: a malformed file, a wrong scenario field, a corrupt model."""

    def __init__(self, source: str, message: str, *, line: int | None = None,
                 field: str | None = None) -> None:
        self.source = str(source)
        self.message = message
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
        if self.field is not None:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"
