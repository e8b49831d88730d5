"""Technical indicators of the candles, stored in ClickHouse and kept current."""
