"""What a valid live rate record is: one definition for the producer and the loader, and the
reasons the ksql statements (ksql/015_coins_current_rejected.sql) give in the same words.

A record of `coins_current_full` is valid when
- its Kafka key is its `code` (the engine groups by the key, the loader lands the code: a record
  keyed ETH carrying code BTC would make ETH candles out of a BTC price);
- its `rate` is a finite number greater than 0 (a 0 would read as a crash of the coin, a negative
  or NaN one poisons every average it enters);
- its `fetched_at` (epoch ms) is present and not ahead of the wall clock by more than the allowed
  clock skew (`RATE_MAX_CLOCK_SKEW_MS`), nor of the record's Kafka timestamp: a record from the
  future would move the engine's stream time there, every real record after it would be dropped
  as late, and it would pin the coin's latest rate.

The ksql engine cannot see a record's Kafka timestamp (its stream's timestamp *is* fetched_at),
so the statements check the wall clock only; the producer writes fetched_at as the Kafka
timestamp, so for its records the two bounds are the same.
"""

from __future__ import annotations

import math
from typing import Any

KEY_MISMATCH = "key mismatch: the Kafka key is not the record's code"
BAD_RATE = "bad rate: not a finite number greater than 0"
MISSING_FETCHED_AT = "bad fetched_at: missing"
FUTURE_WALL_CLOCK = "future fetched_at: ahead of the wall clock by more than the allowed clock skew"
FUTURE_TIMESTAMP = "future fetched_at: ahead of the record timestamp by more than the allowed clock skew"

# Every reason, in the order the checks run (the first failing one is given).
REASONS = (KEY_MISMATCH, BAD_RATE, MISSING_FETCHED_AT, FUTURE_WALL_CLOCK, FUTURE_TIMESTAMP)


def usable_rate(rate: Any) -> bool:
    """A finite number (not a bool) greater than 0."""
    return (isinstance(rate, (int, float)) and not isinstance(rate, bool)
            and math.isfinite(rate) and rate > 0)


def rate_record_problem(key: str | None, code: Any, rate: Any, fetched_at: Any, *, now_ms: int,
                        max_skew_ms: int, record_timestamp_ms: int | None = None) -> str | None:
    """The reason the record is not a valid live rate, or None when it is.

    `fetched_at` must already be an int (epoch ms) or None; a record timestamp of None or 0 (none
    known) is not compared.
    """
    if not isinstance(code, str) or key != code:
        return KEY_MISMATCH
    if not usable_rate(rate):
        return BAD_RATE
    if fetched_at is None:
        return MISSING_FETCHED_AT
    if fetched_at > now_ms + max_skew_ms:
        return FUTURE_WALL_CLOCK
    if record_timestamp_ms and fetched_at > record_timestamp_ms + max_skew_ms:
        return FUTURE_TIMESTAMP
    return None
