"""The ClickPipes-style loader: every topic into its own ClickHouse table, exactly once.

Modules, one job each:
- `records`: a consumed Kafka message as plain data;
- `validation`, `formats`: the message contracts, parsing to typed rows, reasons for rejects;
- `batch`: rows per table in offset order, and the deduplication token of an insert;
- `landed`: what ClickHouse already holds (high-water marks, identity checks);
- `sink`: the insert through clickhouse-connect, retried until accepted;
- `metrics`: Prometheus endpoint and log line (lag, rows/s);
- `runner`: the consumer loop tying them together (`Loader`, `LoaderConfig`).
"""

from coinstream.clickhouse.loader.formats import FORMATS
from coinstream.clickhouse.loader.runner import DEFAULT_GROUP, Loader, LoaderConfig

__all__ = ["DEFAULT_GROUP", "FORMATS", "Loader", "LoaderConfig"]
