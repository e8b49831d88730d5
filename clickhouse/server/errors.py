"""ClickHouse-style errors: the exception code, its name, and the HTTP status a real server sends.

Why this exists: clients (clickhouse-connect, JDBC drivers, Metabase, Superset) decide what to do
from three things only: the HTTP status, the `X-ClickHouse-Exception-Code` header and the
"Code: N. DB::Exception: ... (NAME)" text. chDB raises its errors as Python exceptions whose text
already is that ClickHouse text; this module recovers the code from it and maps code -> status the
way ClickHouse's `exceptionCodeToHTTPStatus` does, so a client cannot tell the difference.
"""

from __future__ import annotations

import re

# Error codes used by the server itself or by the status mapping. Numbers are ClickHouse's
# (`src/Common/ErrorCodes.cpp`), checked against chDB's `system.errors`.
CANNOT_PARSE_TEXT = 6
THERE_IS_NO_COLUMN = 8
DUPLICATE_COLUMN = 15
CANNOT_PARSE_ESCAPE_SEQUENCE = 25
CANNOT_PARSE_QUOTED_STRING = 26
CANNOT_PARSE_INPUT_ASSERTION_FAILED = 27
CANNOT_READ_ALL_DATA = 33
BAD_ARGUMENTS = 36
UNKNOWN_ELEMENT_IN_AST = 37
CANNOT_PARSE_DATE = 38
CANNOT_PARSE_DATETIME = 41
ILLEGAL_COLUMN = 44
UNKNOWN_FUNCTION = 46
UNKNOWN_IDENTIFIER = 47
NOT_IMPLEMENTED = 48
UNKNOWN_TYPE = 50
TYPE_MISMATCH = 53
UNKNOWN_STORAGE = 56
UNKNOWN_TABLE = 60
SYNTAX_ERROR = 62
UNKNOWN_AGGREGATE_FUNCTION = 63
CANNOT_PARSE_NUMBER = 72
UNKNOWN_FORMAT = 73
CANNOT_OPEN_FILE = 76
UNKNOWN_TYPE_OF_QUERY = 78
UNKNOWN_DATABASE = 81
UNKNOWN_COMPRESSION_METHOD = 89
UNKNOWN_SETTING = 115
INCORRECT_DATA = 117
UNKNOWN_TYPE_OF_AST_NODE = 123
UNKNOWN_DIRECTION_OF_SORTING = 152
TIMEOUT_EXCEEDED = 159
TOO_MANY_SIMULTANEOUS_QUERIES = 202
READONLY = 164
TOO_DEEP_AST = 167
TOO_BIG_AST = 168
UNKNOWN_USER = 192
WRONG_PASSWORD = 193
REQUIRED_PASSWORD = 194
SOCKET_TIMEOUT = 209
UNEXPECTED_AST_STRUCTURE = 223
QUERY_IS_TOO_LARGE = 229
CANNOT_DECOMPRESS = 271
VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE = 321
UNKNOWN_DATABASE_ENGINE = 336
SUPPORT_IS_DISABLED = 344
INTO_OUTFILE_NOT_ALLOWED = 358
SESSION_NOT_FOUND = 372
SESSION_IS_LOCKED = 373
INVALID_SESSION_TIMEOUT = 374
CANNOT_PARSE_UUID = 376
HTTP_LENGTH_REQUIRED = 381
TOO_MANY_ROWS_OR_BYTES = 396
CANNOT_COMPILE_REGEXP = 427
CANNOT_SCHEDULE_TASK = 439
CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING = 441
SETTING_CONSTRAINT_VIOLATION = 452
UNKNOWN_QUERY_PARAMETER = 456
ACCESS_DENIED = 497
UNKNOWN_ROLE = 511
SET_NON_GRANTED_ROLE = 512
AUTHENTICATION_FAILED = 516
CANNOT_PARSE_IPV4 = 675
CANNOT_PARSE_IPV6 = 676
USER_SESSION_LIMIT_EXCEEDED = 700
UNSUPPORTED_MEDIA_TYPE = 779
STD_EXCEPTION = 1001

_NAMES: dict[int, str] = {value: name for name, value in globals().items() if name.isupper() and isinstance(value, int)}

# ClickHouse's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp).
_STATUS_GROUPS: tuple[tuple[int, frozenset[int]], ...] = (
    (401, frozenset({REQUIRED_PASSWORD})),
    (403, frozenset({UNKNOWN_USER, WRONG_PASSWORD, AUTHENTICATION_FAILED, SET_NON_GRANTED_ROLE, ACCESS_DENIED})),
    (
        400,
        frozenset(
            {
                BAD_ARGUMENTS,
                CANNOT_COMPILE_REGEXP,
                CANNOT_PARSE_TEXT,
                CANNOT_PARSE_ESCAPE_SEQUENCE,
                CANNOT_PARSE_QUOTED_STRING,
                CANNOT_PARSE_DATE,
                CANNOT_PARSE_DATETIME,
                CANNOT_PARSE_NUMBER,
                CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING,
                CANNOT_PARSE_IPV4,
                CANNOT_PARSE_IPV6,
                CANNOT_PARSE_INPUT_ASSERTION_FAILED,
                CANNOT_PARSE_UUID,
                DUPLICATE_COLUMN,
                ILLEGAL_COLUMN,
                UNKNOWN_ELEMENT_IN_AST,
                UNKNOWN_TYPE_OF_AST_NODE,
                THERE_IS_NO_COLUMN,
                TOO_DEEP_AST,
                TOO_BIG_AST,
                UNEXPECTED_AST_STRUCTURE,
                SYNTAX_ERROR,
                INCORRECT_DATA,
                TYPE_MISMATCH,
                VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE,
            }
        ),
    ),
    (
        404,
        frozenset(
            {
                UNKNOWN_TABLE,
                UNKNOWN_FUNCTION,
                UNKNOWN_IDENTIFIER,
                UNKNOWN_TYPE,
                UNKNOWN_STORAGE,
                UNKNOWN_DATABASE,
                UNKNOWN_SETTING,
                UNKNOWN_DIRECTION_OF_SORTING,
                UNKNOWN_AGGREGATE_FUNCTION,
                UNKNOWN_FORMAT,
                UNKNOWN_DATABASE_ENGINE,
                UNKNOWN_TYPE_OF_QUERY,
                UNKNOWN_ROLE,
            }
        ),
    ),
    (413, frozenset({QUERY_IS_TOO_LARGE})),
    (501, frozenset({NOT_IMPLEMENTED})),
    (503, frozenset({SOCKET_TIMEOUT, CANNOT_OPEN_FILE, CANNOT_SCHEDULE_TASK})),
    (411, frozenset({HTTP_LENGTH_REQUIRED})),
    (408, frozenset({TIMEOUT_EXCEEDED})),
    (415, frozenset({UNSUPPORTED_MEDIA_TYPE})),
)

_CODE_RE = re.compile(r"Code: (\d+)\. ")


def http_status_for(code: int) -> int:
    """The HTTP status ClickHouse sends for an exception code (500 when unlisted)."""
    for status, codes in _STATUS_GROUPS:
        if code in codes:
            return status
    return 500


class ClickHouseError(Exception):
    """An error to report to the client exactly like ClickHouse would: code, text, HTTP status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def make(cls, code: int, text: str) -> ClickHouseError:
        """Build one from a bare description, adding ClickHouse's "Code: N. DB::Exception:" frame."""
        name = _NAMES.get(code)
        suffix = f". ({name})" if name else ""
        return cls(code, f"Code: {code}. DB::Exception: {text.rstrip('.')}{suffix}")

    @classmethod
    def from_engine(cls, error: BaseException) -> ClickHouseError:
        """Recover the ClickHouse code and text from a chDB exception.

        chDB wraps the engine's message in its own prefixes ("Streaming query failed: ..."); the
        client wants the engine's part, which starts at the first "Code: N.".
        """
        text = str(error).strip()
        match = _CODE_RE.search(text)
        if match is None:
            return cls.make(STD_EXCEPTION, text or type(error).__name__)
        return cls(int(match.group(1)), text[match.start() :])

    @property
    def http_status(self) -> int:
        return http_status_for(self.code)

    def body(self, version: str) -> bytes:
        """The response body: the message, ClickHouse's version trailer, a final newline."""
        text = self.message
        if "(version " not in text:
            text = f"{text} (version {version})"
        return (text + "\n").encode("utf-8", errors="replace")
