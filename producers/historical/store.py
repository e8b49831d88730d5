"""The backfill's durable state in ClickHouse: settled (code, date) per topic, and the credit ledger.

Why ClickHouse (clickhouse/schema/0007_historical_backfill.sql has the full argument): the state
must survive the producer's container and the memory-only local broker, and it sits next to the
landed closes. Every write is one small insert that returns only when ClickHouse has it, and the
callers write a (code, date) only after the broker acknowledged its message — the watermark is
never ahead of the data.

Inserts are retried a few times (ClickHouse restarting is not a reason to lose a settled day);
when they keep failing the run stops with `StoreUnavailable` and the next run requests the day
again, which re-publishes a message the views deduplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

log = logging.getLogger(__name__)

PROGRESS_TABLE = "hist_backfill_progress"
CREDITS_TABLE = "hist_backfill_credits"
PROGRESS_COLUMNS = (
    "topic",
    "code",
    "date",
    "outcome",
    "reason",
    "kafka_partition",
    "kafka_offset",
    "credits",
    "run_id",
)
DELIVERED, GAP = "delivered", "gap"


class StoreUnavailable(RuntimeError):
    """ClickHouse did not accept a write after several attempts."""


@dataclass(frozen=True)
class Settled:
    """One settled (code, date): published and acknowledged, or a gap with its reason."""

    code: str
    day: date
    outcome: str
    reason: str = ""
    partition: int = -1
    offset: int = -1
    credits: int = 0


class ProgressStore:
    """Reads and writes `hist_backfill_progress` and `hist_backfill_credits` for one topic and run."""

    def __init__(
        self,
        client: Any,
        topic: str,
        run_id: str,
        attempts: int = 5,
        backoff_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.topic = topic
        self.run_id = run_id
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._sleep = sleep
        # One insert context per table: the table's column types are read once, not per insert.
        self._contexts: dict[str, Any] = {}

    # ---- progress ------------------------------------------------------------------------------

    def settled(self, codes: Sequence[str], start: date, end: date) -> dict[tuple[str, date], str]:
        """(code, date) -> 'delivered' | 'gap' for every settled pair in the range."""
        if not codes or start > end:
            return {}
        result = self.client.query(
            f"SELECT code, date, argMax(outcome, recorded_at) FROM {PROGRESS_TABLE} "
            "WHERE topic = %(topic)s AND code IN %(codes)s AND date BETWEEN %(start)s AND %(end)s "
            "GROUP BY code, date",
            parameters={"topic": self.topic, "codes": list(codes), "start": start, "end": end},
        )
        return {(code, day): outcome for code, day, outcome in result.result_rows}

    def unlanded(
        self, codes: Sequence[str], start: date, end: date, landing_table: str = "coins_historical"
    ) -> set[tuple[str, date]]:
        """Pairs settled as delivered whose close is not in the landing table (from this topic).

        For `--reconcile`: after the local broker lost its topics before the loader read them, the
        progress log says "delivered" but ClickHouse never got the close.
        """
        if not codes or start > end:
            return set()
        result = self.client.query(
            f"SELECT code, date FROM {PROGRESS_TABLE} "
            "WHERE topic = %(topic)s AND code IN %(codes)s AND date BETWEEN %(start)s AND %(end)s "
            "GROUP BY code, date HAVING argMax(outcome, recorded_at) = 'delivered' "
            f"AND (code, date) NOT IN (SELECT code, date FROM {landing_table} "
            "WHERE _topic = %(topic)s AND code IN %(codes)s AND date BETWEEN %(start)s AND %(end)s)",
            parameters={"topic": self.topic, "codes": list(codes), "start": start, "end": end},
        )
        return {(code, day) for code, day in result.result_rows}

    def record(self, rows: Iterable[Settled]) -> None:
        """Settle pairs; returns only when ClickHouse has them."""
        data = [
            [
                self.topic,
                row.code,
                row.day,
                row.outcome,
                row.reason,
                row.partition,
                row.offset,
                row.credits,
                self.run_id,
            ]
            for row in rows
        ]
        if data:
            self._insert(PROGRESS_TABLE, data, PROGRESS_COLUMNS)

    # ---- the credit ledger ---------------------------------------------------------------------

    def credits_spent(self, day: date) -> int:
        """Credits the backfill's share has used (reserved and not given back) on `day`."""
        result = self.client.query(
            f"SELECT sum(credits) FROM {CREDITS_TABLE} WHERE day = %(day)s", parameters={"day": day}
        )
        return int(result.result_rows[0][0] or 0) if result.result_rows else 0

    def add_credits(self, day: date, credits: int) -> None:
        """A ledger row: positive reserves credits before they are spent, negative gives them back."""
        if credits:
            self._insert(CREDITS_TABLE, [[day, credits, self.run_id]], ("day", "credits", "run_id"))

    # ---- helpers -------------------------------------------------------------------------------

    def _insert(self, table: str, rows: list[list[Any]], columns: Sequence[str]) -> None:
        delay = self._backoff_s
        for attempt in range(1, self._attempts + 1):
            try:
                context = self._contexts.get(table)
                if context is None:
                    context = self.client.create_insert_context(table, column_names=list(columns))
                    self._contexts[table] = context
                context.data = rows
                self.client.insert(context=context)
                return
            except Exception as error:  # clickhouse-connect raises several kinds; all are retried
                first_line = str(error).splitlines()[0][:300] if str(error) else ""
                if attempt == self._attempts:
                    raise StoreUnavailable(
                        f"ClickHouse did not accept {len(rows)} row(s) into {table} after "
                        f"{attempt} attempts ({type(error).__name__}: {first_line})"
                    ) from None
                log.warning(
                    "insert into %s failed (%s: %s); retry %d of %d in %.1f s",
                    table,
                    type(error).__name__,
                    first_line,
                    attempt,
                    self._attempts - 1,
                    delay,
                )
                self._sleep(delay)
                delay *= 2
