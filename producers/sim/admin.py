"""A small client for the simulator's test switches (`/_sim/...`).

Why: tests and benchmarks inject faults and set credit balances over HTTP, the same way whether the
simulator runs in-thread or as its own process (`coinstream sim-api`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import requests


class SimAdmin:
    """Drive one running simulator through its `/_sim/` endpoints."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.post(f"{self.base_url}{path}", json=body or {}, timeout=self.timeout_s)
        response.raise_for_status()
        # requests' json() is Any; every /_sim/ endpoint answers a JSON object.
        return cast("dict[str, Any]", response.json())

    def inject(
        self, *faults: dict[str, Any], null_rate: Iterable[str] = (), omit: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Queue faults (dicts as in `Fault.from_json`) and coin overrides."""
        return self._post("/_sim/faults", {"faults": list(faults), "null_rate": list(null_rate), "omit": list(omit)})

    def fail(
        self, status: int, count: int = 1, retry_after: str | int | None = None, paths: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """The next `count` keyed requests (to `paths`) are answered `status`."""
        fault: dict[str, Any] = {"kind": "status", "status": status, "count": count}
        if retry_after is not None:
            fault["retry_after"] = str(retry_after)
        if paths is not None:
            fault["paths"] = list(paths)
        return self.inject(fault)

    def malformed(self, count: int = 1, paths: Iterable[str] | None = None) -> dict[str, Any]:
        fault: dict[str, Any] = {"kind": "malformed", "count": count}
        if paths is not None:
            fault["paths"] = list(paths)
        return self.inject(fault)

    def slow(self, delay_s: float, count: int = 1, paths: Iterable[str] | None = None) -> dict[str, Any]:
        fault: dict[str, Any] = {"kind": "slow", "delay_s": delay_s, "count": count}
        if paths is not None:
            fault["paths"] = list(paths)
        return self.inject(fault)

    def set_credits_used(self, key: str, used: int) -> dict[str, Any]:
        """Pretend `key` already spent `used` of today's credits."""
        return self._post("/_sim/credits", {"key": key, "used": used})

    def reset(self) -> dict[str, Any]:
        return self._post("/_sim/reset")

    def stats(self) -> dict[str, Any]:
        return self._post("/_sim/stats")
