"""The embedded ClickHouse HTTP server, driven through clickhouse-connect exactly like a real server.

Every test talks HTTP to a real server subprocess (chDB behind `clickhouse.server`) on a free
loopback port; expected values are computed from formulas, not read back from the same code path.
The protocol helpers (statement splitting, codecs, errors) also get small direct tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib

import clickhouse_connect
import numpy as np
import pandas as pd
import pytest
from clickhouse_connect.driver.exceptions import ClickHouseError as DriverError
from clickhouse_connect.driver.exceptions import DatabaseError

from coinstream.clickhouse.server import sqlscan
from coinstream.clickhouse.server.compression import request_decoder, response_encoder
from coinstream.clickhouse.server.errors import ClickHouseError, http_status_for
from coinstream.clickhouse.server.launcher import ServerStartError
from coinstream.clickhouse.server.protocol import exception_block, parse_query_request
from tests.fixtures_clickhouse import TEST_PASSWORD, TEST_READONLY_PASSWORD, TEST_READONLY_USER

pytest_plugins = ["tests.fixtures_clickhouse"]

N = 100_000
CODES = ("BTC", "ETH", "SOL", "DOGE")
BASE_TS = dt.datetime(2024, 5, 1, 12, 0, 0)
BASE_MS = int(BASE_TS.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
RATES_DDL = """
    CREATE TABLE rates (
        id UInt64, code LowCardinality(String), price Float64, qty Int64,
        n Nullable(Int32), ts DateTime64(3, 'UTC'), tags Array(UInt16)
    ) ENGINE = MergeTree ORDER BY id
"""
RATE_COLUMNS = ["id", "code", "price", "qty", "n", "ts", "tags"]


def tri(n: int) -> int:
    """0 + 1 + ... + (n - 1)."""
    return n * (n - 1) // 2


def range_sum(start: int, stop: int) -> int:
    return tri(stop) - tri(start)


def rate_rows(start: int, stop: int) -> list[list]:
    return [
        [
            i,
            CODES[i % 4],
            i * 0.25,
            i * 3 - 7,
            None if i % 7 == 0 else i,
            BASE_TS + dt.timedelta(milliseconds=i),
            [i % 10] * (i % 3),
        ]
        for i in range(start, stop)
    ]


def rate_frame(start: int, stop: int) -> pd.DataFrame:
    ids = np.arange(start, stop, dtype=np.uint64)
    signed = ids.astype(np.int64)
    return pd.DataFrame(
        {
            "id": ids,
            "code": [CODES[i % 4] for i in range(start, stop)],
            "price": signed * 0.25,
            "qty": signed * 3 - 7,
            "n": pd.array([None if i % 7 == 0 else i for i in range(start, stop)], dtype="Int32"),
            "ts": pd.to_datetime(BASE_MS + signed, unit="ms"),
            "tags": [[i % 10] * (i % 3) for i in range(start, stop)],
        }
    )


def expected_rate_aggregates(start: int, stop: int) -> tuple:
    """count, sum(id), sum(price), sum(qty), nulls in n, sum(n), sum(ts ms), tag count, sum(tags)."""
    count = stop - start
    sevens = range_sum((start + 6) // 7, (stop + 6) // 7)  # sum of k with 7k in [start, stop)
    nulls = (stop + 6) // 7 - (start + 6) // 7
    tag_count = sum(i % 3 for i in range(start, stop))
    tag_sum = sum((i % 10) * (i % 3) for i in range(start, stop))
    return (
        count,
        range_sum(start, stop),
        range_sum(start, stop) * 0.25,
        3 * range_sum(start, stop) - 7 * count,
        nulls,
        range_sum(start, stop) - 7 * sevens,
        BASE_MS * count + range_sum(start, stop),
        tag_count,
        tag_sum,
    )


AGGREGATES = """
    SELECT count(), sum(id), sum(price), sum(qty), countIf(n IS NULL), sum(n),
           sum(toUnixTimestamp64Milli(ts)), sum(length(tags)), sum(arraySum(tags))
    FROM rates WHERE id >= {start:UInt64} AND id < {stop:UInt64}
"""


def http(
    server,
    query: str | None = None,
    body: bytes | None = None,
    method: str | None = None,
    headers: dict | None = None,
    auth: tuple[str, str] | None = None,
    **params: str,
):
    """A raw HTTP request: (status, headers, body bytes), for what clickhouse-connect hides."""
    if query is not None:
        params["query"] = query
    url = f"{server.url}/?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    user, password = auth or server.credentials()
    request.add_header("X-ClickHouse-User", user)
    request.add_header("X-ClickHouse-Key", password)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# ---- through clickhouse-connect ------------------------------------------------------------------


def test_connect_reports_version_utc_and_headers(clickhouse_server, clickhouse_client):
    assert clickhouse_client.server_version.startswith("26.")
    assert clickhouse_client.query("SELECT timezone(), currentDatabase()").result_rows == [
        ("UTC", clickhouse_client.database)
    ]
    status, headers, body = http(clickhouse_server, "SELECT 1 + 1", query_id="q-123")
    assert (status, body) == (200, b"2\n")
    assert headers["X-ClickHouse-Query-Id"] == "q-123"
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Timezone"] == "UTC"
    assert headers["Content-Type"] == "text/tab-separated-values; charset=UTF-8"
    assert http(clickhouse_server, method="GET")[2] == b"Ok.\n"
    with urllib.request.urlopen(f"{clickhouse_server.url}/ping", timeout=10) as response:
        assert response.read() == b"Ok.\n"


def test_insert_100k_rows_as_lists_and_dataframe(clickhouse_client):
    client = clickhouse_client
    client.command(RATES_DDL)
    summary = client.insert("rates", rate_rows(0, N), column_names=RATE_COLUMNS)
    assert summary.written_rows == N
    client.insert_df("rates", rate_frame(N, 2 * N))

    for start, stop in ((0, N), (N, 2 * N), (0, 2 * N)):
        row = client.query(AGGREGATES, parameters={"start": start, "stop": stop}).result_rows[0]
        assert row == expected_rate_aggregates(start, stop)
    assert client.query("SELECT code, count() FROM rates GROUP BY code ORDER BY code").result_rows == [
        (code, 2 * N // 4) for code in sorted(CODES)
    ]
    assert client.command("SELECT max(ts) FROM rates") == "2024-05-01 12:03:19.999"


def test_query_df_column_types_and_values(clickhouse_client):
    client = clickhouse_client
    client.command(RATES_DDL)
    client.insert("rates", rate_rows(0, 5), column_names=RATE_COLUMNS)
    frame = client.query_df("SELECT * FROM rates ORDER BY id")
    assert list(frame.columns) == RATE_COLUMNS
    assert frame["id"].dtype == np.uint64
    assert frame["price"].dtype == np.float64
    assert frame["qty"].dtype == np.int64
    assert frame["n"].dtype == pd.Int32Dtype()
    assert frame["ts"].dtype == np.dtype("datetime64[ms]")
    assert frame["id"].tolist() == [0, 1, 2, 3, 4]
    assert frame["code"].tolist() == ["BTC", "ETH", "SOL", "DOGE", "BTC"]
    assert frame["qty"].tolist() == [-7, -4, -1, 2, 5]
    assert frame["n"].isna().tolist() == [True, False, False, False, False]
    assert frame["n"].iloc[1:].tolist() == [1, 2, 3, 4]
    assert frame["ts"].iloc[4] == pd.Timestamp("2024-05-01 12:00:00.004")
    assert [list(tags) for tags in frame["tags"]] == [[], [1], [2, 2], [], [4]]
    rows = client.query("SELECT id, n, tags FROM rates WHERE id IN (0, 2) ORDER BY id").result_rows
    assert rows == [(0, None, []), (2, 2, [2, 2])]


def test_streaming_results_arrive_in_blocks(clickhouse_client):
    client = clickhouse_client
    total = count = 0
    with client.query_rows_stream("SELECT number FROM numbers(1000000)", settings={"max_block_size": 50000}) as stream:
        for row in stream:
            count += 1
            total += row[0]
    assert (count, total) == (1_000_000, tri(1_000_000))

    with client.query_df_stream(
        "SELECT number AS x FROM numbers(200000)", settings={"max_block_size": 10000}
    ) as stream:
        frames = list(stream)
    assert len(frames) > 1
    assert sum(len(frame) for frame in frames) == 200_000
    assert sum(int(frame["x"].sum()) for frame in frames) == tri(200_000)


def test_error_in_the_middle_of_a_stream_reaches_the_client(clickhouse_client):
    rows = 0
    with (
        pytest.raises(DriverError) as caught,
        clickhouse_client.query_rows_stream(
            "SELECT number, throwIf(number = 150000, 'boom in the stream') FROM numbers(300000)",
            settings={"max_block_size": 10000},
        ) as stream,
    ):
        for _ in stream:
            rows += 1
    assert "Code: 395" in str(caught.value)
    assert "boom in the stream" in str(caught.value)
    assert 0 < rows <= 150_000


def _compressors() -> dict:
    import brotli
    import lz4.frame

    from coinstream.clickhouse.server.compression import zstd

    return {
        "lz4": lz4.frame.compress,
        "zstd": zstd.compress,
        "gzip": gzip.compress,
        "br": brotli.compress,
        "deflate": zlib.compress,
    }


COMPRESSORS = _compressors()


@pytest.mark.parametrize("codec", ["lz4", "zstd", "gzip", "br"])
def test_compressed_inserts(clickhouse_server, clickhouse_database, codec):
    client = clickhouse_server.client(database=clickhouse_database, compress=codec)
    try:
        client.command("CREATE TABLE c (a UInt64, s String) ENGINE = MergeTree ORDER BY a")
        client.insert("c", [[i, "x" * (i % 50)] for i in range(30_000)], column_names=["a", "s"])
        text = "".join(f"{i},y{i}\n" for i in range(30_000, 30_100))
        # raw_insert sends the block as given, labelled with the encoding: compress it here.
        client.raw_insert("c", ["a", "s"], COMPRESSORS[codec](text.encode()), fmt="CSV", compression=codec)
        assert client.query("SELECT count(), sum(a), sum(length(s)) FROM c").result_rows == [
            (
                30_100,
                tri(30_100),
                sum(i % 50 for i in range(30_000)) + sum(len(f"y{i}") for i in range(30_000, 30_100)),
            )
        ]
    finally:
        client.close()


def test_chunked_and_inline_inserts_over_raw_http(clickhouse_server, clickhouse_client):
    clickhouse_client.command("CREATE TABLE r (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    db = clickhouse_client.database

    def chunks():
        for i in range(1, 2001):
            yield f"{i}\tv{i}\n".encode()

    status, headers, _ = http(clickhouse_server, f"INSERT INTO {db}.r FORMAT TSV", body=chunks())
    assert status == 200
    assert '"written_rows":"2000"' in headers["X-ClickHouse-Summary"]
    status, _, _ = http(clickhouse_server, body=f"INSERT INTO {db}.r VALUES (5000, 'a'), (5001, 'b')".encode())
    assert status == 200
    body = gzip.compress(f'INSERT INTO {db}.r FORMAT CSV\n6000,"q"\n'.encode())
    status, _, _ = http(clickhouse_server, body=body, headers={"Content-Encoding": "gzip"})
    assert status == 200
    assert clickhouse_client.query("SELECT count(), sum(a) FROM r").result_rows == [
        (2003, tri(2001) + 5000 + 5001 + 6000)
    ]


def test_response_compression_follows_accept_encoding(clickhouse_server):
    expected = "".join(f"{i}\n" for i in range(20_000)).encode()
    query = "SELECT number FROM numbers(20000) FORMAT TSV"
    status, headers, body = http(
        clickhouse_server, query, enable_http_compression="1", headers={"Accept-Encoding": "gzip"}
    )
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert gzip.decompress(body) == expected
    status, headers, body = http(
        clickhouse_server, query, enable_http_compression="1", headers={"Accept-Encoding": "deflate"}
    )
    assert (status, headers["Content-Encoding"]) == (200, "deflate")
    assert zlib.decompress(body) == expected
    status, headers, body = http(
        clickhouse_server, query, enable_http_compression="0", headers={"Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in headers and body == expected


def test_errors_carry_clickhouse_code_text_and_status(clickhouse_server, clickhouse_client):
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.query("SELECT * FROM no_such_table")
    assert caught.value.code == 60
    assert "Code: 60. DB::Exception: Unknown table" in str(caught.value)
    status, headers, body = http(clickhouse_server, "SELECT * FROM no_such_table")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "60")
    assert body.startswith(b"Code: 60. DB::Exception: Unknown table expression identifier 'no_such_table'")
    status, headers, body = http(clickhouse_server, "SELEC 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    status, headers, body = http(clickhouse_server, "SELECT throwIf(1, 'nope')")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "395")
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.command("SELECT 1; SELECT 2")
    assert caught.value.code == 62 and "Multi-statements are not allowed" in str(caught.value)


def test_readonly_user_reads_but_cannot_write(clickhouse_server, clickhouse_client, tmp_path):
    clickhouse_client.command("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a")
    clickhouse_client.insert("t", [[1], [2]], column_names=["a"])
    reader = clickhouse_server.client(readonly=True, database=clickhouse_client.database)
    written = tmp_path / "written.csv"
    try:
        assert reader.query("SELECT sum(a) FROM t").result_rows == [(3,)]
        assert reader.command("SHOW TABLES") == "t"
        assert reader.query("SELECT a FROM t ORDER BY a", settings={"max_threads": 1}).result_rows == [(1,), (2,)]
        reader.command("SET max_block_size = 1000")
        for statement in (
            "INSERT INTO t VALUES (9)",
            "CREATE TABLE u (a UInt8) ENGINE = Memory",
            "DROP TABLE t",
            "SET readonly = 0",
            "SYSTEM STOP MERGES",
            "KILL QUERY WHERE 1",
            "OPTIMIZE TABLE t FINAL",
            "CREATE TEMPORARY TABLE tt (a UInt8)",
        ):
            with pytest.raises(DatabaseError) as caught:
                reader.command(statement)
            assert caught.value.code == 164, statement
            assert "readonly mode" in str(caught.value)
        with pytest.raises(DatabaseError) as caught:
            reader.insert("t", [[7]], column_names=["a"])
        assert caught.value.code == 164
        assert f"DB::Exception: {TEST_READONLY_USER}: Cannot execute query in readonly mode" in str(caught.value)
    finally:
        reader.close()
    assert clickhouse_client.query("SELECT count(), sum(a) FROM t").result_rows == [(2, 3)]
    assert clickhouse_client.command("EXISTS TABLE u") == 0
    assert not written.exists()


def test_into_outfile_is_refused(clickhouse_client, tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.command(f"SELECT 1 INTO OUTFILE '{target}'")
    assert caught.value.code == 358
    assert "INTO OUTFILE is not allowed" in str(caught.value)
    assert not target.exists()


def test_wrong_credentials_are_refused_like_clickhouse(clickhouse_server):
    for user, password in (("default", "wrong"), (TEST_READONLY_USER, TEST_PASSWORD), ("nobody", "pw-of-nobody")):
        with pytest.raises(DatabaseError) as caught:
            clickhouse_connect.get_client(
                host=clickhouse_server.host, port=clickhouse_server.port, username=user, password=password
            )
        assert caught.value.code == 516
        assert f"{user}: Authentication failed" in str(caught.value)
        assert password not in str(caught.value)
    status, headers, body = http(clickhouse_server, "SELECT 1", auth=("default", "wrong"))
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    # The other ways of passing credentials: URL parameters and basic auth.
    url = f"{clickhouse_server.url}/?" + urllib.parse.urlencode(
        {
            "query": "SELECT currentUser() = currentUser()",
            "user": TEST_READONLY_USER,
            "password": TEST_READONLY_PASSWORD,
        }
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"1\n"
    request = urllib.request.Request(f"{clickhouse_server.url}/?query=SELECT%2042")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"default:{TEST_PASSWORD}".encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b"42\n"


def test_get_requests_are_read_only(clickhouse_server, clickhouse_client):
    clickhouse_client.command("CREATE TABLE g (a UInt8) ENGINE = MergeTree ORDER BY a")
    table = f"{clickhouse_client.database}.g"
    for params in ({}, {"session_id": "get-session"}):
        for statement in (f"INSERT INTO {table} VALUES (1)", f"TRUNCATE TABLE {table}", "SYSTEM STOP MERGES"):
            status, headers, body = http(clickhouse_server, statement, method="GET", **params)
            assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "164"), statement
            assert b"readonly" in body
    assert http(clickhouse_server, f"SELECT count() FROM {table}", method="GET")[2] == b"0\n"


def test_kafka_engine_is_refused(clickhouse_client):
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.command(
            "CREATE TABLE k (v String) ENGINE = Kafka('127.0.0.1:9092', 'topic', 'group', 'JSONEachRow')"
        )
    assert caught.value.code == 344
    assert "Kafka table engine is disabled" in str(caught.value)
    assert clickhouse_client.command("EXISTS TABLE k") == 0
    # Mentioning the word in data is fine.
    assert clickhouse_client.query("SELECT 'ENGINE = Kafka'").result_rows == [("ENGINE = Kafka",)]


def test_sessions_keep_state_and_request_settings_do_not_leak(clickhouse_server):
    first, second = clickhouse_server.client(database="default"), clickhouse_server.client()
    try:
        default_block = first.query("SELECT getSetting('max_block_size')").result_rows[0][0]
        first.command("CREATE TEMPORARY TABLE scratch (a UInt32)")
        first.command("INSERT INTO scratch VALUES (1), (2), (3)")
        assert first.query("SELECT sum(a) FROM scratch").result_rows == [(6,)]
        with pytest.raises(DatabaseError) as caught:
            second.query("SELECT sum(a) FROM scratch")
        assert caught.value.code == 60
        first.command("SET max_threads = 1")
        assert first.query("SELECT getSetting('max_threads')").result_rows == [(1,)]
        assert first.query("SELECT getSetting('max_block_size')", settings={"max_block_size": 777}).result_rows == [
            (777,)
        ]
        assert first.query("SELECT getSetting('max_block_size')").result_rows == [(default_block,)]
        assert second.query("SELECT getSetting('max_threads')").result_rows != [(1,)]
        # The database parameter applies per request, whatever USE did to the session.
        first.command("USE system")
        assert first.query("SELECT currentDatabase()").result_rows == [("default",)]
        assert first.query("SELECT currentDatabase()", settings={"max_block_size": 5}).result_rows == [("default",)]
        with pytest.raises(DatabaseError) as caught:
            first.query("SELECT 1", settings={"no_such_setting_here": 1, "max_block_size": 9})
        assert caught.value.code == 115
        assert first.query("SELECT getSetting('max_block_size'), getSetting('max_threads')").result_rows == [
            (default_block, 1)
        ]
    finally:
        first.close()
        second.close()


def test_two_clients_in_threads_and_a_paused_stream(clickhouse_server, clickhouse_database):
    results: dict[int, tuple] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        client = clickhouse_server.client(database=clickhouse_database)
        try:
            client.command(f"CREATE TABLE w{k} (a UInt64) ENGINE = MergeTree ORDER BY a")
            for round_ in range(5):
                client.insert(
                    f"w{k}", [[k * 1_000_000 + round_ * 10_000 + i] for i in range(10_000)], column_names=["a"]
                )
            results[k] = client.query(f"SELECT count(), sum(a) FROM w{k}").result_rows[0]
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            client.close()

    reader = clickhouse_server.client()
    with reader.query_rows_stream("SELECT number FROM numbers(3000000)", settings={"max_block_size": 10000}) as stream:
        rows = iter(stream)
        first_row = next(rows)  # the stream now waits for us, mid-result
        threads = [threading.Thread(target=work, args=(k,)) for k in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        total = first_row[0] + sum(row[0] for row in rows)
    reader.close()
    assert errors == []
    assert results == {k: (50_000, 50_000 * k * 1_000_000 + tri(50_000)) for k in (1, 2)}
    assert total == tri(3_000_000)


def test_paused_streams_do_not_hold_worker_threads(clickhouse_server_factory):
    server = clickhouse_server_factory(workers=2)
    clients = [server.client() for _ in range(5)]
    contexts = []
    try:
        for client in clients[:4]:  # twice as many open streams as workers
            context = client.query_rows_stream(
                "SELECT number FROM numbers(5000000)", settings={"max_block_size": 10000}
            )
            stream = context.__enter__()
            contexts.append(context)
            assert next(iter(stream)) == (0,)
        assert clients[4].query("SELECT 40 + 2").result_rows == [(42,)]
    finally:
        for context in contexts:
            context.__exit__(None, None, None)
        for client in clients:
            client.close()
    assert server.client().query("SELECT 1").result_rows == [(1,)]


def test_rows_survive_restart_and_kill_9(clickhouse_server_factory, tmp_path):
    path = tmp_path / "durable"
    server = clickhouse_server_factory(path)
    client = server.client()
    client.command("CREATE TABLE d (a UInt64, s String) ENGINE = MergeTree ORDER BY a")
    client.insert("d", [[i, f"s{i}"] for i in range(10_000)], column_names=["a", "s"])
    client.close()
    with pytest.raises(ServerStartError):  # one process owns a data directory
        clickhouse_server_factory(path, startup_timeout=30)
    assert server.stop() == 0

    server = clickhouse_server_factory(path)
    client = server.client()
    assert client.query("SELECT count(), sum(a) FROM d").result_rows == [(10_000, tri(10_000))]
    client.insert("d", [[i, f"s{i}"] for i in range(10_000, 20_000)], column_names=["a", "s"])
    client.close()
    server.kill()  # SIGKILL right after the insert was acknowledged

    server = clickhouse_server_factory(path)
    client = server.client()
    assert client.query("SELECT count(), sum(a), uniqExact(s) FROM d").result_rows == [(20_000, tri(20_000), 20_000)]
    client.close()


# ---- the protocol helpers ------------------------------------------------------------------------


def test_split_insert_finds_where_data_starts():
    text = "INSERT INTO db.t (a, `format`) FORMAT Native\n\x00\x01\n"
    split = sqlscan.split_insert(text, final=False)
    assert (text[: split.statement_end].strip(), split.input_format) == ("INSERT INTO db.t (a, `format`)", "Native")
    assert text[split.data_start :] == "\x00\x01\n"
    text = "insert into t values (1, 'a, FORMAT CSV'), (2, 'b')"
    split = sqlscan.split_insert(text, final=True)
    assert (text[: split.statement_end].strip(), split.input_format) == ("insert into t", "Values")
    assert text[split.data_start :] == " (1, 'a, FORMAT CSV'), (2, 'b')"
    text = "INSERT INTO t SETTINGS async_insert = 0 FORMAT CSV 1,2\n"
    split = sqlscan.split_insert(text, final=True)
    assert text[split.data_start :] == "1,2\n"
    assert sqlscan.split_insert("SELECT 1 FORMAT CSV", final=True) is None
    assert sqlscan.split_insert("INSERT INTO t SELECT * FROM s", final=True) is None
    assert sqlscan.split_insert("INSERT INTO t SELECT * FROM input('a UInt8') FORMAT CSV\n1", final=True).uses_select
    for partial in ("INS", "INSERT INTO t FORMAT Nat", "INSERT INTO t FORMAT CSV", "INSERT INTO t ('a"):
        with pytest.raises(sqlscan.NeedMore):
            sqlscan.split_insert(partial, final=False)


def test_statement_checks():
    assert sqlscan.output_format("SELECT 1 FORMAT JSONEachRow") == "JSONEachRow"
    assert sqlscan.output_format("SELECT * FROM (SELECT 1 FORMAT CSV) /* FORMAT XML */") is None
    assert sqlscan.first_keyword("  -- comment\n (SELECT 1)") == "SELECT"


def test_request_codecs_handle_concatenated_frames_fed_in_pieces():
    from coinstream.clickhouse.server.compression import zstd

    blocks = [bytes(range(256)) * 300, b"second block " * 1000, b"x"]
    for name, compress in COMPRESSORS.items():
        body = b"".join(compress(block) for block in blocks)
        for piece in (7, 4096, len(body)):
            decoder = request_decoder(name)
            out = b"".join(b"".join(decoder.feed(body[i : i + piece])) for i in range(0, len(body), piece))
            out += decoder.finish()
            assert out == b"".join(blocks), (name, piece)
    with pytest.raises(ClickHouseError) as caught:
        request_decoder("snappy-ish")
    assert caught.value.code == 89
    name, encoder = response_encoder("gzip;q=0, zstd")
    assert name == "zstd"
    assert zstd.decompress(encoder.compress(b"abc") + encoder.compress(b"def") + encoder.finish()) == b"abcdef"
    assert response_encoder("identity") is None


def test_errors_and_parameters():
    error = ClickHouseError.from_engine(
        RuntimeError("Streaming query failed: Code: 60. DB::Exception: x. (UNKNOWN_TABLE)")
    )
    assert (error.code, error.message, error.http_status) == (60, "Code: 60. DB::Exception: x. (UNKNOWN_TABLE)", 404)
    assert [http_status_for(code) for code in (516, 62, 164, 48, 194)] == [403, 400, 500, 501, 401]
    request = parse_query_request(
        {
            "query": "SELECT 1",
            "database": "d",
            "max_threads": "2",
            "param_x": "5",
            "session_id": "s",
            "wait_end_of_query": "1",
            "user": "u",
            "password": "p",
        },
        {},
    )
    assert (request.settings, request.query_parameters, request.database) == ({"max_threads": "2"}, {"x": "5"}, "d")
    assert (request.session_id, request.wait_end_of_query, request.default_format) == ("s", True, "TabSeparated")
    with pytest.raises(ClickHouseError) as caught:
        parse_query_request({"bad name; DROP": "1"}, {})
    assert caught.value.code == 115
    assert exception_block("tag1", "Code: 1. boom") == (
        b"__exception__\r\ntag1\r\nCode: 1. boom\n13 tag1\r\n__exception__\r\n"
    )
