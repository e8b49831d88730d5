"""ksqlDB's SQL types and how values of each type are represented in Python.

Why a module of its own: the parser turns type names into `SqlType`s, the compiler infers result
types with the same rules ksqlDB uses (integer vs. double arithmetic, decimal scale), and the
serdes coerce incoming JSON/DELIMITED values into the declared type. All three must agree.

Runtime representation: BOOLEAN bool, INTEGER/BIGINT int (wrapped to 32/64 bits like Java),
DOUBLE float, DECIMAL decimal.Decimal (quantized to the scale), STRING str, BYTES bytes,
TIMESTAMP int epoch milliseconds, DATE int days since epoch, TIME int milliseconds of day,
ARRAY list, MAP dict, STRUCT dict keyed by field name (declared order).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class SqlType:
    """A ksqlDB type. `element` is the ARRAY element or MAP value type; `key` the MAP key type."""

    base: str
    precision: int = 0
    scale: int = 0
    element: SqlType | None = None
    key: SqlType | None = None
    fields: tuple[tuple[str, SqlType], ...] = field(default=())

    def __str__(self) -> str:
        if self.base == "DECIMAL":
            return f"DECIMAL({self.precision}, {self.scale})"
        if self.base == "ARRAY":
            return f"ARRAY<{self.element}>"
        if self.base == "MAP":
            return f"MAP<{self.key}, {self.element}>"
        if self.base == "STRUCT":
            inner = ", ".join(f"`{name}` {typ}" for name, typ in self.fields)
            return f"STRUCT<{inner}>"
        return self.base

    @property
    def is_numeric(self) -> bool:
        return self.base in NUMERIC_BASES

    @property
    def is_integral(self) -> bool:
        return self.base in ("INTEGER", "BIGINT")

    @property
    def is_primitive(self) -> bool:
        return self.base not in ("ARRAY", "MAP", "STRUCT")


BOOLEAN = SqlType("BOOLEAN")
INTEGER = SqlType("INTEGER")
BIGINT = SqlType("BIGINT")
DOUBLE = SqlType("DOUBLE")
STRING = SqlType("STRING")
BYTES = SqlType("BYTES")
TIMESTAMP = SqlType("TIMESTAMP")
DATE = SqlType("DATE")
TIME = SqlType("TIME")
NULL = SqlType("NULL")  # the type of the NULL literal; assignable to anything

NUMERIC_BASES = ("INTEGER", "BIGINT", "DECIMAL", "DOUBLE")


def decimal_type(precision: int, scale: int) -> SqlType:
    if not 1 <= precision <= 38:
        raise ValueError(f"DECIMAL precision must be between 1 and 38: {precision}")
    if not 0 <= scale <= precision:
        raise ValueError(f"DECIMAL scale must be between 0 and the precision {precision}: {scale}")
    return SqlType("DECIMAL", precision, scale)


def array_of(element: SqlType) -> SqlType:
    return SqlType("ARRAY", element=element)


def map_of(key: SqlType, value: SqlType) -> SqlType:
    return SqlType("MAP", key=key, element=value)


def struct_of(fields: list[tuple[str, SqlType]]) -> SqlType:
    return SqlType("STRUCT", fields=tuple(fields))


SIMPLE_TYPE_NAMES: dict[str, SqlType] = {
    "BOOLEAN": BOOLEAN,
    "INT": INTEGER,
    "INTEGER": INTEGER,
    "BIGINT": BIGINT,
    "DOUBLE": DOUBLE,
    "VARCHAR": STRING,
    "STRING": STRING,
    "BYTES": BYTES,
    "TIMESTAMP": TIMESTAMP,
    "DATE": DATE,
    "TIME": TIME,
}


def decimal_for_integral(sql_type: SqlType) -> SqlType:
    """The DECIMAL an INTEGER/BIGINT widens to in decimal arithmetic (ksqlDB's DecimalUtil)."""
    return decimal_type(10, 0) if sql_type.base == "INTEGER" else decimal_type(19, 0)


# ---- integer wrapping (Java semantics) --------------------------------------------------------------------


def wrap_int(value: int) -> int:
    """Wrap to a signed 32-bit integer, as Java `int` arithmetic does on overflow."""
    return ((value + 2**31) & 0xFFFFFFFF) - 2**31


def wrap_long(value: int) -> int:
    """Wrap to a signed 64-bit integer, as Java `long` arithmetic does on overflow."""
    return ((value + 2**63) & 0xFFFFFFFFFFFFFFFF) - 2**63


# ---- Java-compatible text forms --------------------------------------------------------------------------


def java_double_str(value: float) -> str:
    """`Double.toString`: the shortest repr, in Java's layout (1.0, 1.0E10, 1.234E-5, NaN, Infinity)."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(value)
        if "e" in text or "E" in text:  # repr uses exponents from 1e16 only, but be safe
            text = format(value, "f")
        if "." not in text:
            text += ".0"
        return text
    sign, digits, exponent = Decimal(repr(magnitude)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    sci_exponent = len(digits) + int(exponent) - 1
    if len(text) == 1:
        # Java prints at least two significant digits, the pair closest to the exact value
        # (Double.MIN_VALUE is 4.9E-324, not 5.0E-324)
        exact = Decimal(magnitude).scaleb(-sci_exponent, context=_WIDE_CONTEXT)
        pair = exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP, context=_WIDE_CONTEXT)
        if pair < 10:
            text = str(pair).replace(".", "").rstrip("0") or "0"
    rest = text[1:] or "0"
    return f"{'-' if value < 0 else ''}{text[0]}.{rest}E{sci_exponent}"


def decimal_plain(value: Decimal) -> str:
    """BigDecimal.toPlainString: never scientific notation."""
    return format(value, "f")


# ---- coercion of external values (JSON/DELIMITED) into the declared type -------------------------------------


class CoercionError(ValueError):
    """A value cannot be represented in the declared column type."""


def _to_boolean(value: Any) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    raise CoercionError(f"Can't convert type. sourceType: {type(value).__name__}, requiredType: BOOLEAN")


def _integral(bits_min: int, bits_max: int, name: str) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if type(value) is int:
            result = value
        elif isinstance(value, bool):
            raise CoercionError(f"Can't convert type. sourceType: BOOLEAN, requiredType: {name}")
        elif isinstance(value, (float, Decimal)):
            if isinstance(value, float) and not math.isfinite(value):
                raise CoercionError(f"Can't convert {value} to {name}")
            result = int(value)
        elif isinstance(value, str):
            try:
                result = int(value.strip())
            except ValueError:
                raise CoercionError(f"Can't coerce string '{value}' to type {name}") from None
        else:
            raise CoercionError(f"Can't convert type. sourceType: {type(value).__name__}, requiredType: {name}")
        if not bits_min <= result <= bits_max:
            raise CoercionError(f"Value {result} out of range for {name}")
        return result

    return convert


def _to_double(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, bool):
        raise CoercionError("Can't convert type. sourceType: BOOLEAN, requiredType: DOUBLE")
    if isinstance(value, (int, Decimal)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise CoercionError(f"Can't coerce string '{value}' to type DOUBLE") from None
    raise CoercionError(f"Can't convert type. sourceType: {type(value).__name__}, requiredType: DOUBLE")


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double_str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return decimal_plain(value)
    import json

    return json.dumps(value, separators=(",", ":"), default=str)


_WIDE_CONTEXT = Context(prec=80)  # DECIMAL(38, s) needs more than the default 28 digits


def _decimal(precision: int, scale: int) -> Callable[[Any], Decimal]:
    quantum = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (precision - scale)

    def convert(value: Any) -> Decimal:
        if isinstance(value, bool):
            raise CoercionError("Can't convert type. sourceType: BOOLEAN, requiredType: DECIMAL")
        try:
            if isinstance(value, Decimal):
                number = value
            elif isinstance(value, float):
                number = Decimal(repr(value))
            elif isinstance(value, (int, str)):
                number = Decimal(str(value).strip() if isinstance(value, str) else value)
            else:
                raise CoercionError(f"Can't convert type. sourceType: {type(value).__name__}, requiredType: DECIMAL")
            result = number.quantize(quantum, rounding=ROUND_HALF_UP, context=_WIDE_CONTEXT)
        except InvalidOperation:
            raise CoercionError(f"Can't convert '{value}' to DECIMAL({precision}, {scale})") from None
        if abs(result) >= limit:
            raise CoercionError(f"Numeric field overflow: {value} does not fit DECIMAL({precision}, {scale})")
        return result

    return convert


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise CoercionError("Value is not a valid base64 string for BYTES") from None
    raise CoercionError(f"Can't convert type. sourceType: {type(value).__name__}, requiredType: BYTES")


def coercer(sql_type: SqlType) -> Callable[[Any], Any]:
    """A function turning an external (JSON-like) value into `sql_type`'s representation.

    `None` maps to `None`. Raises `CoercionError` for values ksqlDB's deserializer would reject.
    """
    base = sql_type.base
    if base == "BOOLEAN":
        inner: Callable[[Any], Any] = _to_boolean
    elif base == "INTEGER":
        inner = _integral(INT_MIN, INT_MAX, "INTEGER")
    elif base in ("BIGINT", "TIMESTAMP"):
        inner = _integral(LONG_MIN, LONG_MAX, base)
    elif base == "DATE":
        inner = _integral(INT_MIN, INT_MAX, "DATE")
    elif base == "TIME":
        inner = _integral(0, 86_400_000 - 1, "TIME")
    elif base == "DOUBLE":
        inner = _to_double
    elif base == "STRING":
        inner = _to_string
    elif base == "DECIMAL":
        inner = _decimal(sql_type.precision, sql_type.scale)
    elif base == "BYTES":
        inner = _to_bytes
    elif base == "ARRAY":
        element = coercer(sql_type.element)  # type: ignore[arg-type]  # an ARRAY type always has its element

        def inner(value: Any) -> list:
            if not isinstance(value, list):
                raise CoercionError(f"Can't convert type. sourceType: {type(value).__name__}, requiredType: ARRAY")
            return [element(item) for item in value]
    elif base == "MAP":
        key = coercer(sql_type.key)  # type: ignore[arg-type]  # a MAP type always has key and value types
        value_of = coercer(sql_type.element)  # type: ignore[arg-type]  # as above

        def inner(value: Any) -> dict:
            if not isinstance(value, dict):
                raise CoercionError(f"Can't convert type. sourceType: {type(value).__name__}, requiredType: MAP")
            return {key(k): value_of(v) for k, v in value.items()}
    elif base == "STRUCT":
        exact = {"DOUBLE": float, "STRING": str, "BOOLEAN": bool}
        converters = [(name, coercer(typ), exact.get(typ.base)) for name, typ in sql_type.fields]

        def inner(value: Any) -> dict:
            if not isinstance(value, dict):
                raise CoercionError(f"Can't convert type. sourceType: {type(value).__name__}, requiredType: STRUCT")
            upper = None
            result = {}
            for name, convert, python_type in converters:
                if name in value:
                    raw = value[name]
                else:
                    if upper is None:
                        upper = {str(k).upper(): v for k, v in value.items()}
                    raw = upper.get(name.upper())
                result[name] = raw if raw is None or type(raw) is python_type else convert(raw)
            return result
    elif base == "NULL":
        return lambda value: None
    else:  # pragma: no cover - every base is handled above
        raise ValueError(f"no coercion for {sql_type}")

    def convert(value: Any) -> Any:
        return None if value is None else inner(value)

    return convert
