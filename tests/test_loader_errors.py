"""1,000 bad messages mixed with good ones, through Kafka and the loader.

Every bad message lands in its table's `_clickpipes_error` table with its topic, partition,
offset, key, timestamp, raw bytes and the reason; every good one lands normally; the loader keeps
going. Each topic has one partition, so a message's offset is its position in the produced list.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.test_loader_support import (
    create_topics,
    ms,
    produce,
    run_loader,
    unique_prefix,
    windowed_key,
)

pytest_plugins = ["tests.fixtures_clickhouse"]

T0 = ms("2024-03-10T00:00:00")
MAX_BYTES = 65_536
WINDOW = ms("2024-03-10T00:00:00")


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


OVERSIZED = j({"code": "X", "rate": 1, "fetched_at": T0, "name": "x" * 70_000})

# (value, expected reason or only its "kind: " prefix when the text comes from the JSON decoder)
MISMATCH = "key mismatch: the Kafka key is not the record's code"
BAD_RATE = "bad rate: not a finite number greater than 0"
# A day ahead of the wall clock: from the future whatever the allowed skew's default.
TOMORROW = int(time.time() * 1000) + 86_400_000
CURRENT_BAD: list[tuple[bytes | None, str]] = [  # all keyed X
    (b'{"code":"BTC","rate":', "bad JSON: "),
    (b"[1,2]", "not a JSON object: got list"),
    (j({"rate": 1, "fetched_at": T0}), MISMATCH),
    (j({"code": "", "rate": 1, "fetched_at": T0}), MISMATCH),
    (j({"code": 5, "rate": 1, "fetched_at": T0}), MISMATCH),
    (j({"code": "Y", "rate": 1, "fetched_at": T0}), MISMATCH),
    (j({"code": "X", "rate": "twelve", "fetched_at": T0}), BAD_RATE),
    (j({"code": "X", "rate": True, "fetched_at": T0}), BAD_RATE),
    (j({"code": "X", "rate": -1, "fetched_at": T0}), BAD_RATE),
    (j({"code": "X", "rate": 0, "fetched_at": T0}), BAD_RATE),
    (j({"code": "X", "fetched_at": T0}), BAD_RATE),
    (j({"code": "X", "rate": None, "fetched_at": T0}), BAD_RATE),
    (j({"code": "X", "rate": 1}), "bad fetched_at: missing"),
    (
        j({"code": "X", "rate": 1, "fetched_at": TOMORROW}),
        "future fetched_at: ahead of the wall clock by more than the allowed clock skew",
    ),
    (OVERSIZED, f"oversized: {len(OVERSIZED)} bytes > {MAX_BYTES} (_raw keeps the first 65536 bytes)"),
    (None, "tombstone: the message has no value"),
    (b"\xff\xfe{}", "bad JSON: "),
    (b'{"code":"X","rate":NaN,"fetched_at":1}', "bad JSON: "),
    (j({"code": "X", "rate": 1, "fetched_at": T0, "volume": "lots"}), "non-numeric volume: field 'volume' is a str"),
    (b'{"code":"X","rate":1e400,"fetched_at":1}', "bad JSON: "),
]
HISTORICAL_BAD = [
    (j({"code": "ETH", "rate": 1}), "missing date: none of 'date', 'ts', 'date_ms' is given"),
    (j({"code": "ETH", "date": "2024-13-01", "rate": 1}), "bad date: field 'date' is not a YYYY-MM-DD date"),
    (j({"code": "ETH", "date": "2024-03-01"}), "missing rate: field 'rate' is absent or null"),
    (j({"code": "ETH", "date": "2024-03-01", "rate": -2}), "negative rate: field 'rate' is below 0"),
    (b"{", "bad JSON: "),
    (j({"code": "ETH", "history": {"a": 1}}), "bad history: field 'history' is not a list of objects"),
]
OHLC_BAD = [  # (key, value, reason)
    (
        b"BTC",
        j({"OPEN": 1, "HIGH": 1, "LOW": 1, "CLOSE": 1}),
        "bad key: a windowed key needs a code and 8 bytes of window start, got 3 bytes",
    ),
    (
        windowed_key("BTC", WINDOW),
        j({"OPEN": 1, "HIGH": 1, "LOW": 1}),
        "missing close: field 'close' is absent or null",
    ),
    (
        windowed_key("BTC", WINDOW),
        j({"OPEN": 1, "HIGH": "1", "LOW": 1, "CLOSE": 1}),
        "non-numeric high: field 'high' is a str",
    ),
    (windowed_key("BTC", WINDOW), None, "tombstone: the message has no value"),
    (windowed_key("BTC", WINDOW), b"nope", "bad JSON: "),
]
MOV_AVG_BAD = [
    (b"", j({"MOV_AVG": 1}), "bad key: a windowed key needs a code and 8 bytes of window start, got 0 bytes"),
    (windowed_key("ETH", WINDOW), j({"AVG": 1}), "missing mov_avg: field 'mov_avg' is absent or null"),
    (windowed_key("ETH", WINDOW), j({"MOV_AVG": -0.5}), "negative mov_avg: field 'mov_avg' is below 0"),
    (b"\xc3\x28" + WINDOW.to_bytes(8, "big"), j({"MOV_AVG": 1}), "bad key: the code part is not UTF-8"),
]

# How many bad and good messages of each topic: 600 + 200 + 100 + 100 = 1,000 bad.
PLAN = {
    "coins_current_full": (600, 100),
    "coins_historical": (200, 50),
    "ohlc_by_minute": (100, 25),
    "mov_avg_60s": (100, 25),
}


def build(
    table: str,
) -> tuple[list[tuple[bytes | None, bytes | None, int]], dict[int, tuple[str, bytes, bytes]], list[tuple]]:
    """Messages (a good one after every few bad ones), expected errors by offset, expected good rows."""
    bad_count, good_count = PLAN[table]
    every = bad_count // good_count
    messages: list[tuple[bytes | None, bytes | None, int]] = []
    errors: dict[int, tuple[str, bytes, bytes]] = {}
    good: list[tuple] = []
    bad_index = good_index = 0
    while bad_index < bad_count or good_index < good_count:
        offset = len(messages)
        timestamp = T0 + offset
        if good_index < good_count and (bad_index >= bad_count or bad_index == every * (good_index + 1)):
            code = f"C{good_index % 7}"
            if table == "coins_current_full":
                messages.append(
                    (
                        code.encode(),
                        j({"code": code, "rate": (good_index + 1) * 1.5, "fetched_at": timestamp}),
                        timestamp,
                    )
                )
                good.append((code, (good_index + 1) * 1.5, offset))
            elif table == "coins_historical":
                date = f"2024-01-{good_index % 28 + 1:02d}"
                messages.append((code.encode(), j({"code": code, "date": date, "rate": good_index + 0.25}), timestamp))
                good.append((code, good_index + 0.25, offset))
            elif table == "ohlc_by_minute":
                messages.append(
                    (
                        windowed_key(code, WINDOW),
                        j({"OPEN": 1, "HIGH": 2, "LOW": 0.5, "CLOSE": good_index * 1.0}),
                        timestamp,
                    )
                )
                good.append((code, good_index * 1.0, offset))
            else:
                messages.append((windowed_key(code, WINDOW), j({"MOV_AVG": good_index * 2.0}), timestamp))
                good.append((code, good_index * 2.0, offset))
            good_index += 1
            continue
        if table == "coins_current_full":
            value, reason = CURRENT_BAD[bad_index % len(CURRENT_BAD)]
            key = b"X"
        elif table == "coins_historical":
            value, reason = HISTORICAL_BAD[bad_index % len(HISTORICAL_BAD)]
            key = b"ETH"
        else:
            key, value, reason = (OHLC_BAD if table == "ohlc_by_minute" else MOV_AVG_BAD)[
                bad_index % (len(OHLC_BAD) if table == "ohlc_by_minute" else len(MOV_AVG_BAD))
            ]
        messages.append((key, value, timestamp))
        errors[offset] = (reason, key, (value or b"")[:65_536])
        bad_index += 1
    return messages, errors, good


def test_a_thousand_bad_messages_land_in_the_error_tables(kafka_bootstrap, clickhouse_client):
    from coinstream.clickhouse.migrations import migrate

    migrate(clickhouse_client)
    prefix = unique_prefix()
    create_topics(kafka_bootstrap, prefix)
    expected = {}
    for table in PLAN:
        messages, errors, good = build(table)
        produce(kafka_bootstrap, prefix + table, messages)
        expected[table] = (errors, good)
    assert sum(len(errors) for errors, _ in expected.values()) == 1000

    loader = run_loader(kafka_bootstrap, clickhouse_client, prefix, batch_rows=250, max_message_bytes=MAX_BYTES)

    assert loader.metrics.totals == {"rows": 200, "errors": 1000, "duplicates": 0}
    for table, (errors, good) in expected.items():
        stored = clickhouse_client.query(
            f"SELECT _topic, _partition, _offset, toUnixTimestamp64Milli(_timestamp), _key, _raw, reason "
            f"FROM {table}_clickpipes_error ORDER BY _offset",
            column_formats={"_key": "bytes", "_raw": "bytes"},
        ).result_rows
        assert [row[2] for row in stored] == sorted(errors)
        for topic, partition, offset, timestamp, key, raw, reason in stored:
            expected_reason, expected_key, expected_raw = errors[offset]
            assert (topic, partition, timestamp, key, raw) == (
                prefix + table,
                0,
                T0 + offset,
                expected_key,
                expected_raw,
            )
            if expected_reason.endswith(": "):
                assert reason.startswith(expected_reason) and len(reason) > len(expected_reason)
            else:
                assert reason == expected_reason
        value_column = {
            "coins_current_full": "rate",
            "coins_historical": "rate",
            "ohlc_by_minute": "close",
            "mov_avg_60s": "mov_avg",
        }[table]
        landed = clickhouse_client.query(
            f"SELECT code, {value_column}, _offset FROM {table} ORDER BY _offset"
        ).result_rows
        assert [tuple(row) for row in landed] == good
