"""The two ways a statement is refused, kept apart because callers must say which one happened.

`InvalidStatement`: ksqlDB itself would reject the statement (syntax error, unknown column, type
error). `UnsupportedStatement`: the statement may be valid ksqlDB, but it is outside the subset this
engine implements (ksql/README.md), so we refuse it rather than risk a wrong answer. Both carry the
position (1-based line and column) of the offending text when it is known.
"""

from __future__ import annotations


class KsqlError(Exception):
    """Base of every statement-level error raised by the ksql package."""

    kind = "error"

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"line {self.line}:{self.column}: " if self.line is not None else ""
        return f"{self.kind}: {where}{self.message}"


class InvalidStatement(KsqlError):
    """The statement is not valid ksqlDB (ksqlDB would reject it too)."""

    kind = "invalid"


class UnsupportedStatement(KsqlError):
    """The statement uses a construct outside the documented subset."""

    kind = "unsupported"

    def __init__(self, construct: str, line: int | None = None, column: int | None = None) -> None:
        self.construct = construct
        super().__init__(construct, line, column)


class RecordError(Exception):
    """One record could not be processed (bad bytes, bad timestamp, failing expression).

    Never fatal: the record goes to the processing log with this reason, like ksqlDB's
    processing log, and processing continues. `kind` is the entry's category there (one of
    ksql.engine.PROCESSING_LOG_KINDS); the deserializers raise it with the default.
    """

    def __init__(self, reason: str, kind: str = "deserialization") -> None:
        super().__init__(reason)
        self.kind = kind
