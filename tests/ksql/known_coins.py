"""A small, hand-checked input for the project's statements and the outputs it must produce.

Shared by the engine test (in memory) and the `ksql run` test (through Kafka). The comments give
the arithmetic behind every expected value.
"""

from __future__ import annotations

# 1700000000000 ms = 2023-11-14 22:13:20 UTC; its minute starts at 1699999980000 (22:13:00).
T0 = 1_700_000_000_000


def coin(code: str | None, rate: float | None, fetched_at: int, kafka_ts: int = 5) -> dict:
    return {
        "topic": "coins_current_full",
        "key": code,
        "timestamp": kafka_ts,
        "value": {
            "code": code,
            "rate": rate,
            "fetched_at": fetched_at,
            "name": "n",
            "rank": 1,
            "delta": {"hour": 1.01, "day": 0.99},
            "categories": ["x"],
        },
    }


INPUTS = [
    coin("BTC", 100.0, T0),  # 22:13:20
    coin("BTC", 110.0, T0 + 10_000),  # 22:13:30
    coin("ETH", None, T0 + 7_000),  # null rate: rejected (bad rate), in no aggregate
    coin("ETH", 10.0, T0 + 5_000),  # out of order, same windows
    coin("BTC", 95.0, T0 + 200_000),  # 22:16:40: stream time jumps, close = T0+200000-120000
    coin("BTC", 1.0, T0 + 30_000),  # 22:13:50: every window of it ends <= T0+80000: dropped
    coin("BTC", 120.0, T0 + 150_000),  # 22:15:50: within the 2-minute grace
    {"topic": "coins_current_full", "key": "BTC", "timestamp": 5, "value": "not json"},
    coin(None, 5.0, T0 + 150_001),  # no key (and no code): rejected (key mismatch)
    {
        **coin("ETH", 3000.0, T0 + 160_000),
        "value": {"code": "BTC", "rate": 3000.0, "fetched_at": T0 + 160_000},
    },  # key ETH, code BTC
    coin("BTC", 0.0, T0 + 161_000),  # rate 0: rejected (bad rate)
    coin("BTC", -1.0, T0 + 162_000),  # negative rate: rejected (bad rate)
    coin("BTC", 100.0, 7_226_582_400_000),  # fetched_at in 2199: rejected, stream time stays
    coin("BTC", 130.0, T0 + 170_000),  # 22:16:10: still counted (no frozen stream time)
]


def ohlc(code, start, ts, minute, o, h, low, c):
    return {
        "topic": "ohlc_by_minute",
        "key": code,
        "timestamp": ts,
        "window": {"start": start, "end": start + 60_000, "type": "time"},
        "value": {"COIN_CODE": code, "WINDOW_START": minute, "OPEN": o, "HIGH": h, "LOW": low, "CLOSE": c},
    }


def avg(code, start, ts, second, value):
    return {
        "topic": "mov_avg_60s",
        "key": code,
        "timestamp": ts,
        "window": {"start": start, "end": start + 60_000, "type": "time"},
        "value": {"COIN_CODE": code, "WINDOW_START": second, "MOV_AVG": value},
    }


# Windows: tumbling start = ts - ts % 60000; hopping starts from (ts - 30000) // 30000 * 30000.
W_1213, W_1215, W_1216 = T0 - 20_000, T0 + 100_000, T0 + 160_000
H_121230, H_1213, H_121330 = T0 - 50_000, T0 - 20_000, T0 + 10_000
H_1215, H_121530, H_1216, H_121630 = T0 + 100_000, T0 + 130_000, T0 + 160_000, T0 + 190_000

EXPECTED_OHLC = [
    ohlc("BTC", W_1213, T0, "2023-11-14 22:13", 100.0, 100.0, 100.0, 100.0),
    ohlc("BTC", W_1213, T0 + 10_000, "2023-11-14 22:13", 100.0, 110.0, 100.0, 110.0),
    ohlc("ETH", W_1213, T0 + 5_000, "2023-11-14 22:13", 10.0, 10.0, 10.0, 10.0),
    ohlc("BTC", W_1216, T0 + 200_000, "2023-11-14 22:16", 95.0, 95.0, 95.0, 95.0),
    ohlc("BTC", W_1215, T0 + 150_000, "2023-11-14 22:15", 120.0, 120.0, 120.0, 120.0),
    # 130.0 at 22:16:10 joins the 22:16 candle opened (in offset order) by 95.0 at 22:16:40.
    ohlc("BTC", W_1216, T0 + 200_000, "2023-11-14 22:16", 95.0, 130.0, 95.0, 130.0),
]

EXPECTED_AVG = [
    avg("BTC", H_121230, T0, "2023-11-14 22:12:30", 100.0),
    avg("BTC", H_1213, T0, "2023-11-14 22:13:00", 100.0),
    avg("BTC", H_1213, T0 + 10_000, "2023-11-14 22:13:00", 105.0),  # (100 + 110) / 2
    avg("BTC", H_121330, T0 + 10_000, "2023-11-14 22:13:30", 110.0),
    avg("ETH", H_121230, T0 + 5_000, "2023-11-14 22:12:30", 10.0),
    avg("ETH", H_1213, T0 + 5_000, "2023-11-14 22:13:00", 10.0),
    avg("BTC", H_1216, T0 + 200_000, "2023-11-14 22:16:00", 95.0),
    avg("BTC", H_121630, T0 + 200_000, "2023-11-14 22:16:30", 95.0),
    avg("BTC", H_1215, T0 + 150_000, "2023-11-14 22:15:00", 120.0),
    avg("BTC", H_121530, T0 + 150_000, "2023-11-14 22:15:30", 120.0),
    avg("BTC", H_121530, T0 + 170_000, "2023-11-14 22:15:30", 125.0),  # (120 + 130) / 2
    avg("BTC", H_1216, T0 + 200_000, "2023-11-14 22:16:00", 112.5),  # (95 + 130) / 2
]


def rejected(key, code, rate, fetched_at, reason):
    return {
        "topic": "coins_current_rejected",
        "key": key,
        "timestamp": fetched_at,
        "value": {"CODE": code, "RATE": rate, "FETCHED_AT": fetched_at, "REASON": reason},
    }


# coins_current_rejected, with the reasons of common/rate_validity.py (written out here).
MISMATCH = "key mismatch: the Kafka key is not the record's code"
BAD_RATE = "bad rate: not a finite number greater than 0"
FUTURE = "future fetched_at: ahead of the wall clock by more than the allowed clock skew"
EXPECTED_REJECTED = [
    rejected("ETH", "ETH", None, T0 + 7_000, BAD_RATE),
    rejected(None, None, 5.0, T0 + 150_001, MISMATCH),
    rejected("ETH", "BTC", 3000.0, T0 + 160_000, MISMATCH),
    rejected("BTC", "BTC", 0.0, T0 + 161_000, BAD_RATE),
    rejected("BTC", "BTC", -1.0, T0 + 162_000, BAD_RATE),
    rejected("BTC", "BTC", 100.0, 7_226_582_400_000, FUTURE),
]

# (query or source, input offset, reason prefix, kind) of the processing-log entries: the late
# record once per window it missed (one tumbling, two hopping), the bad JSON once for the source.
EXPECTED_LOG = [
    ("CTAS_OHLC_BY_MINUTE_2", 5, "late record", "late_record"),
    ("CTAS_MOV_AVG_60S_3", 5, "late record", "late_record"),
    ("CTAS_MOV_AVG_60S_3", 5, "late record", "late_record"),
    ("COINS_CURRENT_STREAM", 7, "Failed to deserialize JSON", "deserialization"),
]
