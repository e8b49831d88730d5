"""`coinstream ksql apply`: send the statements to a real ksqlDB server's REST API, idempotently.

Why idempotent: deployments re-apply the same files on every start. Before sending anything we
ask the server for its streams and tables (`SHOW STREAMS;`, `SHOW TABLES;`); a CREATE whose
stream/table already exists is skipped (unless it says CREATE OR REPLACE, which the server
applies as an in-place upgrade), so re-applying is a no-op.

Protocol (ksqlDB REST API): `POST /ksql` with content type `application/vnd.ksql.v1+json` and
body `{"ksql": "...;", "streamsProperties": {...}, "commandSequenceNumber": N}`. Success is a JSON
array of entities (`currentStatus` for DDL/queries, `streams`/`tables` for SHOW); a rejected
statement is HTTP 400 with `{"@type": "statement_error", "error_code": 40001, "message": ...,
"statementText": ...}`. Each statement is sent on its own, carrying the previous command's
sequence number, so the server has executed a stream before the table built on it is created.

Credentials (KSQLDB_USER/KSQLDB_PASSWORD) travel as HTTP basic auth and never appear in messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from coinstream.ksql.parser import StatementInfo, split_statements

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.ksql.v1+json"
DEFAULT_STREAMS_PROPERTIES = {"ksql.streams.auto.offset.reset": "earliest"}


class ApplyError(RuntimeError):
    """The server refused a statement, or could not be reached. The message names the statement."""


@dataclass
class ApplyResult:
    statement: StatementInfo
    action: str  # created | replaced | exists | sent
    message: str = ""


@dataclass
class ApplyReport:
    results: list[ApplyResult] = field(default_factory=list)

    def summary(self) -> str:
        lines = []
        for result in self.results:
            what = f"{result.statement.object_type or ''} {result.statement.name or ''}".strip() or "statement"
            lines.append(f"{result.action:9s} {what}" + (f": {result.message}" if result.message else ""))
        return "\n".join(lines)


def safe_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class KsqlDbClient:
    """A minimal client for ksqlDB's `/ksql` endpoint."""

    def __init__(
        self,
        server: str,
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = 60.0,
        streams_properties: dict[str, Any] | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.timeout_s = timeout_s
        self.streams_properties = dict(DEFAULT_STREAMS_PROPERTIES if streams_properties is None else streams_properties)
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": f"{CONTENT_TYPE}; charset=utf-8", "Accept": CONTENT_TYPE})
        if user:
            self.session.auth = (user, password or "")
        self.command_sequence: int | None = None

    def close(self) -> None:
        self.session.close()

    def ksql(self, statement: str) -> list[dict]:
        body: dict[str, Any] = {"ksql": statement, "streamsProperties": self.streams_properties}
        if self.command_sequence is not None:
            body["commandSequenceNumber"] = self.command_sequence
        where = safe_url(self.server)
        try:
            response = self.session.post(f"{self.server}/ksql", json=body, timeout=self.timeout_s)
        except requests.RequestException as error:
            raise ApplyError(f"cannot reach ksqlDB at {where}: {type(error).__name__}") from None
        if response.status_code == 401:
            raise ApplyError(f"ksqlDB at {where} refused the credentials (HTTP 401): check KSQLDB_USER/KSQLDB_PASSWORD")
        if response.status_code == 403:
            raise ApplyError(f"ksqlDB at {where}: the user may not run this statement (HTTP 403)")
        try:
            payload = response.json()
        except ValueError:
            raise ApplyError(f"ksqlDB at {where} answered HTTP {response.status_code} with a non-JSON body") from None
        if response.status_code >= 400 or (isinstance(payload, dict) and "error_code" in payload):
            refusal = payload if isinstance(payload, dict) else {}
            raise StatementRejected(
                refusal.get("error_code", response.status_code), str(refusal.get("message", "no message")), statement
            )
        if not isinstance(payload, list):
            raise ApplyError(f"ksqlDB at {where} answered with an unexpected body (not a JSON array)")
        for entity in payload:
            status = entity.get("commandStatus") or {}
            if status.get("status") in ("ERROR", "TERMINATED"):
                raise StatementRejected(status.get("status"), str(status.get("message", "")), statement)
            if entity.get("commandSequenceNumber") is not None:
                self.command_sequence = entity["commandSequenceNumber"]
        return payload

    def existing_sources(self) -> dict[str, str]:
        """Name -> STREAM/TABLE for everything the server already has."""
        found: dict[str, str] = {}
        for statement, entity_type, key in (
            ("SHOW STREAMS;", "streams", "streams"),
            ("SHOW TABLES;", "tables", "tables"),
        ):
            for entity in self.ksql(statement):
                if entity.get("@type") == entity_type:
                    for source in entity.get(key, []):
                        found[source["name"]] = str(source.get("type", entity_type[:-1])).upper()
        return found


class StatementRejected(ApplyError):
    def __init__(self, code: Any, message: str, statement: str) -> None:
        self.code = code
        self.server_message = message
        self.statement = statement
        super().__init__(f"ksqlDB rejected the statement (error {code}): {message}")


def apply_script(script: str, client: KsqlDbClient) -> ApplyReport:
    """Apply every statement of `script` in order; stop at the first refusal (later ones may depend on it)."""
    statements = split_statements(script)
    report = ApplyReport()
    others = [s for s in statements if s.kind != "CREATE"]
    if others:
        first = others[0]
        raise ApplyError(
            f"line {first.line}: only CREATE statements can be applied idempotently; refusing: {first.text}"
        )
    existing = client.existing_sources()
    for statement in statements:
        present = existing.get(statement.name or "")
        if present is not None and not statement.or_replace:
            note = (
                "already exists"
                if statement.if_not_exists
                else "already exists (not re-created; use CREATE OR REPLACE to change it)"
            )
            report.results.append(ApplyResult(statement, "exists", note))
            continue
        try:
            entities = client.ksql(statement.text)
        except StatementRejected as error:
            raise ApplyError(
                f"line {statement.line}: ksqlDB rejected the statement (error {error.code}): "
                f"{error.server_message}\n  statement: {statement.text}"
            ) from None
        except ApplyError as error:
            raise ApplyError(f"line {statement.line}: {error}\n  statement: {statement.text}") from None
        message = ""
        for entity in entities:
            message = (entity.get("commandStatus") or {}).get("message", message)
        report.results.append(ApplyResult(statement, "replaced" if present is not None else "created", message))
        if statement.name:
            existing[statement.name] = statement.object_type or ""
    return report
