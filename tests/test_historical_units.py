"""The daily-close producer's pure parts: closed days, 12:00 UTC instants, messages, gaps, wake-ups.

Expected values are written out by hand (epoch milliseconds from the calendar arithmetic shown in
the comments), not computed by the module under test.
"""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone

import pytest

from coinstream.producers.historical.backfill import BackfillReport, Task
from coinstream.producers.historical.days import (
    backfill_window,
    close_ms,
    days_between,
    latest_closed_day,
    next_close_run,
    parse_day,
)
from coinstream.producers.historical.records import Close, Gap, close_from_history
from coinstream.producers.historical.schedule import next_wakeup

UTC = timezone.utc
MARGIN = timedelta(seconds=300)
# 2025-03-31 is day 20178 since 1970-01-01 (55 years with 14 leap days = 20089 days to 2025-01-01,
# then 31 + 28 + 30 = 89 days): 12:00 UTC = 20178 × 86,400,000 + 43,200,000.
NOON_2025_03_31 = 1_743_422_400_000


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_close_instants_are_integer_milliseconds_of_12_utc():
    assert close_ms(date(2025, 3, 31)) == 20178 * 86_400_000 + 43_200_000 == NOON_2025_03_31
    assert close_ms(date(1970, 1, 1)) == 43_200_000
    assert close_ms(date(2024, 2, 29)) - close_ms(date(2024, 2, 28)) == 86_400_000
    assert isinstance(close_ms(date(2025, 3, 31)), int)


@pytest.mark.parametrize(
    "now, latest",
    [
        ("2025-03-31T00:00:00", "2025-03-30"),
        ("2025-03-31T11:59:59.999", "2025-03-30"),
        ("2025-03-31T12:04:59.999", "2025-03-30"),  # 12:00 has come, the 5-minute margin not yet
        ("2025-03-31T12:05:00", "2025-03-31"),
        ("2025-03-31T23:59:59", "2025-03-31"),
    ],
)
def test_a_day_is_closed_only_after_its_12_utc_plus_the_margin(now, latest):
    assert latest_closed_day(at(now), MARGIN) == date.fromisoformat(latest)


def test_without_a_margin_12_00_itself_closes_the_day():
    assert latest_closed_day(at("2025-03-31T11:59:59.999")) == date(2025, 3, 30)
    assert latest_closed_day(at("2025-03-31T12:00:00")) == date(2025, 3, 31)


def test_the_next_close_run_is_strictly_after_now():
    assert next_close_run(at("2025-03-31T03:00:00"), MARGIN) == at("2025-03-31T12:05:00")
    assert next_close_run(at("2025-03-31T12:05:00"), MARGIN) == at("2025-04-01T12:05:00")
    assert next_close_run(at("2025-12-31T13:00:00"), MARGIN) == at("2026-01-01T12:05:00")


def test_the_window_defaults_to_the_latest_closed_days_and_clamps_an_open_end():
    now = at("2025-03-31T11:00:00")
    assert backfill_window(now, MARGIN, 30) == (date(2025, 3, 1), date(2025, 3, 30), "")
    start, end, note = backfill_window(now, MARGIN, 30, date(2025, 3, 29), date(2025, 4, 2))
    assert (start, end) == (date(2025, 3, 29), date(2025, 3, 30))
    assert note == (
        "2025-04-02 is not closed yet (its 12:00 UTC + 300 s is after 2025-03-31 11:00:00 UTC): stopping at 2025-03-30"
    )
    assert days_between(date(2025, 2, 27), date(2025, 3, 1)) == [date(2025, 2, 27), date(2025, 2, 28), date(2025, 3, 1)]
    assert days_between(date(2025, 3, 2), date(2025, 3, 1)) == []
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_day("31/03/2025")


META = {
    "name": "Bitcoin",
    "symbol": "₿",
    "rank": 1,
    "age": 5372,
    "circulatingSupply": 19.7e6,
    "totalSupply": None,
    "maxSupply": 21e6,
    "categories": ["pow"],
}


def test_a_history_answer_becomes_the_documented_message():
    answer = {
        **META,
        "history": [{"date": NOON_2025_03_31, "rate": 65001.5, "volume": 123, "cap": 456, "liquidity": 7}],
    }
    close = close_from_history("BTC", date(2025, 3, 31), answer, 1_800_000_000_123)
    assert isinstance(close, Close)
    assert close.key == b"BTC"
    assert close.value == {
        "code": "BTC",
        "date": "2025-03-31",
        "ts": NOON_2025_03_31,
        "rate": 65001.5,
        "volume": 123,
        "cap": 456,
        "liquidity": 7,
        "name": "Bitcoin",
        "symbol": "₿",
        "rank": 1,
        "age": 5372,
        "circulatingSupply": 19.7e6,
        "totalSupply": None,
        "maxSupply": 21e6,
        "categories": ["pow"],
        "fetched_at": 1_800_000_000_123,
    }
    assert list(close.value)[:7] == ["code", "date", "ts", "rate", "volume", "cap", "liquidity"]
    assert (
        close.value_bytes()
        .decode("utf-8")
        .startswith('{"code":"BTC","date":"2025-03-31","ts":1743422400000,"rate":65001.5,')
    )


def test_the_point_nearest_12_utc_on_that_day_is_the_close():
    answer = {
        "history": [
            {"date": NOON_2025_03_31 - 86_400_000, "rate": 1.0},  # the day before
            {"date": NOON_2025_03_31 - 600_000, "rate": 2.0},  # 11:50
            {"date": NOON_2025_03_31 + 300_000, "rate": 3.0},  # 12:05
        ]
    }
    close = close_from_history("X", date(2025, 3, 31), answer, 1)
    assert isinstance(close, Close) and close.value["rate"] == 3.0
    assert close.value["ts"] == NOON_2025_03_31 + 300_000


@pytest.mark.parametrize(
    "history, reason",
    [
        ([], "empty history: the API returned no point for 12:00 UTC"),
        (
            [{"date": NOON_2025_03_31 - 86_400_000, "rate": 1.0}],
            "no point on 2025-03-31: the API returned 1 point(s), none on that UTC day",
        ),
        ([{"date": NOON_2025_03_31, "rate": None}], "null rate: the API's point at 12:00 UTC has rate null"),
        ([{"date": NOON_2025_03_31, "rate": 0}], "invalid rate: the API's point at 12:00 UTC has rate 0"),
        ([{"date": NOON_2025_03_31, "rate": "1.5"}], 'invalid rate: the API\'s point at 12:00 UTC has rate "1.5"'),
    ],
)
def test_unusable_answers_are_gaps_with_a_reason(history, reason):
    assert close_from_history("ETH", date(2025, 3, 31), {**META, "history": history}, 1) == Gap(
        "ETH", date(2025, 3, 31), reason
    )


def _report(stopped=None, resumes_at=None) -> BackfillReport:
    return BackfillReport(["BTC"], date(2025, 3, 1), date(2025, 3, 31), stopped=stopped, resumes_at=resumes_at)


def test_the_scheduled_job_wakes_at_the_next_close_or_when_credits_renew():
    now = at("2025-03-31T13:00:00")
    assert next_wakeup(_report(), now, MARGIN) == at("2025-04-01T12:05:00")
    assert next_wakeup(_report("budget", at("2025-04-01T00:00:00")), now, MARGIN) == at("2025-04-01T00:00:00")
    assert next_wakeup(_report("failed"), now, MARGIN) == at("2025-03-31T13:10:00")
    assert next_wakeup(_report("failed"), at("2025-04-01T12:01:00"), MARGIN) == at("2025-04-01T12:05:00")
    assert next_wakeup(_report("rejected"), now, MARGIN) is None
    assert next_wakeup(_report("stop"), now, MARGIN) is None


def test_the_summary_says_how_far_it_got_and_when_it_resumes():
    report = BackfillReport(
        ["BTC", "ETH"],
        date(2025, 3, 1),
        date(2025, 3, 10),
        already=4,
        delivered=5,
        gaps=1,
        credits_used=7,
        retries=1,
        stopped="budget",
        reason="refusing /coins/single/history: …",
        next_task=Task("ETH", date(2025, 3, 6)),
        resumes_at=at("2025-04-01T00:00:00"),
    )
    assert report.summary() == (
        "backfill 2025-03-01..2025-03-10: 2 coins × 10 days = 20 closes; 5 delivered, 1 gaps, "
        "4 already settled; 7 credits used, 1 retries. Stopped: refusing /coins/single/history: … "
        "Settled 10 of 20; next: ETH 2025-03-06. Resumes when credits renew at 2025-04-01 00:00 "
        "UTC: run again then (`coinstream produce historical` does so itself)."
    )


def test_off_a_terminal_progress_is_a_log_line_with_rate_and_eta(caplog):
    from coinstream.producers.historical.display import LogProgress, make_progress

    class Ticks:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    ticks = Ticks()
    progress = LogProgress(300, 100, "backfill 10 coins × 30 days", every_s=10.0, monotonic=ticks)
    with caplog.at_level("INFO", logger="coinstream.producers.historical"):
        ticks.now = 4.0
        progress.advance("BTC 2025-03-11")  # 101 settled, 4 s: no line yet
        ticks.now = 10.0
        progress.advance("ETH 2025-03-11")  # 102 settled, 10 s: a line
        for _ in range(48):
            progress.advance("BTC 2025-03-12")  # still 10 s: no line until the end
        progress.close()
    assert caplog.messages == [
        # 2 new in 10 s = 0.2/s; 198 left / 0.2 = 990 s.
        "backfill 10 coins × 30 days: 102/300 closes settled (0.2/s, ETA 990 s); last ETH 2025-03-11",
        # 50 new in 10 s = 5.0/s; 150 left / 5 = 30 s.
        "backfill 10 coins × 30 days: 150/300 closes settled (5.0/s, ETA 30 s); last BTC 2025-03-12",
    ]
    assert isinstance(make_progress(1, 0, "x", stream=io.StringIO()), LogProgress)  # not a tty


def test_on_a_terminal_progress_is_a_bar_of_coins_times_days():
    from coinstream.producers.historical.display import BarProgress, make_progress

    stream = io.StringIO()
    bar = make_progress(300, 120, "backfill 10 coins × 30 days", show_bar=True, stream=stream)
    assert isinstance(bar, BarProgress)
    for _ in range(30):
        bar.advance("ETH 2025-03-14")
    bar.close()
    last = stream.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("backfill 10 coins × 30 days:  50%")
    assert "150/300" in last and "close/s" in last and "ETH 2025-03-14" in last
