"""Parsing and validation of each topic's messages (pure functions, no broker, no ClickHouse)."""

from __future__ import annotations

import json

import pytest

from coinstream.clickhouse.loader.formats import (
    CURRENT_COLUMNS,
    FORMATS,
    HISTORICAL_COLUMNS,
    RateRules,
    decode_windowed_key,
    error_row,
    parse,
)
from coinstream.clickhouse.loader.records import Record
from coinstream.clickhouse.loader.validation import Rejected

FETCHED = 1_710_028_800_000  # 2024-03-10T00:00:00Z


def record(
    value: bytes | None,
    key: bytes = b"BTC",
    topic: str = "coins_current_full",
    offset: int = 7,
    timestamp: int = FETCHED,
) -> Record:
    return Record(topic, 2, offset, timestamp, key, value, topic_epoch=3)


def as_json(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize("code", ["B", "BTC", "STABLECOIN", "A_VERY_LONG_COIN_CODE_42", "ÄÖÜ€"])
def test_windowed_key_keeps_codes_of_any_length(code):
    window = 1_710_028_740_000  # 2024-03-09T23:59:00Z
    key = code.encode() + window.to_bytes(8, "big")
    assert decode_windowed_key(key) == (code, window)


def test_windowed_key_with_bytes_that_are_not_utf8_in_the_window_part():
    window = 0x00_00_01_FF_FE_FD_FC_FB
    assert decode_windowed_key(b"ETH" + window.to_bytes(8, "big")) == ("ETH", window)


@pytest.mark.parametrize(
    "key, reason",
    [
        (b"", "bad key: a windowed key needs a code and 8 bytes of window start, got 0 bytes"),
        (b"BTC", "bad key: a windowed key needs a code and 8 bytes of window start, got 3 bytes"),
        ((1).to_bytes(8, "big"), "bad key: a windowed key needs a code and 8 bytes of window start, got 8 bytes"),
        (b"\xff\xfe" + (1).to_bytes(8, "big"), "bad key: the code part is not UTF-8"),
        (b"BTC" + (-5).to_bytes(8, "big", signed=True), "bad key: the window start is outside 1970..2200"),
    ],
)
def test_bad_windowed_keys(key, reason):
    with pytest.raises(Rejected) as caught:
        decode_windowed_key(key)
    assert caught.value.reason == reason


def test_full_current_coin_becomes_one_typed_row():
    coin = {
        "code": "BTC",
        "rate": 68000.5,
        "volume": 3.1e10,
        "cap": 1.34e12,
        "liquidity": 9.9e8,
        "delta": {"hour": 1.001, "day": 0.98, "week": 1.05, "month": 1.2, "quarter": 1.5, "year": 2.5},
        "name": "Bitcoin",
        "symbol": "₿",
        "rank": 1,
        "age": 5000,
        "color": "#fa9e32",
        "png32": "p32",
        "png64": "p64",
        "webp32": "w32",
        "webp64": "w64",
        "exchanges": 200,
        "markets": 3000,
        "pairs": 1500,
        "allTimeHighUSD": 73750.07,
        "circulatingSupply": 19650000,
        "totalSupply": 19650000,
        "maxSupply": 21000000,
        "categories": ["layer-1", "pow"],
        "fetched_at": FETCHED,
    }
    rows = parse(FORMATS["coins_current_full"], record(as_json(coin)), 1 << 20)
    assert rows == [
        (
            "BTC",
            FETCHED,
            68000.5,
            3.1e10,
            1.34e12,
            9.9e8,
            1.001,
            0.98,
            1.05,
            1.2,
            1.5,
            2.5,
            "Bitcoin",
            "₿",
            1,
            5000,
            "#fa9e32",
            "p32",
            "p64",
            "w32",
            "w64",
            200,
            3000,
            1500,
            73750.07,
            19650000.0,
            19650000.0,
            21000000.0,
            ["layer-1", "pow"],
            "coins_current_full",
            3,
            2,
            7,
            FETCHED,
            b"BTC",
        )
    ]
    assert len(rows[0]) == len(CURRENT_COLUMNS)


# The wall clock of these tests: 10 s after the records were fetched.
RULES = RateRules(60_000, clock=lambda: FETCHED / 1000 + 10)


def test_minimal_current_coin_has_nulls_not_zeros():
    rows = parse(
        FORMATS["coins_current_full"],
        record(as_json({"code": "BTC", "rate": 0.5, "fetched_at": FETCHED, "maxSupply": None})),
        1 << 20,
        RULES,
    )
    assert rows == [
        (
            "BTC",
            FETCHED,
            0.5,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            [],
            "coins_current_full",
            3,
            2,
            7,
            FETCHED,
            b"BTC",
        )
    ]


MISMATCH = "key mismatch: the Kafka key is not the record's code"
BAD_RATE = "bad rate: not a finite number greater than 0"


@pytest.mark.parametrize(
    "value, reason",
    [
        (None, "tombstone: the message has no value"),
        (b"[1, 2]", "not a JSON object: got list"),
        (b'"text"', "not a JSON object: got str"),
        # The rules of a valid live rate (common/rate_validity.py), with the ksql statements' reasons.
        (as_json({"rate": 1, "fetched_at": FETCHED}), MISMATCH),
        (as_json({"code": "", "rate": 1, "fetched_at": FETCHED}), MISMATCH),
        (as_json({"code": 5, "rate": 1, "fetched_at": FETCHED}), MISMATCH),
        (as_json({"code": "ETH", "rate": 1, "fetched_at": FETCHED}), MISMATCH),  # the key is BTC
        (as_json({"code": "BTC", "fetched_at": FETCHED}), BAD_RATE),
        (as_json({"code": "BTC", "rate": None, "fetched_at": FETCHED}), BAD_RATE),
        (as_json({"code": "BTC", "rate": "one", "fetched_at": FETCHED}), BAD_RATE),
        (as_json({"code": "BTC", "rate": "NaN", "fetched_at": FETCHED}), BAD_RATE),
        (as_json({"code": "BTC", "rate": True, "fetched_at": FETCHED}), BAD_RATE),
        (as_json({"code": "BTC", "rate": -0.01, "fetched_at": FETCHED}), BAD_RATE),
        (as_json({"code": "BTC", "rate": 0, "fetched_at": FETCHED}), BAD_RATE),
        (as_json({"code": "BTC", "rate": 1}), "bad fetched_at: missing"),
        (
            as_json({"code": "BTC", "rate": 1, "fetched_at": "noon"}),
            "bad fetched_at: not a whole number of epoch milliseconds",
        ),
        # 10 s + 60,001 ms ahead of the wall clock; the record timestamp is FETCHED.
        (
            as_json({"code": "BTC", "rate": 1, "fetched_at": FETCHED + 70_001}),
            "future fetched_at: ahead of the wall clock by more than the allowed clock skew",
        ),
        (
            as_json({"code": "BTC", "rate": 1, "fetched_at": -1}),
            "bad fetched_at: field 'fetched_at' is outside 1970..2200",
        ),
        (
            as_json({"code": "BTC", "rate": 1, "fetched_at": FETCHED, "cap": "big"}),
            "non-numeric cap: field 'cap' is a str",
        ),
        (
            as_json({"code": "BTC", "rate": 1, "fetched_at": FETCHED, "delta": 3}),
            "bad delta: field 'delta' is not an object",
        ),
        (
            as_json({"code": "BTC", "rate": 1, "fetched_at": FETCHED, "rank": 1.5}),
            "bad rank: field 'rank' is not a whole number 0..4294967295",
        ),
        (
            as_json({"code": "BTC", "rate": 1, "fetched_at": FETCHED, "categories": "a"}),
            "bad categories: field 'categories' is not a list of strings",
        ),
    ],
)
def test_current_rejects_with_reason(value, reason):
    with pytest.raises(Rejected) as caught:
        parse(FORMATS["coins_current_full"], record(value), 1 << 20, RULES)
    assert caught.value.reason == reason


def test_the_rule_fields_are_read_as_the_ksql_engine_reads_them():
    """Names in any case, numbers written as strings: what the engine counts, the loader lands."""
    value = as_json({"CODE": "BTC", "Rate": "61000.5", "FETCHED_AT": str(FETCHED)})
    rows = parse(FORMATS["coins_current_full"], record(value), 1 << 20, RULES)
    assert [row[:3] for row in rows] == [("BTC", FETCHED, 61000.5)]


def test_a_rate_exactly_at_the_allowed_skew_passes():
    rows = parse(
        FORMATS["coins_current_full"],
        record(as_json({"code": "BTC", "rate": 2.0, "fetched_at": FETCHED + 60_000})),
        1 << 20,
        RULES,
    )
    assert [row[:3] for row in rows] == [("BTC", FETCHED + 60_000, 2.0)]


@pytest.mark.parametrize(
    "value", [b'{"code":"X","rate":', b"\xff\xfe", b'{"code":"X","rate":NaN}', b'{"code":"X","rate":1e400}']
)
def test_bad_json_is_rejected(value):
    with pytest.raises(Rejected) as caught:
        parse(FORMATS["coins_current_full"], record(value), 1 << 20)
    assert caught.value.reason.startswith("bad JSON: ")


def test_oversized_is_rejected_before_decoding_and_raw_is_truncated():
    value = b"x" * 70_000
    with pytest.raises(Rejected) as caught:
        parse(FORMATS["coins_current_full"], record(value), 65_536)
    assert caught.value.reason == "oversized: 70000 bytes > 65536 (_raw keeps the first 65536 bytes)"
    assert error_row(record(value), caught.value.reason) == (
        "coins_current_full",
        3,
        2,
        7,
        FETCHED,
        b"BTC",
        b"x" * 65_536,
        caught.value.reason,
    )


def test_historical_daily_close_contract():
    value = {
        "code": "ETH",
        "date": "2024-03-09",
        "ts": 1_709_985_600_000,
        "rate": 3900.25,
        "volume": 1e10,
        "cap": 4.7e11,
        "liquidity": 1e8,
        "name": "Ethereum",
        "symbol": "Ξ",
        "rank": 2,
        "circulatingSupply": 1.2e8,
        "totalSupply": None,
        "maxSupply": None,
        "fetched_at": FETCHED,
    }
    rows = parse(FORMATS["coins_historical"], record(as_json(value), b"ETH", "coins_historical"), 1 << 20)
    assert rows == [
        (
            "ETH",
            19791,
            1_709_985_600_000,
            3900.25,
            1e10,
            4.7e11,
            1e8,
            "Ethereum",
            "Ξ",
            2,
            1.2e8,
            None,
            None,
            FETCHED,
            "coins_historical",
            3,
            2,
            7,
            FETCHED,
            b"ETH",
        )
    ]
    assert len(rows[0]) == len(HISTORICAL_COLUMNS)


def test_historical_defaults_and_history_array():
    # No ts: 12:00 UTC of the date; no fetched_at: the record timestamp.
    only_date = {"code": "ETH", "date": "2024-03-09", "rate": 1}
    rows = parse(
        FORMATS["coins_historical"], record(as_json(only_date), b"ETH", "coins_historical", timestamp=123), 1 << 20
    )
    assert rows[0][:4] == ("ETH", 19791, 19791 * 86_400_000 + 43_200_000, 1.0)
    assert rows[0][13] == 123
    # A /coins/single/history answer: one row per point, its day from the point's epoch ms.
    answer = {
        "code": "ETH",
        "name": "Ethereum",
        "fetched_at": FETCHED,
        "history": [
            {"date": 1_709_899_200_000, "rate": 3800.0, "volume": 5.0},
            {"date": 1_709_985_600_000, "rate": 3900.0, "cap": None},
        ],
    }
    rows = parse(FORMATS["coins_historical"], record(as_json(answer), b"ETH", "coins_historical"), 1 << 20)
    assert [row[:7] for row in rows] == [
        ("ETH", 19790, 1_709_899_200_000, 3800.0, 5.0, None, None),
        ("ETH", 19791, 1_709_985_600_000, 3900.0, None, None, None),
    ]
    assert [row[7] for row in rows] == ["Ethereum", "Ethereum"]


@pytest.mark.parametrize(
    "value, reason",
    [
        ({"code": "ETH", "rate": 1}, "missing date: none of 'date', 'ts', 'date_ms' is given"),
        ({"code": "ETH", "date": "2024-13-01", "rate": 1}, "bad date: field 'date' is not a YYYY-MM-DD date"),
        ({"code": "ETH", "date": "20240101", "rate": 1}, "bad date: field 'date' is not a YYYY-MM-DD date"),
        ({"code": "ETH", "date": "2024-W01-1", "rate": 1}, "bad date: field 'date' is not a YYYY-MM-DD date"),
        ({"code": "ETH", "date": "2024-03-01", "rate": -3}, "negative rate: field 'rate' is below 0"),
        ({"code": "ETH", "history": "[]"}, "bad history: field 'history' is not a list of objects"),
        ({"code": "ETH", "history": []}, "missing rate: field 'history' is empty"),
    ],
)
def test_historical_rejects(value, reason):
    with pytest.raises(Rejected) as caught:
        parse(FORMATS["coins_historical"], record(as_json(value), b"ETH", "coins_historical"), 1 << 20)
    assert caught.value.reason == reason


def test_windowed_values_match_names_case_insensitively():
    key = b"STABLECOIN" + (1_710_028_800_000).to_bytes(8, "big")
    ohlc = {
        "COIN_CODE": "STABLECOIN",
        "WINDOW_START": "2024-03-10 00:00",
        "OPEN": 1,
        "High": 2,
        "low": 0.5,
        "CLOSE": 1.5,
    }
    assert parse(FORMATS["ohlc_by_minute"], record(as_json(ohlc), key, "ohlc_by_minute"), 1 << 20) == [
        ("STABLECOIN", 1_710_028_800_000, 1.0, 2.0, 0.5, 1.5, "ohlc_by_minute", 3, 2, 7, FETCHED, key)
    ]
    assert parse(FORMATS["mov_avg_60s"], record(as_json({"MOV_AVG": 0.75}), key, "mov_avg_60s"), 1 << 20) == [
        ("STABLECOIN", 1_710_028_800_000, 0.75, "mov_avg_60s", 3, 2, 7, FETCHED, key)
    ]
    with pytest.raises(Rejected) as caught:
        parse(FORMATS["ohlc_by_minute"], record(as_json({"OPEN": 1}), key, "ohlc_by_minute"), 1 << 20)
    assert caught.value.reason == "missing high: field 'high' is absent or null"
