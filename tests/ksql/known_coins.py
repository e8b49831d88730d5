"""A small, hand-checked input for the project's statements and the outputs it must produce.

Shared by the engine test (in memory) and the `ksql run` test (through Kafka). The comments give
the arithmetic behind every expected value.
"""

from __future__ import annotations

# 1700000000000 ms = 2023-11-14 22:13:20 UTC; its minute starts at 1699999980000 (22:13:00).
T0 = 1_700_000_000_000


def coin(code: str | None, rate: float | None, fetched_at: int, kafka_ts: int = 5) -> dict:
    return {"topic": "coins_current_full", "key": code, "timestamp": kafka_ts,
            "value": {"code": code, "rate": rate, "fetched_at": fetched_at, "name": "n", "rank": 1,
                      "delta": {"hour": 1.01, "day": 0.99}, "categories": ["x"]}}


INPUTS = [
    coin("BTC", 100.0, T0),             # 22:13:20
    coin("BTC", 110.0, T0 + 10_000),    # 22:13:30
    coin("ETH", None, T0 + 7_000),      # null rate: ignored by every aggregate
    coin("ETH", 10.0, T0 + 5_000),      # out of order, same windows
    coin("BTC", 95.0, T0 + 200_000),    # 22:16:40: stream time jumps, close = T0+200000-120000
    coin("BTC", 1.0, T0 + 30_000),      # 22:13:50: every window of it ends <= T0+80000: dropped
    coin("BTC", 120.0, T0 + 150_000),   # 22:15:50: within the 2-minute grace
    {"topic": "coins_current_full", "key": "BTC", "timestamp": 5, "value": "not json"},
    coin(None, 5.0, T0 + 150_001),      # no key: GROUP BY key is null
]


def ohlc(code, start, ts, minute, o, h, low, c):
    return {"topic": "ohlc_by_minute", "key": code, "timestamp": ts,
            "window": {"start": start, "end": start + 60_000, "type": "time"},
            "value": {"COIN_CODE": code, "WINDOW_START": minute, "OPEN": o, "HIGH": h, "LOW": low, "CLOSE": c}}


def avg(code, start, ts, second, value):
    return {"topic": "mov_avg_60s", "key": code, "timestamp": ts,
            "window": {"start": start, "end": start + 60_000, "type": "time"},
            "value": {"COIN_CODE": code, "WINDOW_START": second, "MOV_AVG": value}}


# Windows: tumbling start = ts - ts % 60000; hopping starts from (ts - 30000) // 30000 * 30000.
W_1213, W_1215, W_1216 = T0 - 20_000, T0 + 100_000, T0 + 160_000
H_121230, H_1213, H_121330 = T0 - 50_000, T0 - 20_000, T0 + 10_000
H_1215, H_121530, H_1216, H_121630 = T0 + 100_000, T0 + 130_000, T0 + 160_000, T0 + 190_000

EXPECTED_OHLC = [
    ohlc("BTC", W_1213, T0, "2023-11-14 22:13", 100.0, 100.0, 100.0, 100.0),
    ohlc("BTC", W_1213, T0 + 10_000, "2023-11-14 22:13", 100.0, 110.0, 100.0, 110.0),
    ohlc("ETH", W_1213, T0 + 7_000, "2023-11-14 22:13", None, None, None, None),
    ohlc("ETH", W_1213, T0 + 7_000, "2023-11-14 22:13", 10.0, 10.0, 10.0, 10.0),
    ohlc("BTC", W_1216, T0 + 200_000, "2023-11-14 22:16", 95.0, 95.0, 95.0, 95.0),
    ohlc("BTC", W_1215, T0 + 150_000, "2023-11-14 22:15", 120.0, 120.0, 120.0, 120.0),
]

EXPECTED_AVG = [
    avg("BTC", H_121230, T0, "2023-11-14 22:12:30", 100.0),
    avg("BTC", H_1213, T0, "2023-11-14 22:13:00", 100.0),
    avg("BTC", H_1213, T0 + 10_000, "2023-11-14 22:13:00", 105.0),     # (100 + 110) / 2
    avg("BTC", H_121330, T0 + 10_000, "2023-11-14 22:13:30", 110.0),
    avg("ETH", H_121230, T0 + 7_000, "2023-11-14 22:12:30", 0.0),      # AVG of no values is 0.0
    avg("ETH", H_1213, T0 + 7_000, "2023-11-14 22:13:00", 0.0),
    avg("ETH", H_121230, T0 + 7_000, "2023-11-14 22:12:30", 10.0),
    avg("ETH", H_1213, T0 + 7_000, "2023-11-14 22:13:00", 10.0),
    avg("BTC", H_1216, T0 + 200_000, "2023-11-14 22:16:00", 95.0),
    avg("BTC", H_121630, T0 + 200_000, "2023-11-14 22:16:30", 95.0),
    avg("BTC", H_1215, T0 + 150_000, "2023-11-14 22:15:00", 120.0),
    avg("BTC", H_121530, T0 + 150_000, "2023-11-14 22:15:30", 120.0),
]

# (query or source, input offset, reason prefix, kind) of the processing-log entries: the late
# record once per window it missed (one tumbling, two hopping), the bad JSON once for the source,
# the null key once per aggregate.
EXPECTED_LOG = [
    ("CTAS_OHLC_BY_MINUTE_1", 5, "late record", "late_record"),
    ("CTAS_MOV_AVG_60S_2", 5, "late record", "late_record"),
    ("CTAS_MOV_AVG_60S_2", 5, "late record", "late_record"),
    ("COINS_CURRENT_STREAM", 7, "Failed to deserialize JSON", "deserialization"),
    ("CTAS_OHLC_BY_MINUTE_1", 8, "GROUP BY key is null", "null_group_key"),
    ("CTAS_MOV_AVG_60S_2", 8, "GROUP BY key is null", "null_group_key"),
]
