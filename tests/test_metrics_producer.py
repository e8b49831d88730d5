"""`coinstream produce current` serves its counters on /metrics (PRODUCER_METRICS_PORT).

One poll against the simulated API and the real (Tansu) broker, then a scrape: every counter is
checked against what the simulator and the topic independently say happened.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from coinstream.common.processes import terminate
from coinstream.local_broker import free_port
from tests.fixtures_sim_api import cli_env, read_topic

TEN = ["USDT", "BTC", "ETH", "FDUSD", "XRP", "SOL", "USDC", "DOGE", "LINK", "AAVE"]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint except the `_created` timestamps: (name, labels) -> value."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode("utf-8")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def wait_for_first_poll(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 30.0):
    """Scrape until the first poll is counted and its 10 deliveries acknowledged."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        try:
            samples = scrape(url)
        except (urllib.error.URLError, ConnectionError):
            samples = {}
        if (
            samples.get(("coinstream_polls_total", (("outcome", "ok"),))) == 1
            and sum(value for (name, _), value in samples.items() if name == "coinstream_records_delivered_total") == 10
        ):
            return samples
        time.sleep(0.1)


def test_one_poll_is_counted_on_the_metrics_endpoint(tmp_path, kafka_bootstrap, sim_api, topic_name):
    port = free_port()
    log = tmp_path / "producer.log"
    with log.open("w") as sink:
        # A long interval: the first poll happens at once, the second never within this test.
        process = subprocess.Popen(
            [sys.executable, "-m", "coinstream", "produce", "current", "--interval", "3600", "--topic", topic_name],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=cli_env(
                KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, LCW_BASE_URL=sim_api.base_url, PRODUCER_METRICS_PORT=str(port)
            ),
        )
    try:
        samples = wait_for_first_poll(f"http://127.0.0.1:{port}/metrics", process, log)
    finally:
        terminate(process, 30)

    assert process.returncode == 0, log.read_text()
    assert f"producer metrics on http://127.0.0.1:{port}/metrics" in log.read_text()
    # What happened, independently: the simulator charged 2 credits (/credits, then one
    # /coins/map for 10 codes) and the topic holds one record per coin.
    stats = sim_api.admin.stats()
    assert stats["credits_used"] == 2
    assert stats["requests"] == {"/credits": 1, "/coins/map": 1}
    assert sorted(record.key for record in read_topic(kafka_bootstrap, topic_name, 10)) == sorted(TEN)
    # The endpoint says exactly that, and nothing failed, was retried or went missing.
    assert samples == {
        ("coinstream_lcw_requests_total", (("endpoint", "/credits"), ("outcome", "ok"))): 1.0,
        ("coinstream_lcw_requests_total", (("endpoint", "/coins/map"), ("outcome", "ok"))): 1.0,
        ("coinstream_lcw_credits_used_total", ()): 2.0,
        ("coinstream_records_produced_total", (("topic", topic_name),)): 10.0,
        ("coinstream_records_delivered_total", (("topic", topic_name),)): 10.0,
        ("coinstream_polls_total", (("outcome", "ok"),)): 1.0,
        # DAILY_CREDIT_BUDGET 10000 - HISTORICAL_DAILY_CREDITS 500, less the 2 credits spent.
        ("coinstream_lcw_credits_remaining", ()): 10_000 - 500 - 2,
    }
    assert (
        "10 records produced, 10 delivered, 0 delivery failures, 0 coins missing, 0 retries, 2 credits used"
    ) in log.read_text()
