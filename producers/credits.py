"""The daily credit budget: count every request, refuse the one that would go over.

Why client-side: LiveCoinWatch charges one credit per request and renews 10,000 at UTC midnight; a
producer that only learned about the limit from the API's 429s would already have spent the
backfill's share. The guard starts from what `/credits` reports as already used today (other
processes share the key), adds one for every request this process sends — retries included —
and refuses before the cap is crossed, saying when credits renew.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Protocol

from coinstream.producers.errors import CreditBudgetExceeded

SECONDS_PER_DAY = 86_400


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def next_utc_midnight(now: datetime) -> datetime:
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)


class CreditCounter(Protocol):
    """What the API client needs from a credit budget: `CreditGuard`, or the backfill's
    `historical.budget.BackfillCredits` (its share and the key's total together)."""

    @property
    def synced(self) -> bool:
        """Whether `/credits` has been read (for the current UTC day)."""
        ...

    @property
    def remaining(self) -> int:
        """Credits that may still be spent today."""
        ...

    def sync(self, remaining: int, limit: int) -> None:
        """`/credits` answered with the key's remaining and daily-limit counts."""
        ...

    def reserve(self, endpoint: str) -> None:
        """Count one request, or raise `CreditBudgetExceeded`."""
        ...


class CreditGuard:
    """Credits spent per UTC day against a cap.

    `budget` is what this client may let the key spend in a UTC day (all users of the key, as far
    as `/credits` shows them); `budget_label` explains the figure in messages, e.g.
    "DAILY_CREDIT_BUDGET 10000 − HISTORICAL_DAILY_CREDITS 500". When the server's own daily limit is
    lower, that limit is the cap.
    """

    def __init__(
        self, budget: int, budget_label: str = "DAILY_CREDIT_BUDGET", clock: Callable[[], datetime] = utc_now
    ) -> None:
        if budget < 1:
            raise ValueError("the credit budget must be at least 1")
        self.budget = budget
        self.budget_label = budget_label
        self._clock = clock
        self._day: date = clock().date()
        self._used = 0
        self.server_limit: int | None = None
        self.synced = False

    def _roll_day(self) -> datetime:
        now = self._clock()
        if now.date() != self._day:
            self._day, self._used, self.synced = now.date(), 0, False
        return now

    @property
    def cap(self) -> int:
        return min(self.budget, self.server_limit) if self.server_limit is not None else self.budget

    @property
    def used_today(self) -> int:
        self._roll_day()
        return self._used

    @property
    def remaining(self) -> int:
        return max(0, self.cap - self.used_today)

    def reserve(self, endpoint: str) -> None:
        """Count one request to `endpoint`, or raise `CreditBudgetExceeded` if it would exceed the cap."""
        now = self._roll_day()
        if self._used + 1 > self.cap:
            renews = next_utc_midnight(now)
            left = renews - now
            hours, rest = divmod(int(left.total_seconds()), 3600)
            cap_source = (
                f"{self.budget_label} = {self.budget}"
                if self.cap == self.budget
                else f"the API's daily limit of {self.cap}"
            )
            raise CreditBudgetExceeded(
                f"refusing {endpoint}: one more request would exceed the daily credit budget "
                f"({cap_source} credits per UTC day; {self._used} already used on {self._day} UTC). "
                f"Credits renew at {renews:%Y-%m-%d %H:%M} UTC (in {hours} h {rest // 60} min).",
                renews,
            )
        self._used += 1

    def sync(self, remaining: int, limit: int) -> None:
        """Adopt the server's view (`/credits`): used = limit − remaining, if that is more than we counted."""
        self._roll_day()
        self.server_limit = limit
        self._used = max(self._used, limit - remaining)
        self.synced = True
