"""Dashboard reads over a year of 1-minute rates: materialized candles vs plain views on raw rows.

    python -m benchmarks.views [--coins 100] [--days 365] [--runs 15]

Generates `days` x 1440 x `coins` rates (default one year x 100 coins = 52,560,000 rows) inside the
embedded ClickHouse server (INSERT ... SELECT, so the materialized views fill the candles and
`coins_latest` exactly as the loader's inserts would), lets the parts merge, then times in the
same run:

- daily OHLC: `v_ohlc_by_day` (from `candles_1d`) vs the same rows computed from the raw table;
- the overview: `overview_for_dashboard` (from `coins_latest`) vs the same rows from raw rows;
- the live charts' latest hour of per-second changes: `v_change_by_second_recent` (reads two
  hours) vs `v_change_by_second` filtered to the same hour (its window function reads all history).

Both sides must return identical rows. Target: the materialized path >= 20x faster, p50 <= 50 ms
(p50 over `--runs` reads through clickhouse-connect, as a dashboard would).

Then the indicators: the maintainer (`coinstream indicators`) builds the store from every candle
series (timed), then one steady-state cycle after a minute of new rates for every coin (timed),
then the reads: RSI, MACD and Bollinger Bands of one coin over the year of 1-hour candles
(`v_indicators_1h`) and the latest 1-hour values of every coin (`v_indicators_latest`). Target:
p50 <= 50 ms each. When TA-Lib is installed, the one coin's RSI, MACD and bands are also compared
with TA-Lib's on the same closes (within 1e-9). `--indicators-only` skips the
materialized-vs-plain comparison. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["TZ"] = "UTC"

from coinstream.clickhouse.indicators.maintainer import IndicatorMaintainer
from coinstream.clickhouse.migrations import migrate
from coinstream.clickhouse.server.launcher import start_server

START = "2024-01-01 00:00:00"

# The live rates: one row per coin and minute; rate a smooth daily cycle plus noise, always > 0.
GENERATE = """
INSERT INTO coins_current_full
    (code, fetched_at, rate, volume, cap, delta_day, delta_week, name,
     _topic, _partition, _offset, _timestamp, _key)
SELECT
    concat('C', leftPad(toString(number % {coins}), 3, '0')) AS code,
    toDateTime64('{start}', 3, 'UTC') + toIntervalMinute(intDiv(number, {coins})) AS fetched_at,
    100 * (1 + (number % {coins})) * (1 + 0.05 * sin(intDiv(number, {coins}) / 1440 * 6.2832))
        + (cityHash64(number) % 10000) / 1000 AS rate,
    1e9 + (cityHash64(number, 1) % 1000000) AS volume,
    1e11 + (cityHash64(number, 2) % 1000000) AS cap,
    1 + ((cityHash64(number, 3) % 200) - 100) / 1000 AS delta_day,
    1 + ((cityHash64(number, 4) % 200) - 100) / 1000 AS delta_week,
    concat('Coin ', toString(number % {coins})) AS name,
    'coins_current_full', toInt32(number % {coins}), toInt64(intDiv(number, {coins})),
    fetched_at, code
FROM numbers({rows})
"""

PLAIN_OHLC_BY_DAY = """
SELECT toDate(fetched_at) AS date, code,
       latest_name.name AS name,
       argMin(rate, (fetched_at, _offset)) AS open, max(rate) AS high, min(rate) AS low,
       argMax(rate, (fetched_at, _offset)) AS close, count() AS samples
FROM coins_current_full
LEFT JOIN (SELECT code, argMax(CAST(name AS Nullable(String)), (fetched_at, _offset)) AS name
           FROM coins_current_full GROUP BY code) AS latest_name USING (code)
GROUP BY date, code, name
ORDER BY date, code
"""

# overview_for_dashboard with its live half computed from the raw rows instead of coins_latest.
PLAIN_OVERVIEW = """
SELECT code, best.1 AS name, best.2 AS rate, best.3 AS change_24h_pct, best.4 AS change_7d_pct,
       best.5 AS volume_24h, best.6 AS cap, best.7 AS updated_at, best.8 AS source
FROM (
    SELECT code, argMax((name, rate, change_24h_pct, change_7d_pct, volume_24h, cap, updated_at,
                         source), priority) AS best
    FROM (
        SELECT code, l.1 AS name, l.2 AS rate, (l.5 - 1) * 100 AS change_24h_pct,
               (l.6 - 1) * 100 AS change_7d_pct, l.3 AS volume_24h, l.4 AS cap,
               l.7 AS updated_at, 'live' AS source, 2 AS priority
        FROM (
            SELECT code, argMax((CAST(name AS Nullable(String)), rate, volume, cap, delta_day,
                                 delta_week, fetched_at), (fetched_at, _offset)) AS l
            FROM coins_current_full GROUP BY code
        )
        UNION ALL
        SELECT code, name, rate, change_1d_pct, change_7d_pct, volume, cap, ts, 'daily', 1
        FROM v_change_by_day_latest
    )
    GROUP BY code
)
ORDER BY code
"""

# The hour v_change_by_second_recent shows, taken from the full view.
PLAIN_CHANGE_LATEST_HOUR = """
SELECT * FROM v_change_by_second
WHERE ts > (SELECT toDateTime(max(fetched_at), 'UTC') FROM coins_current_full) - INTERVAL 1 HOUR
ORDER BY code, ts
"""

# {code}: the middle coin of the dataset (C042 of 100).
INDICATORS = {
    "indicators_one_coin_1h": "SELECT bucket_start, close, rsi_14, macd, macd_signal, macd_hist, bb_upper, bb_middle, "
    "bb_lower FROM v_indicators_1h WHERE code = '{code}' ORDER BY bucket_start",
    "indicators_latest_all_coins_1h": "SELECT code, bucket_start, rsi_14, macd, macd_signal, macd_hist, bb_upper, "
    "bb_middle, bb_lower FROM v_indicators_latest WHERE timeframe = '1h' ORDER BY code",
}

MATERIALIZED = {
    "ohlc_by_day": "SELECT * EXCEPT samples, samples FROM v_ohlc_by_day ORDER BY date, code",
    "overview": "SELECT * FROM overview_for_dashboard ORDER BY code",
    "change_by_second_latest_hour": "SELECT * FROM v_change_by_second_recent ORDER BY code, ts",
}
PLAIN = {
    "ohlc_by_day": PLAIN_OHLC_BY_DAY,
    "overview": PLAIN_OVERVIEW,
    "change_by_second_latest_hour": PLAIN_CHANGE_LATEST_HOUR,
}


def timed(client: Any, sql: str, runs: int) -> tuple[list[tuple], list[float]]:
    timings = []
    rows: list[tuple] = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = [tuple(row) for row in client.query(sql).result_rows]
        timings.append((time.perf_counter() - started) * 1000)
    return rows, timings


def agrees_with_talib(rows: list[tuple]) -> bool | None:
    """The one coin's RSI, MACD and bands against TA-Lib on the same closes; None without TA-Lib."""
    try:
        import numpy as np
        import talib
    except ImportError:
        return None
    close = np.array([row[1] for row in rows], dtype=float)
    macd = talib.MACD(close, 12, 26, 9)
    expected = [talib.RSI(close, 14), *macd, *talib.BBANDS(close, 20, 2.0, 2.0, 0)]
    for index, reference in enumerate(expected, start=2):
        actual = np.array([np.nan if row[index] is None else row[index] for row in rows], dtype=float)
        if not np.allclose(actual, reference, rtol=1e-9, atol=1e-9, equal_nan=True):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--plain-runs", type=int, default=3)
    parser.add_argument("--indicators-only", action="store_true", help="skip the materialized-vs-plain reads")
    args = parser.parse_args()
    total = args.coins * args.days * 1440

    with tempfile.TemporaryDirectory(prefix="bench-views-") as scratch:
        server = start_server(Path(scratch) / "ch", workers=4)
        try:
            client = server.client(send_receive_timeout=3600)
            migrate(client)
            started = time.perf_counter()
            client.command(
                GENERATE.format(coins=args.coins, start=START, rows=total),
                settings={"max_insert_block_size": 1_048_576},
            )
            generate_s = time.perf_counter() - started
            started = time.perf_counter()
            for table in ("coins_current_full", "candles_1h", "candles_1d", "coins_latest"):
                client.command(f"OPTIMIZE TABLE {table} FINAL")
            optimize_s = time.perf_counter() - started
            assert client.query("SELECT count() FROM coins_current_full").result_rows == [(total,)]

            results: dict[str, Any] = {}
            maintainer = IndicatorMaintainer(client)
            started = time.perf_counter()
            build = maintainer.run_once()
            results["indicator_build"] = {"buckets": build.total_buckets, "s": round(time.perf_counter() - started, 1)}
            # One more minute of rates for every coin: the cycle recomputes each coin's open buckets.
            client.command(
                GENERATE.replace("FROM numbers({rows})", f"FROM numbers({total}, {args.coins})").format(
                    coins=args.coins, start=START, rows=total
                )
            )
            started = time.perf_counter()
            cycle = maintainer.run_once()
            results["indicator_cycle"] = {
                "buckets": cycle.buckets,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
            for name, sql in INDICATORS.items():
                rows, timings = timed(client, sql.replace("{code}", f"C{(args.coins - 1) * 42 // 99:03d}"), args.runs)
                p50 = statistics.median(timings)
                results[name] = {"rows": len(rows), "p50_ms": round(p50, 1), "meets_target": p50 <= 50}
                if name == "indicators_one_coin_1h":
                    results[name]["agrees_with_talib"] = agrees_with_talib(rows)
            for name in () if args.indicators_only else MATERIALIZED:
                fast_rows, fast = timed(client, MATERIALIZED[name], args.runs)
                slow_rows, slow = timed(client, PLAIN[name], args.plain_runs)
                fast_p50, slow_p50 = statistics.median(fast), statistics.median(slow)
                results[name] = {
                    "rows": len(fast_rows),
                    "same_rows": fast_rows == slow_rows,
                    "materialized_p50_ms": round(fast_p50, 1),
                    "plain_p50_ms": round(slow_p50, 1),
                    "speedup": round(slow_p50 / fast_p50, 1),
                    "meets_target": fast_rows == slow_rows and fast_p50 <= 50 and slow_p50 / fast_p50 >= 20,
                }
        finally:
            server.stop()
    print(
        json.dumps(
            {"raw_rows": total, "generate_s": round(generate_s, 1), "optimize_s": round(optimize_s, 1), **results},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
