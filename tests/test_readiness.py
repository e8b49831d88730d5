"""The launchers' one readiness wait: a probe polled until yes, a dead child noticed, a deadline kept."""

from __future__ import annotations

import subprocess
import sys

import pytest

from coinstream.common.readiness import NotReady, ProcessExited, wait_until_ready


def test_the_probe_is_polled_until_it_says_yes_and_its_errors_count_as_not_yet():
    answers = iter([ConnectionRefusedError("refused"), False, ConnectionResetError("reset"), True, True])
    calls = []

    def probe() -> bool:
        calls.append(1)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    wait_until_ready(probe, timeout_s=10, interval_s=0.001)
    assert len(calls) == 4


def test_a_child_that_exits_ends_the_wait_with_its_status():
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    child.wait(timeout=30)
    probed = []
    with pytest.raises(ProcessExited) as exited:
        wait_until_ready(lambda: probed.append(1) or False, timeout_s=10, process=child)
    assert exited.value.returncode == 7
    assert probed == []  # the exit is checked before the probe


def test_the_deadline_reports_the_probes_last_error():
    def probe() -> bool:
        raise OSError("port 1 refused")

    with pytest.raises(NotReady) as not_ready:
        wait_until_ready(probe, timeout_s=0.2, interval_s=0.01)
    assert str(not_ready.value.last_error) == "port 1 refused"
    with pytest.raises(NotReady) as never:
        wait_until_ready(lambda: False, timeout_s=0.1, interval_s=0.01)
    assert never.value.last_error is None and str(never.value) == "no answer"
