"""End to end: `coinstream up` (broker, ClickHouse, simulated API, ksql engine, loader, producers,
dashboard) as one subprocess on free ports, checked against an independent computation — clean,
with kill -9 of the engine, the loader and the producer, and with 10,000 bad messages per topic.

One stack serves the module (starting it is most of a test's cost); each test runs its own phase
of live data and then compares everything seen so far, so the tests also pass alone or in another
order — except the last, which stops the stack.

Real time is shortened by polling faster, not by faking time: POLL_INTERVAL_S = 0.5 s (10 coins,
20 events/s) with DAILY_CREDIT_BUDGET = 200,000 so the producer accepts the interval (86,400 /
0.5 = 172,800 credits a day, plus the 500 reserved for daily closes); `up` gives the simulated key
the same daily credits.

What is compared, precisely (`settle`):

1. The live flow is paused at the simulated API (it leaves every coin out of its answers; the
   producer keeps polling and publishes nothing), after the producer has received two answers
   since, so every record it will ever publish is in Kafka.
2. The test reads all four topics and the engine's processing log back from Kafka. The good
   messages are every message the test did not inject itself; each must satisfy the message
   contract (tests/helpers/fuzz.py). The expected values are computed from them in Python
   (tests/helpers/expected.py): per coin and UTC minute open (earliest fetched_at, ties by
   offset), high, low, close; the 60 s/30 s hopping averages; the overview's latest record;
   5-minute and daily candles with their sample counts; the latest daily close per coin and day.
   Every window with at least one record is compared, including the ones still open: no record
   arrives any more, so a window's last EMIT CHANGES update covers all of its records.
3. The test then waits (up to two minutes) until ClickHouse shows exactly that: each landing table
   holds each good message's offset exactly once (nothing lost, nothing doubled), each error table
   exactly the injected messages, and the views `v_ohlc_by_minute`, `v_60_sec_mov_avg`,
   `overview_for_dashboard`, `v_candles_5m`, `v_ohlc_by_day` and `v_hist_daily` equal the
   expected values exactly (floats included: the same IEEE operations in the same order); and the
   engine accounts for exactly the injected messages of its input topic: its processing log names
   those it could not read, `coins_current_rejected` holds those it read (none of them valid). Kafka and
   ClickHouse are read again on each try, and the result must hold on two tries in a row.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from dataclasses import dataclass, field

import pytest
from confluent_kafka import Producer

from tests.helpers import expected as calc
from tests.helpers.e2e import (
    SERVICE_ARGV,
    UpProcess,
    diff,
    landed_offsets,
    pause_flow,
    read_topics,
    read_views,
    resume_flow,
)
from tests.helpers.fuzz import TOPICS, Fuzzer, Message, contract_violation

SEED = 20_261_122
PROCESSING_LOG = "ksql_processing_log"
REJECTED = "coins_current_rejected"
BAD_MESSAGES_PER_TOPIC = 10_000
STATUS_LINE = re.compile(
    r"^status +\| (?P<events>[\d,]+\.\d) events/s, (?P<rows>[\d,]+\.\d) rows/s "
    r"loaded, consumer lag (?P<lag>[\d,]+)(?: \(engine [\d,]+, loader [\d,]+\))?, "
    r"(?P<credits>[\d,]+) credits left"
    r"(?:, restarts: (?P<restarts>.+))?$"
)


@dataclass
class Stack:
    up: UpProcess
    injected: dict[str, dict[int, Message]] = field(default_factory=lambda: {topic: {} for topic in TOPICS})


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    up = UpProcess(
        tmp_path_factory.mktemp("e2e"),
        {"POLL_INTERVAL_S": "0.5", "DAILY_CREDIT_BUDGET": "200000"},
        ["--status-interval", "2"],
    )
    try:
        up.start()
        yield Stack(up)
    finally:
        up.stop()
        up.kill_leftovers()


# ---- the comparison ---------------------------------------------------------------------------------


@dataclass
class Settled:
    expected: dict[str, dict]
    actual: dict[str, dict]
    landed: dict[str, list[int]]
    errors: dict[str, list[int]]
    good: dict[str, list[int]]
    logged_offsets: dict[str, set[int]]
    events: list[calc.Event]
    rejected_keys: list[bytes | None] = field(default_factory=list)

    def problems(self, injected: dict[str, dict[int, Message]]) -> list[str]:
        found = [text for view in self.expected if (text := diff(view, self.actual[view], self.expected[view]))]
        for topic in TOPICS:
            if self.landed[topic] != self.good[topic]:
                found.append(
                    f"{topic}: landed offsets differ from the topic's good messages "
                    f"({len(self.landed[topic])} rows, {len(set(self.landed[topic]))} "
                    f"distinct, {len(self.good[topic])} expected)"
                )
            if self.errors[topic] != sorted(injected[topic]):
                found.append(
                    f"{topic}_clickpipes_error: {len(self.errors[topic])} rows, {len(injected[topic])} injected"
                )
        # The engine accounted for exactly the injected messages of its input topic, each once,
        # and never for a good one (a late or undecodable live record would show here): those it
        # could not read in its processing log (by offset), those it read but that are not valid
        # live rates in coins_current_rejected (compared by key: that topic names no offsets).
        logged = {topic: offsets for topic, offsets in self.logged_offsets.items() if offsets}
        injected_live = set(injected["coins_current_full"])
        logged_live = logged.pop("coins_current_full", set())
        read_keys = sorted(injected["coins_current_full"][offset].key or b"" for offset in injected_live - logged_live)
        if logged or not logged_live <= injected_live or sorted(key or b"" for key in self.rejected_keys) != read_keys:
            found.append(
                f"{PROCESSING_LOG}: offsets logged per topic "
                f"{ {topic: len(offsets) for topic, offsets in logged.items()} }, "
                f"{len(logged_live)} of coins_current_full ({len(logged_live - injected_live)} "
                f"not injected); {len(self.rejected_keys)} in {REJECTED} "
                f"({sum(key is not None for key in self.rejected_keys)} keyed); "
                f"{len(injected_live)} injected into coins_current_full"
            )
        return found


def what_kafka_holds(stack: Stack) -> tuple[dict, dict[str, list[int]], dict[str, set[int]], list, list]:
    """From the topics read back: the expected views, the good offsets per topic, the offsets the
    engine logged per topic, the live events, and the keys of the records the engine rejected."""
    topics = read_topics(stack.up.bootstrap, [*TOPICS, PROCESSING_LOG, REJECTED], idle_s=1.0)
    good: dict[str, list[int]] = {}
    for topic in TOPICS:
        good[topic] = []
        for offset, key, value, _ts in topics[topic]:
            if offset in stack.injected[topic]:
                continue
            assert contract_violation(topic, key, value) is None, (topic, offset, key, value)
            good[topic].append(offset)
    values = {topic: dict((m[0], m[2]) for m in topics[topic]) for topic in TOPICS}
    events = [
        calc.Event.from_message(offset, values["coins_current_full"][offset]) for offset in good["coins_current_full"]
    ]
    closes = [(offset, json.loads(values["coins_historical"][offset])) for offset in good["coins_historical"]]
    expected = {
        "v_ohlc_by_minute": calc.ohlc_by_minute(events),
        "v_60_sec_mov_avg": calc.mov_avg_60s(events),
        "overview_for_dashboard": calc.overview(events),
        "v_candles_5m": calc.candles_5m(events),
        "v_ohlc_by_day": calc.ohlc_by_day(events),
        "v_hist_daily": calc.hist_daily(closes),
    }
    logged: dict[str, set[int]] = {}
    for _offset, _key, value, _ts in topics[PROCESSING_LOG]:
        entry = json.loads(value)
        logged.setdefault(entry["topic"], set()).add(entry["offset"])
    return expected, good, logged, events, [key for _offset, key, _value, _ts in topics[REJECTED]]


def settle(stack: Stack, timeout_s: float = 120.0) -> Settled:
    """Pause the flow, then read Kafka and ClickHouse until ClickHouse shows what Kafka holds, twice
    in a row (see the module docstring). Kafka is read again each time: the engine's processing log
    trails its input, and the daily-close job may publish at any moment (12:05 UTC)."""
    up = stack.up
    pause_flow(up)
    client = up.clickhouse()
    try:
        deadline = time.monotonic() + timeout_s
        equal_before = False
        while True:
            expected, good, logged, events, rejected = what_kafka_holds(stack)
            settled = Settled(
                expected,
                read_views(client),
                {topic: landed_offsets(client, topic) for topic in TOPICS},
                {topic: landed_offsets(client, f"{topic}_clickpipes_error") for topic in TOPICS},
                good,
                logged,
                events,
                rejected,
            )
            if not settled.problems(stack.injected):
                if equal_before:
                    return settled
                equal_before = True
                continue
            equal_before = False
            if time.monotonic() > deadline:
                return settled
            time.sleep(1)
    finally:
        client.close()


def assert_everything_equal(stack: Stack, settled: Settled) -> None:
    problems = settled.problems(stack.injected)
    assert not problems, "\n".join(problems) + "\n--- output:\n" + "\n".join(stack.up.output()[-30:])
    # Sanity of the data itself: every coin.
    assert {e.code for e in settled.events} == {
        "USDT",
        "BTC",
        "ETH",
        "FDUSD",
        "XRP",
        "SOL",
        "USDC",
        "DOGE",
        "LINK",
        "AAVE",
    }


def restarts_since(up: UpProcess, since: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in up.output(since):
        name, _, text = line.partition(" | ")
        if re.fullmatch(r"exited with code -?\d+; restarting in [\d.]+s", text):
            counts[name.strip()] = counts.get(name.strip(), 0) + 1
    return counts


def assert_indicators_follow_the_candles(up: UpProcess, timeout_s: float = 60.0) -> None:
    """The maintainer `up` starts follows the candles (the rollups' materialized views mark each
    series they touch): within a few cycles every 1-minute and 5-minute candle has its indicator row,
    with the candle's close, and no other row exists."""
    pairs = {
        "v_indicators_1m": "SELECT code, window_start, close FROM v_ohlc_by_minute",
        "v_indicators_5m": "SELECT code, bucket_start, close FROM v_candles_5m",
    }
    client = up.clickhouse()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            differing = {
                view: (
                    set(client.query(f"SELECT code, bucket_start, close FROM {view}").result_rows),
                    set(client.query(candles).result_rows),
                )
                for view, candles in pairs.items()
            }
            differing = {view: sides for view, sides in differing.items() if sides[0] != sides[1] or not sides[1]}
            if not differing or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        client.close()
    assert not differing, {view: (len(ours), len(theirs)) for view, (ours, theirs) in differing.items()}


def run_until(seconds_from_now: float) -> None:
    time.sleep(max(0.0, seconds_from_now))


# ---- the tests -------------------------------------------------------------------------------------


def test_e2e_views_equal_an_independent_computation_from_the_raw_records(stack):
    up = stack.up
    start = len(up.output())
    resume_flow(up)
    client = up.clickhouse()
    try:
        first = 0
        deadline = time.monotonic() + 60
        while not first and time.monotonic() < deadline:
            first = (
                client.command(
                    "SELECT toUnixTimestamp64Milli(min(fetched_at)) FROM coins_current_full WHERE fetched_at > 0"
                )
                or 0
            )
            time.sleep(0.5)
    finally:
        client.close()
    assert first, "no live rate landed"
    # Run until the live rates cover a whole UTC minute, and 3 s of the next one.
    whole_minute_end = (first // 60_000 + 2) * 60_000
    run_until(whole_minute_end / 1000 + 3 - time.time())
    mark = len(up.output())
    settled = settle(stack)
    assert_everything_equal(stack, settled)

    assert_indicators_follow_the_candles(up)

    minutes = {start for (_code, start) in settled.expected["v_ohlc_by_minute"]}
    assert len(minutes) >= 2 and len(settled.expected["v_60_sec_mov_avg"]) >= 3 * 10
    assert any(
        start * 1000 >= first and (start + 60) * 1000 <= max(e.fetched_at for e in settled.events) for start in minutes
    ), "no whole minute was covered"

    # The status line: while data flowed, it reported it; once the flow is paused and everything
    # has landed, it says exactly: nothing produced, nothing loaded, nothing waiting.
    lines = [line for line in up.output(start) if line.startswith("status ")]
    matches = [STATUS_LINE.match(line) for line in lines]
    assert any(match and float(match["events"]) > 0 and float(match["rows"]) > 0 for match in matches), lines[:5]
    # Only while the stack starts may an endpoint be unreachable or a figure not known yet.
    first_full = next(index for index, match in enumerate(matches) if match)
    assert all(matches[first_full:]), [line for line, match in zip(lines, matches, strict=False) if not match]
    quiet = up.wait_for_line(
        lambda line: bool(
            re.match(
                r"status +\| 0\.0 events/s, 0\.0 rows/s loaded, "
                r"consumer lag 0 \(engine 0, loader 0\), ",
                line,
            )
        ),
        timeout_s=30,
        since=mark,
    )
    credits_left = int(STATUS_LINE.match(quiet)["credits"].replace(",", ""))
    # DAILY_CREDIT_BUDGET 200,000 - 500 reserved for daily closes, less what was spent already.
    assert 0 < credits_left < 200_000 - 500


def test_faults_kill_9_of_engine_loader_and_producer_lose_and_double_nothing(stack):
    up = stack.up
    rng = random.Random(SEED)
    victims = ["ksql", "loader", "producer"] * 2
    rng.shuffle(victims)
    moments = sorted(rng.uniform(1.0, 40.0) for _ in victims)
    mark = len(up.output())
    resume_flow(up)
    started = time.monotonic()
    killed: dict[str, list[int]] = {name: [] for name in set(victims)}
    for moment, name in zip(moments, victims, strict=False):
        run_until(started + moment - time.monotonic())
        previous = killed[name][-1] if killed[name] else None
        process = up.service(name, not_pid=previous)  # waits out a restart still in backoff
        os.kill(process.pid, signal.SIGKILL)
        killed[name].append(process.pid)
    for name, pids in killed.items():
        up.service(name, not_pid=pids[-1])
    run_until(started + 45 - time.monotonic())

    settled = settle(stack)
    assert restarts_since(up, mark) == {"ksql": 2, "loader": 2, "producer": 2}
    assert_everything_equal(stack, settled)


def test_invalid_live_rates_mid_run_never_reach_a_view_and_land_with_their_reason(stack):
    """A rate from the year 2199, a record keyed ETH carrying BTC, a zero, a negative and a "NaN"
    rate, injected while the flow runs: the views keep advancing and equal the computation over
    the valid records only; each bad record is in the error table and in the engine's
    coins_current_rejected with the same reason (common/rate_validity.py's words, written out)."""
    up = stack.up
    resume_flow(up)
    time.sleep(3)
    now = int(time.time() * 1000)
    mismatch = "key mismatch: the Kafka key is not the record's code"
    bad_rate = "bad rate: not a finite number greater than 0"
    future = "future fetched_at: ahead of the wall clock by more than the allowed clock skew"
    bad = [  # (key, value, reason)
        (b"BTC", {"code": "BTC", "rate": 61_000.0, "fetched_at": 7_226_582_400_000}, future),
        (b"ETH", {"code": "BTC", "rate": 61_000.0, "fetched_at": now}, mismatch),
        (b"SOL", {"code": "SOL", "rate": 0, "fetched_at": now}, bad_rate),
        (b"DOGE", {"code": "DOGE", "rate": -0.2, "fetched_at": now}, bad_rate),
        (b"XRP", {"code": "XRP", "rate": "NaN", "fetched_at": now}, bad_rate),
    ]
    producer = Producer(
        {"bootstrap.servers": up.bootstrap, "enable.idempotence": True, "acks": "all", "broker.address.family": "v4"}
    )
    offsets: dict[bytes, int] = {}

    def on_delivery(error, record) -> None:
        assert error is None, error
        offsets[record.value()] = record.offset()

    for key, value, _reason in bad:
        producer.produce("coins_current_full", json.dumps(value).encode(), key, timestamp=now, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    reasons = {}
    for key, value, reason in bad:
        encoded = json.dumps(value).encode()
        offset = offsets[encoded]
        stack.injected["coins_current_full"][offset] = Message("coins_current_full", key, encoded, "invalid rate")
        reasons[offset] = reason
    time.sleep(5)  # live records after the bad ones: the 2199 one must not have frozen anything

    settled = settle(stack)
    assert_everything_equal(stack, settled)
    assert max(e.fetched_at for e in settled.events) > now + 2_000  # the views kept advancing
    client = up.clickhouse()
    try:
        landed = dict(
            client.query(
                "SELECT _offset, reason FROM coins_current_full_clickpipes_error WHERE _offset IN {o:Array(Int64)}",
                parameters={"o": list(reasons)},
            ).result_rows
        )
    finally:
        client.close()
    assert landed == reasons
    engine = [
        (key, json.loads(value)["REASON"])
        for _o, key, value, _ts in read_topics(up.bootstrap, [REJECTED], idle_s=1.0)[REJECTED]
        if key is not None
    ]
    assert sorted(engine) == sorted((key, reason) for key, _value, reason in bad)


def test_faults_10000_bad_messages_per_topic_crash_nothing_and_land_in_error_tables(stack):
    up = stack.up
    resume_flow(up)
    mark = len(up.output())
    before = {name: up.service(name).pid for name in SERVICE_ARGV}
    time.sleep(3)  # live records before the bad ones...

    fuzzer = Fuzzer(SEED, int(time.time() * 1000))
    producer = Producer(
        {
            "bootstrap.servers": up.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "message.max.bytes": 2_000_000,
            "linger.ms": 5,
            "broker.address.family": "v4",
        }
    )
    delivered: list[tuple[str, int, Message]] = []
    failures: list[str] = []

    def on_delivery(message: Message):
        def report(error, record) -> None:
            if error is not None:
                failures.append(str(error))
            else:
                delivered.append((record.topic(), record.offset(), message))

        return report

    for topic in TOPICS:
        for message in fuzzer.messages(topic, BAD_MESSAGES_PER_TOPIC):
            while True:
                try:
                    producer.produce(topic, message.value, message.key, on_delivery=on_delivery(message))
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
    assert producer.flush(60) == 0 and failures == []
    assert len(delivered) == len(TOPICS) * BAD_MESSAGES_PER_TOPIC
    for topic, offset, message in delivered:
        stack.injected[topic][offset] = message
    time.sleep(8)  # ...and after them

    settled = settle(stack)
    assert_everything_equal(stack, settled)
    # Each error row keeps the message's bytes (an oversized one: its first 64 KiB).
    client = up.clickhouse()
    try:
        for topic in TOPICS:
            rows = client.query(f"SELECT _offset, hex(_raw) FROM {topic}_clickpipes_error").result_rows
            raw = {offset: bytes.fromhex(text) for offset, text in rows}
            assert raw == {
                offset: (message.value or b"")[:65_536] for offset, message in stack.injected[topic].items()
            }, topic
    finally:
        client.close()
    # Nothing crashed: the same processes, no restart.
    assert {name: up.service(name).pid for name in SERVICE_ARGV} == before
    assert restarts_since(up, mark) == {}


def test_ctrl_c_stops_every_process_of_the_stack(stack):
    children = stack.up.children()
    names = " ".join(" ".join(child.cmdline()) for child in children)
    assert all(" ".join(argv) in names for argv in SERVICE_ARGV.values()) and "tansu" in names
    code, alive = stack.up.stop()
    assert code == 0
    assert alive == []
