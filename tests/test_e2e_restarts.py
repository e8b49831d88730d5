"""`coinstream up` stopped, killed and restarted under live data: nothing lost, nothing doubled.

The README promises that the main job may be stopped, killed or rebooted at any moment and the
dashboard continues where it was. The local broker keeps its topics in memory, so every restart
below also starts a broker that has forgotten everything: offsets begin again at 0, the engine's
changelogs are gone, and records the broker had acknowledged but nobody had read are lost with it
(the producer publishes its journal of the last minutes again; the consumers skip what they hold).

At seeded random moments, with the live flow running (10 coins every 0.5 s):
(a) Ctrl+C, and `up` again on the same data directory;
(b) kill -9 of the whole process tree, and `up` again;
(c) kill -9 of the broker alone (the Tansu process), which the supervisor restarts together with
    every Kafka client;
(d) meanwhile, from the third start on, the broker is rotated whenever its memory passes 1 MiB
    (always, checked every 15 s): producers paused, pipeline drained, broker restarted empty.

The independent record of what was published is a reader in this test that follows the topic
`coins_current_full` across broker restarts (re-reading a new incarnation from its start) and keeps
every distinct rate (code, fetched_at) it saw; each rate is also checked against the simulated
API's deterministic walk. Afterwards ClickHouse must hold each of those rates exactly once, and
nothing else, and the candles, moving averages, 5-minute candles and the overview must equal the
computation of tests/helpers/expected.py over them — the minutes on both sides of each restart
included.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import time

import psutil
import pytest

from tests.fixtures_sim_api import reference_rate
from tests.helpers import expected as calc
from tests.helpers.e2e import PublishedRates, UpProcess, diff, pause_flow, resume_flow

SEED = 20_261_206
SETTINGS = {"POLL_INTERVAL_S": "0.5", "DAILY_CREDIT_BUDGET": "200000"}


def kill_tree(up: UpProcess) -> None:
    processes = [psutil.Process(up.process.pid), *up.children()]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=10)
    up.process.wait(10)


def expected_views(published: dict[tuple[str, int], bytes]) -> dict[str, dict]:
    # One producer: a coin's rates are processed in fetched_at order, which these offsets give.
    events = [
        calc.Event.from_message(offset, published[key])
        for offset, key in enumerate(sorted(published, key=lambda k: (k[1], k[0])))
    ]
    return {
        "v_ohlc_by_minute": calc.ohlc_by_minute(events),
        "v_60_sec_mov_avg": calc.mov_avg_60s(events),
        "overview_for_dashboard": calc.overview(events),
        "v_candles_5m": calc.candles_5m(events),
    }


def actual_views(client) -> dict[str, dict]:
    from tests.helpers.e2e import read_views

    views = read_views(client)
    return {
        name: views[name] for name in ("v_ohlc_by_minute", "v_60_sec_mov_avg", "overview_for_dashboard", "v_candles_5m")
    }


def problems(client, published: dict[tuple[str, int], bytes]) -> list[str]:
    found = []
    landed = {
        (code, int(at)): count
        for code, at, count in client.query(
            "SELECT code, toUnixTimestamp64Milli(fetched_at), count() FROM coins_current_full GROUP BY code, fetched_at"
        ).result_rows
    }
    doubled = {key: count for key, count in landed.items() if count != 1}
    lost = set(published) - set(landed)
    unknown = set(landed) - set(published)
    if doubled or lost or unknown:
        found.append(
            f"coins_current_full: {len(lost)} published rates missing, {len(doubled)} doubled, "
            f"{len(unknown)} never published (of {len(published)}); e.g. lost {sorted(lost)[:3]}, "
            f"doubled {sorted(doubled.items())[:3]}"
        )
    expected, actual = expected_views(published), actual_views(client)
    found += [text for name in expected if (text := diff(name, actual[name], expected[name]))]
    return found


@pytest.mark.timeout(900)
def test_stop_kill_and_broker_kill_under_live_data_lose_and_double_nothing(tmp_path):
    rng = random.Random(SEED)
    workdir = tmp_path / "stack"
    up = UpProcess(workdir, SETTINGS, ["--broker-check-interval", "1"]).start()
    reader = PublishedRates(up.bootstrap).start()
    stacks = [up]
    try:
        resume_flow(up)
        time.sleep(rng.uniform(12, 20))
        # (a) Ctrl+C and start again.
        code, left = up.stop()
        assert (code, left) == (0, [])
        up = up.again().start()
        stacks.append(up)
        resume_flow(up)
        time.sleep(rng.uniform(12, 20))
        # (b) kill -9 of everything, and start again.
        kill_tree(up)
        up = up.again(["--broker-check-interval", "15"], LOCAL_BROKER_MAX_MEMORY_MB="1").start()
        stacks.append(up)
        resume_flow(up)
        time.sleep(rng.uniform(12, 20))
        # (c) kill -9 of the broker alone: the supervisor restarts it and every Kafka client.
        mark = len(up.output())
        psutil.Process(up.broker_pid()).send_signal(signal.SIGKILL)
        up.wait_for_line(
            lambda line: line.startswith("loader") and line.endswith("| resuming"), timeout_s=60, since=mark
        )
        time.sleep(rng.uniform(12, 20))

        pause_flow(up)
        client = up.clickhouse()
        try:
            deadline = time.monotonic() + 120
            while True:
                published = reader.snapshot()
                found = problems(client, published)
                if not found or time.monotonic() > deadline:
                    break
                time.sleep(1)
        finally:
            client.close()
        assert not found, "\n".join(found) + "\n--- output:\n" + "\n".join(up.output()[-40:])
        rotations = [line for line in up.output() if line.startswith("broker") and "| rotated: " in line]
        assert rotations, "the broker was never rotated"
        # The record itself is the simulated walk (`up` runs the simulated API with seed 1; the rate
        # is the one of the second the API answered in, at most one second before fetched_at),
        # every coin, across all four runs.
        assert all(
            json.loads(value)["rate"] in (reference_rate(code, at, seed=1), reference_rate(code, at - 1000, seed=1))
            for (code, at), value in published.items()
        )
        assert len({code for code, _ in published}) == 10
        minutes = {start for _code, start in expected_views(published)["v_ohlc_by_minute"]}
        assert len(minutes) >= 2
    finally:
        reader.stop()
        for stack in stacks:
            stack.stop()
            stack.kill_leftovers()
