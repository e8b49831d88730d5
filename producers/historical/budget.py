"""The backfill's credit guard: its own daily share, and the key's total, both per UTC day.

Why two caps: the current-rates producer may let the key spend DAILY_CREDIT_BUDGET −
HISTORICAL_DAILY_CREDITS in a day (`producers.current.current_budget`), so the budget holds only
if the backfills of a day spend at most HISTORICAL_DAILY_CREDITS together — across runs, restarts
and kills, not per process. And no request may take the key past DAILY_CREDIT_BUDGET (or the API's
own limit) whoever spent the rest, which `/credits` tells.

- `share`: a `CreditGuard` over HISTORICAL_DAILY_CREDITS, seeded from the ledger in ClickHouse
  (`hist_backfill_credits`). Credits are reserved there in small blocks *before* they are spent
  and the unused rest is given back at the end, so a killed run can waste at most one block of
  the day's share and never exceed it.
- `total`: a `CreditGuard` over DAILY_CREDIT_BUDGET, synced from `/credits` like the current
  producer's (the client reads `/credits` before its first keyed call and after UTC midnight).

The object offers what `LiveCoinWatchClient` expects of its `credits` guard: `synced`, `sync`,
`reserve`.
"""

from __future__ import annotations

import logging
from datetime import date

from coinstream.producers.credits import CreditGuard
from coinstream.producers.historical.days import Clock, as_utc, utc_now
from coinstream.producers.historical.store import ProgressStore

log = logging.getLogger(__name__)

DEFAULT_BLOCK = 10


class BackfillCredits:
    """Counts every request against the backfill's share and the key's daily total."""

    def __init__(
        self,
        share: int,
        total: int,
        store: ProgressStore,
        clock: Clock = utc_now,
        block: int = DEFAULT_BLOCK,
        total_label: str = "DAILY_CREDIT_BUDGET",
    ) -> None:
        if share < 1:
            raise ValueError(
                "HISTORICAL_DAILY_CREDITS is 0: no credits are reserved for the backfill, so it cannot request anything"
            )
        self.share_budget = share
        self.total_budget = total
        self.store = store
        self._clock = clock
        self._block = max(1, block)
        self._total_label = total_label
        self.total = CreditGuard(total, total_label, clock)
        self._day: date | None = None
        self.share: CreditGuard | None = None
        self.reserved: dict[date, int] = {}  # this run's ledger reservations per day
        self.spent: dict[date, int] = {}  # this run's requests per day
        self._seed()

    # ---- what the client calls -----------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return self.total.synced

    @property
    def remaining(self) -> int:
        """Credits this backfill may still spend today: the smaller of its share and the key's total."""
        return min(self._share_for(self._today()).remaining, self.total.remaining)

    def sync(self, remaining: int, limit: int) -> None:
        """`/credits` answered: the key's total use today."""
        self.total.sync(remaining, limit)

    def reserve(self, endpoint: str) -> None:
        """Count one request, or raise `CreditBudgetExceeded` (from the cap that is reached)."""
        day = self._today()
        share = self._share_for(day)
        for guard in (share, self.total):
            if guard.remaining < 1:
                guard.reserve(endpoint)  # raises, with the guard's own explanation
        if self.spent.get(day, 0) >= self.reserved.get(day, 0):
            block = min(self._block, share.remaining)
            self.store.add_credits(day, block)  # durable before the credit is spent
            self.reserved[day] = self.reserved.get(day, 0) + block
        share.reserve(endpoint)
        self.total.reserve(endpoint)
        self.spent[day] = self.spent.get(day, 0) + 1

    # ---- at the end of a run -------------------------------------------------------------------

    def release(self) -> None:
        """Give back what this run reserved and did not spend (a clean end; a kill keeps it)."""
        for day, reserved in sorted(self.reserved.items()):
            unused = reserved - self.spent.get(day, 0)
            if unused > 0:
                self.store.add_credits(day, -unused)
                self.reserved[day] = self.spent.get(day, 0)

    # ---- helpers -------------------------------------------------------------------------------

    def _today(self) -> date:
        return as_utc(self._clock()).date()

    def _share_for(self, day: date) -> CreditGuard:
        if self.share is None or day != self._day:
            self._seed()
        assert self.share is not None
        return self.share

    def _seed(self) -> None:
        """A share guard for today, starting from what the ledger says today's backfills used."""
        day = self._today()
        spent = self.store.credits_spent(day) - (self.reserved.get(day, 0) - self.spent.get(day, 0))
        guard = CreditGuard(self.share_budget, "HISTORICAL_DAILY_CREDITS", self._clock)
        # The ledger plays the part `/credits` plays for the total: "used = limit − remaining".
        guard.sync(remaining=self.share_budget - spent, limit=self.share_budget)
        self.share, self._day = guard, day
