"""How each topic's messages become rows of its landing table (the contracts in
clickhouse/schema/0001_landing_tables.sql), and the error-table row for those that cannot.

Each parser is a pure function `Record -> list[row]` that raises `Rejected(reason)`; rows are
tuples in the order of the table's `columns`, with instants as epoch milliseconds and days as day
numbers (what clickhouse-connect writes to DateTime64(3)/Date without conversion).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coinstream.clickhouse.loader.records import Record
from coinstream.clickhouse.loader.validation import (
    COUNT,
    MS_PER_DAY,
    NUMBER,
    TEXT,
    Rejected,
    code_field,
    count_field,
    day_number,
    decode_object,
    epoch_ms_field,
    number_field,
    text_field,
    text_list_field,
    typed_fields,
)
from coinstream.common.rate_validity import DEFAULT_MAX_CLOCK_SKEW_MS, rate_record_problem, rule_fields

Row = tuple[Any, ...]
META_COLUMNS = ("_topic", "_topic_epoch", "_partition", "_offset", "_timestamp", "_key")
ERROR_COLUMNS = (*META_COLUMNS, "_raw", "reason")
# What an error row keeps of an oversized value.
ERROR_RAW_LIMIT = 64 * 1024
NOON_MS = 12 * 3_600_000


@dataclass(frozen=True)
class RateRules:
    """What a live rate is checked against (common/rate_validity.py): the allowed clock skew
    (RATE_MAX_CLOCK_SKEW_MS) and the wall clock (epoch seconds, replaceable in tests)."""

    max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS
    clock: Callable[[], float] = field(default=time.time)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)


DEFAULT_RULES = RateRules()


@dataclass(frozen=True)
class TableFormat:
    """A landing table: its name, its columns (in row order) and the parser that fills them."""

    table: str
    columns: tuple[str, ...]
    parse: Callable[[Record, RateRules], list[Row]]

    @property
    def error_table(self) -> str:
        return f"{self.table}_clickpipes_error"


def _meta(record: Record) -> tuple[Any, ...]:
    return (record.topic, record.topic_epoch, record.partition, record.offset, record.timestamp_ms, record.key)


def error_row(record: Record, reason: str) -> Row:
    """The `<table>_clickpipes_error` row: where the message came from, its raw bytes, why."""
    raw = record.value or b""
    if len(raw) > ERROR_RAW_LIMIT:
        raw = raw[:ERROR_RAW_LIMIT]
    return (*_meta(record), raw, reason)


# ---- coins_current_full ------------------------------------------------------------------------

CURRENT_COLUMNS = (
    "code",
    "fetched_at",
    "rate",
    "volume",
    "cap",
    "liquidity",
    "delta_hour",
    "delta_day",
    "delta_week",
    "delta_month",
    "delta_quarter",
    "delta_year",
    "name",
    "symbol",
    "rank",
    "age",
    "color",
    "png32",
    "png64",
    "webp32",
    "webp64",
    "exchanges",
    "markets",
    "pairs",
    "all_time_high_usd",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "categories",
    *META_COLUMNS,
)
_DELTA_PLAN = tuple((period, NUMBER) for period in ("hour", "day", "week", "month", "quarter", "year"))
_MARKET_PLAN = (("volume", NUMBER), ("cap", NUMBER), ("liquidity", NUMBER))
_META_PLAN = (
    ("name", TEXT),
    ("symbol", TEXT),
    ("rank", COUNT),
    ("age", COUNT),
    ("color", TEXT),
    ("png32", TEXT),
    ("png64", TEXT),
    ("webp32", TEXT),
    ("webp64", TEXT),
    ("exchanges", COUNT),
    ("markets", COUNT),
    ("pairs", COUNT),
    ("allTimeHighUSD", NUMBER),
    ("circulatingSupply", NUMBER),
    ("totalSupply", NUMBER),
    ("maxSupply", NUMBER),
)


def parse_current(record: Record, rules: RateRules = DEFAULT_RULES) -> list[Row]:
    """One LiveCoinWatch /coins/map coin (meta=true) plus fetched_at -> one row, if it is a valid
    live rate (common/rate_validity.py: key = code, rate finite > 0, fetched_at not from the future),
    else `Rejected` with the reason the ksql statements give too."""
    coin = decode_object(record.value)
    try:
        key: str | None = record.key.decode("utf-8") if record.key else None
    except UnicodeDecodeError:
        key = None
    code, rate, fetched_at = rule_fields(coin)
    problem = rate_record_problem(
        key, code, rate, fetched_at, now_ms=rules.now_ms(), max_skew_ms=rules.max_clock_skew_ms
    )
    if problem is not None:
        raise Rejected(problem)
    # Valid: a non-empty code, a finite rate > 0, whole epoch ms not from the future.
    fetched_at = epoch_ms_field({"fetched_at": fetched_at}, "fetched_at", required=True)
    rate = float(rate)
    delta = coin.get("delta")
    if delta is None:
        delta = {}
    elif not isinstance(delta, dict):
        raise Rejected("bad delta: field 'delta' is not an object")
    return [
        (
            code,
            fetched_at,
            rate,
            *typed_fields(coin, _MARKET_PLAN),
            *typed_fields(delta, _DELTA_PLAN),
            *typed_fields(coin, _META_PLAN),
            text_list_field(coin, "categories"),
            *_meta(record),
        )
    ]


# ---- coins_historical --------------------------------------------------------------------------

HISTORICAL_COLUMNS = (
    "code",
    "date",
    "ts",
    "rate",
    "volume",
    "cap",
    "liquidity",
    "name",
    "symbol",
    "rank",
    "circulating_supply",
    "total_supply",
    "max_supply",
    "fetched_at",
    *META_COLUMNS,
)


def _history_point(point: dict[str, Any], meta: tuple[Any, ...], code: str, fetched_at: int, record: Record) -> Row:
    if point.get("date") is not None:
        day = day_number(point["date"], "date")
    elif point.get("ts") is not None or point.get("date_ms") is not None:
        name = "ts" if point.get("ts") is not None else "date_ms"
        day = day_number(epoch_ms_field(point, name), name)
    else:
        raise Rejected("missing date: none of 'date', 'ts', 'date_ms' is given")
    ts = epoch_ms_field(point, "ts") if point.get("ts") is not None else None
    if ts is None:
        ts = epoch_ms_field(point, "date_ms")
    if ts is None and isinstance(point.get("date"), (int, float)):
        ts = epoch_ms_field(point, "date")
    if ts is None:
        ts = day * MS_PER_DAY + NOON_MS
    return (
        code,
        day,
        ts,
        number_field(point, "rate", required=True),
        number_field(point, "volume"),
        number_field(point, "cap"),
        number_field(point, "liquidity"),
        *meta,
        fetched_at,
        *_meta(record),
    )


def parse_historical(record: Record, rules: RateRules = DEFAULT_RULES) -> list[Row]:
    """One daily close (or a /coins/single/history answer with meta) -> one row per (code, day)."""
    value = decode_object(record.value)
    code = code_field(value)
    fetched_at = epoch_ms_field(value, "fetched_at")
    if fetched_at is None:
        fetched_at = record.timestamp_ms
    meta = (
        text_field(value, "name"),
        text_field(value, "symbol"),
        count_field(value, "rank"),
        number_field(value, "circulatingSupply"),
        number_field(value, "totalSupply"),
        number_field(value, "maxSupply"),
    )
    history = value.get("history")
    if history is None:
        return [_history_point(value, meta, code, fetched_at, record)]
    if not isinstance(history, list) or not all(isinstance(point, dict) for point in history):
        raise Rejected("bad history: field 'history' is not a list of objects")
    if not history:
        raise Rejected("missing rate: field 'history' is empty")
    return [_history_point(point, meta, code, fetched_at, record) for point in history]


# ---- ksqlDB windowed tables --------------------------------------------------------------------


def decode_windowed_key(key: bytes) -> tuple[str, int]:
    """ksqlDB's windowed key: the code's bytes, then the window start as 8 bytes big-endian ms.

    The code is everything but the last 8 bytes, whatever its length (the reference's
    `LEFT(_key, 5)` cut longer codes).
    """
    if len(key) < 9:
        raise Rejected(f"bad key: a windowed key needs a code and 8 bytes of window start, got {len(key)} bytes")
    try:
        code = key[:-8].decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("bad key: the code part is not UTF-8") from None
    window_start = int.from_bytes(key[-8:], "big", signed=True)
    if not 0 <= window_start < 7_258_118_400_000:
        raise Rejected("bad key: the window start is outside 1970..2200")
    return code, window_start


OHLC_COLUMNS = ("code", "window_start", "open", "high", "low", "close", *META_COLUMNS)
MOV_AVG_COLUMNS = ("code", "window_start", "mov_avg", *META_COLUMNS)


def parse_ohlc(record: Record, rules: RateRules = DEFAULT_RULES) -> list[Row]:
    """One EMIT CHANGES update of a 1-minute OHLC window -> one row."""
    code, window_start = decode_windowed_key(record.key)
    value = decode_object(record.value, lower_keys=True)
    prices = tuple(number_field(value, name, required=True) for name in ("open", "high", "low", "close"))
    return [(code, window_start, *prices, *_meta(record))]


def parse_mov_avg(record: Record, rules: RateRules = DEFAULT_RULES) -> list[Row]:
    """One EMIT CHANGES update of a 60 s hopping-window average -> one row."""
    code, window_start = decode_windowed_key(record.key)
    value = decode_object(record.value, lower_keys=True)
    return [(code, window_start, number_field(value, "mov_avg", required=True), *_meta(record))]


FORMATS: dict[str, TableFormat] = {
    spec.table: spec
    for spec in (
        TableFormat("coins_current_full", CURRENT_COLUMNS, parse_current),
        TableFormat("coins_historical", HISTORICAL_COLUMNS, parse_historical),
        TableFormat("ohlc_by_minute", OHLC_COLUMNS, parse_ohlc),
        TableFormat("mov_avg_60s", MOV_AVG_COLUMNS, parse_mov_avg),
    )
}


def parse(spec: TableFormat, record: Record, max_message_bytes: int, rules: RateRules = DEFAULT_RULES) -> list[Row]:
    """The rows of one message, or `Rejected` (oversized is checked before decoding)."""
    size = len(record.value or b"")
    if size > max_message_bytes:
        raise Rejected(f"oversized: {size} bytes > {max_message_bytes} (_raw keeps the first {ERROR_RAW_LIMIT} bytes)")
    return spec.parse(record, rules)
