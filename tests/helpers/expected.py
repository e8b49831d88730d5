"""What the views must show, computed here from the raw Kafka records, independently of the
ksql engine, the loader and the SQL of the views (tests/test_e2e.py).

The definitions (ksql/020_*.sql, ksql/030_*.sql, clickhouse/schema/README.md, DESIGN §3):

- A live event is one record of `coins_current_full`: (offset, code, fetched_at ms, rate, value).
- 1-minute candle of (code, UTC minute [m, m + 60 s)) over the events with fetched_at in it:
  open = rate of the earliest (fetched_at, offset), close = rate of the latest, high = max,
  low = min.
- 60 s moving average of (code, window [w, w + 60 s)) for every w that is a multiple of 30 s,
  w >= 0, over the events with w <= fetched_at < w + 60 s: the rates summed from 0.0 in offset
  order (the engine's processing order), divided by their count.
- Multi-timeframe candles (v_candles_5m, v_ohlc_by_day): as the 1-minute candle over a 5-minute
  bucket or a UTC day, plus the number of events (samples).
- Overview (live coins): the latest event by (fetched_at, offset): name, rate,
  (delta.day - 1) * 100, (delta.week - 1) * 100, volume, cap, fetched_at, "live".
- Daily closes (v_hist_daily): per (code, date) the latest record by (fetched_at, offset).

Every value is a Python float computed with the same IEEE-754 operations the definitions name, so
comparisons are exact.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MINUTE_MS = 60_000
HOP_ADVANCE_MS = 30_000
HOP_SIZE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Event:
    """One good record of coins_current_full."""

    offset: int
    code: str
    fetched_at: int
    rate: float
    value: dict[str, Any]

    @classmethod
    def from_message(cls, offset: int, value: bytes) -> Event:
        decoded = json.loads(value)
        return cls(offset, decoded["code"], int(decoded["fetched_at"]), float(decoded["rate"]), decoded)


def _by_code(events: Iterable[Event]) -> dict[str, list[Event]]:
    groups: dict[str, list[Event]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.offset):
        groups[event.code].append(event)
    return groups


def _candles(events: Iterable[Event], bucket_ms: int) -> dict[tuple[str, int], tuple]:
    """(code, bucket start ms) -> (open, high, low, close, samples)."""
    buckets: dict[tuple[str, int], list[Event]] = defaultdict(list)
    for event in events:
        buckets[(event.code, event.fetched_at - event.fetched_at % bucket_ms)].append(event)
    result = {}
    for key, members in buckets.items():
        ordered = sorted(members, key=lambda e: (e.fetched_at, e.offset))
        rates = [e.rate for e in members]
        result[key] = (ordered[0].rate, max(rates), min(rates), ordered[-1].rate, len(members))
    return result


def ohlc_by_minute(events: Iterable[Event]) -> dict[tuple[str, int], tuple[float, float, float, float]]:
    """(code, window start in epoch seconds) -> (open, high, low, close)."""
    return {(code, start // 1000): candle[:4] for (code, start), candle in _candles(events, MINUTE_MS).items()}


def hopping_starts(ts: int) -> list[int]:
    """Starts of the 60 s windows advancing by 30 s that contain `ts` (none before 0)."""
    first = max(0, ts - HOP_SIZE_MS + HOP_ADVANCE_MS) // HOP_ADVANCE_MS * HOP_ADVANCE_MS
    return [start for start in range(first, ts + 1, HOP_ADVANCE_MS) if start <= ts < start + HOP_SIZE_MS]


def mov_avg_60s(events: Iterable[Event]) -> dict[tuple[str, int], float]:
    """(code, window start in epoch seconds) -> average rate, summed in offset order."""
    sums: dict[tuple[str, int], list] = {}
    for code, members in _by_code(events).items():
        for event in members:  # offset order
            for start in hopping_starts(event.fetched_at):
                state = sums.setdefault((code, start // 1000), [0.0, 0])
                state[0] += event.rate
                state[1] += 1
    return {key: total / count for key, (total, count) in sums.items()}


def candles_5m(events: Iterable[Event]) -> dict[tuple[str, int], tuple]:
    """(code, bucket start in epoch seconds) -> (open, high, low, close, samples)."""
    return {(code, start // 1000): candle for (code, start), candle in _candles(events, 300_000).items()}


def ohlc_by_day(events: Iterable[Event]) -> dict[tuple[str, str], tuple]:
    """(code, 'YYYY-MM-DD') -> (name, open, high, low, close, samples); name = the latest one."""
    latest = overview(events)
    result = {}
    for (code, start), candle in _candles(events, DAY_MS).items():
        day = dt.datetime.fromtimestamp(start / 1000, dt.timezone.utc).date().isoformat()
        result[(code, day)] = (latest[code][0], *candle)
    return result


def overview(events: Iterable[Event]) -> dict[str, tuple]:
    """code -> (name, rate, change_24h_pct, change_7d_pct, volume_24h, cap, updated_at ms, source)."""
    result = {}
    for code, members in _by_code(events).items():
        last = max(members, key=lambda e: (e.fetched_at, e.offset))
        value, delta = last.value, last.value.get("delta") or {}
        day, week = delta.get("day"), delta.get("week")
        result[code] = (
            value.get("name"),
            last.rate,
            None if day is None else (float(day) - 1) * 100,
            None if week is None else (float(week) - 1) * 100,
            None if value.get("volume") is None else float(value["volume"]),
            None if value.get("cap") is None else float(value["cap"]),
            last.fetched_at,
            "live",
        )
    return result


def hist_daily(records: Iterable[tuple[int, dict[str, Any]]]) -> dict[tuple[str, str], tuple]:
    """Daily-close messages (offset, value) -> (code, date) -> (rate, volume, cap, liquidity, name,
    ts ms): the latest by (fetched_at, offset)."""
    best: dict[tuple[str, str], tuple[tuple[int, int], dict[str, Any]]] = {}
    for offset, value in records:
        key = (value["code"], value["date"])
        order = (int(value["fetched_at"]), offset)
        if key not in best or order > best[key][0]:
            best[key] = (order, value)

    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    return {
        key: (
            float(v["rate"]),
            number(v.get("volume")),
            number(v.get("cap")),
            number(v.get("liquidity")),
            v.get("name"),
            int(v["ts"]),
        )
        for key, (_order, v) in best.items()
    }
