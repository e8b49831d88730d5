"""Coin records as the simulated API returns them: rate, volume, cap, liquidity, deltas and metadata.

Why separate from the server: the HTTP layer decides *which* coins and *when*; this module decides
*what* a coin looks like at an instant, as a pure function of (seed, coin, time, currency), so the
same numbers come out of `/coins/map`, `/coins/single`, `/coins/list` and `/coins/single/history`.

Fields at instant ``t`` (``n`` = step index of ``t``, ``fx`` = currency factor, see `walk`):

- ``rate`` = `walk.rate_at` (10 significant digits).
- ``volume`` = ``round(P_usd(t) * circulating * TURNOVER[class] * (1 + 0.25 * v(code+"#volume", 16, n)) * fx)``
  where ``P_usd(t)`` is the USD rate.
- ``cap`` = ``round(rate * circulating)``.
- ``liquidity`` = ``round(volume * 0.02 * (1 + 0.1 * v(code+"#liquidity", 14, n)))``.
- ``delta.<period>`` = ``round(rate(t) / rate(t - period), 4)`` for hour, day, week (7 d), month (30 d),
  quarter (90 d) and year (365 d): a ratio, 1 = unchanged.
- meta: ``age`` = whole days since the listing date, ``allTimeHighUSD`` = the larger of the coin's
  reference price times `ATH_FACTOR[class]` and its current USD rate; exchanges/markets/pairs shrink
  with rank; supplies and categories come from the catalog.
"""

from __future__ import annotations

from typing import Any

from coinstream.producers.sim import walk
from coinstream.producers.sim.catalog import CoinSpec

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DELTA_PERIODS_MS: dict[str, int] = {
    "hour": HOUR_MS,
    "day": DAY_MS,
    "week": 7 * DAY_MS,
    "month": 30 * DAY_MS,
    "quarter": 90 * DAY_MS,
    "year": 365 * DAY_MS,
}
TURNOVER: dict[str, float] = {"stable": 0.45, "major": 0.03, "large": 0.05, "mid": 0.08, "meme": 0.15}
ATH_FACTOR: dict[str, float] = {"stable": 1.05, "major": 1.13, "large": 2.5, "mid": 4.0, "meme": 5.0}
SYMBOLS: dict[str, str] = {"BTC": "₿", "ETH": "Ξ", "USDT": "₮", "DOGE": "Ð", "LTC": "Ł", "XRP": "✕"}
ICON_BASE = "https://lcw.nyc3.cdn.digitaloceanspaces.com/production/currencies"


class Market:
    """Prices and records for one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def rate(self, spec: CoinSpec, t_ms: int, currency: str = "USD") -> float:
        return walk.rate_at(self.seed, spec.code, spec.price, spec.volatility, t_ms, currency)

    def figures(self, spec: CoinSpec, t_ms: int, currency: str = "USD") -> dict[str, Any]:
        """rate, volume, cap and liquidity at t_ms (the fields of a history point, minus `date`)."""
        n = walk.step_index(t_ms)
        rate = self.rate(spec, t_ms, currency)
        usd = rate if currency == "USD" else self.rate(spec, t_ms, "USD")
        fx = walk.CURRENCY_FACTORS[currency]
        wobble = 1 + 0.25 * walk.value_noise(self.seed, spec.code + "#volume", 16, n)
        volume = round(usd * spec.circulating * TURNOVER[spec.volatility] * wobble * fx)
        liquidity = round(volume * 0.02 * (1 + 0.1 * walk.value_noise(self.seed, spec.code + "#liquidity", 14, n)))
        return {"rate": rate, "volume": volume, "cap": round(rate * spec.circulating), "liquidity": liquidity}

    def deltas(self, spec: CoinSpec, t_ms: int, currency: str = "USD") -> dict[str, float]:
        now = self.rate(spec, t_ms, currency)
        return {
            name: round(now / self.rate(spec, t_ms - period, currency), 4) for name, period in DELTA_PERIODS_MS.items()
        }

    def meta(self, spec: CoinSpec, t_ms: int) -> dict[str, Any]:
        """The fields `meta: true` adds."""
        lower = spec.code.lower()
        exchanges = max(3, round(350 / spec.rank**0.5))
        return {
            "name": spec.name,
            "symbol": SYMBOLS.get(spec.code),
            "rank": spec.rank,
            "age": max(0, (t_ms - spec.listed_ms) // DAY_MS),
            "color": spec.color,
            "png32": f"{ICON_BASE}/32/{lower}.png",
            "png64": f"{ICON_BASE}/64/{lower}.png",
            "webp32": f"{ICON_BASE}/32/{lower}.webp",
            "webp64": f"{ICON_BASE}/64/{lower}.webp",
            "exchanges": exchanges,
            "markets": exchanges * 7,
            "pairs": exchanges * 3,
            "allTimeHighUSD": max(
                float(format(spec.price * ATH_FACTOR[spec.volatility], ".10g")), self.rate(spec, t_ms, "USD")
            ),
            "circulatingSupply": spec.circulating,
            "totalSupply": spec.total,
            "maxSupply": spec.max_supply,
            "categories": list(spec.categories),
        }

    def coin(
        self, spec: CoinSpec, t_ms: int, currency: str = "USD", meta: bool = False, with_code: bool = True
    ) -> dict[str, Any]:
        """A coin as `/coins/map` (with code) or `/coins/single` (without) returns it."""
        record: dict[str, Any] = {"code": spec.code} if with_code else {}
        if meta:
            record.update(self.meta(spec, t_ms))
        record.update(self.figures(spec, t_ms, currency))
        record["delta"] = self.deltas(spec, t_ms, currency)
        return record

    def history_point(self, spec: CoinSpec, t_ms: int, currency: str = "USD") -> dict[str, Any]:
        return {"date": t_ms, **self.figures(spec, t_ms, currency)}
