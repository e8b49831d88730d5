"""Run the spec's cards on ClickHouse for one coin and timeframe, as JSON-ready snapshots.

Why a module of its own: this is the only place the local dashboard touches ClickHouse. It runs the
very SQL Metabase runs (the spec's cards), with the coin bound as a ClickHouse query parameter
(`metabase.native.bind`) rather than spliced into the text, as the read-only user
(settings.clickhouse_target(readonly=True)). A failing card or an unreachable server becomes an
error message in the snapshot (without the password), never an exception that would end the
page's stream: the page shows the error and the next poll tries again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import math
import re
import threading
from typing import Any

from coinstream.common.settings import ClickHouseTarget
from coinstream.metabase.native import bind
from coinstream.metabase.spec import Card, DashboardSpec

COIN_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def json_value(value: Any) -> Any:
    """A ClickHouse value as JSON: times as 'YYYY-MM-DD HH:MM:SS[.fff]' UTC, non-finite floats as null.

    Times carry no zone suffix because plotly.js reads such strings as they are (every time here
    is UTC, and the page says so).
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        text = value.isoformat(sep=" ", timespec="milliseconds")
        return text[:-4] if text.endswith(".000") else text
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return json_value(float(value))
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    return value


class CardSource:
    """Queries the cards of one spec against one ClickHouse; safe to call from several threads."""

    def __init__(self, spec: DashboardSpec, target: ClickHouseTarget, query_timeout_s: float = 30.0) -> None:
        self.spec = spec
        self.target = target
        self.query_timeout_s = query_timeout_s
        self._client: Any = None
        self._lock = threading.Lock()
        source_keys = {timeframe.card for timeframe in spec.live.timeframes}
        self.grid_cards = tuple(card for card in spec.cards if card.key not in source_keys)

    def cards_for(self, timeframe: str) -> tuple[Card, ...]:
        """The grid's cards plus the candle card of `timeframe` (and its overlay's card)."""
        chosen = next(t for t in self.spec.live.timeframes if t.label == timeframe)
        keys = [card.key for card in self.grid_cards] + [chosen.card]
        if chosen.overlay is not None and chosen.overlay.card not in keys:
            keys.append(chosen.overlay.card)
        return tuple(self.spec.card(key) for key in keys)

    def snapshot(self, coin: str, timeframe: str) -> dict[str, Any]:
        """Every card the page shows for this coin and timeframe: columns and rows, or an error."""
        cards: dict[str, Any] = {}
        errors: dict[str, str] = {}
        with self._lock:
            try:
                client = self._connect()
                for card in self.cards_for(timeframe):
                    sql, parameters = bind(card.sql, {"coin": coin})
                    try:
                        result = client.query(sql, parameters=parameters)
                    except Exception as error:
                        if not self._is_server_error(error):
                            raise
                        errors[card.key] = self._reason(error)  # ClickHouse refused this card
                        continue
                    cards[card.key] = {
                        "columns": list(result.column_names),
                        "rows": [[json_value(value) for value in row] for row in result.result_rows],
                    }
            except Exception as error:  # unreachable, refused, bad credentials: show it, retry later
                self._drop_client()
                return {
                    "coin": coin,
                    "timeframe": timeframe,
                    "cards": {},
                    "errors": {},
                    "error": f"cannot reach ClickHouse at {self.target.http_url} as "
                    f"{self.target.username}: {self._reason(error)}",
                }
        return {"coin": coin, "timeframe": timeframe, "cards": cards, "errors": errors, "error": None}

    def close(self) -> None:
        with self._lock:
            self._drop_client()

    def _connect(self) -> Any:
        if self._client is None:
            import clickhouse_connect

            self._client = clickhouse_connect.get_client(
                **self.target.connect_kwargs(),
                autogenerate_session_id=False,
                connect_timeout=5,
                send_receive_timeout=self.query_timeout_s,
            )
        return self._client

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # A broken connection may fail to close; it is dropped either way.
            with contextlib.suppress(Exception):
                client.close()

    @staticmethod
    def _is_server_error(error: Exception) -> bool:
        """True when ClickHouse answered (a bad query), False when the transport failed."""
        return "server response" in str(error) or getattr(error, "code", None) is not None

    def _reason(self, error: BaseException) -> str:
        text = str(error)
        _, found, response = text.partition("server response: ")
        if found:
            text = response
        url_note = text.rfind(" (for url ")
        text = (text[:url_note] if url_note >= 0 else text).strip() or type(error).__name__
        if self.target.password:
            text = text.replace(self.target.password, "***")
        return text[:500]
