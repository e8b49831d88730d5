"""`coinstream up`'s status line, from real metrics endpoints serving the producer's, the
engine's and the loader's own registries (the line inside a running stack is checked in tests/test_e2e.py)."""

from __future__ import annotations

import itertools

from coinstream.clickhouse.loader.metrics import LoaderMetrics
from coinstream.common.metrics_http import serve_metrics
from coinstream.common.settings import load_settings
from coinstream.ksql.metrics import EngineMetrics
from coinstream.local_broker import free_port
from coinstream.producers.metrics import ProducerMetrics
from coinstream.stack.status import Snapshot, StatusEndpoints, increase, metrics_urls, render, take_snapshot


def clock(*instants: float):
    values = iter(instants)
    return lambda: next(values)


def test_line_from_two_scrapes_of_the_producer_and_loader_endpoints():
    producer, loader = ProducerMetrics(), LoaderMetrics()
    with (
        serve_metrics(producer.registry, free_port()) as p_endpoint,
        serve_metrics(loader.registry, free_port()) as l_endpoint,
    ):
        producer.records_delivered.labels("coins_current_full").inc(100)
        producer.credits_remaining.set(9_400)
        loader.inserted("coins_current_full", 100)
        loader.inserted("ohlc_by_minute", 20)
        loader.rejected("coins_current_full", "bad JSON")
        loader.report({("coins_current_full", 0): 7, ("ohlc_by_minute", 0): 3})
        first = take_snapshot(StatusEndpoints(p_endpoint.url, l_endpoint.url), clock=clock(50.0))
        assert first == Snapshot(at=50.0, delivered=100, credits_left=9_400, loaded=121, lag=10)

        # 10 s later: 250 more records acknowledged, 1,250 more rows and 10 error rows landed.
        producer.records_delivered.labels("coins_current_full").inc(250)
        producer.credits_remaining.set(9_375)
        loader.inserted("mov_avg_60s", 1_250)
        for _ in range(10):
            loader.rejected("mov_avg_60s", "bad key")
        loader.report({("coins_current_full", 0): 0, ("ohlc_by_minute", 0): 1_234})
        second = take_snapshot(StatusEndpoints(p_endpoint.url, l_endpoint.url), clock=clock(60.0))

    assert render(first, second) == ("25.0 events/s, 126.0 rows/s loaded, consumer lag 1,234, 9,375 credits left")
    assert render(first, second, {"ksql": 0, "loader": 2, "producer": 1}) == (
        "25.0 events/s, 126.0 rows/s loaded, consumer lag 1,234, 9,375 credits left, restarts: loader 2, producer 1"
    )


def test_restarted_processes_count_from_zero_and_report_nothing_before_their_first_figures():
    before = Snapshot(at=0.0, delivered=5_000, credits_left=100, loaded=900, lag=4)
    # Fresh processes: counters at 0, no /credits read yet, no lag reported yet.
    producer, loader = ProducerMetrics(), LoaderMetrics()
    with (
        serve_metrics(producer.registry, free_port()) as p_endpoint,
        serve_metrics(loader.registry, free_port()) as l_endpoint,
    ):
        producer.records_delivered.labels("coins_current_full").inc(40)
        loader.inserted("coins_current_full", 20)
        after = take_snapshot(StatusEndpoints(p_endpoint.url, l_endpoint.url), clock=clock(4.0))
    assert after == Snapshot(at=4.0, delivered=40, credits_left=after.credits_left, loaded=20, lag=None)
    assert render(before, after) == (
        "10.0 events/s, 5.0 rows/s loaded, consumer lag not reported yet, credits left unknown"
    )
    assert increase(None, 3) == 3 and increase(5, 3) == 3 and increase(3, 5) == 2


def test_a_dead_endpoint_is_named_and_the_rest_still_reported():
    loader = LoaderMetrics()
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    with serve_metrics(loader.registry, free_port()) as endpoint:
        loader.inserted("coins_current_full", 30)
        loader.report({("coins_current_full", 0): 0})
        ticks = itertools.count(0.0, 3.0)
        first = take_snapshot(StatusEndpoints(dead, endpoint.url), clock=lambda: next(ticks))
        loader.inserted("coins_current_full", 60)
        second = take_snapshot(StatusEndpoints(dead, endpoint.url), clock=lambda: next(ticks))
    assert first.producer_error == "cannot connect (Connection refused)"
    assert render(first, second) == (
        "producer metrics unavailable (cannot connect (Connection refused)), 20.0 rows/s loaded, consumer lag 0"
    )


def test_the_engines_lag_is_added_with_each_share_named():
    loader, engine = LoaderMetrics(), EngineMetrics()
    with (
        serve_metrics(loader.registry, free_port()) as l_endpoint,
        serve_metrics(engine.registry, free_port()) as e_endpoint,
    ):
        loader.inserted("ohlc_by_minute", 40)
        loader.report({("ohlc_by_minute", 0): 3, ("mov_avg_60s", 0): 2})
        first = take_snapshot(StatusEndpoints(None, l_endpoint.url, e_endpoint.url), clock=clock(0.0))
        engine.set_lag({("coins_current_full", 0): 30, ("coins_current_full", 1): 12})
        loader.inserted("ohlc_by_minute", 80)
        second = take_snapshot(StatusEndpoints(None, l_endpoint.url, e_endpoint.url), clock=clock(2.0))
    # The engine had not reported a lag yet at the first scrape: only the loader's is shown.
    assert first == Snapshot(at=0.0, loaded=40, lag=5, engine_lag=None)
    assert render(Snapshot(at=-2.0, loaded=0), first) == "20.0 rows/s loaded, consumer lag 5"
    assert second == Snapshot(at=2.0, loaded=120, lag=5, engine_lag=42)
    assert render(first, second) == "40.0 rows/s loaded, consumer lag 47 (engine 42, loader 5)"


def test_an_unreachable_engine_endpoint_is_named():
    loader = LoaderMetrics()
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    with serve_metrics(loader.registry, free_port()) as endpoint:
        loader.report({("ohlc_by_minute", 0): 0})
        first = take_snapshot(StatusEndpoints(None, endpoint.url, dead), clock=clock(0.0))
        second = take_snapshot(StatusEndpoints(None, endpoint.url, dead), clock=clock(1.0))
    assert render(first, second) == (
        "0.0 rows/s loaded, consumer lag 0, engine metrics unavailable (cannot connect (Connection refused))"
    )


def test_the_stack_scrapes_the_engine_only_where_it_runs(isolated_env):
    assert metrics_urls(load_settings()) == StatusEndpoints(
        "http://127.0.0.1:9465/metrics", "http://127.0.0.1:9464/metrics", "http://127.0.0.1:9466/metrics"
    )
    isolated_env.setenv("KSQLDB_URL", "http://ksqldb.internal:8088")
    isolated_env.setenv("PRODUCER_METRICS_PORT", "0")
    assert metrics_urls(load_settings()) == StatusEndpoints(None, "http://127.0.0.1:9464/metrics", None)
