"""The reason behind a transport failure, as the operating system put it.

Why shared: HTTP and database client libraries wrap the OSError that says what really happened
("Connection refused", "Name or service not known") in exceptions whose text carries URLs and
library detail; the commands and stages that report such failures want only that innermost reason.
"""

from __future__ import annotations


def os_reason(error: BaseException) -> str | None:
    """The strerror of the innermost OSError (with one) in the error's cause/context chain, or None."""
    reason, seen = None, set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        current = current.__cause__ or current.__context__
    return reason
