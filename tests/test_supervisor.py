"""The stack supervisor: start order with readiness, restarts with backoff, prefixed output, clean stop."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import pytest

from coinstream.stack.supervisor import Service, StackError, Supervisor


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def run(supervisor: Supervisor, after_start) -> None:
    async def scenario() -> None:
        await supervisor.start()
        try:
            await after_start()
        finally:
            await supervisor.stop()

    asyncio.run(scenario())


def test_crashing_service_is_restarted_with_growing_backoff(tmp_path: Path):
    counter = tmp_path / "starts"
    # Crashes on its first two starts, then stays up.
    code = (
        f"import pathlib, time; p = pathlib.Path({str(counter)!r}); "
        "n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n)); "
        "print('start', n, flush=True); time.sleep(0 if n < 3 else 60); raise SystemExit(1)"
    )
    out = io.StringIO()
    supervisor = Supervisor([Service("flaky", python(code))], out=out, min_backoff_s=0.2)

    async def wait_for_third_start() -> None:
        for _ in range(100):
            if "flaky | start 3" in out.getvalue():
                return
            await asyncio.sleep(0.05)

    run(supervisor, wait_for_third_start)
    state = supervisor.states[0]
    assert state.restarts == 2
    lines = out.getvalue().splitlines()
    assert "flaky | exited with code 1; restarting in 0.2s" in lines
    assert "flaky | exited with code 1; restarting in 0.4s" in lines
    assert [line for line in lines if "start " in line and "starting" not in line] == [
        "flaky | start 1",
        "flaky | start 2",
        "flaky | start 3",
    ]
    assert state.status == "stopped"


def test_services_start_in_order_after_readiness_and_oneshots(tmp_path: Path):
    marker = tmp_path / "ready"
    out = io.StringIO()
    services = [
        Service(
            "first",
            python(f"import pathlib, time; time.sleep(0.5); pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"),
            ready=marker.exists,
        ),
        Service(
            "once",
            python(f"import pathlib, sys; sys.exit(0 if pathlib.Path({str(marker)!r}).exists() else 3)"),
            oneshot=True,
        ),
        Service("second", python("import time; print('up', flush=True); time.sleep(60)")),
    ]
    supervisor = Supervisor(services, out=out)
    run(supervisor, lambda: asyncio.sleep(0.3))
    assert [s.status for s in supervisor.states] == ["stopped", "done", "stopped"]
    lines = out.getvalue().splitlines()
    assert lines.index("first  | ready") < lines.index("second | ready")


def test_failed_oneshot_stops_the_start():
    supervisor = Supervisor([Service("migrate", python("raise SystemExit(4)"), oneshot=True)], out=io.StringIO())
    with pytest.raises(StackError, match="migrate failed with exit code 4"):
        asyncio.run(supervisor.start())


def test_configuration_error_is_not_restarted_and_stops_the_stack():
    out = io.StringIO()
    supervisor = Supervisor(
        [Service("producer", python("import time; time.sleep(0.2); raise SystemExit(2)"))], out=out, min_backoff_s=0.1
    )

    async def scenario() -> None:
        await supervisor.run_until_stopped()

    with pytest.raises(StackError, match="producer has a configuration error"):
        asyncio.run(scenario())
    assert supervisor.states[0].restarts == 0


def test_restart_of_a_service_restarts_the_services_bound_to_it(tmp_path: Path):
    out = io.StringIO()
    sleeper = python("import time; print('up', flush=True); time.sleep(60)")
    supervisor = Supervisor(
        [Service("broker", sleeper), Service("client", sleeper, restart_with=("broker",)), Service("other", sleeper)],
        out=out,
        min_backoff_s=0.1,
    )

    async def kill_broker_and_wait() -> None:
        first = {state.service.name: state.process.pid for state in supervisor.states}
        supervisor.state_of("broker").process.kill()  # a crash, not a request
        for _ in range(200):
            pids = {state.service.name: state.process.pid for state in supervisor.states}
            if pids["broker"] != first["broker"] and pids["client"] != first["client"]:
                break
            await asyncio.sleep(0.05)
        assert pids["other"] == first["other"]  # not bound to the broker: left alone
        assert pids["client"] != first["client"]

    run(supervisor, kill_broker_and_wait)
    lines = out.getvalue().splitlines()
    # The client is stopped before the broker starts again and resumed once it is ready.
    pause = lines.index("client | pausing: broker exited (its state is gone with it)")
    resume = lines.index("client | resuming")
    assert pause < resume
    assert [state.restarts for state in supervisor.states] == [1, 1, 0]


def test_paused_service_stays_down_until_resumed_and_is_not_restarted_meanwhile(tmp_path: Path):
    out = io.StringIO()
    sleeper = python("import time; print('up', flush=True); time.sleep(60)")
    supervisor = Supervisor(
        [Service("broker", sleeper), Service("producer", sleeper, restart_with=("broker",))], out=out, min_backoff_s=0.1
    )

    async def pause_restart_resume() -> None:
        producer = supervisor.state_of("producer")
        paused_pid = producer.process.pid
        await supervisor.pause("producer", "rotation")
        assert producer.process.returncode is not None
        await supervisor.restart_and_wait("broker", "rotation")
        await asyncio.sleep(0.5)
        assert producer.process.pid == paused_pid and producer.status == "paused"  # still down
        supervisor.resume("producer")
        for _ in range(100):
            if producer.process.pid != paused_pid and producer.process.returncode is None:
                break
            await asyncio.sleep(0.05)
        assert producer.process.pid != paused_pid and producer.status == "running"

    run(supervisor, pause_restart_resume)
    lines = out.getvalue().splitlines()
    assert [line for line in lines if line.split(" | ")[1].startswith(("pausing", "restarting", "resuming"))] == [
        "producer | pausing: rotation",
        "broker   | restarting: rotation",
        "producer | resuming",
    ]
