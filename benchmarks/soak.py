"""Soak: the whole local stack at about 1,000 events/s for minutes, with a restart in the middle.

    python -m benchmarks.soak [--duration 600] [--restart-at S] [--coins 100] [--interval 0.09]
                              [--broker-limit-mb 256] [--broker-check-interval 30]

Runs `coinstream up` (every port on 127.0.0.1, chosen free) in a temporary directory, as the
freshness benchmark does (100 coins every 0.09 s), and:

- prints the resident memory (RSS, psutil) of every part of the stack at 1 and 5 minutes and at
  the end (the broker's Tansu child counted with the broker), and the total;
- stops the stack with Ctrl+C at `--restart-at` seconds (default: half the duration) and starts it
  again on the same data directory and ports, as a user would;
- keeps an independent record of every live rate published (a reader that follows the topic across
  the broker's incarnations, tests/helpers/e2e.PublishedRates) and at the end, with the flow
  paused and the pipeline settled, counts the rates missing from `coins_current_full` (lost) and
  those landed more than once (doubled).

The local broker is rotated past `--broker-limit-mb` (LOCAL_BROKER_MAX_MEMORY_MB): at this rate
it grows by about 30 MiB a minute, so a 10-minute run rotates it.

Targets: 0 lost, 0 doubled, total RSS at the end <= 1.1 x its value at 5 minutes. Not part of the
test suite: timings and memory depend on the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from coinstream.producers.sim.catalog import COINS
from tests.helpers.e2e import PublishedRates, UpProcess, part_name, pause_flow

TARGET_GROWTH = 1.1
SETTLE_TIMEOUT_S = 180.0


def rss_by_part(up: UpProcess) -> dict[str, int]:
    """RSS per part of the stack: `up` itself, each `coinstream <command>`, children counted with
    their `coinstream` parent (Tansu with the broker)."""
    parts: dict[str, int] = defaultdict(int)
    root = psutil.Process(up.process.pid)
    try:
        parts["up"] += root.memory_info().rss
        children = root.children()
    except psutil.NoSuchProcess:
        return {}
    for child in children:
        try:
            name = part_name(child.cmdline())
            for process in [child, *child.children(recursive=True)]:
                parts[name] += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            continue
    return dict(parts)


def settle(up: UpProcess, reader: PublishedRates) -> tuple[int, int, int, int]:
    """Pause the flow and wait until ClickHouse holds what was published: (published, lost,
    doubled, never published)."""
    pause_flow(up)
    client = up.clickhouse()
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            published = set(reader.snapshot())
            landed = {
                (code, int(at)): count
                for code, at, count in client.query(
                    "SELECT code, toUnixTimestamp64Milli(fetched_at), count() FROM coins_current_full "
                    "GROUP BY code, fetched_at"
                ).result_rows
            }
            lost = len(published - set(landed))
            doubled = sum(1 for count in landed.values() if count > 1)
            unknown = len(set(landed) - published)
            if (lost == doubled == unknown == 0) or time.monotonic() > deadline:
                return len(published), lost, doubled, unknown
            time.sleep(2)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of live data in all")
    parser.add_argument("--restart-at", type=float, default=None, help="seconds before the restart")
    parser.add_argument("--coins", type=int, default=100, help="coins per poll (at most 100)")
    parser.add_argument("--interval", type=float, default=0.09, help="seconds between polls")
    parser.add_argument("--broker-limit-mb", type=int, default=256, help="LOCAL_BROKER_MAX_MEMORY_MB")
    parser.add_argument("--broker-check-interval", type=float, default=30.0)
    args = parser.parse_args()
    restart_at = args.duration / 2 if args.restart_at is None else args.restart_at
    codes = list(COINS)[: min(args.coins, 100)]
    budget = -(-(int(86_400 / args.interval) + 500) // 100_000) * 100_000
    settings = {
        "COINS": ",".join(codes),
        "POLL_INTERVAL_S": str(args.interval),
        "DAILY_CREDIT_BUDGET": str(budget),
        "HISTORICAL_BACKFILL_DAYS": "1",
        "LOCAL_BROKER_MAX_MEMORY_MB": str(args.broker_limit_mb),
    }
    up_args = ["--broker-check-interval", str(args.broker_check_interval)]
    samples: dict[str, dict[str, int]] = {}
    marks = [(60.0, "1 min"), (300.0, "5 min")]

    with tempfile.TemporaryDirectory(prefix="coinstream-soak-") as workdir:
        up = UpProcess(Path(workdir), settings, up_args)
        print(
            f"starting coinstream up: {len(codes)} coins every {args.interval:g} s for "
            f"{args.duration:.0f} s, restart at {restart_at:.0f} s, broker rotated past "
            f"{args.broker_limit_mb} MiB",
            flush=True,
        )
        stacks = [up]
        reader = None
        try:
            up.start()
            reader = PublishedRates(up.bootstrap).start()
            started = time.monotonic()
            restarted = False
            while (elapsed := time.monotonic() - started) < args.duration:
                while marks and elapsed >= marks[0][0]:
                    samples[marks.pop(0)[1]] = rss_by_part(up)
                    print(f"{elapsed:.0f} s: {sum(samples[list(samples)[-1]].values()) / 2**20:,.0f} MiB", flush=True)
                if not restarted and elapsed >= restart_at:
                    print(f"{elapsed:.0f} s: Ctrl+C and start again", flush=True)
                    up.stop()
                    up = up.again(up_args)
                    stacks.append(up)
                    up.start()
                    restarted = True
                time.sleep(1)
            samples[f"{args.duration / 60:g} min"] = rss_by_part(up)
            rotations = sum(
                1 for stack in stacks for line in stack.output() if line.startswith("broker") and "| rotated: " in line
            )
            published, lost, doubled, unknown = settle(up, reader)
        finally:
            if reader is not None:
                reader.stop()
            for stack in stacks:
                stack.stop()
                stack.kill_leftovers()

    mib = 2**20
    names = sorted(
        {name for sample in samples.values() for name in sample},
        key=lambda name: -max(sample.get(name, 0) for sample in samples.values()),
    )
    print("RSS (MiB)".ljust(26) + "".join(label.rjust(10) for label in samples))
    for name in names:
        print(name.ljust(26) + "".join(f"{sample.get(name, 0) / mib:10,.0f}" for sample in samples.values()))
    totals = {label: sum(sample.values()) for label, sample in samples.items()}
    print("total".ljust(26) + "".join(f"{total / mib:10,.0f}" for total in totals.values()))
    labels = list(totals)
    if "5 min" in totals:
        ratio = totals[labels[-1]] / totals["5 min"]
        print(
            f"end / 5 min = {ratio:.2f} (target <= {TARGET_GROWTH}): {'met' if ratio <= TARGET_GROWTH else 'NOT met'}"
        )
    print(f"broker rotations: {rotations}")
    print(
        f"published {published:,} rates: lost {lost}, doubled {doubled}, landed but never seen "
        f"published {unknown} (target 0 lost, 0 doubled): {'met' if lost == doubled == 0 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
