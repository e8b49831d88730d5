"""What can go wrong talking to LiveCoinWatch, as exception types a caller can act on.

Why a hierarchy with a `retryable` flag: the client's retry loop, the producers and the CLI all
need the same decision — try again (429, 5xx, timeouts, connection errors, malformed bodies), stop
with a clear message (400/401/403/404…), or stop because the credit budget is spent. Messages name
the endpoint and the API's own error description, and never the API key: every text that could
echo it passes through `redact`.
"""

from __future__ import annotations

from datetime import datetime

REDACTED = "[redacted]"


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced (no-op without a secret)."""
    if secret:
        return text.replace(secret, REDACTED)
    return text


class LcwError(Exception):
    """Any failure talking to LiveCoinWatch (or the simulated API)."""

    retryable: bool = False


class LcwApiError(LcwError):
    """The API answered with an HTTP error status; its JSON error body is parsed into the fields."""

    def __init__(
        self,
        endpoint: str,
        status: int,
        code: int | None,
        status_text: str,
        description: str,
        retry_after_s: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.status = status
        self.code = code if code is not None else status
        self.status_text = status_text
        self.description = description
        self.retry_after_s = retry_after_s
        super().__init__(self._message())

    def _message(self) -> str:
        detail = f": {self.description}" if self.description else ""
        return f"LiveCoinWatch answered {self.status} {self.status_text} on {self.endpoint}{detail}"


class LcwRejectedError(LcwApiError):
    """A 4xx the API will answer again if asked again (400, 401, 403, 404, …): never retried."""

    def _message(self) -> str:
        detail = f" on {self.endpoint}: {self.description}" if self.description else f" on {self.endpoint}"
        if self.status == 401:
            return f"LiveCoinWatch rejected the API key ({self.status}){detail}"
        if self.status == 403:
            return f"LiveCoinWatch refused access with this API key ({self.status}){detail}"
        return f"LiveCoinWatch rejected the request ({self.status} {self.status_text}){detail}"


class LcwTransientError(LcwApiError):
    """429 or 5xx: worth another attempt after a wait (Retry-After when given)."""

    retryable = True


class LcwTransportError(LcwError):
    """No usable HTTP answer: connection refused or reset, connect or read timeout."""

    retryable = True


class LcwMalformedResponse(LcwError):
    """A 200 whose body is not the JSON shape the endpoint promises (truncated, HTML, wrong type)."""

    retryable = True


class LcwGaveUpError(LcwError):
    """Every allowed attempt failed with a retryable error; `last` is the final one."""

    def __init__(self, endpoint: str, attempts: int, last: LcwError, reason: str = "") -> None:
        self.endpoint = endpoint
        self.attempts = attempts
        self.last = last
        why = f" ({reason})" if reason else ""
        super().__init__(f"giving up on {endpoint} after {attempts} attempt(s){why}: {last}")


class CreditBudgetExceeded(LcwError):
    """One more request would spend more credits than the daily budget allows."""

    def __init__(self, message: str, renews_at: datetime) -> None:
        self.renews_at = renews_at
        super().__init__(message)
