"""Which days are closed, and the instants the API is asked about: pure date arithmetic in UTC.

Why its own module: "the daily close is the rate at 12:00 UTC" is the one rule every
part of the backfill depends on, and the rule that must never be bent — a day whose 12:00 UTC has
not come yet is never requested. Keeping the arithmetic pure (the caller passes `now`) lets the
tests put "now" anywhere without touching the wall clock.

A day counts as *closed* `margin` after its 12:00 UTC: the API needs a moment to have the 12:00
point, and asking at 12:00:00.001 would risk an empty answer that the backfill records as a gap.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone

Clock = Callable[[], datetime]
CLOSE_TIME = time(12, 0, tzinfo=timezone.utc)
MS_PER_DAY = 86_400_000
_EPOCH = date(1970, 1, 1)


def utc_now() -> datetime:
    """The wall clock in UTC (the default `Clock`)."""
    return datetime.now(timezone.utc)


def parse_day(text: str) -> date:
    """'YYYY-MM-DD' -> date; anything else raises ValueError with the expected form."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def close_instant(day: date) -> datetime:
    """12:00 UTC of `day`: the instant whose rate is that day's close."""
    return datetime.combine(day, CLOSE_TIME)


def close_ms(day: date) -> int:
    """12:00 UTC of `day` in integer epoch milliseconds, computed without floats."""
    return (day - _EPOCH).days * MS_PER_DAY + 12 * 3_600_000


def day_of_ms(epoch_ms: int) -> date:
    """The UTC day an instant (epoch ms) falls on."""
    return _EPOCH + timedelta(days=epoch_ms // MS_PER_DAY)


def as_utc(now: datetime) -> datetime:
    """`now` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    return now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)


def latest_closed_day(now: datetime, margin: timedelta = timedelta(0)) -> date:
    """The last day whose close (12:00 UTC + margin) is at or before `now`."""
    now = as_utc(now)
    today = now.date()
    return today if now >= close_instant(today) + margin else today - timedelta(days=1)


def next_close_run(now: datetime, margin: timedelta = timedelta(0)) -> datetime:
    """The first close (12:00 UTC + margin) strictly after `now`: when the scheduled job wakes."""
    now = as_utc(now)
    candidate = close_instant(now.date()) + margin
    while candidate <= now:
        candidate += timedelta(days=1)
    return candidate


def next_utc_midnight(now: datetime) -> datetime:
    """When LiveCoinWatch renews the daily credits."""
    now = as_utc(now)
    return datetime.combine(now.date() + timedelta(days=1), time(0, tzinfo=timezone.utc))


def days_between(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included (empty when start > end)."""
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def backfill_window(
    now: datetime, margin: timedelta, default_days: int, start: date | None = None, end: date | None = None
) -> tuple[date, date, str]:
    """The days to backfill: [start, end] clamped to the latest closed day.

    Without `end`, the latest closed day; without `start`, `default_days` days ending at `end`.
    Returns (start, end, note) where `note` explains a clamp ("" when none was needed); start > end
    means there is nothing to do.
    """
    latest = latest_closed_day(now, margin)
    note = ""
    if end is None:
        end = latest
    elif end > latest:
        note = (
            f"{end} is not closed yet (its 12:00 UTC + {margin.total_seconds():g} s is after "
            f"{as_utc(now):%Y-%m-%d %H:%M:%S} UTC): stopping at {latest}"
        )
        end = latest
    if start is None:
        start = end - timedelta(days=default_days - 1)
    return start, end, note
