"""Window assignment and grace rules, exactly as Kafka Streams applies them for ksqlDB.

Why its own module: the engine, the property test's independent batch computation and the docs
all state these rules, and they must not drift apart:

- Windows are aligned to the epoch (UTC), start inclusive, end exclusive.
- Tumbling: one window, start = ts - ts % size.
- Hopping: every window with start in [(max(0, ts - size + advance) // advance) * advance .. ts]
  stepping by advance; no window starts before 0.
- Grace: without GRACE PERIOD, max(24 h - size, 0) (Kafka Streams' old default that ksqlDB keeps);
  with EMIT FINAL and no GRACE PERIOD, 0. A record is dropped for a window when
  window_end <= stream_time - grace, where stream time is the highest timestamp seen so far on
  the input partition (it only moves when records arrive).
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TimeWindows:
    kind: str  # TUMBLING | HOPPING
    size: int
    advance: int
    grace: int
    retention: int

    def starts(self, ts: int) -> range:
        """Start times of every window containing `ts` (ascending)."""
        advance = self.advance
        first = (max(0, ts - self.size + advance) // advance) * advance
        return range(first, ts + 1, advance)


def default_grace(size_ms: int, emit_final: bool) -> int:
    return 0 if emit_final else max(DAY_MS - size_ms, 0)


def make_time_windows(
    kind: str, size: int, advance: int | None, grace: int | None, retention: int | None, emit_final: bool
) -> TimeWindows:
    step = size if kind == "TUMBLING" else advance
    assert step is not None
    effective_grace = default_grace(size, emit_final) if grace is None else grace
    effective_retention = retention if retention is not None else size + effective_grace
    return TimeWindows(kind, size, step, effective_grace, effective_retention)


@dataclass(frozen=True)
class SessionWindows:
    """Session windows: a record joins (and merges) every session of its key whose span is within
    `gap` of it. As in Kafka Streams 3, a record is dropped when the merged session's end is
    earlier than stream time - grace - gap."""

    gap: int
    grace: int
    kind: str = "SESSION"


def make_session_windows(gap: int, grace: int | None) -> SessionWindows:
    return SessionWindows(gap, default_grace(gap, False) if grace is None else grace)
