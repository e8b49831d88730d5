"""The aiohttp application answering ClickHouse's HTTP interface on top of the chDB engine.

aiohttp because both bodies stream: a request body (an insert of millions of rows, possibly
chunked and compressed) is read as it arrives and fed to chDB's streaming insert, and a query
result is written block by block as chDB produces it, while one event loop serves every other
client. Blocking chDB calls run on the engine's worker pool (see `engine.py` for the concurrency
model); the rules of the protocol live in `protocol.py`, `compression.py` and `sqlscan.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from coinstream.clickhouse.server import sqlscan
from coinstream.clickhouse.server.auth import User, UserDirectory
from coinstream.clickhouse.server.compression import (
    Decoder,
    Encoder,
    body_too_large,
    request_decoder,
    response_encoder,
)
from coinstream.clickhouse.server.confinement import ReadonlyLimits
from coinstream.clickhouse.server.engine import (
    READ_KEYWORDS,
    Engine,
    EngineConnection,
    EngineStream,
    check_statement,
    get_is_readonly,
    marked,
    readonly_refusal,
    refuse_insert_select_with_data,
)
from coinstream.clickhouse.server.errors import (
    ACCESS_DENIED,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    STD_EXCEPTION,
    SYNTAX_ERROR,
    UNSUPPORTED_MEDIA_TYPE,
    ClickHouseError,
)
from coinstream.clickhouse.server.protocol import (
    QueryRequest,
    Summary,
    check_output_format,
    content_type,
    exception_block,
    is_streamable,
    new_exception_tag,
    parse_query_request,
)
from coinstream.clickhouse.server.sessions import SessionStore
from coinstream.common.http_guard import refusal_reason

log = logging.getLogger(__name__)

BODY_CHUNK = 1 << 16
# The most request-body bytes accepted, as sent and again after decompression (--max-body-bytes).
DEFAULT_MAX_BODY_BYTES = 256 << 20
# The most request-body bytes kept in memory while looking for the end of an INSERT statement,
# and for a whole non-INSERT query (chDB applies `max_query_size` itself afterwards).
MAX_QUERY_TEXT = 64 << 20
# Beyond this many bytes of statement text the INSERT/data boundary is searched once, not per chunk.
SCAN_INCREMENTALLY = 1 << 20
# Response blocks at least this large are compressed on a helper thread, not the event loop.
OFFLOAD_COMPRESSION = 256 << 10
# Results buffered for `wait_end_of_query=1` spill to a temporary file beyond this size.
SPOOL_IN_MEMORY = 32 << 20
# chDB streams only SELECTs ("Streaming query is not supported" for DESCRIBE, SHOW, ...).
_STREAMED_STATEMENTS = frozenset({"SELECT", "WITH"})
# How often a running read looks whether its client is still connected.
DISCONNECT_POLL_S = 0.25
# Statements that change a session's own settings or database (see sessions.py).
_SESSION_STATEMENTS = frozenset({"SET", "USE"})


@dataclass(frozen=True)
class ServerOptions:
    """The server's protections, beside the engine's own (see `confinement.py`, `policy.py`)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    readonly_limits: ReadonlyLimits = ReadonlyLimits()
    max_sessions_per_user: int = 100
    allowed_origins: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()


@dataclass
class ServerState:
    engine: Engine
    users: UserDirectory
    sessions: SessionStore
    display_name: str
    options: ServerOptions


STATE_KEY = web.AppKey("clickhouse_state", ServerState)


def _first_values(params: Mapping[str, str]) -> dict[str, str]:
    """URL parameters as a plain dict; a repeated name keeps its first value."""
    result: dict[str, str] = {}
    for key, value in params.items():
        result.setdefault(key, value)
    return result


def _as_user(error: ClickHouseError, user_name: str) -> ClickHouseError:
    """chDB runs everything as its internal user `default`; name the requesting user instead."""
    internal = "DB::Exception: default: "
    if user_name in ("-", "default") or internal not in error.message:
        return error
    return ClickHouseError(error.code, error.message.replace(internal, f"DB::Exception: {user_name}: ", 1))


def _error_response(state: ServerState, error: ClickHouseError, query_id: str | None) -> web.Response:
    headers = {
        "X-ClickHouse-Exception-Code": str(error.code),
        "X-ClickHouse-Server-Display-Name": state.display_name,
        "Content-Type": "text/plain; charset=UTF-8",
    }
    if query_id:
        headers["X-ClickHouse-Query-Id"] = query_id
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="ClickHouse server HTTP API"'
    return web.Response(status=error.http_status, body=error.body(state.engine.version), headers=headers)


class RequestBody:
    """The request body as decoded chunks, read on demand, within the server's body limit.

    The limit holds for the bytes as sent and again for the bytes after decompression, checked
    while decompressing (every decoded piece is bounded), so neither a huge body nor a small
    decompression bomb makes the server hold more than the limit.
    """

    def __init__(self, request: web.Request, max_bytes: int) -> None:
        self._content = request.content
        self._max_bytes = max_bytes
        self._decoder: Decoder = request_decoder(request.headers.get("Content-Encoding"), max_bytes)
        self._pending: Iterator[bytes] | None = None
        self._raw_bytes = 0
        self._finished = False

    async def next(self) -> bytes | None:
        """The next non-empty decoded chunk, or None at the end of the body."""
        while True:
            if self._pending is not None:
                for piece in self._pending:
                    if piece:
                        return piece
                self._pending = None
            if self._finished:
                return None
            raw = await self._content.read(BODY_CHUNK)
            if not raw:
                self._finished = True
                tail = self._decoder.finish()
                return tail or None
            self._raw_bytes += len(raw)
            if self._raw_bytes > self._max_bytes:
                raise body_too_large(self._max_bytes, "as sent")
            self._pending = self._decoder.feed(raw)


async def _drain(request: web.Request) -> None:
    """Read and drop the rest of the body, so the client can finish sending and read our answer.

    HTTP clients such as urllib3 send the whole body before reading the response; answering an
    early error (unknown table, bad data) without consuming the body would break their pipe.
    """
    with contextlib.suppress(Exception):
        while await request.content.read(BODY_CHUNK):
            pass


async def handle_ping(request: web.Request) -> web.Response:
    return web.Response(text="Ok.\n")


async def handle_query(request: web.Request) -> web.StreamResponse:
    state: ServerState = request.app[STATE_KEY]
    started = time.monotonic()
    params = _first_values(request.query)
    query_id = params.get("query_id")
    user_name = "-"
    try:
        refusal = refusal_reason(request, state.options.extra_hosts, state.options.allowed_origins)
        if refusal is not None:
            raise ClickHouseError.make(ACCESS_DENIED, refusal)
        if request.method in ("GET", "HEAD") and not params.get("query"):
            return web.Response(text="Ok.\n")  # ClickHouse answers this without credentials
        if (request.content_length or 0) > state.options.max_body_bytes:
            raise body_too_large(state.options.max_body_bytes, "as sent")
        user = state.users.authenticate(params, request.headers)
        user_name = user.name
        query_request = parse_query_request(params, request.headers)
        query_id = query_request.query_id
        if params.get("compress") in ("1", "true") or params.get("decompress") in ("1", "true"):
            raise ClickHouseError.make(
                NOT_IMPLEMENTED,
                "ClickHouse's native compression (compress=1/decompress=1) is not supported "
                "by the embedded server; use HTTP Content-Encoding/Accept-Encoding",
            )
        is_get = request.method in ("GET", "HEAD")
        if is_get:
            source = _QuerySource((query_request.query_param or "").encode("utf-8"), None)
        elif (request.content_type or "").startswith("multipart/form-data"):
            source = await _read_multipart(request, query_request)
        else:
            prefix = (query_request.query_param + "\n").encode("utf-8") if query_request.query_param else b""
            source = _QuerySource(prefix, RequestBody(request, state.options.max_body_bytes))
        response = await _execute(request, state, user, query_request, source, is_get)
        log.debug(
            "%s %s user=%s query_id=%s status=%s %.1f ms",
            request.method,
            request.path,
            user_name,
            query_id,
            response.status,
            (time.monotonic() - started) * 1000,
        )
        return response
    except ClickHouseError as error:
        await _drain(request)
        log.info("query failed: user=%s query_id=%s code=%s", user_name, query_id, error.code)
        return _error_response(state, _as_user(error, user_name), query_id)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as error:  # a bug of ours: still answer like ClickHouse, and log it
        log.exception("internal error handling query_id=%s", query_id)
        await _drain(request)
        return _error_response(state, ClickHouseError.make(STD_EXCEPTION, f"Internal server error: {error}"), query_id)


@dataclass
class _QuerySource:
    """The query text bytes known so far, plus the rest of the body (None if no body)."""

    head: bytes
    body: RequestBody | None


async def _read_multipart(request: web.Request, query_request: QueryRequest) -> _QuerySource:
    """A multipart/form-data request: `query` and `param_*` fields; files would be external data."""
    reader = await request.multipart()
    query_text = query_request.query_param or ""
    while True:
        part = await reader.next()
        if part is None:
            break
        if getattr(part, "filename", None):
            raise ClickHouseError.make(
                NOT_IMPLEMENTED, "External data (files in multipart requests) is not supported by the embedded server"
            )
        if not isinstance(part, BodyPartReader):
            raise ClickHouseError.make(
                NOT_IMPLEMENTED, "Nested multipart bodies are not supported by the embedded server"
            )
        name = part.name or ""
        value = (await part.read(decode=True)).decode("utf-8", errors="replace")
        if name == "query":
            query_text = value if not query_text else query_text + "\n" + value
        elif name.startswith("param_"):
            query_request.query_parameters[name[len("param_") :]] = value
    if not query_text:
        raise ClickHouseError.make(UNSUPPORTED_MEDIA_TYPE, "Empty query in multipart request")
    return _QuerySource(query_text.encode("utf-8"), None)


async def _split_insert(buffer: bytearray, final: bool) -> sqlscan.InsertSplit | None:
    """`sqlscan.split_insert` over the bytes; long texts are scanned off the event loop."""
    text = buffer.decode("latin-1")
    if len(text) <= SCAN_INCREMENTALLY:
        return sqlscan.split_insert(text, final)
    return await asyncio.get_running_loop().run_in_executor(None, sqlscan.split_insert, text, final)


async def _read_rest(buffer: bytearray, body: RequestBody | None) -> None:
    """Append the rest of the body to `buffer` (a query text, so bounded by MAX_QUERY_TEXT)."""
    while body is not None:
        chunk = await body.next()
        if chunk is None:
            return
        buffer += chunk
        if len(buffer) > MAX_QUERY_TEXT:
            raise ClickHouseError.make(QUERY_IS_TOO_LARGE, "Max query size exceeded")


async def _execute(
    request: web.Request,
    state: ServerState,
    user: User,
    query_request: QueryRequest,
    source: _QuerySource,
    is_get: bool,
) -> web.StreamResponse:
    """Tell query from inline insert data, then run it on a connection for this request."""
    buffer = bytearray(source.head)
    eof = source.body is None
    while True:
        try:
            split = await _split_insert(buffer, eof)
            break
        except sqlscan.NeedMore:
            if eof:  # cannot happen with final=True; never spin on it
                split = None
                break
            if len(buffer) > SCAN_INCREMENTALLY:
                # A very long statement with no data yet: stop rescanning, scan it whole once.
                await _read_rest(buffer, source.body)
                eof = True
                continue
            chunk = await source.body.next() if source.body is not None else None
            if chunk is None:
                eof = True
            else:
                buffer += chunk
    if split is not None and split.uses_select:
        # INSERT ... SELECT: fine as a plain query unless data follows (input() is unsupported).
        await _read_rest(buffer, source.body)
        if bytes(buffer[split.data_start :]).strip():
            raise refuse_insert_select_with_data()
        split = None
    if split is None:
        await _read_rest(buffer, source.body)
        query = bytes(buffer).decode("utf-8", errors="replace").strip()
        if not query:
            raise ClickHouseError.make(SYNTAX_ERROR, "Empty query")
        async with _connection(state, user, query_request, is_get) as connection:
            return await _run_query(request, state, connection, user, query_request, query, is_get)
    statement = bytes(buffer[: split.statement_end]).decode("utf-8", errors="replace").strip()
    first_data = bytes(buffer[split.data_start :])
    async with _connection(state, user, query_request, is_get) as connection:
        return await _run_insert(
            state, connection, user, query_request, statement, split.input_format, first_data, source.body, is_get
        )


@contextlib.asynccontextmanager
async def _connection(
    state: ServerState, user: User, query_request: QueryRequest, is_get: bool
) -> AsyncIterator[EngineConnection]:
    """The connection a request runs on, with the request's settings and database applied.

    With a session: the session's connection carrying the request's settings and database (see
    `sessions.py`). Without: a new connection, closed afterwards, made read-only (with the
    read-only limits and constraints) for the read-only user and for GET requests.
    """
    engine = state.engine
    call = engine.lane(user.readonly)
    session = None
    if query_request.session_id:
        session = await state.sessions.acquire(
            query_request.session_id, user, query_request.session_timeout, query_request.session_check
        )
    try:
        if session is not None and session.connection is not None:
            await call(session.prepare, query_request.settings, query_request.database)
            try:
                yield session.connection
            finally:
                if session.connection.changes_session_state:
                    await call(session.reset_quietly)
                session.connection.changes_session_state = False
            return
        connection = await call(_fresh_connection, state, user, query_request, is_get)
        try:
            yield connection
        finally:
            await call(connection.close)
    finally:
        if session is not None:
            state.sessions.release(session)


def _fresh_connection(state: ServerState, user: User, query_request: QueryRequest, is_get: bool) -> EngineConnection:
    connection = state.engine.connect()
    try:
        if user.readonly or is_get:
            connection.make_readonly(query_request.settings, state.options.readonly_limits)
        else:
            connection.apply_settings(query_request.settings)
        if query_request.database:
            connection.use_database(query_request.database)
    except BaseException:
        connection.close()
        raise
    return connection


def _base_headers(state: ServerState, query_request: QueryRequest, fmt: str, summary: Summary) -> dict[str, str]:
    return {
        "X-ClickHouse-Server-Display-Name": state.display_name,
        "X-ClickHouse-Query-Id": query_request.query_id,
        "X-ClickHouse-Format": fmt,
        "X-ClickHouse-Timezone": query_request.settings.get("session_timezone") or state.engine.timezone,
        "X-ClickHouse-Summary": summary.header(),
        "Content-Type": content_type(fmt),
    }


def _encoder_for(request: web.Request, state: ServerState, query_request: QueryRequest) -> tuple[str, Encoder] | None:
    setting = query_request.settings.get("enable_http_compression")
    enabled = state.engine.http_compression_default if setting is None else setting.strip().lower() in ("1", "true")
    return response_encoder(request.headers.get("Accept-Encoding")) if enabled else None


async def _run_insert(
    state: ServerState,
    connection: EngineConnection,
    user: User,
    query_request: QueryRequest,
    statement: str,
    fmt: str,
    first_data: bytes,
    body: RequestBody | None,
    is_get: bool,
) -> web.Response:
    """Stream the body into chDB's streaming insert, then answer with the written counts."""
    if is_get:
        raise get_is_readonly()
    if user.readonly:  # every insert writes (chDB's readonly lets INSERT INTO FUNCTION through)
        raise readonly_refusal(user.name)
    call = state.engine.lane(user.readonly)
    await call(
        functools.partial(
            check_statement,
            state.engine,
            connection,
            f"{statement} FORMAT {fmt}",
            params=query_request.query_parameters,
        )
    )
    insert = await call(connection.insert, statement, fmt)
    try:
        if first_data:
            await call(insert.append, first_data)
        while body is not None:
            chunk = await body.next()
            if chunk is None:
                break
            await call(insert.append, chunk)
        summary = await call(insert.finish)
    except BaseException:
        await call(insert.cancel)
        raise
    headers = _base_headers(state, query_request, fmt, summary)
    headers["Content-Type"] = "text/plain; charset=UTF-8"
    return web.Response(body=b"", headers=headers)


async def _run_query(
    request: web.Request,
    state: ServerState,
    connection: EngineConnection,
    user: User,
    query_request: QueryRequest,
    query: str,
    is_get: bool,
) -> web.StreamResponse:
    call = state.engine.lane(user.readonly)
    keyword = sqlscan.first_keyword(query)
    if keyword in _SESSION_STATEMENTS:
        connection.changes_session_state = True
    await call(
        functools.partial(
            check_statement,
            state.engine,
            connection,
            query,
            readonly_user=user.name if user.readonly else None,
            method_is_get=is_get,
            params=query_request.query_parameters,
        )
    )
    check_output_format(query_request.default_format)
    fmt = check_output_format(sqlscan.output_format(query) or query_request.default_format)
    parameters = query_request.query_parameters
    encoder = _encoder_for(request, state, query_request)
    if keyword in READ_KEYWORDS:  # reads are cancelled when their client goes away
        token = uuid.uuid4().hex
        query = marked(query, token)
        call = _cancelling_on_disconnect(request, state, call, token)
    if keyword in _STREAMED_STATEMENTS and is_streamable(fmt):
        stream = await call(connection.stream, query, fmt, parameters)
        try:
            first = await call(stream.next_chunk)  # errors here still get a proper status
            if query_request.wait_end_of_query:
                return await _buffered_stream_response(request, state, query_request, fmt, stream, first, encoder, call)
            return await _streaming_response(request, state, query_request, fmt, stream, first, encoder, call)
        finally:
            await call(stream.cancel)
    data, summary = await call(connection.execute, query, fmt, parameters)
    headers = _base_headers(state, query_request, fmt, summary)
    if encoder is not None and data:
        name, codec = encoder
        data = await asyncio.get_running_loop().run_in_executor(None, _encode_all, codec, data)
        headers["Content-Encoding"] = name
    return web.Response(body=data, headers=headers)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _cancelling_on_disconnect(
    request: web.Request,
    state: ServerState,
    call: Callable[..., Awaitable[Any]],
    token: str,
) -> Callable[..., Awaitable[Any]]:
    """`call`, except that a read whose client disconnects while chDB works on it is cancelled.

    A dashboard that gives up (a closed tab, a client timeout) must not keep a worker busy until
    the query's own time limit: every DISCONNECT_POLL_S the connection is looked at, and when it
    is gone the query is killed (`Engine.cancel_marked`); its worker is free within about a
    second. Unlike ClickHouse's `cancel_http_readonly_queries_on_client_close`, this is always on
    for reads; writes run to their end, as on ClickHouse.
    """

    async def watched(function: Callable[..., Any], *args: Any) -> Any:
        task = asyncio.ensure_future(call(function, *args))
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if _client_gone(request):
                log.info("client went away: cancelling its query (mark %s)", token)
                await asyncio.to_thread(state.engine.cancel_marked, token)
                return await task

    return watched


def _encode_all(codec: Encoder, data: bytes) -> bytes:
    return codec.compress(data) + codec.finish()


async def _encode_chunk(codec: Encoder | None, data: bytes) -> bytes:
    """Compress one block of a streamed response; big blocks off the event loop."""
    if codec is None:
        return data
    if len(data) < OFFLOAD_COMPRESSION:
        return codec.compress(data)
    return await asyncio.get_running_loop().run_in_executor(None, codec.compress, data)


async def _buffered_stream_response(
    request: web.Request,
    state: ServerState,
    query_request: QueryRequest,
    fmt: str,
    stream: EngineStream,
    first: bytes | None,
    encoder: tuple[str, Encoder] | None,
    call: Callable[..., Awaitable[Any]],
) -> web.StreamResponse:
    """`wait_end_of_query=1`: the whole result first (spilling to disk if large), then the answer,
    so that an error anywhere in the result still becomes an HTTP error status."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        chunk = first
        codec = encoder[1] if encoder else None
        while chunk is not None:
            spool.write(await _encode_chunk(codec, chunk))
            chunk = await call(stream.next_chunk)
        if codec:
            spool.write(codec.finish())
        size = spool.tell()
        spool.seek(0)
        headers = _base_headers(state, query_request, fmt, stream.summary)
        if encoder:
            headers["Content-Encoding"] = encoder[0]
        response = web.StreamResponse(headers=headers)
        response.content_length = size
        await response.prepare(request)
        while block := spool.read(BODY_CHUNK * 16):
            await response.write(block)
        await response.write_eof()
        return response


async def _streaming_response(
    request: web.Request,
    state: ServerState,
    query_request: QueryRequest,
    fmt: str,
    stream: EngineStream,
    first: bytes | None,
    encoder: tuple[str, Encoder] | None,
    call: Callable[..., Awaitable[Any]],
) -> web.StreamResponse:
    """Send blocks as chDB produces them; a later error is written in-band, tagged, like ClickHouse."""
    tag = new_exception_tag()
    headers = _base_headers(state, query_request, fmt, stream.summary)
    headers["X-ClickHouse-Exception-Tag"] = tag
    if encoder:
        headers["Content-Encoding"] = encoder[0]
    response = web.StreamResponse(headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    codec = encoder[1] if encoder else None
    chunk = first
    try:
        while chunk is not None:
            await response.write(await _encode_chunk(codec, chunk))
            chunk = await call(stream.next_chunk)
    except ClickHouseError as error:
        log.info("query failed while streaming: query_id=%s code=%s", query_request.query_id, error.code)
        block = exception_block(tag, error.message)
        await response.write(codec.compress(block) if codec else block)
    if codec:
        await response.write(codec.finish())
    await response.write_eof()
    return response


def build_app(
    engine: Engine,
    users: UserDirectory,
    display_name: str | None = None,
    options: ServerOptions | None = None,
) -> web.Application:
    """The application: `/ping`, `/replicas_status` and the query handler on every other path."""
    options = options or ServerOptions()
    app = web.Application()
    sessions = SessionStore(engine, options.max_sessions_per_user, options.readonly_limits)
    app[STATE_KEY] = ServerState(engine, users, sessions, display_name or socket.gethostname(), options)
    app.router.add_get("/ping", handle_ping)
    app.router.add_get("/replicas_status", handle_ping)
    app.router.add_route("*", "/{tail:.*}", handle_query)

    async def reap_sessions(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(5)
                await sessions.reap()

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sessions.close_all()

    app.cleanup_ctx.append(reap_sessions)
    return app
