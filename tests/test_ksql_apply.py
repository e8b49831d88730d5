"""`coinstream ksql apply` against a fake ksqlDB server that follows the documented REST format."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers.http_stand_in import JsonHandler, Served

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = sorted(str(p) for p in (ROOT / "ksql").glob("*.sql"))
USER, PASSWORD = "apply-user", "s3cret-Pa55"


class FakeKsqlDb(JsonHandler):
    """POST /ksql: SHOW STREAMS/TABLES, CREATE [OR REPLACE] STREAM/TABLE [IF NOT EXISTS]; errors as ksqlDB."""

    server: FakeServer
    content_type = "application/vnd.ksql.v1+json"

    def do_POST(self) -> None:
        expected_auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected_auth:
            self.answer(401, {"@type": "generic_error", "error_code": 40100, "message": "Unauthorized"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(
            {
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "accept": self.headers.get("Accept"),
                "body": body,
            }
        )
        text = body["ksql"].strip()
        words = text.rstrip(";").split()
        upper = [w.upper() for w in words]
        if upper[:2] in (["SHOW", "STREAMS"], ["SHOW", "TABLES"]):
            kind = upper[1].lower()
            items = [
                {
                    "type": t,
                    "name": n,
                    "topic": n.lower(),
                    "keyFormat": "KAFKA",
                    "valueFormat": "JSON",
                    "isWindowed": False,
                }
                for n, t in self.server.sources.items()
                if t == kind[:-1].upper()
            ]
            self.answer(200, [{"@type": kind, "statementText": text, kind: items, "warnings": []}])
            return
        if upper[0] != "CREATE":
            self.answer(
                400,
                {
                    "@type": "statement_error",
                    "error_code": 40001,
                    "message": "unexpected",
                    "statementText": text,
                    "entities": [],
                },
            )
            return
        replace = upper[1:3] == ["OR", "REPLACE"]
        rest = upper[3:] if replace else upper[1:]
        kind = rest[0]
        name_index = 4 if rest[1:4] == ["IF", "NOT", "EXISTS"] else 1
        name = rest[name_index].split("(")[0]
        if "BROKEN_FUNCTION" in text.upper():
            self.answer(
                400,
                {
                    "@type": "statement_error",
                    "error_code": 40001,
                    "message": "Can't find any functions with the name 'BROKEN_FUNCTION'",
                    "statementText": text,
                    "entities": [],
                },
            )
            return
        if name in self.server.sources and not replace:
            self.answer(
                400,
                {
                    "@type": "statement_error",
                    "error_code": 40001,
                    "message": f"Cannot add {kind.lower()} '{name}': A {kind.lower()} with the same name "
                    f"already exists",
                    "statementText": text,
                    "entities": [],
                },
            )
            return
        self.server.sources[name] = kind
        self.server.sequence += 1
        self.answer(
            200,
            [
                {
                    "@type": "currentStatus",
                    "statementText": text,
                    "commandId": f"{kind.lower()}/`{name}`/create",
                    "commandStatus": {"status": "SUCCESS", "message": f"{kind.title()} created"},
                    "commandSequenceNumber": self.server.sequence,
                    "warnings": [],
                }
            ],
        )


class FakeServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeKsqlDb)
        self.requests: list[dict] = []
        self.sources: dict[str, str] = {}
        self.sequence = 0


@pytest.fixture
def fake_ksqldb():
    with Served(FakeServer()) as served:
        yield served.server


def apply(server: FakeServer, tmp_path: Path, *files: str, password: str = PASSWORD) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KSQLDB_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "KSQLDB_URL": f"http://127.0.0.1:{server.server_port}",
            "KSQLDB_USER": USER,
            "KSQLDB_PASSWORD": password,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "coinstream", "ksql", "apply", *files],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )


def test_apply_creates_in_order_then_reapplying_is_a_no_op(fake_ksqldb: FakeServer, tmp_path: Path) -> None:
    first = apply(fake_ksqldb, tmp_path, *PROJECT_FILES)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "created   STREAM COINS_CURRENT_STREAM: Stream created",
        "created   STREAM COINS_CURRENT_REJECTED: Stream created",
        "created   TABLE OHLC_BY_MINUTE: Table created",
        "created   TABLE MOV_AVG_60S: Table created",
    ]
    bodies = [r["body"] for r in fake_ksqldb.requests]
    assert [b["ksql"].split("(")[0].split(" AS")[0].strip() for b in bodies] == [
        "SHOW STREAMS;",
        "SHOW TABLES;",
        "CREATE STREAM IF NOT EXISTS coins_current_stream",
        "CREATE STREAM IF NOT EXISTS coins_current_rejected\n  WITH",
        "CREATE TABLE IF NOT EXISTS ohlc_by_minute\n  WITH",
        "CREATE TABLE IF NOT EXISTS mov_avg_60s\n  WITH",
    ]
    assert all(b["streamsProperties"] == {"ksql.streams.auto.offset.reset": "earliest"} for b in bodies)
    assert [b.get("commandSequenceNumber") for b in bodies] == [None, None, None, 1, 2, 3]
    # The allowed clock skew is the setting's (RATE_MAX_CLOCK_SKEW_MS, default 60 s), substituted.
    for body in bodies[3:]:
        assert "${" not in body["ksql"] and "fetched_at > UNIX_TIMESTAMP() + 60000" in body["ksql"].replace("<=", ">")
    stream_file = (ROOT / "ksql/010_coins_current_stream.sql").read_text()
    assert bodies[2]["ksql"] == stream_file[stream_file.index("CREATE STREAM") :].strip()  # sent verbatim
    assert {(r["path"], r["content_type"], r["accept"]) for r in fake_ksqldb.requests} == {
        ("/ksql", "application/vnd.ksql.v1+json; charset=utf-8", "application/vnd.ksql.v1+json")
    }

    fake_ksqldb.requests.clear()
    again = apply(fake_ksqldb, tmp_path, *PROJECT_FILES)
    assert again.returncode == 0, again.stderr
    assert [r["body"]["ksql"] for r in fake_ksqldb.requests] == ["SHOW STREAMS;", "SHOW TABLES;"]
    assert again.stdout.splitlines() == [
        "exists    STREAM COINS_CURRENT_STREAM: already exists",
        "exists    STREAM COINS_CURRENT_REJECTED: already exists",
        "exists    TABLE OHLC_BY_MINUTE: already exists",
        "exists    TABLE MOV_AVG_60S: already exists",
    ]


def test_create_or_replace_is_resent(fake_ksqldb: FakeServer, tmp_path: Path) -> None:
    fake_ksqldb.sources["PRICES"] = "STREAM"
    script = tmp_path / "replace.sql"
    script.write_text(
        "CREATE OR REPLACE STREAM prices (code VARCHAR KEY, rate DOUBLE) "
        "WITH (kafka_topic='prices', value_format='JSON');\n"
    )
    result = apply(fake_ksqldb, tmp_path, str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "replaced  STREAM PRICES: Stream created"


def test_server_errors_name_the_statement_and_never_the_password(fake_ksqldb: FakeServer, tmp_path: Path) -> None:
    script = tmp_path / "broken.sql"
    script.write_text(
        "CREATE STREAM s (id BIGINT KEY, v DOUBLE) WITH (kafka_topic='s', value_format='JSON');\n\n"
        "CREATE STREAM t AS SELECT id, BROKEN_FUNCTION(v) AS w FROM s;\n"
        "CREATE STREAM u AS SELECT id, v FROM s;\n"
    )
    result = apply(fake_ksqldb, tmp_path, str(script))
    assert result.returncode == 1
    port = fake_ksqldb.server_port
    assert result.stderr.splitlines() == [
        f"coinstream ksql apply: http://127.0.0.1:{port}: line 3: ksqlDB rejected the statement (error 40001): "
        f"Can't find any functions with the name 'BROKEN_FUNCTION'",
        "  statement: CREATE STREAM t AS SELECT id, BROKEN_FUNCTION(v) AS w FROM s;",
    ]
    assert list(fake_ksqldb.sources) == ["S"]  # stopped at the failure: U was never sent
    assert PASSWORD not in result.stdout + result.stderr


def test_wrong_credentials_are_reported_without_the_secret(fake_ksqldb: FakeServer, tmp_path: Path) -> None:
    result = apply(fake_ksqldb, tmp_path, *PROJECT_FILES, password="wrong-Secret-77")
    assert result.returncode == 1
    assert "refused the credentials (HTTP 401)" in result.stderr
    assert "wrong-Secret-77" not in result.stdout + result.stderr


def test_invalid_files_are_not_sent(fake_ksqldb: FakeServer, tmp_path: Path) -> None:
    script = tmp_path / "bad.sql"
    script.write_text("CREATE STREAM s (id BIGINT KEY WITH (kafka_topic='s');\n")
    result = apply(fake_ksqldb, tmp_path, str(script))
    assert result.returncode == 2
    assert result.stderr.startswith("coinstream ksql apply: not sent, the file is not valid ksqlDB: invalid: line 1:")
    assert fake_ksqldb.requests == []
