"""Freshness and memory of the whole local stack at 1,000 events/s.

    python -m benchmarks.freshness [--duration 60] [--warmup 15] [--coins 100] [--interval 0.09]
                                   [--low-latency] [--dashboard-load N]

Runs `coinstream up` (broker, ClickHouse server, simulated API, ksql engine, loader, producers,
dashboard; every port on 127.0.0.1, chosen free) in a temporary directory and measures:

- **Freshness**: for every live rate fetched during the measured window, the time from its
  `fetched_at` (when the producer received the API's answer) until the 1-minute candle that
  includes it is visible in `v_ohlc_by_minute`. The engine stamps each candle update with the
  highest `fetched_at` it covers (the record timestamp, kept by the loader as `_timestamp`), and
  ClickHouse stamps each row with its insert time (`_loaded_at DEFAULT now64(3)`), so for each
  event the first update of its (coin, minute) with `_timestamp >= fetched_at` tells when it
  became visible — for every event, without a poller loading the server. A poller cross-checks
  that on one coin: every 50 ms it reads that coin's newest `_timestamp` and notes when it passes
  each `fetched_at`. p50/p99 of both; target p99 <= 1 s.
  For comparison it also prints the same delay for the raw rows in `coins_current_full` (their
  own `_loaded_at`), i.e. the path without the ksql engine.
- **Memory**: the resident set size (RSS) of every process of the stack (`up` and its process
  tree, psutil), summed, sampled every 0.5 s; the peak and the value at the end of the run
  (target <= 1.5 GB). RSS counts shared pages once per process, so the sum is an upper bound;
  the proportional set size (PSS) at the end is printed too.

The rate: the simulated API serves `--coins` coins (100 of its 108) in one `/coins/map` call, and
the producer polls every `--interval` seconds: 100 records per poll. The simulated API never
answers in the last 100 ms of a one-second price step (so a rate belongs to one instant), which
costs the producer about one poll slot per second; 0.09 s (11.1 polls/s nominal) gives about
10.5-11 polls/s, i.e. 1,050-1,100 events/s on the development machine. The measured rate is
printed, not assumed. The credit
budget is raised to what that interval costs (86,400 / 0.09 = 960,000 credits a day, within
DAILY_CREDIT_BUDGET = 1,000,000), and `up` gives the simulated key as many. Daily closes are
backfilled for 1 day only (100 requests at start-up, before the measured window).

By default the stack runs as shipped: the ksql engine commits (and emits its cached candle
updates) every KSQL_COMMIT_INTERVAL_MS = 250 ms, and the loader inserts a batch at the latest
LOADER_BATCH_MS = 250 ms after it began waiting for its first message; consumers of the local
broker fetch with a 25 ms wait (common/kafka_config.py). `--low-latency` runs it with `coinstream
up --service-args` `ksql=--commit-interval-ms 100` and `loader=--batch-ms 100` (more, smaller
outputs and inserts).

`--dashboard-load N` measures twice on the same stack, side by side: a window without and then a
window of the same length with N clients reading as the read-only dashboard user without pause
(a heavy scan that keeps a core busy for about a second, then the dashboard's views), and prints
freshness of both windows and their p99 ratio: the loader's inserts run on the full user's own
worker pool, so dashboard load should cost little freshness.

Everything it starts is stopped at the end (Ctrl+C to `up`, then a check that no process of the
stack is left). Not part of the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import bisect
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/freshness.py` as well as `python -m benchmarks.freshness`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

import psutil

from coinstream.producers.sim.catalog import COINS
from tests.helpers.e2e import UpProcess, part_name

TARGET_P99_S = 1.0
LOW_LATENCY = ["ksql=--commit-interval-ms 100", "loader=--batch-ms 100"]
TARGET_RSS_BYTES = 1.5 * 1024**3


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[rank - 1]


class RssSampler(threading.Thread):
    """Sum of RSS over `up` and its process tree, every `period_s`."""

    def __init__(self, pid: int, period_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.period_s = period_s
        self.peak = 0
        self.peak_by_process: dict[str, int] = {}
        self.last = 0
        self._halt = threading.Event()

    def sample(self) -> tuple[int, dict[str, int]]:
        by_process: dict[str, int] = {}
        for process in [self.root, *self.root.children(recursive=True)]:
            try:
                name = part_name(process.cmdline())
                by_process[f"{name} ({process.pid})"] = process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
                continue
        return sum(by_process.values()), by_process

    def run(self) -> None:
        while not self._halt.wait(self.period_s):
            total, by_process = self.sample()
            self.last = total
            if total > self.peak:
                self.peak, self.peak_by_process = total, by_process

    def halt(self) -> None:
        self._halt.set()
        if self.ident is not None:
            self.join()


class Poller(threading.Thread):
    """Every 50 ms: the newest candle-update timestamp of one coin, and when it was first seen."""

    def __init__(self, client, code: str) -> None:
        super().__init__(daemon=True)
        self.client, self.code = client, code
        self.seen: list[tuple[int, float]] = []  # (max _timestamp ms, wall time first seen)
        self._halt = threading.Event()

    def run(self) -> None:
        query = f"SELECT toUnixTimestamp64Milli(max(_timestamp)) FROM ohlc_by_minute WHERE code = '{self.code}'"
        while not self._halt.wait(0.05):
            newest = self.client.command(query) or 0
            if not self.seen or newest > self.seen[-1][0]:
                self.seen.append((newest, time.time()))

    def visible_at(self, fetched_at_ms: int) -> float | None:
        index = bisect.bisect_left([ts for ts, _ in self.seen], fetched_at_ms)
        return self.seen[index][1] if index < len(self.seen) else None

    def halt(self) -> None:
        self._halt.set()
        if self.ident is not None:
            self.join()


class DashboardLoad(threading.Thread):
    """One dashboard client reading without pause as the read-only user until halted."""

    QUERIES = (
        "SELECT count() FROM numbers(100000000) WHERE NOT ignore(sipHash64(number))",
        "SELECT * FROM v_ohlc_by_minute ORDER BY window_start DESC LIMIT 500",
        "SELECT * FROM overview_for_dashboard",
    )

    def __init__(self, client) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.queries = 0
        self.errors = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for query in self.QUERIES:
                try:
                    self.client.query(query)
                    self.queries += 1
                except Exception:  # a view missing on an older schema must not stop the load
                    self.errors += 1

    def halt(self) -> None:
        self._halt.set()
        if self.ident is not None:
            self.join()


def readonly_client(up: UpProcess):
    import clickhouse_connect

    from coinstream.common.local_credentials import read_credentials

    stored = read_credentials(Path(up.env["COINSTREAM_DATA_DIR"]) / "clickhouse")
    return clickhouse_connect.get_client(
        host="127.0.0.1",
        port=up.ports["clickhouse"],
        username="dashboard",
        password=stored.readonly_password,
    )


def freshness_from_tables(client, start_ms: int, end_ms: int) -> tuple[list[float], int]:
    """Per event fetched in [start, end): seconds until its candle update landed; and how many
    events had no candle update at all (never visible)."""
    events = client.query(
        "SELECT code, toUnixTimestamp64Milli(fetched_at) FROM coins_current_full "
        f"WHERE fetched_at >= fromUnixTimestamp64Milli({start_ms}) "
        f"AND fetched_at < fromUnixTimestamp64Milli({end_ms})"
    ).result_rows
    updates: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
    for code, window, stamp, loaded in client.query(
        "SELECT code, toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(_timestamp), "
        "toUnixTimestamp64Milli(_loaded_at) FROM ohlc_by_minute "
        f"WHERE window_start >= fromUnixTimestamp64Milli({start_ms - start_ms % 60_000}) "
        "ORDER BY code, window_start, _timestamp, _loaded_at"
    ).result_rows:
        stamps, loads = updates.setdefault((code, window), ([], []))
        stamps.append(stamp)
        loads.append(loaded)
    # Any update at or after the first one covering an event shows it: keep suffix minima.
    for _stamps, loads in updates.values():
        for index in range(len(loads) - 2, -1, -1):
            loads[index] = min(loads[index], loads[index + 1])
    delays, invisible = [], 0
    for code, fetched_at in events:
        stamps, loads = updates.get((code, fetched_at - fetched_at % 60_000), ([], []))
        index = bisect.bisect_left(stamps, fetched_at)
        if index == len(stamps):
            invisible += 1
            continue
        delays.append((loads[index] - fetched_at) / 1000)
    return delays, invisible


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument("--coins", type=int, default=100, help="coins per poll (at most 100)")
    parser.add_argument("--interval", type=float, default=0.09, help="seconds between polls")
    parser.add_argument(
        "--low-latency", action="store_true", help="ksql commits and loader batches every 100 ms instead of 1 s"
    )
    parser.add_argument(
        "--dashboard-load",
        type=int,
        default=0,
        metavar="N",
        help="measure a second window with N read-only clients querying without pause",
    )
    args = parser.parse_args()
    codes = list(COINS)[: min(args.coins, 100)]
    budget = int(86_400 / args.interval * -(-len(codes) // 100)) + 500
    budget = -(-budget // 100_000) * 100_000

    with tempfile.TemporaryDirectory(prefix="coinstream-freshness-") as workdir:
        tuning = LOW_LATENCY if args.low_latency else []
        up = UpProcess(
            Path(workdir),
            {
                "COINS": ",".join(codes),
                "POLL_INTERVAL_S": str(args.interval),
                "DAILY_CREDIT_BUDGET": str(budget),
                "HISTORICAL_BACKFILL_DAYS": "1",
            },
            args=[arg for service_args in tuning for arg in ("--service-args", service_args)],
        )
        print(
            f"starting coinstream up {' '.join(up.args)}: {len(codes)} coins every "
            f"{args.interval:g} s (DAILY_CREDIT_BUDGET={budget:,})",
            flush=True,
        )
        sampler = poller = None
        try:
            up.start()
            sampler = RssSampler(up.process.pid)
            sampler.start()
            client = up.clickhouse()
            poller = Poller(up.clickhouse(), codes[0])
            poller.start()
            time.sleep(args.warmup)
            start_ms = int(time.time() * 1000)
            time.sleep(args.duration)
            end_ms = int(time.time() * 1000)
            loaded = None
            if args.dashboard_load:
                load = [DashboardLoad(readonly_client(up)) for _ in range(args.dashboard_load)]
                for thread in load:
                    thread.start()
                time.sleep(5)  # the load is running
                load_start = int(time.time() * 1000)
                time.sleep(args.duration)
                load_end = int(time.time() * 1000)
                for thread in load:
                    thread.halt()
                loaded = freshness_from_tables(client, load_start, load_end)
                load_queries = sum(thread.queries for thread in load)
                load_errors = sum(thread.errors for thread in load)
            time.sleep(10)  # let the last events of the window become visible
            poller.halt()
            sampler.halt()
            end_total, _ = sampler.sample()
            pss = 0
            for process in [psutil.Process(up.process.pid), *up.children()]:
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    pss += process.memory_full_info().pss
            delays, invisible = freshness_from_tables(client, start_ms, end_ms)
            raw = [
                row[0] / 1000
                for row in client.query(
                    "SELECT toUnixTimestamp64Milli(_loaded_at) - toUnixTimestamp64Milli(fetched_at) "
                    f"FROM coins_current_full WHERE fetched_at >= fromUnixTimestamp64Milli({start_ms}) "
                    f"AND fetched_at < fromUnixTimestamp64Milli({end_ms})"
                ).result_rows
            ]
            events = len(delays) + invisible
            btc = client.query(
                "SELECT toUnixTimestamp64Milli(fetched_at) FROM coins_current_full "
                f"WHERE code = '{codes[0]}' AND fetched_at >= fromUnixTimestamp64Milli({start_ms}) "
                f"AND fetched_at < fromUnixTimestamp64Milli({end_ms})"
            ).result_rows
            polled = [
                seen - fetched_at / 1000 for (fetched_at,) in btc if (seen := poller.visible_at(fetched_at)) is not None
            ]
            client.close()
            poller.client.close()
        finally:
            try:
                for thread in (poller, sampler):
                    if thread is not None:
                        thread.halt()
            finally:
                code, alive = up.stop()
                up.kill_leftovers()

    seconds = (end_ms - start_ms) / 1000
    mb = 1024**2
    print(f"measured {seconds:.1f} s: {events:,} events of {len(codes)} coins = {events / seconds:,.0f} events/s")
    print(
        f"fetched_at -> visible in v_ohlc_by_minute (all events, from _timestamp/_loaded_at): "
        f"p50 {percentile(delays, 50):.3f} s, p99 {percentile(delays, 99):.3f} s, "
        f"max {max(delays):.3f} s; never visible: {invisible}; target p99 <= {TARGET_P99_S:g} s: "
        f"{'met' if percentile(delays, 99) <= TARGET_P99_S else 'NOT met'}"
    )
    print(
        f"  for comparison, the raw rows (producer -> Kafka -> loader -> coins_current_full, no "
        f"engine): p50 {percentile(raw, 50):.3f} s, p99 {percentile(raw, 99):.3f} s"
    )
    if polled:
        print(
            f"cross-check, {codes[0]} seen by polling ohlc_by_minute every 50 ms "
            f"({len(polled):,} events): p50 {percentile(polled, 50):.3f} s, "
            f"p99 {percentile(polled, 99):.3f} s"
        )
    if loaded is not None:
        loaded_delays, loaded_invisible = loaded
        ratio = percentile(loaded_delays, 99) / percentile(delays, 99)
        print(
            f"with {args.dashboard_load} read-only clients querying without pause ({load_queries:,} queries, "
            f"{load_errors} errors): p50 {percentile(loaded_delays, 50):.3f} s, p99 "
            f"{percentile(loaded_delays, 99):.3f} s, max {max(loaded_delays):.3f} s; never visible: "
            f"{loaded_invisible}; p99 loaded / unloaded = {ratio:.2f}; target p99 <= {TARGET_P99_S:g} s: "
            f"{'met' if percentile(loaded_delays, 99) <= TARGET_P99_S else 'NOT met'}"
        )
    print(
        f"RSS of the stack (sum over {len(sampler.peak_by_process)} processes): peak "
        f"{sampler.peak / mb:,.0f} MiB, at the end {end_total / mb:,.0f} MiB (PSS {pss / mb:,.0f} "
        f"MiB); target <= {TARGET_RSS_BYTES / mb:,.0f} MiB: "
        f"{'met' if sampler.peak <= TARGET_RSS_BYTES else 'NOT met'}"
    )
    for name, rss in sorted(sampler.peak_by_process.items(), key=lambda item: -item[1]):
        print(f"  {rss / mb:8,.0f} MiB  {name}")
    print(f"stopped: exit code {code}, processes left: {alive or 'none'}")


if __name__ == "__main__":
    main()
