"""The dashboard spec loads, covers the views it must, and a malformed spec is refused by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from coinstream.clickhouse.view_files import VIEWS_DIR
from coinstream.metabase.spec import DEFAULT_SPEC, SpecError, load_spec

# The views whose spec (clickhouse/views/<view>.yml) says dashboards read them.
VIEWS = sorted(path.stem for path in VIEWS_DIR.glob("*.yml") if yaml.safe_load(path.read_text())["dashboard"] is True)


def test_the_spec_uses_every_dashboard_view_and_each_display():
    spec = load_spec()
    used = {name for card in spec.cards for name in re.findall(r"\bFROM\s+(\w+)", card.sql)}
    assert set(VIEWS) <= used
    assert {card.display for card in spec.cards} == {"scalar", "table", "line", "bar", "combo"}
    assert [t.label for t in spec.live.timeframes] == ["1m", "5m", "15m", "1h", "4h", "1d"]
    coin = spec.parameters[0]
    assert (coin.slug, coin.default, coin.values_card, coin.values_column) == ("coin", "BTC", "market_overview", "code")
    # Every coin-dependent card filters through the optional clause, so it also works unfiltered.
    for card in spec.cards:
        if card.tags:
            assert "[[ AND code = {{coin}} ]]" in card.sql, card.key


def broken(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(DEFAULT_SPEC.read_text())
    change(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def card(raw: dict, key: str) -> dict:
    return next(c for c in raw["cards"] if c["key"] == key)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda raw: card(raw, "latest_rate")["layout"].update(col=10),
            "card 'latest_rate': layout overlaps card 'market_overview'",
        ),
        (
            lambda raw: card(raw, "ohlc_1m").update(sql="SELECT 1 WHERE x = {{currency}}"),
            "card 'ohlc_1m': template tag(s) currency match no parameter",
        ),
        (
            lambda raw: card(raw, "ohlc_1m").update(display="candlestick"),
            "card 'ohlc_1m': display must be one of bar, combo, line, scalar, table",
        ),
        (
            lambda raw: card(raw, "ohlc_1m")["visualization"].update({"graph.metrics": ["volume"]}),
            "card 'ohlc_1m': graph.metrics names unknown column(s) volume",
        ),
        (lambda raw: raw["cards"].append(dict(card(raw, "ohlc_1m"), name="Other")), "duplicate card key(s): ohlc_1m"),
        (lambda raw: raw["live"]["candlestick"]["timeframes"][0].update(card="nope"), "timeframe '1m': no card 'nope'"),
        (
            lambda raw: raw["live"]["candlestick"]["timeframes"][1].update(card="market_overview"),
            "timeframe '5m': card 'market_overview' lacks candle column(s) bucket_start, open, high, low, close",
        ),
        (lambda raw: raw["parameters"][0].pop("default"), "parameter 'coin': a required parameter needs a default"),
        (lambda raw: card(raw, "ohlc_1m").pop("columns"), "card 'ohlc_1m': missing 'columns'"),
        (
            lambda raw: card(raw, "ohlc_1m")["layout"].update(size_x=13),
            "card 'ohlc_1m': layout does not fit the 24-column grid",
        ),
    ],
)
def test_a_malformed_spec_is_refused_naming_the_object(tmp_path, change, message):
    path = broken(tmp_path, change)
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert str(error.value) == f"{path}: {message}"


def test_unreadable_spec(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("cards: [unclosed")
    with pytest.raises(SpecError, match="cannot read the dashboard spec"):
        load_spec(path)
