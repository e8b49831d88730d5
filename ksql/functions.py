"""Scalar functions: argument type checking, result types and Python implementations.

Why a registry of resolvers: ksqlDB picks an implementation by argument types at statement time
(and rejects calls no implementation accepts), so each function here resolves once, when the
statement is compiled, to a result type and a plain Python callable. Literal arguments (format
patterns, time zones) are pre-compiled at that point so the per-record work is one call.

Every implementation follows ksqlDB's documented behaviour; where ksqlDB's behaviour is unclear
to us the function is not offered (unknown-to-us ksqlDB functions are "unsupported", names that
are not ksqlDB functions are "invalid").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from coinstream.ksql import timefmt
from coinstream.ksql.errors import InvalidStatement, KsqlError, UnsupportedStatement
from coinstream.ksql.types import (
    BIGINT,
    DOUBLE,
    INTEGER,
    NULL,
    STRING,
    TIMESTAMP,
    SqlType,
    wrap_int,
    wrap_long,
)

_NOT_LITERAL = object()


@dataclass
class Arg:
    """What resolution knows about one argument: its type and, for literals, its value."""

    type: SqlType
    literal: Any = _NOT_LITERAL

    @property
    def is_literal(self) -> bool:
        return self.literal is not _NOT_LITERAL


@dataclass
class Resolved:
    """A resolved call: result type, implementation, and whether a NULL argument short-cuts to NULL."""

    type: SqlType
    impl: Callable[..., Any]
    null_propagating: bool = True


class _Call:
    """Context for resolver error messages."""

    def __init__(self, name: str, args: list[Arg], line: int | None, column: int | None) -> None:
        self.name = name
        self.args = args
        self.line = line
        self.column = column

    def reject(self) -> KsqlError:
        types = ", ".join(str(arg.type) for arg in self.args)
        if any(arg.type.base in ("BYTES", "DATE", "TIME", "TIMESTAMP") for arg in self.args):
            # ksqlDB has overloads of many functions for these types that this engine does not implement
            return UnsupportedStatement(f"{self.name} with parameters ({types})", self.line, self.column)
        return InvalidStatement(f"Function '{self.name}' does not accept parameters ({types}).", self.line, self.column)

    def unsupported(self, what: str) -> UnsupportedStatement:
        return UnsupportedStatement(f"{self.name}: {what}", self.line, self.column)


def _is(arg: Arg, *bases: str) -> bool:
    return arg.type.base in bases or arg.type == NULL


def _numeric(arg: Arg) -> bool:
    return _is(arg, "INTEGER", "BIGINT", "DOUBLE", "DECIMAL")


def _widens_to(arg: Arg, target: SqlType) -> bool:
    """Implicit widening allowed for function parameters (INT -> BIGINT -> DOUBLE)."""
    base = arg.type.base
    if arg.type == NULL or arg.type == target:
        return True
    if target.base == "BIGINT":
        return base == "INTEGER"
    if target.base == "DOUBLE":
        return base in ("INTEGER", "BIGINT", "DECIMAL")
    return False


# ---- math -----------------------------------------------------------------------------------------------------


def _abs(call: _Call) -> Resolved:
    (arg,) = _arity(call, 1)
    base = arg.type.base
    if base == "INTEGER":
        return Resolved(INTEGER, lambda v: wrap_int(abs(v)))
    if base == "BIGINT":
        return Resolved(BIGINT, lambda v: wrap_long(abs(v)))
    if base in ("DOUBLE", "DECIMAL"):
        return Resolved(arg.type, abs)
    raise call.reject()


def _java_round(value: float) -> int:
    """Math.round: halves go toward positive infinity; NaN -> 0; saturates at the long range."""
    if value != value:
        return 0
    if value >= 9.223372036854776e18:
        return 2**63 - 1
    if value <= -9.223372036854776e18:
        return -(2**63)
    return math.floor(value + 0.5) if abs(value) < 2**52 else int(value)


def _round_places(value: float, places: int) -> float:
    if not math.isfinite(value):
        return value
    exact = Decimal(repr(value))
    mode = ROUND_HALF_UP if value >= 0 else ROUND_HALF_DOWN  # halves toward positive infinity
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=mode))


def _round(call: _Call) -> Resolved:
    args = _arity(call, 1, 2)
    base = args[0].type.base
    if len(args) == 1:
        if base in ("INTEGER", "BIGINT"):
            return Resolved(args[0].type, lambda v: v)
        if base == "DOUBLE":
            return Resolved(BIGINT, _java_round)
        if base == "DECIMAL":
            raise call.unsupported("DECIMAL arguments")
        raise call.reject()
    if not _is(args[1], "INTEGER"):
        raise call.reject()
    if base in ("DOUBLE", "INTEGER", "BIGINT"):
        return Resolved(DOUBLE, lambda v, places: _round_places(float(v), places))
    if base == "DECIMAL":
        raise call.unsupported("DECIMAL arguments")
    raise call.reject()


def _ceil_floor(function: Callable[[float], int]) -> Callable[[_Call], Resolved]:
    def resolve(call: _Call) -> Resolved:
        (arg,) = _arity(call, 1)
        base = arg.type.base
        if base in ("INTEGER", "BIGINT"):
            return Resolved(arg.type, lambda v: v)
        if base == "DOUBLE":
            return Resolved(DOUBLE, lambda v: float(function(v)) if math.isfinite(v) else v)
        if base == "DECIMAL":
            raise call.unsupported("DECIMAL arguments")
        raise call.reject()

    return resolve


def _double_fn(function: Callable[..., float], arity: int = 1) -> Callable[[_Call], Resolved]:
    def resolve(call: _Call) -> Resolved:
        args = _arity(call, arity)
        if not all(_numeric(arg) for arg in args):
            raise call.reject()
        return Resolved(DOUBLE, lambda *values: function(*(float(v) for v in values)))

    return resolve


def _sqrt(value: float) -> float:
    return math.sqrt(value) if value >= 0 else math.nan


def _ln(value: float) -> float:
    if value > 0:
        return math.log(value)
    return -math.inf if value == 0 else math.nan


def _exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def _power(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except (OverflowError, ValueError, ZeroDivisionError):
        if base == 0 and exponent < 0:
            return math.inf
        return math.nan if base < 0 else math.inf


def _sign(call: _Call) -> Resolved:
    (arg,) = _arity(call, 1)
    if not _numeric(arg):
        raise call.reject()
    return Resolved(INTEGER, lambda v: 0 if v == 0 or v != v else (1 if v > 0 else -1))


def _greatest_least(pick: Callable) -> Callable[[_Call], Resolved]:
    def resolve(call: _Call) -> Resolved:
        args = _arity(call, 1, 1000)
        types = {arg.type for arg in args if arg.type != NULL}
        if len(types) != 1:
            numeric = types and all(t.base in ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL") for t in types)
            if numeric and any(t.base == "DOUBLE" for t in types):
                # every parameter widens to DOUBLE, the only overload they all reach
                return Resolved(
                    DOUBLE, lambda *vs: _pick_non_null(pick, [float(v) for v in vs if v is not None], None), False
                )
            if numeric and not all(t.base == "DECIMAL" for t in types):
                types_text = ", ".join(str(arg.type) for arg in call.args)
                raise InvalidStatement(
                    f"Function '{call.name.lower()}' cannot be resolved due to ambiguous method parameters "
                    f"({types_text}).",
                    call.line,
                    call.column,
                )
            if numeric:  # DECIMALs of different precision/scale: ksqlDB widens them
                raise call.unsupported(f"parameters of different DECIMAL types ({', '.join(map(str, types))})")
            raise call.reject()
        (result,) = types
        if result.base not in ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL", "STRING"):
            raise call.reject()
        return Resolved(result, lambda *vs: _pick_non_null(pick, vs, None), False)

    return resolve


def _pick_non_null(pick: Callable, values: Sequence[Any], convert: Callable | None) -> Any:
    present = [v for v in values if v is not None]
    if not present:
        return None
    chosen = pick(present)
    return convert(chosen) if convert is not None else chosen


# ---- strings ---------------------------------------------------------------------------------------------------


def _java_length(text: str) -> int:
    """String.length(): UTF-16 code units."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _concat(call: _Call) -> Resolved:
    args = _arity(call, 1, 1000)
    if not all(_is(arg, "STRING") for arg in args):
        raise call.reject()
    return Resolved(STRING, lambda *vs: "".join(v for v in vs if v is not None), False)


def _concat_ws(call: _Call) -> Resolved:
    args = _arity(call, 2, 1000)
    if not all(_is(arg, "STRING") for arg in args):
        raise call.reject()

    def concat_ws(separator, *values):
        if separator is None:
            return None
        return separator.join(v for v in values if v is not None)

    return Resolved(STRING, concat_ws, False)


def _string_fn(function: Callable[[str], Any], result: SqlType) -> Callable[[_Call], Resolved]:
    def resolve(call: _Call) -> Resolved:
        (arg,) = _arity(call, 1)
        if not _is(arg, "STRING"):
            raise call.reject()
        return Resolved(result, function)

    return resolve


def _substring(call: _Call) -> Resolved:
    args = _arity(call, 2, 3)
    if not _is(args[0], "STRING") or not all(_is(arg, "INTEGER") for arg in args[1:]):
        raise call.reject()

    def start_index(length: int, position: int) -> int:
        return max(length + position, 0) if position < 0 else max(min(position - 1, length), 0)

    if len(args) == 2:
        return Resolved(STRING, lambda s, p: s[start_index(len(s), p) :])

    def substring(s, p, n):
        start = start_index(len(s), p)
        end = max(min(start + n, len(s)), start)
        return s[start:end]

    return Resolved(STRING, substring)


def _replace(call: _Call) -> Resolved:
    args = _arity(call, 3)
    if not all(_is(arg, "STRING") for arg in args):
        raise call.reject()
    return Resolved(STRING, lambda s, old, new: s.replace(old, new))


# ---- null handling ------------------------------------------------------------------------------------------------


def _common_type(call: _Call, args: list[Arg]) -> SqlType:
    types = [arg.type for arg in args if arg.type != NULL]
    if not types:
        return NULL
    first = types[0]
    if all(t == first for t in types):
        return first
    if all(t.base in ("INTEGER", "BIGINT", "DOUBLE") for t in types):
        return DOUBLE if any(t.base == "DOUBLE" for t in types) else BIGINT
    raise call.reject()


def _coalesce(call: _Call) -> Resolved:
    args = _arity(call, 1, 1000)
    result = _common_type(call, args)
    convert = float if result == DOUBLE else None

    def coalesce(*values):
        for value in values:
            if value is not None:
                return convert(value) if convert else value
        return None

    return Resolved(result, coalesce, False)


def _ifnull(call: _Call) -> Resolved:
    _arity(call, 2)
    return _coalesce(call)


def _nullif(call: _Call) -> Resolved:
    args = _arity(call, 2)
    _common_type(call, args)
    return Resolved(args[0].type, lambda a, b: None if a is not None and a == b else a, False)


def _as_value(call: _Call) -> Resolved:
    (arg,) = _arity(call, 1)
    return Resolved(arg.type, lambda v: v, False)


# ---- time ------------------------------------------------------------------------------------------------------------


def _zone_getter(call: _Call, arg: Arg | None) -> Callable[[Any], Any]:
    """Resolve a time-zone argument: literal zones are checked now, column zones per record."""
    if arg is None:
        return lambda _value: timefmt.zone(None)
    if arg.is_literal:
        try:
            fixed = timefmt.zone(arg.literal)
        except timefmt.PatternError as error:
            raise InvalidStatement(f"{call.name}: {error}", call.line, call.column) from None
        return lambda _value: fixed
    return timefmt.zone


def _pattern_formatter(call: _Call, arg: Arg) -> Callable[[str], timefmt.Formatter] | timefmt.Formatter:
    if arg.is_literal:
        try:
            return timefmt.formatter(arg.literal)
        except timefmt.PatternError as error:
            raise UnsupportedStatement(
                f"{call.name} pattern '{arg.literal}': {error}", call.line, call.column
            ) from None
    return timefmt.formatter


def _format_millis_resolver(input_base: str) -> Callable[[_Call], Resolved]:
    """TIMESTAMPTOSTRING (BIGINT millis) and FORMAT_TIMESTAMP (TIMESTAMP)."""

    def resolve(call: _Call) -> Resolved:
        args = _arity(call, 2, 3)
        if input_base == "BIGINT":
            if not _widens_to(args[0], BIGINT):
                raise call.reject()
        elif not _is(args[0], "TIMESTAMP"):
            raise call.reject()
        if not all(_is(arg, "STRING") for arg in args[1:]):
            raise call.reject()
        pattern = _pattern_formatter(call, args[1])
        zone_arg = args[2] if len(args) > 2 else None
        get_zone = _zone_getter(call, zone_arg)
        if isinstance(pattern, timefmt.Formatter) and (zone_arg is None or zone_arg.is_literal):
            # The common case (literal pattern and zone): cache recent instants, since window
            # bounds repeat for every record of a window.
            fixed_pattern = pattern
            cache: dict[int, str] = {}

            def format_cached(millis, _pattern=None, _zone=None):
                text = cache.get(millis)
                if text is None:
                    if len(cache) > 4096:
                        cache.clear()
                    text = cache[millis] = fixed_pattern.format_millis(millis, get_zone(None))
                return text

            return Resolved(STRING, format_cached)

        def format_dynamic(millis, pattern_text, zone_name=None):
            return timefmt.formatter(pattern_text).format_millis(millis, get_zone(zone_name))

        return Resolved(STRING, format_dynamic)

    return resolve


def _parse_resolver(result: SqlType) -> Callable[[_Call], Resolved]:
    """STRINGTOTIMESTAMP (-> BIGINT) and PARSE_TIMESTAMP (-> TIMESTAMP)."""

    def resolve(call: _Call) -> Resolved:
        args = _arity(call, 2, 3)
        if not all(_is(arg, "STRING") for arg in args):
            raise call.reject()
        if args[1].is_literal:
            try:
                timefmt.parser(args[1].literal)
            except timefmt.PatternError as error:
                raise UnsupportedStatement(
                    f"{call.name} pattern '{args[1].literal}': {error}", call.line, call.column
                ) from None
        get_zone = _zone_getter(call, args[2] if len(args) > 2 else None)

        def parse(text, pattern_text, zone_name=None):
            return timefmt.parser(pattern_text).parse_millis(text, get_zone(zone_name))

        return Resolved(result, parse)

    return resolve


def _from_unixtime(call: _Call) -> Resolved:
    (arg,) = _arity(call, 1)
    if not _widens_to(arg, BIGINT):
        raise call.reject()
    return Resolved(TIMESTAMP, lambda v: v)


def _unix_timestamp(call: _Call) -> Resolved:
    args = _arity(call, 0, 1)
    if not args:
        return Resolved(BIGINT, lambda: int(time.time() * 1000), False)
    if not _is(args[0], "TIMESTAMP"):
        raise call.reject()
    return Resolved(BIGINT, lambda v: v)


def _array_length(call: _Call) -> Resolved:
    (arg,) = _arity(call, 1)
    if not _is(arg, "ARRAY"):
        raise call.reject()
    return Resolved(INTEGER, len)


# ---- registry ---------------------------------------------------------------------------------------------------------


def _arity(call: _Call, low: int, high: int | None = None) -> list[Arg]:
    high = low if high is None else high
    if not low <= len(call.args) <= high:
        raise call.reject()
    return call.args


SCALAR_FUNCTIONS: dict[str, Callable[[_Call], Resolved]] = {
    "ABS": _abs,
    "ROUND": _round,
    "CEIL": _ceil_floor(math.ceil),
    "FLOOR": _ceil_floor(math.floor),
    "SQRT": _double_fn(_sqrt),
    "EXP": _double_fn(_exp),
    "LN": _double_fn(_ln),
    "POWER": _double_fn(_power, 2),
    "SIGN": _sign,
    "GREATEST": _greatest_least(max),
    "LEAST": _greatest_least(min),
    "CONCAT": _concat,
    "CONCAT_WS": _concat_ws,
    "UCASE": _string_fn(str.upper, STRING),
    "LCASE": _string_fn(str.lower, STRING),
    "TRIM": _string_fn(lambda s: s.strip(" \t\n\r\x0b\x0c\x00"), STRING),
    "LEN": _string_fn(_java_length, INTEGER),
    "SUBSTRING": _substring,
    "REPLACE": _replace,
    "COALESCE": _coalesce,
    "IFNULL": _ifnull,
    "NULLIF": _nullif,
    "AS_VALUE": _as_value,
    "TIMESTAMPTOSTRING": _format_millis_resolver("BIGINT"),
    "FORMAT_TIMESTAMP": _format_millis_resolver("TIMESTAMP"),
    "STRINGTOTIMESTAMP": _parse_resolver(BIGINT),
    "PARSE_TIMESTAMP": _parse_resolver(TIMESTAMP),
    "FROM_UNIXTIME": _from_unixtime,
    "UNIX_TIMESTAMP": _unix_timestamp,
    "ARRAY_LENGTH": _array_length,
}

# ksqlDB functions we know exist but do not implement: calling them is "unsupported", not "invalid".
KNOWN_KSQL_FUNCTIONS = {
    "ARRAY",
    "ARRAY_CONCAT",
    "ARRAY_CONTAINS",
    "ARRAY_DISTINCT",
    "ARRAY_EXCEPT",
    "ARRAY_INTERSECT",
    "ARRAY_JOIN",
    "ARRAY_MAX",
    "ARRAY_MIN",
    "ARRAY_REMOVE",
    "ARRAY_SORT",
    "ARRAY_UNION",
    "AS_MAP",
    "CBRT",
    "CHR",
    "CONVERT_TZ",
    "DATEADD",
    "DATESUB",
    "DATETOSTRING",
    "DEGREES",
    "ELT",
    "ENCODE",
    "ENTRIES",
    "EXTRACTJSONFIELD",
    "FIELD",
    "FILTER",
    "FORMAT_DATE",
    "FORMAT_TIME",
    "FROM_BYTES",
    "GENERATE_SERIES",
    "GEO_DISTANCE",
    "INITCAP",
    "INSTR",
    "IS_JSON_STRING",
    "JSON_ARRAY_CONTAINS",
    "JSON_ARRAY_LENGTH",
    "JSON_CONCAT",
    "JSON_KEYS",
    "JSON_RECORDS",
    "JSON_ITEMS",
    "LOG",
    "LPAD",
    "LTRIM",
    "MAP",
    "MAP_KEYS",
    "MAP_UNION",
    "MAP_VALUES",
    "MASK",
    "MASK_KEEP_LEFT",
    "MASK_KEEP_RIGHT",
    "MASK_LEFT",
    "MASK_RIGHT",
    "PARSE_DATE",
    "PARSE_TIME",
    "PI",
    "RADIANS",
    "RANDOM",
    "REDUCE",
    "REGEXP_EXTRACT",
    "REGEXP_EXTRACT_ALL",
    "REGEXP_REPLACE",
    "REGEXP_SPLIT_TO_ARRAY",
    "RPAD",
    "RTRIM",
    "SLICE",
    "SPLIT",
    "SPLIT_TO_MAP",
    "STRINGTODATE",
    "STRUCT",
    "TIMEADD",
    "TIMESUB",
    "TIMESTAMPADD",
    "TIMESTAMPSUB",
    "TO_BYTES",
    "TO_JSON_STRING",
    "TRANSFORM",
    "TRUNC",
    "UUID",
    "URL_DECODE_PARAM",
    "URL_ENCODE_PARAM",
    "URL_EXTRACT_FRAGMENT",
    "URL_EXTRACT_HOST",
    "URL_EXTRACT_PARAMETER",
    "URL_EXTRACT_PATH",
    "URL_EXTRACT_PORT",
    "URL_EXTRACT_PROTOCOL",
    "URL_EXTRACT_QUERY",
    "CUBE_EXPLODE",
    "EXPLODE",
    "COS",
    "SIN",
    "TAN",
    "ACOS",
    "ASIN",
    "ATAN",
    "ATAN2",
    "COSH",
    "SINH",
    "TANH",
    "COT",
    "CARDINALITY",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "INT_FROM_BYTES",
    "BIGINT_FROM_BYTES",
    "DOUBLE_FROM_BYTES",
    "UNIX_DATE",
    "FROM_DAYS",
}


def is_function(name: str) -> bool:
    """A scalar function name ksqlDB knows (implemented here or not)."""
    return name in SCALAR_FUNCTIONS or name in KNOWN_KSQL_FUNCTIONS


def is_unimplemented_ksql_function(name: str) -> bool:
    """A ksqlDB built-in this engine does not implement (calling it is unsupported, whatever the arguments)."""
    return name not in SCALAR_FUNCTIONS and name in KNOWN_KSQL_FUNCTIONS


def resolve_scalar(name: str, args: list[Arg], line: int | None = None, column: int | None = None) -> Resolved:
    """Resolve `name(args)`; raise InvalidStatement/UnsupportedStatement when it cannot be called."""
    call = _Call(name, args, line, column)
    resolver = SCALAR_FUNCTIONS.get(name)
    if resolver is not None:
        return resolver(call)
    if name in KNOWN_KSQL_FUNCTIONS:
        raise UnsupportedStatement(f"function {name}", line, column)
    raise InvalidStatement(f"Can't find any functions with the name '{name}'", line, column)
