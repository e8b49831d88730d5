"""The daily-close producer: each coin's rate at 12:00 UTC into topic `coins_historical`.

Modules, one job each: `days` (which days are closed; the 12:00 UTC instants), `records` (a
history answer -> the message, or a gap with its reason), `store` (the durable per-coin progress
and credit ledger in ClickHouse), `budget` (the backfill's credit guard), `display` (progress bar
or log lines), `backfill` (the resumable pass over coins × days), `schedule` (the daily job),
`service` (wiring from the settings).
"""

from coinstream.producers.historical.backfill import TOPIC, Backfill, BackfillReport, Task
from coinstream.producers.historical.service import HistoricalService

__all__ = ["TOPIC", "Backfill", "BackfillReport", "HistoricalService", "Task"]
