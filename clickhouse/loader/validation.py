"""Typed field extraction from a decoded JSON object, raising `Rejected` with a precise reason.

Why strict: a row that lands must be right, because views aggregate it for a year. A message that
breaks the contract (clickhouse/schema/0001_landing_tables.sql) is rejected with a reason and kept
in the error table; it never crashes the loader and never becomes a 0 or an inf in a view.
Optional fields may be absent or null (unknown, kept as NULL), but when present they must have the
documented type.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import orjson

# DateTime64(3) holds 1900..2299; we accept epoch ms from 1970 up to 2200-01-01.
MAX_EPOCH_MS = 7_258_118_400_000
# Date holds 1970-01-01 .. 2149-06-06.
MAX_DAY_NUMBER = 65_535
UINT32_MAX = 4_294_967_295
MS_PER_DAY = 86_400_000


class Rejected(ValueError):
    """The message cannot land; `reason` says why (stored in the error table)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def kind(self) -> str:
        """The reason's category (the text before the first ':'), a metrics label."""
        return self.reason.split(":", 1)[0]


def decode_object(value: bytes | None, lower_keys: bool = False) -> dict[str, Any]:
    """The message value as a JSON object (keys lower-cased for ksqlDB's case-insensitive names)."""
    if value is None:
        raise Rejected("tombstone: the message has no value")
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise Rejected(f"bad JSON: {error}") from None
    if not isinstance(decoded, dict):
        raise Rejected(f"not a JSON object: got {type(decoded).__name__}")
    if lower_keys:
        return {str(key).lower(): item for key, item in decoded.items()}
    return decoded


def code_field(obj: dict[str, Any], name: str = "code") -> str:
    value = obj.get(name)
    if value is None or value == "":
        raise Rejected(f"missing code: field '{name}' is absent or empty")
    if not isinstance(value, str) or not value.strip():
        raise Rejected(f"bad code: field '{name}' is not a non-empty string")
    if len(value) > 64:
        raise Rejected(f"bad code: field '{name}' is longer than 64 characters")
    return value


def number_field(
    obj: dict[str, Any],
    name: str,
    *,
    required: bool = False,
    non_negative: bool = True,
) -> float | None:
    """A finite number (ints become floats); NULL/absent is None unless required."""
    value = obj.get(name)
    if value is None:
        if required:
            raise Rejected(f"missing {name}: field '{name}' is absent or null")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected(f"non-numeric {name}: field '{name}' is a {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise Rejected(f"non-numeric {name}: field '{name}' is not finite")
    if non_negative and number < 0:
        raise Rejected(f"negative {name}: field '{name}' is below 0")
    return number


def count_field(obj: dict[str, Any], name: str) -> int | None:
    """A whole number 0..2^32-1 (UInt32), or None when absent/null."""
    value = obj.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != int(value)
        or not 0 <= value <= UINT32_MAX
    ):
        raise Rejected(f"bad {name}: field '{name}' is not a whole number 0..{UINT32_MAX}")
    return int(value)


def text_field(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected(f"bad {name}: field '{name}' is not a string")
    return value


def text_list_field(obj: dict[str, Any], name: str) -> list[str]:
    value = obj.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Rejected(f"bad {name}: field '{name}' is not a list of strings")
    return value


def epoch_ms_field(obj: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    """Epoch milliseconds within what the DateTime64(3) columns and the views accept."""
    value = obj.get(name)
    if value is None:
        if required:
            raise Rejected(f"missing {name}: field '{name}' is absent or null")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Rejected(f"bad {name}: field '{name}' is not epoch milliseconds")
    millis = int(value)
    if not 0 <= millis < MAX_EPOCH_MS:
        raise Rejected(f"bad {name}: field '{name}' is outside 1970..2200")
    return millis


ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def day_number(value: Any, name: str) -> int:
    """Days since 1970-01-01 from 'YYYY-MM-DD' or from epoch ms (its UTC day)."""
    if isinstance(value, str):
        try:
            # Exactly the contract's form: Python 3.11's fromisoformat also reads "20240101" and
            # ISO week dates, which the message contract does not allow.
            if not ISO_DAY.fullmatch(value):
                raise ValueError(value)
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise Rejected(f"bad {name}: field '{name}' is not a YYYY-MM-DD date") from None
        number = (day - dt.date(1970, 1, 1)).days
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        number = int(value) // MS_PER_DAY
    else:
        raise Rejected(f"bad {name}: field '{name}' is neither YYYY-MM-DD nor epoch ms")
    if not 0 <= number <= MAX_DAY_NUMBER:
        raise Rejected(f"bad {name}: field '{name}' is outside 1970..2149")
    return number


# Field kinds for `typed_fields`: the common case is checked inline (one loop, no call per field),
# and anything unusual goes through the precise validators above, which accept it or raise.
NUMBER, COUNT, TEXT = 0, 1, 2


def typed_fields(obj: dict[str, Any], plan: tuple[tuple[str, int], ...]) -> list[Any]:
    """The optional fields of `plan` in order: non-negative numbers as float, UInt32 counts,
    strings; absent/null as None. Same rules as number_field/count_field/text_field, faster."""
    values: list[Any] = []
    append = values.append
    get = obj.get
    for name, kind in plan:
        value = get(name)
        if value is None:
            append(None)
            continue
        kind_of_value = type(value)
        if kind == NUMBER:
            # orjson never yields NaN or infinity, so a float >= 0 is valid as it is.
            if kind_of_value is float and value >= 0.0:
                append(value)
            elif kind_of_value is int and value >= 0:
                append(float(value))
            else:
                append(number_field(obj, name))
        elif kind == TEXT:
            append(value if kind_of_value is str else text_field(obj, name))
        elif kind_of_value is int and 0 <= value <= UINT32_MAX:
            append(value)
        else:
            append(count_field(obj, name))
    return values
