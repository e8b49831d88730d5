"""`coinstream up` starts the local stack in order, data flows, and Ctrl+C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import clickhouse_connect
import psutil

from coinstream.local_broker import free_port

REPO = Path(__file__).resolve().parent.parent


def start_up(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, dict[str, int]]:
    ports = {"kafka": free_port(), "clickhouse": free_port(), "sim": free_port(), "dashboard": free_port()}
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAFKA_", "CLICKHOUSE_", "LCW_"))}
    env.update(
        {
            "KAFKA_LOCAL_PORT": str(ports["kafka"]),
            "CLICKHOUSE_PORT": str(ports["clickhouse"]),
            "SIM_API_PORT": str(ports["sim"]),
            "DASHBOARD_PORT": str(ports["dashboard"]),
            "COINSTREAM_DATA_DIR": str(tmp_path / "data"),
            "POLL_INTERVAL_S": "10",
            "LOADER_METRICS_PORT": "0",
            "PRODUCER_METRICS_PORT": "0",
            "KSQL_METRICS_PORT": "0",
            "HISTORICAL_METRICS_PORT": "0",
            "TZ": "UTC",
            "PYTHONUNBUFFERED": "1",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "coinstream", "up", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, ports


def wait_for_line(process: subprocess.Popen, needle: str, timeout_s: float = 90) -> list[str]:
    """Read output until `needle`; afterwards a thread keeps draining it so no pipe ever fills."""
    lines: list[str] = []
    found = threading.Event()

    def drain() -> None:
        for line in process.stdout:
            lines.append(line.rstrip())
            if needle in line:
                found.set()

    threading.Thread(target=drain, daemon=True).start()
    if not found.wait(timeout_s):
        raise AssertionError(f"{needle!r} not seen; output:\n" + "\n".join(lines[-40:]))
    return list(lines)


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def local_client(tmp_path: Path, port: int):
    """A full-user client with the passwords the stack's server generated in its data directory."""
    from coinstream.common.local_credentials import read_credentials

    stored = read_credentials(tmp_path / "data" / "clickhouse")
    assert stored is not None
    return clickhouse_connect.get_client(host="127.0.0.1", port=port, username="default", password=stored.password)


def stop_and_check_nothing_left(process: subprocess.Popen, children: list[psutil.Process]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    assert process.returncode == 0
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert [p.pid for p in alive] == []


def test_up_starts_pipeline_and_ctrl_c_stops_every_process(tmp_path):
    process, ports = start_up(tmp_path)
    try:
        lines = wait_for_line(process, "Ctrl+C stops everything")
        started = [line.split("|")[0].strip() for line in lines if line.endswith("| ready")]
        assert started == [
            "broker",
            "clickhouse",
            "sim-api",
            "ksql",
            "loader",
            "producer",
            "indicators",
            "historical",
            "dashboard",
        ]
        assert f"dashboard: http://127.0.0.1:{ports['dashboard']}/" in [
            line.split("| ", 1)[1] for line in lines if line.startswith("up ")
        ]
        assert any(line.startswith("migrate") and "6 applied" in line for line in lines) or any(
            "applied" in line for line in lines if line.startswith("migrate")
        )
        children = descendants(process.pid)
        names = " ".join(" ".join(p.cmdline()) for p in children)
        for part in (
            "broker",
            "clickhouse serve",
            "sim-api",
            "load",
            "produce current",
            "tansu",
            "produce historical",
            "dashboard",
            "ksql run",
        ):
            assert part in names

        client = local_client(tmp_path, ports["clickhouse"])
        deadline = time.monotonic() + 60
        rows = 0
        while time.monotonic() < deadline and rows < 10:
            rows = client.command("SELECT count() FROM coins_current_full")
            time.sleep(0.5)
        expected_codes = sorted(["USDT", "BTC", "ETH", "FDUSD", "XRP", "SOL", "USDC", "DOGE", "LINK", "AAVE"])
        codes = [r[0] for r in client.query("SELECT DISTINCT code FROM coins_current_full ORDER BY code").result_rows]
        assert codes == expected_codes
        # The ksql engine derives candles and averages, and the loader lands them too.
        for view in ("v_ohlc_by_minute", "v_60_sec_mov_avg"):
            derived: list = []
            while time.monotonic() < deadline + 30 and len(derived) < 10:
                derived = client.query(f"SELECT DISTINCT code FROM {view} ORDER BY code").result_rows
                time.sleep(0.5)
            assert [r[0] for r in derived] == expected_codes, view
        client.close()
        stop_and_check_nothing_left(process, descendants(process.pid))
    finally:
        if process.poll() is None:
            process.kill()


def test_up_infra_only_serves_kafka_and_clickhouse(tmp_path):
    from confluent_kafka.admin import AdminClient

    process, ports = start_up(tmp_path, "--infra-only")
    try:
        wait_for_line(process, "Ctrl+C stops everything")
        metadata = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports['kafka']}"}).list_topics(timeout=10)
        assert [b.port for b in metadata.brokers.values()] == [ports["kafka"]]
        client = local_client(tmp_path, ports["clickhouse"])
        assert client.command("SELECT 6 * 7") == 42
        client.close()
        stop_and_check_nothing_left(process, descendants(process.pid))
    finally:
        if process.poll() is None:
            process.kill()


def test_supervisor_killed_hard_takes_its_children_along(tmp_path):
    process, _ = start_up(tmp_path, "--infra-only")
    everything: list[psutil.Process] = []
    try:
        wait_for_line(process, "Ctrl+C stops everything")
        everything = descendants(process.pid)
        children = [p for p in everything if "coinstream" in " ".join(p.cmdline())]
        assert len(children) == 2
        process.kill()
        process.wait(10)
        _, alive = psutil.wait_procs(children, timeout=20)
        assert [p.pid for p in alive] == []
    finally:
        for leftover in everything:  # only what this test started, never the session's servers
            if leftover.is_running():
                leftover.kill()
