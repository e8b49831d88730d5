"""The simulated price walk: the rate of any coin at any instant as a pure function of (seed, coin, time).

Why a pure function: tests (and the historical backfill) must know what the simulated API answered
without asking it again, including for instants in the past. A walk that is stepped forward in
memory would depend on when the server started; this one does not. It is also O(levels) for any
instant, so `/coins/single/history` over a year costs no more per point than the current rate.

The formula (every operation below is IEEE-754 binary64, evaluated in exactly this order; a test
recomputes it from this text, not by calling this module):

1. Step. Rates change once per step of ``STEP_MS = 1000`` ms. The step index of an instant
   ``t_ms`` (epoch milliseconds, UTC) is ``n = floor(t_ms / 1000)`` (integer floor division, also for
   negative ``t_ms``). Every instant of a step has the same rate.

2. Uniform noise. For a text ``name``, an integer ``level`` and an integer knot index ``k``::

       u(name, level, k) = int.from_bytes(blake2b(f"{seed}|{name}|{level}|{k}".encode("utf-8"),
                                                  digest_size=8).digest(), "big") / 2**64 * 2 - 1

   (`seed` and `k` written as Python ``str(int)``; the division is a float division, so
   ``u`` lies in [-1, 1)).

3. Value noise at one level. With ``span = 2**level`` steps, ``k = n // span`` (floor) and
   ``r = n - k * span``::

       v(name, level, n) = a + (b - a) * (r / 2.0**level)      where a = u(name, level, k),
                                                                   b = u(name, level, k + 1)

   i.e. the level's knots sit every ``span`` steps and the value is linear between them.

4. Log-price. A coin has a level count ``L`` and a per-step scale ``sigma`` (see below)::

       x(code, n) = 0.0;  for level in 0, 1, …, L-1 (ascending):
                              x = x + (sigma * math.sqrt(2.0**level)) * v(code, level, n)

   Summing value noise whose amplitude grows with the square root of its span gives increments
   whose variance grows about linearly with the lag, like a random walk, up to ``2**(L-1)`` steps;
   beyond that the level count caps the excursion, so prices stay near their realistic level.

5. Rate. With the coin's reference price ``P`` (USD) and the currency's factor ``fx``
   (`CURRENCY_FACTORS`; 1.0 for USD)::

       rate(code, t_ms) = float(format(P * math.exp(x(code, n)) * fx, ".10g"))

   i.e. rounded to 10 significant digits.

Per-coin parameters: ``P`` and the volatility class are the coin's row in `producers.sim.catalog`;
the class gives::

    sigma = DAILY_VOLATILITY[class] / 320.0       L = LEVELS[class]

    class    DAILY_VOLATILITY   LEVELS
    stable   0.002              12
    major    0.03               24
    large    0.045              24
    mid      0.06               24
    meme     0.09               24

(320 calibrates the construction so that the standard deviation of one-day log-returns is about the
class's daily volatility.) Stablecoins use few levels and a tiny scale, so they stay within about
0.1 % of 1.

Other time-varying fields use the single-level value noise of step 3 under a derived name (see
`producers.sim.market`): volume uses ``v(code + "#volume", 16, n)`` and liquidity
``v(code + "#liquidity", 14, n)``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from hashlib import blake2b

STEP_MS = 1000

# Daily volatility (standard deviation of one-day log-returns) and level count per class.
DAILY_VOLATILITY: dict[str, float] = {
    "stable": 0.002,
    "major": 0.03,
    "large": 0.045,
    "mid": 0.06,
    "meme": 0.09,
}
LEVELS: dict[str, int] = {
    "stable": 12,  # knots up to ~34 min apart: fast mean reversion around 1
    "major": 24,  # up to ~97 days
    "large": 24,
    "mid": 24,
    "meme": 24,
}
SIGMA_CALIBRATION = 320.0

# Price of one USD in each supported currency (fixed: the simulation has no FX market).
CURRENCY_FACTORS: dict[str, float] = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 150.0,
    "CHF": 0.88,
    "CAD": 1.36,
    "AUD": 1.52,
}


def step_index(t_ms: int) -> int:
    """The step an instant belongs to (floor, also before 1970)."""
    return t_ms // STEP_MS


@lru_cache(maxsize=1 << 17)
def uniform(seed: int, name: str, level: int, k: int) -> float:
    """Step 2: a hash-derived uniform number in [-1, 1). Cached: neighbouring steps share knots."""
    digest = blake2b(f"{seed}|{name}|{level}|{k}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 2 - 1


def value_noise(seed: int, name: str, level: int, n: int) -> float:
    """Step 3: piecewise-linear noise with knots every 2**level steps, in [-1, 1)."""
    span = 1 << level
    k = n // span
    r = n - k * span
    a = uniform(seed, name, level, k)
    b = uniform(seed, name, level, k + 1)
    return a + (b - a) * (r / 2.0**level)


def log_price(seed: int, code: str, n: int, sigma: float, levels: int) -> float:
    """Step 4: the coin's log-price offset from its reference price at step n."""
    x = 0.0
    for level in range(levels):
        x = x + (sigma * math.sqrt(2.0**level)) * value_noise(seed, code, level, n)
    return x


def sigma_for(volatility_class: str) -> float:
    """The per-step scale of a volatility class."""
    return DAILY_VOLATILITY[volatility_class] / SIGMA_CALIBRATION


def rate_at(
    seed: int, code: str, reference_price: float, volatility_class: str, t_ms: int, currency: str = "USD"
) -> float:
    """Step 5: the coin's rate at instant t_ms, in `currency`, rounded to 10 significant digits."""
    n = step_index(t_ms)
    x = log_price(seed, code, n, sigma_for(volatility_class), LEVELS[volatility_class])
    return float(format(reference_price * math.exp(x) * CURRENCY_FACTORS[currency], ".10g"))
