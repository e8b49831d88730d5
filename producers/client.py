"""The LiveCoinWatch HTTP client: one `requests.Session`, timeouts, bounded retries, credit accounting.

Why this shape:
- Every LiveCoinWatch endpoint is a JSON POST with the key in the `x-api-key` header, so one
  `_call` does the HTTP work and the public methods only build bodies and check the answer's shape.
- Retries (tenacity) cover what a later attempt can fix — 429, 5xx, connection errors, timeouts and
  malformed bodies — with exponential backoff plus jitter, bounded attempts, and the server's
  `Retry-After` honoured (a wait longer than the policy's maximum ends the attempts instead of
  hanging). 400/401/403/404… are answered the same way every time: raised at once, with the API's
  error description, never the key.
- Each attempt is a request, and each request costs a credit: the `CreditGuard` counts attempts,
  starts from `/credits` (read once, before the first keyed call) and refuses a call over budget.
- `received_at_ms` is taken when the complete response has arrived: the producers' `fetched_at`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, cast

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from coinstream.common.settings import Settings, setting_default
from coinstream.producers.credits import CreditCounter
from coinstream.producers.errors import (
    LcwApiError,
    LcwError,
    LcwGaveUpError,
    LcwMalformedResponse,
    LcwRejectedError,
    LcwTransientError,
    LcwTransportError,
    redact,
)
from coinstream.producers.metrics import ProducerMetrics

log = logging.getLogger(__name__)

# Sent as x-api-key when no LCW_API_KEY is set: the simulated API accepts any non-empty key.
SIMULATED_API_KEY = "coinstream-simulated"
RETRYABLE_STATUSES = frozenset({429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. Tests use tiny waits; production the defaults."""

    attempts: int = setting_default("lcw_retry_attempts")
    backoff_s: float = setting_default("lcw_retry_backoff_s")
    max_wait_s: float = setting_default("lcw_retry_max_wait_s")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.lcw_retry_attempts, settings.lcw_retry_backoff_s, settings.lcw_retry_max_wait_s)

    def backoff(self, attempt: int) -> float:
        """Wait after failed attempt number `attempt` (1-based): exponential, half of it jittered."""
        base = min(self.max_wait_s, self.backoff_s * 2.0 ** (attempt - 1))
        return base / 2 + random.uniform(0, base / 2)


@dataclass(frozen=True)
class ApiResponse:
    """A successful answer: the decoded JSON and when it arrived."""

    endpoint: str
    data: Any
    received_at_ms: int
    attempts: int


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class LiveCoinWatchClient:
    """A client for the LiveCoinWatch API (or any compatible server, such as the simulated one)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        credits: CreditCounter | None = None,
        retry: RetryPolicy = RetryPolicy(),
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 15.0,
        metrics: ProducerMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key or SIMULATED_API_KEY
        self.credits = credits
        self.retry = retry
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.metrics = metrics or ProducerMetrics()
        self._sleep = sleep
        self.session = session or requests.Session()
        self.session.headers.update({"content-type": "application/json", "accept": "application/json"})

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        credits: CreditCounter | None = None,
        metrics: ProducerMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> LiveCoinWatchClient:
        # uses_simulated_api is true whenever the key is None; the explicit check narrows it for mypy.
        key = (
            None
            if settings.uses_simulated_api or settings.lcw_api_key is None
            else settings.lcw_api_key.get_secret_value()
        )
        return cls(
            settings.effective_lcw_base_url,
            key,
            credits=credits,
            retry=RetryPolicy.from_settings(settings),
            connect_timeout_s=settings.lcw_connect_timeout_s,
            read_timeout_s=settings.lcw_read_timeout_s,
            metrics=metrics,
            sleep=sleep,
        )

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> LiveCoinWatchClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- endpoints -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """`/status`: no key, no credit; `{}` when the API is up."""
        # ApiResponse.data is the decoded JSON (Any); _call has already checked it is a dict, and a
        # JSON object's keys are always str.
        return cast("dict[str, Any]", self._call("/status", {}, dict, keyed=False).data)

    def credits_status(self) -> dict[str, int]:
        """`/credits`: `{"dailyCreditsRemaining": N, "dailyCreditsLimit": N}`; updates the guard."""
        data = self._call("/credits", {}, dict).data
        try:
            remaining, limit = int(data["dailyCreditsRemaining"]), int(data["dailyCreditsLimit"])
        except (KeyError, TypeError, ValueError):
            raise LcwMalformedResponse("LiveCoinWatch sent /credits without the two credit counts") from None
        if self.credits is not None:
            self.credits.sync(remaining, limit)
            self.metrics.credits_remaining.set(self.credits.remaining)
        return {"dailyCreditsRemaining": remaining, "dailyCreditsLimit": limit}

    def coins_map(
        self,
        codes: list[str] | tuple[str, ...],
        currency: str = "USD",
        *,
        meta: bool = True,
        sort: str = "rank",
        order: str = "ascending",
        offset: int = 0,
        limit: int = 0,
    ) -> ApiResponse:
        """`/coins/map`: the coins among `codes` the API knows (at most 100 per call)."""
        body = {
            "codes": list(codes),
            "currency": currency,
            "sort": sort,
            "order": order,
            "offset": offset,
            "limit": limit,
            "meta": meta,
        }
        return self._call("/coins/map", body, list)

    def coins_list(
        self,
        currency: str = "USD",
        *,
        meta: bool = True,
        sort: str = "rank",
        order: str = "ascending",
        offset: int = 0,
        limit: int = 10,
    ) -> ApiResponse:
        body = {"currency": currency, "sort": sort, "order": order, "offset": offset, "limit": limit, "meta": meta}
        return self._call("/coins/list", body, list)

    def coins_single(self, code: str, currency: str = "USD", *, meta: bool = True) -> ApiResponse:
        return self._call("/coins/single", {"currency": currency, "code": code, "meta": meta}, dict)

    def coin_history(
        self, code: str, start_ms: int, end_ms: int, currency: str = "USD", *, meta: bool = True
    ) -> ApiResponse:
        """`/coins/single/history`: points in [start, end]; start = end asks for one instant."""
        body = {"currency": currency, "code": code, "start": start_ms, "end": end_ms, "meta": meta}
        response = self._call("/coins/single/history", body, dict)
        if not isinstance(response.data.get("history"), list):
            raise LcwMalformedResponse("LiveCoinWatch sent /coins/single/history without a history array")
        return response

    # ---- the request loop ----------------------------------------------------------------------

    def _call(self, endpoint: str, body: dict[str, Any], shape: type, keyed: bool = True) -> ApiResponse:
        if keyed and self.credits is not None and not self.credits.synced and endpoint != "/credits":
            self.credits_status()
        attempts = 0

        def attempt() -> ApiResponse:
            nonlocal attempts
            attempts += 1
            return self._attempt(endpoint, body, shape, keyed, attempts)

        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            retry=retry_if_exception(self._worth_retrying),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(endpoint, state),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except LcwError as error:
            if not error.retryable:
                raise
            reason = ""
            retry_after = getattr(error, "retry_after_s", None)
            if retry_after is not None and retry_after > self.retry.max_wait_s:
                reason = (
                    f"the API asked to wait {retry_after:.0f} s, longer than "
                    f"LCW_RETRY_MAX_WAIT_S = {self.retry.max_wait_s:g} s"
                )
            raise LcwGaveUpError(endpoint, attempts, error, reason) from None

    def _worth_retrying(self, error: BaseException) -> bool:
        if not isinstance(error, LcwError) or not error.retryable:
            return False
        retry_after = getattr(error, "retry_after_s", None)
        return retry_after is None or retry_after <= self.retry.max_wait_s

    def _wait(self, state: RetryCallState) -> float:
        wait = self.retry.backoff(state.attempt_number)
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(error, "retry_after_s", None)
        return max(wait, retry_after) if retry_after is not None else wait

    def _log_retry(self, endpoint: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        reason = _retry_reason(error)
        self.metrics.api_retries.labels(reason).inc()
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s failed (%s); retry %d of %d in %.3f s",
            endpoint,
            error,
            state.attempt_number,
            self.retry.attempts - 1,
            wait,
        )

    def _attempt(self, endpoint: str, body: dict[str, Any], shape: type, keyed: bool, attempt: int) -> ApiResponse:
        headers = {}
        if keyed:
            if self.credits is not None:
                self.credits.reserve(endpoint)
                self.metrics.credits_remaining.set(self.credits.remaining)
            self.metrics.credits_used.inc()
            headers["x-api-key"] = self._key
        try:
            response = self.session.post(
                f"{self.base_url}{endpoint}",
                data=json.dumps(body),
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout as error:
            self.metrics.api_requests.labels(endpoint, "timeout").inc()
            raise LcwTransportError(f"{endpoint} timed out ({type(error).__name__})") from None
        except requests.RequestException as error:
            self.metrics.api_requests.labels(endpoint, "connection_error").inc()
            raise LcwTransportError(redact(f"{endpoint} could not be reached: {error}", self._key)) from None
        received_at_ms = time.time_ns() // 1_000_000
        if response.status_code != 200:
            self.metrics.api_requests.labels(endpoint, str(response.status_code)).inc()
            raise self._api_error(endpoint, response)
        try:
            data = response.json()
        except ValueError:
            self.metrics.api_requests.labels(endpoint, "malformed").inc()
            raise LcwMalformedResponse(
                f"{endpoint} answered 200 with a body that is not JSON ({len(response.content)} bytes)"
            ) from None
        if not isinstance(data, shape):
            self.metrics.api_requests.labels(endpoint, "malformed").inc()
            raise LcwMalformedResponse(
                f"{endpoint} answered 200 with a JSON {type(data).__name__}, expected {shape.__name__}"
            )
        self.metrics.api_requests.labels(endpoint, "ok").inc()
        return ApiResponse(endpoint, data, received_at_ms, attempt)

    def _api_error(self, endpoint: str, response: requests.Response) -> LcwApiError:
        """Parse the API's error body (`{"error": {"code", "status", "description"}}`) into an exception."""
        code, status_text, description = None, response.reason or "", ""
        try:
            error = response.json().get("error", {})
            if isinstance(error, dict):
                code = error.get("code") if isinstance(error.get("code"), int) else None
                status_text = str(error.get("status") or status_text)
                description = str(error.get("description") or "")
        except (ValueError, AttributeError):
            description = response.text[:200].strip()
        description = redact(description, self._key)
        status_text = redact(status_text, self._key)
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            return LcwTransientError(
                endpoint, status, code, status_text, description, parse_retry_after(response.headers.get("Retry-After"))
            )
        return LcwRejectedError(endpoint, status, code, status_text, description)


def _retry_reason(error: BaseException | None) -> str:
    if isinstance(error, LcwApiError):
        return str(error.status)
    if isinstance(error, LcwMalformedResponse):
        return "malformed"
    if isinstance(error, LcwTransportError):
        return "timeout" if "timed out" in str(error) else "connection"
    return "other"
