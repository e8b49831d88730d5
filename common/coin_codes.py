"""Coin codes as settings and command options accept them: one rule for both."""

from __future__ import annotations


def parse_coin_codes(text: str) -> tuple[str, ...]:
    """`"btc, eth,BTC"` -> `("BTC", "ETH")`: upper-cased, blanks dropped, first occurrence kept.

    A code is letters, digits and `_` (LiveCoinWatch writes some with underscores, e.g. `_BTC`);
    anything else, or no code at all, is a ValueError that does not repeat the input.
    """
    codes = tuple(dict.fromkeys(code.strip().upper() for code in text.split(",") if code.strip()))
    if not codes or any(not code.replace("_", "").isalnum() for code in codes):
        raise ValueError("expected comma-separated coin codes such as BTC,ETH")
    return codes
