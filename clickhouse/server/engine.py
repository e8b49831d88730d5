"""The chDB engine behind the HTTP server: one data directory, many lightweight connections.

Concurrency model (measured on chDB 4.4 / ClickHouse 26.9, see tests/test_clickhouse_server.py):
chDB keeps one ClickHouse engine per process, but a process may open many `Connection`s to the
same path. Each connection has its own session context (settings, current database, temporary
tables) while sharing the databases, and queries on different connections run truly in parallel:
the engine is ClickHouse's own multi-threaded server code and releases the GIL. Opening one costs
about a millisecond. So instead of one global lock, the server gives every HTTP request (or every
ClickHouse HTTP session) its own connection and runs the blocking chDB calls on a bounded thread
pool (`max_workers`, ClickHouse's `max_concurrent_queries` in spirit). The event loop never waits
on chDB, and a streamed result holds no thread between chunks: each chunk is one pool task, so a
slow reader keeps only its open stream, never a worker, and cannot starve other clients.

Everything here is synchronous and meant to run on that pool (`Engine.call`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from coinstream.clickhouse.server import policy, sqlscan
from coinstream.clickhouse.server.confinement import (
    CONFINED_PROFILE,
    READONLY_PROFILE,
    ReadonlyLimits,
    write_engine_config,
)
from coinstream.clickhouse.server.errors import (
    ACCESS_DENIED,
    NOT_IMPLEMENTED,
    READONLY,
    SYNTAX_ERROR,
    TOO_MANY_ROWS_OR_BYTES,
    ClickHouseError,
)
from coinstream.clickhouse.server.protocol import Summary, set_statement

T = TypeVar("T")

# ClickHouse's `readonly` levels. Level 2 forbids writes and DDL but lets a client change the
# settings its profile's constraints leave changeable (dashboard tools need some), and it can
# never be lowered again on that connection.
READONLY_LEVEL = 2


def ensure_utc_process() -> None:
    """Make the process time zone UTC before chDB starts: every timestamp the pipeline stores is UTC."""
    os.environ["TZ"] = "UTC"
    if hasattr(time, "tzset"):
        time.tzset()


class EngineStartError(RuntimeError):
    """The data directory cannot be opened (for example another process owns it)."""


@dataclass(frozen=True)
class Classification:
    """What a statement does, from chDB's own parser: 'READ_ONLY', 'MUTATING', 'CONTROL', ..."""

    query_class: str
    statement_count: int


def _summary_from_result(result: Any, elapsed_s: float | None = None) -> Summary:
    def number(name: str) -> int:
        method = getattr(result, name, None)
        try:
            return int(method()) if method else 0
        except Exception:
            return 0

    elapsed = elapsed_s if elapsed_s is not None else float(getattr(result, "elapsed", lambda: 0)())
    return Summary(
        read_rows=number("storage_rows_read"),
        read_bytes=number("storage_bytes_read"),
        written_rows=number("rows_written"),
        written_bytes=number("bytes_written"),
        result_rows=number("rows_read"),
        result_bytes=number("bytes_read"),
        elapsed_ns=int(elapsed * 1e9),
    )


class EngineStream:
    """A running query whose result is fetched block by block (formats that concatenate)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._started = time.monotonic()
        self.summary = Summary()
        self.done = False

    def next_chunk(self) -> bytes | None:
        """The next block of output, or None at the end. Raises ClickHouseError on failure."""
        if self.done:
            return None
        try:
            chunk = self._stream.fetch()
        except Exception as error:
            self.done = True
            raise ClickHouseError.from_engine(error) from None
        if chunk is None:
            self.done = True
            self.summary.elapsed_ns = int((time.monotonic() - self._started) * 1e9)
            return None
        data = chunk.bytes()
        part = _summary_from_result(chunk, 0.0)
        self.summary.result_rows += part.result_rows
        self.summary.result_bytes += len(data)
        self.summary.read_rows += part.read_rows
        self.summary.read_bytes += part.read_bytes
        return data

    def cancel(self) -> None:
        """Stop the query (client went away or an error happened); safe to call twice."""
        if not self.done:
            self.done = True
            with contextlib.suppress(Exception):
                self._stream.cancel()


class EngineInsert:
    """An INSERT fed with the request body chunk by chunk (chDB's streaming insert)."""

    def __init__(self, inserter: Any) -> None:
        self._inserter = inserter
        self._open = True

    def append(self, data: bytes) -> None:
        try:
            self._inserter.append(data)
        except Exception as error:
            self.cancel()
            raise ClickHouseError.from_engine(error) from None

    def finish(self) -> Summary:
        started = time.monotonic()
        try:
            result = self._inserter.finish()
        except Exception as error:
            self._open = False
            raise ClickHouseError.from_engine(error) from None
        self._open = False
        return Summary(
            written_rows=int(getattr(result, "rows_written", 0) or 0),
            written_bytes=int(getattr(result, "bytes_written", 0) or 0),
            elapsed_ns=int(float(getattr(result, "elapsed", time.monotonic() - started)) * 1e9),
        )

    def cancel(self) -> None:
        if self._open:
            self._open = False
            with contextlib.suppress(Exception):
                self._inserter.cancel()


class EngineConnection:
    """One chDB connection: a ClickHouse session context of its own (settings, database)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.readonly = False
        # Set by the app when a request runs SET/USE on a session's connection.
        self.changes_session_state = False

    def make_readonly(self, settings: Mapping[str, str], limits: ReadonlyLimits) -> None:
        """Make this a read-only user's connection for good: its limits, then the read-only
        profile's constraints (`confinement.py`), then the request's settings, then `readonly`.

        From the profile on, ClickHouse itself checks every setting change (these, later `SET`s,
        `SETTINGS` clauses): a limit above its cap or 0, or any setting outside the allowlist, is
        refused with SETTING_CONSTRAINT_VIOLATION; constraints outlive any later `SET profile`.
        """
        self.apply_settings(limits.as_settings())
        self.run(f"SET profile = '{READONLY_PROFILE}'")
        self.apply_settings(settings)
        self.run(f"SET readonly = {READONLY_LEVEL}")
        self.readonly = True

    def run(self, sql: str, fmt: str = "TabSeparated", params: Mapping[str, str] | None = None) -> bytes:
        """Execute one statement and return its whole output."""
        return self.execute(sql, fmt, params)[0]

    def execute(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> tuple[bytes, Summary]:
        """Execute one statement; its output in `fmt` (all of it) and the counters."""
        started = time.monotonic()
        try:
            result = self._raw.query(sql, fmt, params=dict(params or {}))
        except Exception as error:
            raise ClickHouseError.from_engine(error) from None
        data = result.bytes() if hasattr(result, "bytes") else bytes(result or b"")
        summary = _summary_from_result(result, time.monotonic() - started)
        summary.result_bytes = len(data)
        return data, summary

    def stream(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> EngineStream:
        try:
            return EngineStream(self._raw.send_query(sql, fmt, params=dict(params or {})))
        except Exception as error:
            raise ClickHouseError.from_engine(error) from None

    def insert(self, statement: str, fmt: str) -> EngineInsert:
        try:
            return EngineInsert(self._raw.send_insert(statement, fmt))
        except Exception as error:
            raise ClickHouseError.from_engine(error) from None

    def classify(self, sql: str) -> Classification | None:
        """chDB's own classification of the statement, or None if this chDB cannot tell.

        The analysis lives on the extension object behind chDB's Python wrapper (chDB's own
        `chdb.durable` reaches it the same way); this is the one place that does.
        """
        raw = getattr(self._raw, "_conn", None)
        classify = getattr(raw, "classify_query", None)
        if classify is None:
            return None
        try:
            report = classify(sql)
        except Exception:
            return None
        query_class = report.get("query_class")
        name = getattr(query_class, "name", str(query_class))
        return Classification(name, int(report.get("statement_count", 0)))

    def apply_settings(self, settings: Mapping[str, str]) -> None:
        statement = set_statement(settings)
        if statement:
            self.run(statement)

    def snapshot_settings(self, names: list[str]) -> dict[str, str | None]:
        """Current values of the named settings (None = at its default), to restore later."""
        if not names:
            return {}
        quoted = ", ".join("'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'" for name in names)
        data = self.run(
            f"SELECT name, value, changed FROM system.settings WHERE name IN ({quoted})",
            "JSONEachRow",
        )
        current: dict[str, str | None] = {name: None for name in names}
        for line in data.decode("utf-8").splitlines():
            row = json.loads(line)
            current[row["name"]] = row["value"] if int(row["changed"]) else None
        return current

    def restore_settings(self, snapshot: Mapping[str, str | None]) -> None:
        for name, value in snapshot.items():
            if value is None:
                self.run(f"SET {name} = DEFAULT")
            else:
                self.apply_settings({name: value})

    def current_database(self) -> str:
        return self.run("SELECT currentDatabase()").decode("utf-8").strip()

    def use_database(self, database: str) -> None:
        self.run(f"USE `{database.replace('`', '``')}`")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()


# What a read-only request may run: statements chDB's parser classifies as READ_ONLY, plus the
# session statements SET and USE (chDB itself refuses `SET readonly`). Everything else the parser
# calls CONTROL (SYSTEM, KILL, INSERT INTO FUNCTION, SELECT ... INTO OUTFILE, temporary tables) or
# MUTATING is refused, because chDB's `readonly` setting alone lets some of those through.
_READONLY_CONTROL_KEYWORDS = frozenset({"SET", "USE"})
READ_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})


def check_statement(
    engine: Engine,
    connection: EngineConnection,
    sql: str,
    *,
    readonly_user: str | None = None,
    method_is_get: bool = False,
    params: Mapping[str, str] | None = None,
) -> None:
    """Refuse what the server must never run, before chDB runs it on `connection`.

    Several statements in one request (ClickHouse's HTTP interface refuses them); whatever
    `policy.py` refuses on the parsed statement (paths outside the user files, programs, engines
    and sources that reach outside, INTO OUTFILE, ...); and, for the read-only user
    (`readonly_user`, its name) or a GET request, anything that is not a read. A statement that
    cannot be explained is refused with the reason, never run unchecked.
    """
    classification = connection.classify(sql)
    if classification is not None and classification.statement_count > 1:
        raise ClickHouseError.make(SYNTAX_ERROR, "Syntax error (Multi-statements are not allowed)")
    policy.check_tree(
        engine.explain_ast(sql, params),
        sql,
        readonly=readonly_user is not None,
        user_files=engine.user_files,
        table_functions=engine.table_functions,
    )
    if readonly_user is None and not method_is_get:
        return
    keyword = sqlscan.first_keyword(sql)
    if classification is None:
        allowed = keyword in READ_KEYWORDS | _READONLY_CONTROL_KEYWORDS
    else:
        allowed = classification.query_class in ("READ_ONLY", "UNKNOWN") or (
            classification.query_class == "CONTROL" and keyword in _READONLY_CONTROL_KEYWORDS
        )
    if not allowed:
        raise get_is_readonly() if method_is_get else readonly_refusal(readonly_user or "default")


def readonly_refusal(user_name: str) -> ClickHouseError:
    """ClickHouse's answer to a write by a user with the `readonly` setting."""
    return ClickHouseError.make(READONLY, f"{user_name}: Cannot execute query in readonly mode")


def get_is_readonly() -> ClickHouseError:
    """ClickHouse's answer to a write sent with HTTP GET."""
    return ClickHouseError.make(
        READONLY,
        "Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
        "readonly. You should use method POST for modifying queries",
    )


# A running query is found in system.processes by a comment in front of its text: chDB's Python
# API takes no query_id of the caller's choosing.
QUERY_MARK = "coinstream-request:"


def marked(sql: str, token: str) -> str:
    """`sql` with the comment that lets `Engine.cancel_marked(token)` find it while it runs."""
    return f"/* {QUERY_MARK}{token} */ {sql}"


def _setting_names(sqlitelike: Any) -> list[str]:
    """Every setting this chDB knows, from a throwaway in-memory engine (before the real one starts,
    whose configuration needs the list: see `confinement.py`)."""
    connection = sqlitelike.Connection(":memory:")
    try:
        return connection.query("SELECT name FROM system.settings", "TSVRaw").bytes().decode().split()
    finally:
        connection.close()


class Engine:
    """Owns the chDB data directory for this process and the worker pools that run chDB calls.

    Two pools ("lanes"): one for the full user (the loader's inserts, migrations) and one for
    read-only users (dashboards), so that however many heavy dashboard queries run, the loader
    always finds a free worker.

    The engine starts with its own configuration (`confinement.py`: grants, user files) and the
    process moves into the user-files directory, where chDB resolves relative file() paths.
    """

    def __init__(self, path: Path | str, max_workers: int = 8, readonly_workers: int = 4) -> None:
        ensure_utc_process()
        # chDB opens (and closes) an engine when imported, reading a config.xml in the current
        # directory if there is one: import it before moving into the user files.
        from chdb.state import sqlitelike  # imported late: TZ must be set before chDB starts

        self._sqlitelike = sqlitelike
        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        config = write_engine_config(self.path, _setting_names(sqlitelike))
        self.user_files = config.user_files
        os.chdir(self.user_files)
        try:
            # The anchor connection stays open for the server's life, so the engine is never torn
            # down and restarted between requests (and keeps the configuration it started with).
            self._anchor = EngineConnection(sqlitelike.Connection(str(self.path) + config.connection_suffix))
            row = (
                self._anchor.run("SELECT version(), timezone(), getSetting('enable_http_compression')")
                .decode()
                .strip()
                .split("\t")
            )
        except ClickHouseError as error:
            raise EngineStartError(f"cannot open the ClickHouse data directory {self.path}: {error}") from None
        except Exception as error:  # chDB raises RuntimeError subclasses when it cannot start
            raise EngineStartError(f"cannot open the ClickHouse data directory {self.path}: {error}") from None
        self.version, self.timezone = row[0], row[1]
        self.http_compression_default = row[2] in ("1", "true")
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="chdb")
        self._readonly_executor = ThreadPoolExecutor(max_workers=readonly_workers, thread_name_prefix="chdb-ro")
        self.max_workers = max_workers
        self.readonly_workers = readonly_workers
        self._spares: queue.SimpleQueue[EngineConnection] = queue.SimpleQueue()
        self.table_functions = frozenset(
            self._anchor.run("SELECT lower(name) FROM system.table_functions", "TSVRaw").decode().split()
        )

    def connect(self) -> EngineConnection:
        """A new connection to the same databases, with its own settings and current database.

        Every connection starts under the confined profile (`confinement.py`): the settings that
        name paths or URLs or switch the SQL dialect are constant on it for good."""
        try:
            connection = EngineConnection(self._sqlitelike.Connection(str(self.path)))
        except Exception as error:
            raise ClickHouseError.from_engine(error) from None
        try:
            connection.run(f"SET profile = '{CONFINED_PROFILE}'")
        except BaseException:
            connection.close()
            raise
        return connection

    def explain_ast(self, sql: str, params: Mapping[str, str] | None = None) -> policy.AstNode:
        """ClickHouse's parse of the statement (`EXPLAIN AST`, query parameters substituted).

        Explained on a connection of its own (kept in a small pool), never the request's: the
        request's settings (a result limit, another dialect) must not change or cut the output.
        A limit in the statement's own SETTINGS applies to the explanation too; when it makes
        EXPLAIN fail, the explanation is read through a one-row aggregate instead. Any other
        failure is the answer: the statement is refused with ClickHouse's own error.
        """
        connection = self._borrow_spare()
        try:
            try:
                text = connection.run(f"EXPLAIN AST {sql}", "TSVRaw", params)
            except ClickHouseError as error:
                if error.code != TOO_MANY_ROWS_OR_BYTES:
                    raise
                text = connection.run(
                    f"SELECT arrayStringConcat(groupArray(explain), '\\n') FROM (EXPLAIN AST {sql})",
                    "TSVRaw",
                    params,
                )
        finally:
            self._spares.put(connection)
        try:
            return policy.parse_explain_ast(text.decode("utf-8", errors="replace"))
        except policy.IncompleteAst as error:
            raise ClickHouseError.make(
                ACCESS_DENIED, f"The statement could not be checked ({error}); it was not run"
            ) from None

    def cancel_marked(self, token: str) -> None:
        """Cancel the running query marked with `token` (see `marked`), e.g. its client went away.

        `KILL QUERY ... ASYNC` from another connection: the query stops within about a second with
        QUERY_WAS_CANCELLED and frees its worker. The marker is assembled by concat() so that this
        KILL statement's own text does not contain it."""
        if not token.isalnum():
            raise ValueError("a query mark is alphanumeric")
        connection = self._borrow_spare()
        try:
            connection.run(f"KILL QUERY WHERE position(query, concat('{QUERY_MARK}', '{token}')) > 0 ASYNC FORMAT Null")
        finally:
            self._spares.put(connection)

    def _borrow_spare(self) -> EngineConnection:
        """A clean full-user connection from the spare pool (explanations, cancellations)."""
        try:
            return self._spares.get_nowait()
        except queue.Empty:
            return self.connect()

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking chDB call on the full user's pool without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    async def call_readonly(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking chDB call on the read-only users' pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readonly_executor, function, *args)

    def lane(self, readonly: bool) -> Callable[..., Awaitable[Any]]:
        """`call` or `call_readonly`, for a user."""
        return self.call_readonly if readonly else self.call

    def close(self) -> None:
        """Stop the pools (waiting for running calls) and close the engine's data directory."""
        self._readonly_executor.shutdown(wait=True, cancel_futures=True)
        self._executor.shutdown(wait=True, cancel_futures=True)
        while True:
            try:
                self._spares.get_nowait().close()
            except queue.Empty:
                break
        self._anchor.close()


def refuse_insert_select_with_data() -> ClickHouseError:
    """INSERT ... SELECT FROM input() with inline data: chDB's streaming insert cannot do it."""
    return ClickHouseError.make(
        NOT_IMPLEMENTED,
        "INSERT ... SELECT with data in the request body (the input() table function) is not "
        "supported by the embedded server; insert into a staging table and INSERT ... SELECT from it",
    )
