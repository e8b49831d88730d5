"""Attacks on the embedded ClickHouse server: each must be refused with a clear error, must leave
nothing written or fetched, and must leave the server serving the loader's inserts.

The server under attack is the real one (`python -m coinstream.clickhouse.server` over chDB), reached over
HTTP on 127.0.0.1 like any client. Expected codes and texts are ClickHouse's (ACCESS_DENIED 497,
READONLY 164, SETTING_CONSTRAINT_VIOLATION 452, QUERY_IS_TOO_LARGE 229 / HTTP 413, ...).
"""

from __future__ import annotations

import bz2
import gzip
import http.server
import lzma
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import brotli
import lz4.frame
import psutil
import pytest

from coinstream.clickhouse.server.compression import zstd
from tests.fixtures_clickhouse import TEST_READONLY_USER

pytest_plugins = ["tests.fixtures_clickhouse"]

SECRET = "top-secret-line"


def request(
    server,
    query: str | None = None,
    body: bytes | None = None,
    *,
    auth: tuple[str, str] | None = None,
    headers: dict | None = None,
    method: str | None = None,
    **params: str,
) -> tuple[int, bytes]:
    """A raw HTTP request to the server: (status, body). `auth=("", "")` sends no credentials."""
    if query is not None:
        params["query"] = query
    url = f"{server.url}/?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    user, password = server.credentials() if auth is None else auth
    if user:
        req.add_header("X-ClickHouse-User", user)
        req.add_header("X-ClickHouse-Key", password)
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(server, sql: str, *, readonly: bool = False, **params: str) -> tuple[int, str]:
    status, body = request(server, body=sql.encode(), auth=server.credentials(readonly), **params)
    return status, body.decode("utf-8", errors="replace")


def assert_refused(result: tuple[int, str], status: int, code: int, text: str) -> None:
    got_status, body = result
    assert (got_status, f"Code: {code}." in body, text in body) == (status, True, True), body
    assert SECRET not in body


def assert_serves_inserts(server) -> None:
    """The loader's path still works: an insert by the full user, read back."""
    table = f"default.alive_{uuid.uuid4().hex[:8]}"
    assert post(server, f"CREATE TABLE {table} (a UInt32) ENGINE = MergeTree ORDER BY a")[0] == 200
    assert request(server, body=b"1\n2\n3\n", query=f"INSERT INTO {table} FORMAT CSV")[0] == 200
    assert post(server, f"SELECT sum(a) FROM {table}") == (200, "6\n")
    post(server, f"DROP TABLE {table}")


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return tmp_path / "written-outside.csv"


# ---- file system ---------------------------------------------------------------------------------

READ_VARIANTS = [
    "SELECT * FROM file('{path}', 'LineAsString')",
    "select * from FILE('{path}', 'LineAsString')",
    "SELECT * FROM `file`('{path}', 'LineAsString')",
    "SELECT * FROM /* a comment */ fIlE(/* inside */ '{path}', 'LineAsString') -- trailing",
    "SELECT * FROM (SELECT * FROM (SELECT * FROM file('{path}', 'LineAsString')))",
    "WITH x AS (SELECT * FROM file('{path}', 'LineAsString')) SELECT * FROM x",
    "SELECT 1 WHERE 'x' IN (SELECT * FROM file('{path}', 'LineAsString'))",
    "SELECT file('{path}')",
    "SELECT * FROM fileCluster('default', '{path}', 'LineAsString')",
    "DESCRIBE file('{path}', 'LineAsString')",
]


@pytest.mark.parametrize("template", READ_VARIANTS)
def test_full_user_cannot_read_files_outside_user_files(clickhouse_server, secret_file, template):
    result = post(clickhouse_server, template.format(path=secret_file))
    assert_refused(result, 403, 497, f"File is not inside {clickhouse_server.path}/user_files")
    assert_serves_inserts(clickhouse_server)


@pytest.mark.parametrize("template", READ_VARIANTS)
def test_readonly_user_cannot_read_any_file(clickhouse_server, secret_file, template):
    result = post(clickhouse_server, template.format(path=secret_file), readonly=True)
    assert_refused(result, 403, 497, "the read-only user may not use")


@pytest.mark.parametrize(
    "path",
    [
        "../../secret.txt",
        "sub/../../secret.txt",
        "{{a,..}}/secret.txt",
        "/etc/hostname",
    ],
)
def test_relative_and_glob_escapes_are_refused(clickhouse_server, path):
    result = post(clickhouse_server, f"SELECT * FROM file('{path}', 'LineAsString')")
    assert_refused(result, 403, 497, "File is not inside")


def test_symlink_out_of_user_files_is_refused(clickhouse_server, secret_file):
    link = clickhouse_server.path / "user_files" / f"link-{uuid.uuid4().hex[:6]}"
    link.symlink_to(secret_file.parent, target_is_directory=True)
    result = post(clickhouse_server, f"SELECT * FROM file('{link.name}/secret.txt', 'LineAsString')")
    assert_refused(result, 403, 497, "File is not inside")


def test_computed_and_parameter_paths_cannot_get_around(clickhouse_server, secret_file):
    head, tail = str(secret_file)[:5], str(secret_file)[5:]
    result = post(clickhouse_server, f"SELECT * FROM file(concat('{head}', '{tail}'), 'LineAsString')")
    assert_refused(result, 403, 497, "the path must be a string literal")
    # A query parameter is substituted by ClickHouse's parser before the check: still refused.
    result = post(clickhouse_server, "SELECT * FROM file({p:String}, 'LineAsString')", param_p=str(secret_file))
    assert_refused(result, 403, 497, "File is not inside")


WRITE_VARIANTS = [
    "INSERT INTO FUNCTION file('{path}', 'CSV') SELECT 1",
    "insert into function `FILE`('{path}', 'CSV') select 1",
    "SELECT 1 INTO OUTFILE '{path}'",
    "SELECT 1 INTO OUTFILE '{path}' FORMAT CSV",
    "CREATE TABLE default.evil_{n} (a UInt8) ENGINE = File(CSV, '{path}')",
    "CREATE VIEW default.evil_view_{n} AS SELECT * FROM file('{path}', 'CSV')",
    "CREATE TABLE default.evil_tf_{n} AS file('{path}', 'CSV', 'a UInt8')",
    "INSERT INTO default.nowhere FROM INFILE '{path}' FORMAT CSV",
    "BACKUP TABLE system.one TO File('{path}')",
    "CREATE TABLE default.evil_disk_{n} (a UInt8) ENGINE = MergeTree ORDER BY a "
    "SETTINGS disk = disk(type = local, path = '{dir}/')",
    "CREATE DATABASE evil_fs_{n} ENGINE = Filesystem('{dir}')",
    "ATTACH TABLE default.evil_attach_{n} FROM '{dir}' (a UInt8) ENGINE = MergeTree ORDER BY a",
    "SELECT * FROM executable('x.sh', 'TSV', 'a String')",
    # INTO OUTFILE after any statement, not only SELECT; a comment between the keywords.
    "DESCRIBE TABLE system.one INTO OUTFILE '{path}'",
    "SHOW TABLES INTO OUTFILE '{path}'",
    "EXPLAIN SELECT 1 INTO OUTFILE '{path}'",
    "EXISTS TABLE system.one INTO OUTFILE '{path}'",
    "SELECT 1 INTO /* c */ OUTFILE '{path}'",
    # Settings that name a file the engine writes.
    "SELECT 1 SETTINGS output_format_schema = '{path}' FORMAT CapnProto",
    "SELECT * FROM format(CSV, 'a UInt8', 'x') SETTINGS input_format_record_errors_file_path = '{path}', "
    "input_format_allow_errors_num = 1",
    "SELECT * FROM url('file://{path}', 'CSV', 'a UInt8')",
    "INSERT INTO FUNCTION url('file://{path}', 'CSV', 'a UInt8') SELECT 1",
]


@pytest.mark.parametrize("template", WRITE_VARIANTS)
def test_writes_and_programs_outside_the_server_are_refused(clickhouse_server, outside, template):
    sql = template.format(path=outside, dir=outside.parent, n=uuid.uuid4().hex[:6])
    for readonly in (False, True):
        status, body = post(clickhouse_server, sql, readonly=readonly)
        assert status >= 400, (sql, body)
        assert "DB::Exception" in body
    assert not outside.exists()
    assert sorted(path.name for path in outside.parent.iterdir()) == []  # nothing created beside it
    assert post(
        clickhouse_server, "SELECT count() FROM system.tables WHERE database = 'default' AND name LIKE 'evil%'"
    ) == (200, "0\n")
    assert post(clickhouse_server, "SELECT count() FROM system.databases WHERE name LIKE 'evil%'") == (200, "0\n")
    assert_serves_inserts(clickhouse_server)


def test_full_user_reads_and_writes_inside_user_files(clickhouse_server):
    name = f"inside-{uuid.uuid4().hex[:6]}.csv"
    assert post(clickhouse_server, f"INSERT INTO FUNCTION file('{name}', 'CSV', 'a UInt32') SELECT 41 + 1")[0] == 200
    assert (clickhouse_server.path / "user_files" / name).read_text() == "42\n"
    absolute = clickhouse_server.path / "user_files" / name
    assert post(clickhouse_server, f"SELECT a * 2 FROM file('{absolute}', 'CSV', 'a UInt32')") == (200, "84\n")


# ---- network -------------------------------------------------------------------------------------


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Counting.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"fetched\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bystander():
    """An HTTP server on loopback that records every request it gets."""
    _Counting.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


NETWORK_VARIANTS = [
    ("SELECT * FROM url('http://127.0.0.1:{port}/x', 'LineAsString')", "Table function url is not allowed"),
    ("SELECT * FROM `url`(/* c */ 'http://127.0.0.1:{port}/x', 'LineAsString')", "Table function url is not allowed"),
    (
        "SELECT * FROM url('http://127.0.0.1:{self_port}/?query=SELECT%20currentUser()', 'LineAsString')",
        "Table function url is not allowed",
    ),
    (
        "WITH t AS (SELECT * FROM url('http://127.0.0.1:{port}/cte', 'LineAsString')) SELECT * FROM t",
        "Table function url is not allowed",
    ),
    ("SELECT * FROM s3('http://127.0.0.1:{port}/bucket/x.csv', 'CSV', 'a String')", "Table function s3 is not allowed"),
    ("SELECT * FROM remote('127.0.0.1:{self_port}', system.one)", "Table function remote is not allowed"),
    ("SELECT * FROM mysql('127.0.0.1:{port}', 'd', 't', 'u', 'p')", "Table function mysql is not allowed"),
    ("SELECT * FROM postgresql('127.0.0.1:{port}', 'd', 't', 'u', 'p')", "Table function postgresql is not allowed"),
    ("SELECT * FROM sqlite('/tmp/x.db', 't')", "Table function sqlite is not allowed"),
    (
        "CREATE TABLE default.net_{n} (a String) ENGINE = URL('http://127.0.0.1:{port}/e', 'LineAsString')",
        "Engine URL is disabled",
    ),
    (
        "CREATE DICTIONARY default.net_dict_{n} (a UInt64) PRIMARY KEY a "
        "SOURCE(HTTP(url 'http://127.0.0.1:{port}/d' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)",
        "Dictionary source HTTP is disabled",
    ),
    (
        "CREATE DICTIONARY default.net_dict2_{n} (a UInt64) PRIMARY KEY a "
        "SOURCE(CLICKHOUSE(host '127.0.0.1' port {self_port} table 'one')) LAYOUT(FLAT()) LIFETIME(0)",
        "Dictionary source CLICKHOUSE is disabled",
    ),
    (
        "CREATE TABLE default.net_k_{n} (a String) ENGINE = Kafka('127.0.0.1:{port}', 't', 'g', 'JSONEachRow')",
        "The Kafka table engine is disabled",
    ),
]


@pytest.mark.parametrize("template,text", NETWORK_VARIANTS)
def test_no_user_reaches_the_network(clickhouse_server, bystander, template, text):
    sql = template.format(port=bystander, self_port=clickhouse_server.port, n=uuid.uuid4().hex[:6])
    for readonly in (False, True):
        status, body = post(clickhouse_server, sql, readonly=readonly)
        assert status >= 400 and "DB::Exception" in body, body
        if not readonly:
            assert text in body, body
    assert _Counting.hits == []
    assert "default\n" not in body
    assert_serves_inserts(clickhouse_server)


SOURCE_VARIANTS = [
    # Table functions over the file system and the machine, also as arguments of local ones.
    ("SELECT * FROM filesystem('{dir}')", "Table function filesystem is not allowed"),
    ("SELECT * FROM loop(filesystem('{dir}')) LIMIT 1", "Table function filesystem is not allowed"),
    ("SELECT * FROM viewIfPermitted(SELECT 1 ELSE filesystem('{dir}'))", "Table function filesystem is not allowed"),
    ("SELECT * FROM url('file://{secret}', 'LineAsString')", "Table function url is not allowed"),
    ("SELECT * FROM python('print(1)')", "Table function python is not allowed"),
    ("DESCRIBE TABLE arrowStream('{secret}')", "not allowed"),
    # A result limit in the statement's own SETTINGS cuts or fails the explanation: still checked.
    (
        "SELECT * FROM file('{secret}', 'LineAsString') SETTINGS max_result_rows = 1, result_overflow_mode = 'throw'",
        "File is not inside",
    ),
    (
        "SELECT * FROM file('{secret}', 'LineAsString') SETTINGS max_result_rows = 1, result_overflow_mode = 'break', "
        "max_block_size = 1",
        "File is not inside",
    ),
    # Settings that name a file to read, or switch the language the statement is judged in.
    ("SELECT 1 FORMAT Template SETTINGS format_template_resultset = '{secret}'", "should not be changed"),
    ("SELECT 1 FORMAT Template SETTINGS format_template_row = '{secret}'", "should not be changed"),
    ("SET format_schema = '{secret}'", "should not be changed"),
    ("SET dialect = 'kusto'", "should not be changed"),
    ("SET allow_experimental_ai_functions = 1", "should not be changed"),
    # Dictionaries fed by a query (run unchecked) rather than a table.
    (
        "CREATE DICTIONARY default.evil_q_{n} (line String) PRIMARY KEY line SOURCE(CLICKHOUSE("
        "QUERY 'SELECT * FROM file(''{secret}'', ''LineAsString'')')) LAYOUT(COMPLEX_KEY_HASHED()) LIFETIME(0)",
        "Dictionary source CLICKHOUSE is disabled",
    ),
    (
        "CREATE DICTIONARY default.evil_w_{n} (a UInt64) PRIMARY KEY a SOURCE(clickhouse(table 'one' db 'system' "
        "invalidate_query 'SELECT 1')) LAYOUT(FLAT()) LIFETIME(0)",
        "Dictionary source CLICKHOUSE is disabled",
    ),
    # Stored queries over files: an altered materialized view, a refreshable one.
    (
        "CREATE MATERIALIZED VIEW default.evil_mv_{n} REFRESH EVERY 1 SECOND ENGINE = Memory AS "
        "SELECT * FROM file('inside.csv', 'LineAsString')",
        "A view or table over file() is not allowed",
    ),
    (
        "ALTER TABLE default.evil_mv_{n} MODIFY QUERY SELECT * FROM file('inside.csv', 'LineAsString')",
        "A view or table over file() is not allowed",
    ),
    # Statements that stop the engine for every client.
    ("SYSTEM SHUTDOWN", "SYSTEM SHUTDOWN is not supported"),
    ("system /* c */ shutdown", "SYSTEM SHUTDOWN is not supported"),
]


@pytest.mark.parametrize("template,text", SOURCE_VARIANTS)
def test_sources_settings_and_stored_queries_cannot_get_around(clickhouse_server, secret_file, template, text):
    sql = template.format(secret=secret_file, dir=secret_file.parent, n=uuid.uuid4().hex[:6])
    for readonly in (False, True):
        status, body = post(clickhouse_server, sql, readonly=readonly)
        assert (status >= 400, "DB::Exception" in body, SECRET in body) == (True, True, False), body
        if not readonly:
            assert text in body, body
    assert post(clickhouse_server, "SELECT count() FROM system.tables WHERE name LIKE 'evil%'") == (200, "0\n")
    assert post(clickhouse_server, "SELECT count() FROM system.dictionaries WHERE name LIKE 'evil%'") == (200, "0\n")
    assert_serves_inserts(clickhouse_server)


def test_path_settings_in_the_url_are_refused(clickhouse_server, secret_file):
    for readonly in (False, True):
        result = post(
            clickhouse_server, "SELECT 1 FORMAT Template", readonly=readonly, format_template_resultset=str(secret_file)
        )
        assert_refused(result, 500, 452, "should not be changed")


NETWORK_STORAGE_VARIANTS = [
    (
        "CREATE TABLE default.evil_web_{n} (a UInt8) ENGINE = MergeTree ORDER BY a "
        "SETTINGS disk = disk(type = web, endpoint = 'http://127.0.0.1:{port}/web/')",
        "The table setting disk is disabled",
    ),
    (
        "CREATE TABLE default.evil_sp_{n} (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS storage_policy = 'x'",
        "The table setting storage_policy is disabled",
    ),
    (
        "ALTER TABLE default.alive MODIFY SETTING disk = disk(type = web, endpoint = 'http://127.0.0.1:{port}/web/')",
        "The table setting disk is disabled",
    ),
    ("SELECT aiGenerate('hello')", "aiGenerate() is not allowed"),
    ("CREATE NAMED COLLECTION evil_nc_{n} AS url = 'http://127.0.0.1:{port}/nc'", "Named collections are disabled"),
]


@pytest.mark.parametrize("template,text", NETWORK_STORAGE_VARIANTS)
def test_disks_ai_functions_and_named_collections_reach_nothing(clickhouse_server, bystander, template, text):
    sql = template.format(port=bystander, n=uuid.uuid4().hex[:6])
    for readonly in (False, True):
        status, body = post(clickhouse_server, sql, readonly=readonly)
        assert (status >= 400, "DB::Exception" in body) == (True, True), body
        if not readonly:
            assert text in body, body
    assert _Counting.hits == []
    assert post(clickhouse_server, "SELECT count() FROM system.named_collections") == (200, "0\n")
    assert_serves_inserts(clickhouse_server)


def test_what_the_checks_allow_still_works(clickhouse_server):
    """The same checks let ordinary statements through: a limit in SETTINGS, local table functions,
    a dictionary over a table, SHOW with LIKE, a trailing comment."""
    assert post(
        clickhouse_server,
        "SELECT number FROM numbers(3) SETTINGS max_result_rows = 1, "
        "result_overflow_mode = 'break', max_block_size = 1",
    ) == (200, "0\n")
    assert post(clickhouse_server, "SELECT count() FROM (SELECT * FROM loop(numbers(2)) LIMIT 5)") == (200, "5\n")
    assert post(clickhouse_server, "SELECT sum(number) FROM numbers(4) -- no newline") == (200, "6\n")
    assert post(clickhouse_server, "SELECT * FROM format(CSV, 'a UInt8', '7')") == (200, "7\n")
    name = f"d_{uuid.uuid4().hex[:6]}"
    assert (
        post(clickhouse_server, f"CREATE TABLE default.{name}_src (k UInt64, v String) ENGINE = MergeTree ORDER BY k")[
            0
        ]
        == 200
    )
    assert post(clickhouse_server, f"INSERT INTO default.{name}_src VALUES (1, 'one')")[0] == 200
    assert (
        post(
            clickhouse_server,
            f"CREATE DICTIONARY default.{name} (k UInt64, v String) PRIMARY KEY k "
            f"SOURCE(CLICKHOUSE(TABLE '{name}_src' DB 'default')) LAYOUT(FLAT()) LIFETIME(0)",
        )[0]
        == 200
    )
    assert post(clickhouse_server, f"SELECT dictGet('default.{name}', 'v', toUInt64(1))", readonly=True) == (
        200,
        "one\n",
    )
    assert post(clickhouse_server, f"SHOW TABLES FROM default LIKE '{name}_src'", readonly=True) == (
        200,
        f"{name}_src\n",
    )


def test_system_kill_is_refused_and_the_server_lives(tmp_path):
    """SYSTEM KILL makes chDB kill its whole process group: run this server in a session of its
    own, so that a regression kills the server and fails this test, not the test run."""
    env = _clean_env(tmp_path)
    port_holder = tmp_path / "port"
    server = _serve(env, tmp_path, port_holder, new_session=True)
    try:
        port = _wait_port(port_holder, server)
        stored = tmp_path / "data" / "clickhouse" / "credentials.env"
        password = dict(line.split("=", 1) for line in stored.read_text().splitlines() if not line.startswith("#"))[
            "CLICKHOUSE_PASSWORD"
        ]
        for sql in ("SYSTEM KILL", "SyStEm  KILL", "SYSTEM SHUTDOWN"):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=sql.encode())
            req.add_header("X-ClickHouse-User", "default")
            req.add_header("X-ClickHouse-Key", password)
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(req, timeout=10)
            body = caught.value.read().decode()
            assert ("Code: 48." in body, "is not supported by the embedded server" in body) == (True, True), body
        time.sleep(0.5)
        assert server.poll() is None
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5).read() == b"Ok.\n"
    finally:
        server.terminate()
        server.wait(30)


# ---- browsers --------------------------------------------------------------------------------------


def test_cross_origin_request_without_credentials_is_refused(clickhouse_server, outside):
    """What any web page may send to 127.0.0.1: a simple POST, no preflight."""
    status, body = request(
        clickhouse_server,
        body=f"INSERT INTO FUNCTION file('{outside}', 'CSV') SELECT 1".encode(),
        auth=("", ""),
        headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
    )
    assert (status, b"Code: 497." in body, b"Cross-origin request refused" in body) == (403, True, True)
    assert not outside.exists()


def test_cross_origin_request_with_credentials_is_refused(clickhouse_server):
    status, body = request(clickhouse_server, "SELECT 1", headers={"Origin": "http://evil.example"})
    assert (status, b"Cross-origin request refused" in body) == (403, True)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8123", "0.0.0.0:8123", "127.0.0.1.nip.io"])
def test_rebinding_host_is_refused(clickhouse_server, host):
    status, body = request(clickhouse_server, "SELECT 1", headers={"Host": host})
    assert (status, b"Host header is not a loopback name" in body) == (403, True)


def test_no_credentials_no_access(clickhouse_server):
    status, body = request(clickhouse_server, "SELECT 1", auth=("", ""))
    assert (status, b"Code: 516." in body, b"default: Authentication failed" in body) == (403, True, True)
    assert request(clickhouse_server, "SELECT 1", headers={"Origin": f"http://127.0.0.1:{clickhouse_server.port}"}) == (
        200,
        b"1\n",
    )
    assert request(clickhouse_server, "SELECT 1", headers={"Host": "localhost"}) == (200, b"1\n")


# ---- resources -------------------------------------------------------------------------------------

LIMIT = 1 << 20  # the bomb server's --max-body-bytes


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    from tests.fixtures_clickhouse import start_test_server

    server = start_test_server(
        tmp_path_factory.mktemp("bombs") / "data",
        extra_args=("--max-body-bytes", str(LIMIT), "--max-sessions-per-user", "5", "--readonly-workers", "2"),
    )
    try:
        yield server
    finally:
        server.stop()


# 64 MiB of valid CSV rows: far beyond the limit once decompressed, a few KiB compressed.
BOMB_PLAIN = b"1\n" * (32 << 20)
BOMBS = {
    "gzip": lambda: gzip.compress(BOMB_PLAIN, 9),
    "deflate": lambda: zlib.compress(BOMB_PLAIN, 9),
    "br": lambda: brotli.compress(BOMB_PLAIN, quality=5),
    "zstd": lambda: zstd.compress(BOMB_PLAIN, 19),
    "lz4": lambda: lz4.frame.compress(BOMB_PLAIN, compression_level=16),
    "xz": lambda: lzma.compress(BOMB_PLAIN),
    "bz2": lambda: bz2.compress(BOMB_PLAIN, 9),
}


@pytest.mark.parametrize("encoding", sorted(BOMBS))
def test_decompression_bombs_stop_at_the_limit(small_server, encoding):
    bomb = BOMBS[encoding]()
    assert len(bomb) < LIMIT  # small on the wire (lz4's ratio is the lowest, ~250:1)
    process = psutil.Process(small_server.process.pid)
    before = process.memory_info().rss
    table = f"default.bomb_{encoding}"
    post(small_server, f"CREATE TABLE IF NOT EXISTS {table} (a UInt8) ENGINE = MergeTree ORDER BY a")
    status, body = request(
        small_server, body=bomb, headers={"Content-Encoding": encoding}, query=f"INSERT INTO {table} FORMAT CSV"
    )
    text = body.decode()
    assert (status, "Code: 229." in text, f"more than {LIMIT} bytes after decompression" in text) == (
        413,
        True,
        True,
    ), text
    # The same bomb as a query text (no insert) stops the same way, for either user.
    for readonly in (False, True):
        status, body = request(
            small_server, body=bomb, headers={"Content-Encoding": encoding}, auth=small_server.credentials(readonly)
        )
        assert (status, b"Code: 229." in body, b"after decompression" in body) == (413, True, True), body
    assert post(small_server, f"SELECT count() FROM {table}") == (200, "0\n")
    assert process.memory_info().rss - before < 48 << 20
    assert_serves_inserts(small_server)


def test_native_compressed_blocks_are_refused_before_reading(small_server):
    bomb = zstd.compress(BOMB_PLAIN, 19)
    status, body = request(small_server, body=bomb, query="INSERT INTO default.x FORMAT CSV", decompress="1")
    assert (status, b"Code: 48." in body, b"native compression" in body) == (501, True, True)


def test_oversized_raw_body_is_refused(small_server):
    status, body = request(small_server, body=b"1\n" * LIMIT, query="INSERT INTO default.big FORMAT CSV")
    assert (status, b"Code: 229." in body, f"more than {LIMIT} bytes as sent".encode() in body) == (413, True, True)
    assert_serves_inserts(small_server)


def test_session_flood_is_capped_per_user(small_server):
    flood = [f"flood-{uuid.uuid4().hex}" for _ in range(6)]
    answers = [request(small_server, "SELECT 1", auth=small_server.credentials(True), session_id=sid) for sid in flood]
    assert [status for status, _ in answers] == [200] * 5 + [500]
    assert b"Code: 700." in answers[-1][1]
    assert f"User {TEST_READONLY_USER} has overflowed session count 5".encode() in answers[-1][1]
    # The other user is not affected by the read-only user's flood.
    assert request(small_server, "SELECT 2", session_id=f"admin-{uuid.uuid4().hex}") == (200, b"2\n")


@pytest.mark.parametrize(
    "sql,code,text",
    [
        ("SET max_execution_time = 0", 452, "shouldn't be less than 1"),
        ("SET max_execution_time = 100000", 452, "shouldn't be greater than 60"),
        ("SET max_memory_usage = 0", 452, "shouldn't be less than 1"),
        ("SELECT 1 SETTINGS max_result_rows = 0", 452, "shouldn't be less than 1"),
        ("SELECT 1 SETTINGS max_result_bytes = 10000000000000", 452, "shouldn't be greater than"),
        ("SET log_queries = 0", 452, "should not be changed"),
        ("SET max_threads = 1000", 452, "shouldn't be greater than"),
        ("SET os_thread_priority = 0", 452, "should not be changed"),
        ("SELECT 1 SETTINGS max_rows_to_read = 5", 452, "should not be changed"),
        ("SET readonly = 0", 164, "Cannot modify 'readonly' setting in readonly mode"),
    ],
)
def test_readonly_user_cannot_lift_its_limits(clickhouse_server, sql, code, text):
    result = post(clickhouse_server, sql, readonly=True)
    assert_refused(result, 500 if code != 164 else 500, code, text)


def test_readonly_limits_hold_after_switching_profiles_and_in_url_settings(clickhouse_server):
    sid = f"ro-{uuid.uuid4().hex}"
    assert post(clickhouse_server, "SET profile = 'default'", readonly=True, session_id=sid)[0] == 200
    result = post(clickhouse_server, "SET max_execution_time = 1000", readonly=True, session_id=sid)
    assert_refused(result, 500, 452, "shouldn't be greater than 60")
    result = post(clickhouse_server, "SELECT 1", readonly=True, max_memory_usage="0")
    assert_refused(result, 500, 452, "shouldn't be less than 1")
    assert post(
        clickhouse_server,
        "SELECT getSetting('max_execution_time'), getSetting('max_result_rows'), "
        "getSetting('max_threads'), getSetting('os_thread_priority')",
        readonly=True,
    ) == (200, f"60\t1000000\t{max(1, os.cpu_count() // 2)}\t19\n")
    # Lowering a limit is allowed.
    assert post(
        clickhouse_server, "SELECT getSetting('max_execution_time')", readonly=True, max_execution_time="5"
    ) == (200, "5\n")


def test_dashboard_load_cannot_starve_the_loader(small_server):
    """Both read-only workers busy with slow queries: the full user's insert still runs at once."""
    table = "default.loader_lane"
    post(small_server, f"CREATE TABLE IF NOT EXISTS {table} (a UInt32) ENGINE = MergeTree ORDER BY a")
    finished: list[str] = []

    def slow_dashboard_query(index: int) -> None:
        post(small_server, "SELECT sleepEachRow(1) FROM numbers(3) FORMAT Null", readonly=True)
        finished.append(f"dashboard-{index}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(slow_dashboard_query, index) for index in range(4)]
        time.sleep(0.5)  # the dashboard queries hold both read-only workers
        assert request(small_server, body=b"7\n", query=f"INSERT INTO {table} FORMAT CSV")[0] == 200
        finished.append("loader")
        for future in futures:
            future.result()
    assert finished[0] == "loader"
    assert post(small_server, f"SELECT sum(a) FROM {table}") == (200, "7\n")


def _send_and_hang_up(server, sql: str, readonly: bool) -> None:
    """Send a query over a raw socket, wait until the server runs it, then close the connection."""
    user, password = server.credentials(readonly)
    body = sql.encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-ClickHouse-User: {user}\r\n"
        f"X-ClickHouse-Key: {password}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head + body)
        time.sleep(1.0)


def test_a_query_whose_client_went_away_is_cancelled(small_server):
    """Slow reads (each would run 50 s) from clients that hang up after a second: the queries stop
    and the read-only lane (two workers) answers again at once."""
    slow = [
        "SELECT sleepEachRow(0.5) FROM numbers(100) SETTINGS max_block_size = 1 FORMAT Null",  # buffered
        "SELECT sleepEachRow(0.5) AS s FROM numbers(100) SETTINGS max_block_size = 1 FORMAT TSV",  # streamed
        "SELECT sleepEachRow(0.5) FROM numbers(100) SETTINGS max_block_size = 1 FORMAT JSON",
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda sql: _send_and_hang_up(small_server, sql, readonly=True), slow))
    running = (
        "SELECT count() FROM system.processes WHERE query LIKE '%sleepEachRow(0.5)%' "
        "AND query NOT LIKE '%system.processes%'"
    )
    deadline = time.monotonic() + 15
    while post(small_server, running) != (200, "0\n") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert post(small_server, running) == (200, "0\n")
    assert post(small_server, "SELECT 1", readonly=True) == (200, "1\n")


# ---- generated credentials ----------------------------------------------------------------------


def _coinstream(*args: str, env: dict, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coinstream", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _serve(env: dict, cwd: Path, port_holder: Path, new_session: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coinstream.clickhouse.server",
            "--port",
            "0",
            "--port-file",
            str(port_holder),
            "--exit-with-parent",
        ],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=new_session,
    )


def _wait_port(port_holder: Path, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited"
        if port_holder.exists() and port_holder.read_text().strip().isdigit():
            port = int(port_holder.read_text())
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).read()
                return port
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError("server did not start")


def _clean_env(tmp_path: Path, **extra: str) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("CLICKHOUSE_", "COINSTREAM_"))}
    repo = str(Path(__file__).resolve().parents[1])
    env.update(
        {
            "COINSTREAM_DATA_DIR": str(tmp_path / "data"),
            "TZ": "UTC",
            "PYTHONPATH": os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")])),
        }
    )
    env.update(extra)
    return env


def test_first_start_generates_passwords_every_command_finds(tmp_path):
    env = _clean_env(tmp_path)
    port_holder = tmp_path / "port"
    server = _serve({**env, "CLICKHOUSE_PORT": "8123"}, tmp_path, port_holder)
    try:
        port = _wait_port(port_holder, server)
        stored = tmp_path / "data" / "clickhouse" / "credentials.env"
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        values = dict(line.split("=", 1) for line in stored.read_text().splitlines() if not line.startswith("#"))
        assert sorted(values) == ["CLICKHOUSE_PASSWORD", "CLICKHOUSE_READONLY_PASSWORD"]
        assert min(len(value) for value in values.values()) >= 24
        assert values["CLICKHOUSE_PASSWORD"] != values["CLICKHOUSE_READONLY_PASSWORD"]
        # Nothing without the generated credentials: no password, the old default read-only one.
        for user, password in (("default", ""), ("dashboard", "dashboard"), ("default", "default")):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/?query=SELECT%201")
            req.add_header("X-ClickHouse-User", user)
            req.add_header("X-ClickHouse-Key", password)
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(req, timeout=10)
            assert caught.value.code == 403
        # Any coinstream command on the same data directory finds them without being told.
        command_env = {**env, "CLICKHOUSE_PORT": str(port)}
        full = _coinstream(
            "sql", "--format", "TSV", "SELECT currentUser() = 'default', 1 + 1", env=command_env, cwd=tmp_path
        )
        assert (full.returncode, full.stdout) == (0, "1\t2\n"), full.stderr
        readonly = _coinstream(
            "sql", "--readonly", "CREATE TABLE x (a UInt8) ENGINE = Memory", env=command_env, cwd=tmp_path
        )
        assert readonly.returncode != 0 and "Cannot execute query in readonly mode" in readonly.stderr
        for value in values.values():
            assert value not in full.stdout + full.stderr + readonly.stdout + readonly.stderr
    finally:
        server.terminate()
        server.wait(30)
    # A second start keeps the stored passwords; an explicit CLICKHOUSE_PASSWORD wins over them.
    port_holder.unlink()
    server = _serve({**env, "CLICKHOUSE_PASSWORD": "chosen-Pa55word"}, tmp_path, port_holder)
    try:
        port = _wait_port(port_holder, server)
        assert (
            dict(line.split("=", 1) for line in stored.read_text().splitlines() if not line.startswith("#")) == values
        )
        command_env = {**env, "CLICKHOUSE_PORT": str(port), "CLICKHOUSE_PASSWORD": "chosen-Pa55word"}
        assert _coinstream("sql", "--format", "TSV", "SELECT 3", env=command_env, cwd=tmp_path).stdout == "3\n"
        stale = {**env, "CLICKHOUSE_PORT": str(port)}  # would use the stored password: refused
        result = _coinstream("sql", "SELECT 3", env=stale, cwd=tmp_path)
        assert result.returncode != 0 and "Authentication failed" in result.stderr
    finally:
        server.terminate()
        server.wait(30)
