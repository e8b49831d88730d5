"""The simulated API's mutable state: API keys, the per-key daily credit ledger, injected faults, stats.

Why in one small object behind a lock: the HTTP handlers (event-loop thread) and an in-process test
(its own thread, through `SimApiServer.state`) both touch it; everything else in the simulator is a
pure function of time.

Credit rule (as the real API states: 1 request = 1 credit, renewed at UTC midnight): every request
with an accepted key costs one credit, whatever its outcome, including `/credits` itself and
requests answered with an injected fault. A request once the day's credits are spent is answered
429 and costs nothing. `/status` needs no key and costs nothing.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DAY_MS = 86_400_000
FAULT_KINDS = ("status", "malformed", "slow")


@dataclass
class Fault:
    """One injected fault, served to the next `count` matching requests.

    kind "status": answer `status` with the API's error body (and `Retry-After` if given);
    "malformed": answer 200 with a truncated JSON body; "slow": wait `delay_s`, then answer normally.
    `paths` limits the fault to some endpoints (None = every keyed endpoint).
    """

    kind: str
    count: int = 1
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    paths: frozenset[str] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        kind = data.get("kind", "status")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (expected one of {', '.join(FAULT_KINDS)})")
        count = int(data.get("count", 1))
        if count < 1:
            raise ValueError("count must be >= 1")
        retry_after = data.get("retry_after")
        paths = data.get("paths")
        return cls(
            kind=kind,
            count=count,
            status=int(data.get("status", 500)),
            retry_after=None if retry_after is None else str(retry_after),
            delay_s=float(data.get("delay_s", 0.0)),
            paths=frozenset(paths) if paths else None,
        )

    def matches(self, path: str) -> bool:
        return self.paths is None or path in self.paths


@dataclass
class KeyPolicy:
    """Which API keys the simulator accepts.

    `accepted` empty = any non-empty key is accepted (the local default: the producers send a
    placeholder key). Keys in `rejected` are always answered 401, so a test can present a wrong key.
    """

    accepted: frozenset[str] = frozenset()
    rejected: frozenset[str] = frozenset()

    def allows(self, key: str | None) -> bool:
        if not key or key in self.rejected:
            return False
        return not self.accepted or key in self.accepted


@dataclass
class SimState:
    """Credits, faults and counters of one simulator instance."""

    daily_credits: int = 10_000
    keys: KeyPolicy = field(default_factory=KeyPolicy)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _used: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)
    _faults: deque[Fault] = field(default_factory=deque, repr=False)
    null_rate: set[str] = field(default_factory=set)
    omit: set[str] = field(default_factory=set)
    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)
    faults_served: Counter[str] = field(default_factory=Counter)

    # ---- credits -------------------------------------------------------------------------------

    def charge(self, key: str, now_ms: int) -> int | None:
        """Charge one credit to `key` for today; return the credits left, or None when none were left."""
        day = now_ms // DAY_MS
        with self._lock:
            used = self._used.get((key, day), 0)
            if used >= self.daily_credits:
                return None
            self._used[(key, day)] = used + 1
            return self.daily_credits - used - 1

    def credits_used(self, key: str, now_ms: int) -> int:
        with self._lock:
            return self._used.get((key, now_ms // DAY_MS), 0)

    def set_credits_used(self, key: str, used: int, now_ms: int) -> None:
        """Pretend `key` already spent `used` credits today (tests of the budget guard)."""
        with self._lock:
            self._used[(key, now_ms // DAY_MS)] = used

    # ---- faults --------------------------------------------------------------------------------

    def add_faults(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def take_fault(self, path: str) -> Fault | None:
        """The fault to serve to this request, if any (the first queued fault matching the path)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(path):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    label = f"{fault.kind}:{fault.status}" if fault.kind == "status" else fault.kind
                    self.faults_served[label] += 1
                    return fault
        return None

    def override_coins(self, null_rate: Iterable[str] = (), omit: Iterable[str] = ()) -> None:
        """From now on answer `rate: null` for the codes in `null_rate` and leave out those in `omit`."""
        with self._lock:
            self.null_rate.update(null_rate)
            self.omit.update(omit)

    def pending_faults(self) -> int:
        with self._lock:
            return sum(fault.count for fault in self._faults)

    # ---- bookkeeping ---------------------------------------------------------------------------

    def record(self, path: str, status: int) -> None:
        with self._lock:
            self.requests[path] += 1
            self.responses[str(status)] += 1

    def reset(self) -> None:
        """Forget credits, faults, coin overrides and counters (between tests)."""
        with self._lock:
            self._used.clear()
            self._faults.clear()
            self.null_rate.clear()
            self.omit.clear()
            self.requests.clear()
            self.responses.clear()
            self.faults_served.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "responses": dict(self.responses),
                "faults_served": dict(self.faults_served),
                "faults_pending": sum(fault.count for fault in self._faults),
                # Totals only: the keys themselves are secrets and never leave the simulator.
                "credits_used": sum(self._used.values()),
                "null_rate": sorted(self.null_rate),
                "omit": sorted(self.omit),
            }


def parse_fault_spec(spec: str) -> Fault:
    """Parse the command-line form of a fault: ``WHAT[xCOUNT][@PATH]``.

    WHAT is an HTTP status (``429``, ``500``, ``503``…), ``malformed`` or ``slow:SECONDS``.
    Examples: ``429x3`` (three 429s), ``500x2@/coins/map``, ``slow:2.5``, ``malformedx1``.
    """
    text = spec.strip()
    paths = None
    if "@" in text:
        text, path = text.split("@", 1)
        paths = frozenset({path})
    count = 1
    head, sep, tail = text.rpartition("x")
    if sep and tail.isdigit() and head:
        text, count = head, int(tail)
    if count < 1:
        raise ValueError(f"fault {spec!r}: count must be >= 1")
    if text.isdigit() and len(text) == 3:
        return Fault("status", count=count, status=int(text), paths=paths)
    if text == "malformed":
        return Fault("malformed", count=count, paths=paths)
    if text.startswith("slow:"):
        try:
            delay = float(text[len("slow:") :])
        except ValueError:
            raise ValueError(f"fault {spec!r}: slow needs seconds, e.g. slow:2.5") from None
        return Fault("slow", count=count, delay_s=delay, paths=paths)
    raise ValueError(
        f"fault {spec!r}: expected STATUS, malformed or slow:SECONDS, optionally followed by xCOUNT and @PATH"
    )
