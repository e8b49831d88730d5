"""One definition of a valid live rate: the ksql statements and the loader decide alike on every
record, with the same reason (common/rate_validity.py).

Each record goes through the project's statements (the engine, in memory) and through the loader's
parser. The engine's verdict: "valid" when the record reaches a candle, the reason when it lands
in coins_current_rejected, "unreadable" when it goes to the processing log. The loader's: "valid"
when it becomes a row, else its error-table reason. The expected verdict of each record is written
out by hand.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

import orjson
import pytest

from coinstream.clickhouse.loader.formats import FORMATS, RateRules, parse
from coinstream.clickhouse.loader.records import Record
from coinstream.clickhouse.loader.validation import Rejected
from coinstream.ksql.engine import Pipeline
from coinstream.ksql.planner import plan_script

ROOT = Path(__file__).resolve().parents[1]
PROJECT_SQL = "\n".join(Path(p).read_text() for p in sorted(glob.glob(str(ROOT / "ksql/*.sql"))))
SKEW_MS = 60_000
NOW = "now"  # replaced by the wall clock when the test runs (fetched_at: NOW or (NOW, offset ms))

MISMATCH = "key mismatch: the Kafka key is not the record's code"
BAD_RATE = "bad rate: not a finite number greater than 0"
FUTURE = "future fetched_at: ahead of the wall clock by more than the allowed clock skew"

CASES = [  # (key, value, expected verdict)
    (b"BTC", {"code": "BTC", "rate": 61_000.5, "fetched_at": NOW}, "valid"),
    (b"BTC", {"code": "BTC", "rate": "61000.5", "fetched_at": NOW}, "valid"),  # number as text
    (b"BTC", {"CODE": "BTC", "RATE": 61_000.5, "FETCHED_AT": NOW}, "valid"),  # names in any case
    (b"BTC", {"code": "BTC", "rate": 61_000.5, "fetched_at": (NOW, 0, str)}, "valid"),  # whole number as text
    (b"X" * 100, {"code": "X" * 100, "rate": 1.0, "fetched_at": NOW}, "valid"),  # a long code
    (b"BTC", {"code": "BTC", "rate": 1.0, "fetched_at": (NOW, SKEW_MS - 5_000)}, "valid"),  # within the skew
    (b"ETH", {"code": "BTC", "rate": 61_000.5, "fetched_at": NOW}, MISMATCH),
    (None, {"code": "BTC", "rate": 61_000.5, "fetched_at": NOW}, MISMATCH),
    (b"BTC", {"rate": 61_000.5, "fetched_at": NOW}, MISMATCH),
    (b"BTC", {"code": "BTC", "rate": 0, "fetched_at": NOW}, BAD_RATE),
    (b"BTC", {"code": "BTC", "rate": -3.5, "fetched_at": NOW}, BAD_RATE),
    (b"BTC", {"code": "BTC", "rate": "NaN", "fetched_at": NOW}, BAD_RATE),
    (b"BTC", {"code": "BTC", "rate": None, "fetched_at": NOW}, BAD_RATE),
    (b"BTC", {"code": "BTC", "fetched_at": NOW}, BAD_RATE),
    (b"BTC", {"code": "BTC", "rate": 1.0, "fetched_at": 7_226_582_400_000}, FUTURE),  # 2199-01-01
    (b"BTC", {"code": "BTC", "rate": 1.0, "fetched_at": (NOW, SKEW_MS + 60_000)}, FUTURE),
]


def at_now(value: dict, now: int) -> dict:
    """The record with its fetched_at placeholder resolved against `now`."""
    stamp = value.get("fetched_at", value.get("FETCHED_AT"))
    if stamp == NOW:
        stamp = now
    elif isinstance(stamp, tuple):
        stamp = (stamp[2] if len(stamp) > 2 else int)(now + stamp[1])
    else:
        return value
    name = "fetched_at" if "fetched_at" in value else "FETCHED_AT"
    return {**value, name: stamp}


def engine_verdict(key: bytes | None, value: dict, now: int) -> str:
    pipeline = Pipeline(plan_script(PROJECT_SQL, {"max_clock_skew_ms": str(SKEW_MS)}))
    out = pipeline.process("coins_current_full", 0, 0, key, orjson.dumps(value), now)
    topics = {record[0] for record in out}
    if pipeline.errors:
        return "unreadable"
    if topics == {"ohlc_by_minute", "mov_avg_60s"}:
        return "valid"
    (rejected,) = [record for record in out if record[0] == "coins_current_rejected"]
    assert topics == {"coins_current_rejected"}
    return orjson.loads(rejected[2])["REASON"]


def loader_verdict(key: bytes | None, value: dict, now: int) -> str:
    record = Record("coins_current_full", 0, 0, now, key or b"", orjson.dumps(value))
    try:
        parse(FORMATS["coins_current_full"], record, 1 << 20, RateRules(SKEW_MS))
    except Rejected as rejected:
        return rejected.reason
    return "valid"


@pytest.mark.parametrize("key, value, expected", CASES)
def test_the_engine_and_the_loader_decide_alike(key, value, expected):
    now = int(time.time() * 1000)
    value = at_now(value, now)
    assert (engine_verdict(key, value, now), loader_verdict(key, value, now)) == (expected, expected)


def test_a_missing_fetched_at_is_refused_by_both():
    """No event time: the engine cannot read the record (processing log), the loader says why."""
    value, now = {"code": "BTC", "rate": 1.0}, int(time.time() * 1000)
    assert (engine_verdict(b"BTC", value, now), loader_verdict(b"BTC", value, now)) == (
        "unreadable",
        "bad fetched_at: missing",
    )
