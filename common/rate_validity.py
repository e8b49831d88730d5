"""What a valid live rate record is: one definition for the producer and the loader, and the
reasons the ksql statements (ksql/015_coins_current_rejected.sql) give in the same words.

A record of `coins_current_full` is valid when
- its Kafka key is its `code` (the engine groups by the key, the loader lands the code: a record
  keyed ETH carrying code BTC would make ETH candles out of a BTC price);
- its `rate` is a finite number greater than 0 (a 0 would read as a crash of the coin, a negative
  or NaN one poisons every average it enters);
- its `fetched_at` (epoch ms) is present and not ahead of the wall clock by more than the allowed
  clock skew (`RATE_MAX_CLOCK_SKEW_MS`): a record from the future would move the engine's stream
  time there, every real record after it would be dropped as late, and it would pin the coin's
  latest rate.

The three fields are read the way the ksql engine reads its JSON columns (`rule_fields`): a field
name matches case-insensitively, a number written as a string counts as that number, a whole
number written as a string as that whole number. Both sides must decide alike on every record,
or a rate would count in a candle but be missing from the table (or the reverse).

The ksql engine cannot see a record's Kafka timestamp (its stream's timestamp *is* fetched_at), so
the rule compares with the wall clock only. The wall clock makes the verdict depend on when a
record is processed: a record beyond the skew when it arrives may be within it when it is read
again much later; the loader checks a redelivered message against its error table as well as its
table, so such a record never lands twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

# RATE_MAX_CLOCK_SKEW_MS's default: the one value every component starts from.
DEFAULT_MAX_CLOCK_SKEW_MS = 60_000

KEY_MISMATCH = "key mismatch: the Kafka key is not the record's code"
BAD_RATE = "bad rate: not a finite number greater than 0"
MISSING_FETCHED_AT = "bad fetched_at: missing"
FUTURE_WALL_CLOCK = "future fetched_at: ahead of the wall clock by more than the allowed clock skew"
BAD_FETCHED_AT = "bad fetched_at: not a whole number of epoch milliseconds"

# Every reason, in the order the checks run (the first failing one is given).
REASONS = (KEY_MISMATCH, BAD_RATE, MISSING_FETCHED_AT, FUTURE_WALL_CLOCK)


def field(obj: dict[str, Any], name: str) -> Any:
    """`obj[name]`, else the first field whose name matches case-insensitively (as ksqlDB's JSON)."""
    if name in obj:
        return obj[name]
    upper = name.upper()
    for key, value in obj.items():
        if isinstance(key, str) and key.upper() == upper:
            return value
    return None


def _from_text(value: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(value.strip())
    except ValueError:
        return value


def as_double(value: Any) -> Any:
    """A JSON value as the engine's DOUBLE column reads it: numbers, and numbers written as strings;
    anything else is returned as it is (and is then not a usable rate)."""
    return _from_text(value, float) if isinstance(value, str) else value


def as_bigint(value: Any) -> Any:
    """A JSON value as the engine's BIGINT column reads it: whole numbers (a float is truncated),
    and whole numbers written as strings; anything else is returned as it is."""
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return _from_text(value, int) if isinstance(value, str) else value


def rule_fields(obj: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(code, rate, fetched_at) of a decoded record, read as the engine reads them."""
    return field(obj, "code"), as_double(field(obj, "rate")), as_bigint(field(obj, "fetched_at"))


def usable_rate(rate: Any) -> bool:
    """A finite number (not a bool) greater than 0."""
    return isinstance(rate, (int, float)) and not isinstance(rate, bool) and math.isfinite(rate) and rate > 0


def rate_record_problem(
    key: str | None, code: Any, rate: Any, fetched_at: Any, *, now_ms: int, max_skew_ms: int
) -> str | None:
    """The reason the record is not a valid live rate, or None when it is (fields as read by
    `rule_fields`)."""
    if not isinstance(code, str) or key != code:
        return KEY_MISMATCH
    if not usable_rate(rate):
        return BAD_RATE
    if fetched_at is None:
        return MISSING_FETCHED_AT
    if isinstance(fetched_at, bool) or not isinstance(fetched_at, int):
        return BAD_FETCHED_AT
    if fetched_at > now_ms + max_skew_ms:
        return FUTURE_WALL_CLOCK
    return None
