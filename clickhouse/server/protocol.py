"""ClickHouse's HTTP interface, the request and response conventions, without any I/O.

Why separate from the app: these are the rules clients depend on (which URL parameters are
settings, which are the handler's own, how the query parameter and the body combine, which headers
come back, how an error in the middle of a streamed result is marked), and they are easiest to
keep right as small pure functions with their own tests.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from coinstream.clickhouse.server.errors import (
    BAD_ARGUMENTS,
    INVALID_SESSION_TIMEOUT,
    UNKNOWN_FORMAT,
    UNKNOWN_SETTING,
    ClickHouseError,
)

# URL parameters the HTTP handler itself consumes; every other one (except param_*) is a setting.
HANDLER_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "stacktrace",
        "role",
        "client_protocol_version",
        "with_stacktrace",
    }
)
QUERY_PARAMETER_PREFIX = "param_"
_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_SESSION_TIMEOUT_S = 60.0
MAX_SESSION_TIMEOUT_S = 3600.0

# Formats whose output for a whole result equals the concatenation of the outputs for its blocks:
# those can be streamed block by block from chDB. Everything else (Arrow, Parquet, JSON, Pretty,
# the *WithNames variants...) has a header or footer and is produced in one piece.
_STREAMABLE_FORMATS = frozenset(
    name.lower()
    for name in (
        "Native",
        "RowBinary",
        "TabSeparated",
        "TSV",
        "TabSeparatedRaw",
        "TSVRaw",
        "CSV",
        "JSONEachRow",
        "JSONLines",
        "NDJSON",
        "JSONStringsEachRow",
        "JSONCompactEachRow",
        "JSONCompactStringsEachRow",
        "LineAsString",
        "RawBLOB",
        "CustomSeparated",
    )
)

_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
    "jsonlines": "application/x-ndjson; charset=UTF-8",
    "ndjson": "application/x-ndjson; charset=UTF-8",
    "xml": "application/xml; charset=UTF-8",
}
_BINARY_FORMATS = frozenset(
    name.lower()
    for name in (
        "Native",
        "RowBinary",
        "RowBinaryWithNames",
        "RowBinaryWithNamesAndTypes",
        "Arrow",
        "ArrowStream",
        "Parquet",
        "ORC",
        "Avro",
        "MsgPack",
        "Protobuf",
        "CapnProto",
        "BSONEachRow",
        "Npy",
        "RawBLOB",
    )
)
# chDB's Python layer intercepts these names and returns Python objects instead of bytes.
_PYTHON_ONLY_FORMATS = frozenset({"dataframe", "arrowtable", "datastore", "debug"})


@dataclass
class QueryRequest:
    """Everything the URL and headers say about one query, settings separated from the handler's."""

    query_param: str | None
    database: str | None
    default_format: str
    settings: dict[str, str]
    query_parameters: dict[str, str]
    query_id: str
    session_id: str | None = None
    session_timeout: float = DEFAULT_SESSION_TIMEOUT_S
    session_check: bool = False
    wait_end_of_query: bool = False


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def parse_query_request(params: Mapping[str, str], headers: Mapping[str, str]) -> QueryRequest:
    """Split URL parameters into the handler's own, query parameters and settings.

    Setting names are checked here because they are later spelled into `SET` statements.
    """
    settings: dict[str, str] = {}
    query_parameters: dict[str, str] = {}
    for name, value in params.items():
        if name.startswith(QUERY_PARAMETER_PREFIX) and len(name) > len(QUERY_PARAMETER_PREFIX):
            query_parameters[name[len(QUERY_PARAMETER_PREFIX) :]] = value
        elif name in HANDLER_PARAMS:
            continue
        elif _SETTING_NAME_RE.match(name):
            settings[name] = value
        else:
            raise ClickHouseError.make(UNKNOWN_SETTING, f"Unknown setting '{name[:100]}'")
    timeout_text = params.get("session_timeout")
    session_timeout = DEFAULT_SESSION_TIMEOUT_S
    if timeout_text:
        try:
            session_timeout = float(timeout_text)
        except ValueError:
            raise ClickHouseError.make(BAD_ARGUMENTS, "Invalid session timeout") from None
        if not 0 < session_timeout <= MAX_SESSION_TIMEOUT_S:
            raise ClickHouseError.make(
                INVALID_SESSION_TIMEOUT,
                f"Session timeout must be positive and at most {MAX_SESSION_TIMEOUT_S:g} seconds",
            )
    default_format = params.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated"
    return QueryRequest(
        query_param=params.get("query"),
        database=params.get("database") or headers.get("X-ClickHouse-Database") or None,
        default_format=default_format,
        settings=settings,
        query_parameters=query_parameters,
        query_id=params.get("query_id") or str(uuid.uuid4()),
        session_id=params.get("session_id") or None,
        session_timeout=session_timeout,
        session_check=_truthy(params.get("session_check")),
        wait_end_of_query=_truthy(params.get("wait_end_of_query")) or _truthy(settings.get("http_wait_end_of_query")),
    )


def check_output_format(name: str) -> str:
    """Refuse the format names chDB's Python layer would turn into Python objects."""
    if name.lower() in _PYTHON_ONLY_FORMATS:
        raise ClickHouseError.make(UNKNOWN_FORMAT, f"Unknown output format {name}")
    return name


def is_streamable(fmt: str) -> bool:
    """Whether a result in this format can be sent block by block as chDB produces it."""
    return fmt.lower() in _STREAMABLE_FORMATS


def content_type(fmt: str) -> str:
    """The Content-Type ClickHouse labels a result in this format with."""
    lowered = fmt.lower()
    if lowered in _CONTENT_TYPES:
        return _CONTENT_TYPES[lowered]
    if lowered in _BINARY_FORMATS:
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def quote_setting_value(value: str) -> str:
    """A setting value as an SQL string literal (ClickHouse converts strings to the setting's type)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def set_statement(settings: Mapping[str, str]) -> str | None:
    """One `SET a = 'x', b = 'y'` statement for the settings, or None when there are none."""
    if not settings:
        return None
    for name in settings:
        if not _SETTING_NAME_RE.match(name):
            raise ClickHouseError.make(UNKNOWN_SETTING, f"Unknown setting '{name[:100]}'")
    assignments = ", ".join(f"{name} = {quote_setting_value(value)}" for name, value in settings.items())
    return f"SET {assignments}"


@dataclass
class Summary:
    """The counters of X-ClickHouse-Summary (clickhouse-connect turns them into QuerySummary)."""

    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_rows: int = 0
    result_bytes: int = 0
    elapsed_ns: int = 0

    def header(self) -> str:
        values = {
            "read_rows": self.read_rows,
            "read_bytes": self.read_bytes,
            "written_rows": self.written_rows,
            "written_bytes": self.written_bytes,
            "total_rows_to_read": self.read_rows,
            "result_rows": self.result_rows,
            "result_bytes": self.result_bytes,
            "elapsed_ns": self.elapsed_ns,
        }
        return json.dumps({key: str(value) for key, value in values.items()}, separators=(",", ":"))


def new_exception_tag() -> str:
    """A random tag marking an error written into an already started response body."""
    return secrets.token_hex(8)


def exception_block(tag: str, message: str) -> bytes:
    """ClickHouse's in-band error marker, for errors after the response headers were sent.

    Layout (ClickHouse 25.11+, parsed by clickhouse-connect when the response carried
    `X-ClickHouse-Exception-Tag`): `__exception__\\r\\n<tag>\\r\\n<message>\\n<length> <tag>\\r\\n__exception__\\r\\n`.
    """
    text = message.rstrip("\n")
    encoded = text.encode("utf-8", errors="replace")
    return (
        b"__exception__\r\n"
        + tag.encode()
        + b"\r\n"
        + encoded
        + b"\n"
        + str(len(encoded)).encode()
        + b" "
        + tag.encode()
        + b"\r\n__exception__\r\n"
    )
