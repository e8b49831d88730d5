"""From a `/coins/single/history` answer to the `coins_historical` message — or to a gap with a reason.

Why pure: what gets published (and what counts as "no data") is the contract with the loader
(clickhouse/schema/0001_landing_tables.sql, `coins_historical`), so it is decided here without
HTTP or Kafka and tested as data.

The message: key = the code (UTF-8); value = ``{"code", "date": "YYYY-MM-DD", "ts": <epoch ms of the
point, 12:00 UTC>, "rate", "volume", "cap", "liquidity", <the coin's meta fields as the API sent
them: name, symbol, rank, …>, "fetched_at": <epoch ms when the answer arrived>}``. The record
timestamp is `fetched_at`, not the close instant: a backfilled close from last year stamped with
last year's time would be deleted at once by a real Kafka's time-based retention.

Gaps (recorded, never silently dropped, never published as 0): an empty history; no point on that
UTC day; a point whose rate is null, not a number, not finite or not positive. When the API sends
several points, the one nearest 12:00 UTC on that day is the close (with start = end = 12:00 it
sends exactly that one).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from coinstream.producers.historical.days import close_ms, day_of_ms

POINT_FIELDS = ("rate", "volume", "cap", "liquidity")


@dataclass(frozen=True)
class Close:
    """One daily close ready to publish."""

    code: str
    day: date
    value: dict[str, Any]
    fetched_at_ms: int

    @property
    def key(self) -> bytes:
        return self.code.encode("utf-8")

    def value_bytes(self) -> bytes:
        return json.dumps(self.value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Gap:
    """A (code, day) the API had no usable close for, and why."""

    code: str
    day: date
    reason: str


def _usable_rate(rate: Any) -> bool:
    return isinstance(rate, (int, float)) and not isinstance(rate, bool) and math.isfinite(rate) and rate > 0


def _instant(point: dict[str, Any]) -> int | None:
    value = point.get("date")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value)


def close_from_history(code: str, day: date, answer: dict[str, Any], fetched_at_ms: int) -> Close | Gap:
    """The close of `code` on `day` from one history answer (meta=true), or the gap's reason."""
    history = answer.get("history")
    if not isinstance(history, list) or not history:
        return Gap(code, day, "empty history: the API returned no point for 12:00 UTC")
    noon = close_ms(day)
    on_day = [
        (abs(instant - noon), instant, point)
        for point in history
        if isinstance(point, dict) and (instant := _instant(point)) is not None and day_of_ms(instant) == day
    ]
    if not on_day:
        return Gap(code, day, f"no point on {day}: the API returned {len(history)} point(s), none on that UTC day")
    _, instant, point = min(on_day, key=lambda item: item[:2])
    rate = point.get("rate")
    if not _usable_rate(rate):
        kind = "null rate" if rate is None else "invalid rate"
        return Gap(code, day, f"{kind}: the API's point at 12:00 UTC has rate {json.dumps(rate)}")
    value: dict[str, Any] = {"code": code, "date": day.isoformat(), "ts": instant}
    value.update({name: point.get(name) for name in POINT_FIELDS})
    # The coin's meta fields, as sent; they never override the close's own fields.
    value.update(
        {name: item for name, item in answer.items() if name not in value and name not in ("history", "fetched_at")}
    )
    value["fetched_at"] = fetched_at_ms
    return Close(code, day, value, fetched_at_ms)
