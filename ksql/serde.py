"""Key and value formats (KAFKA, JSON, DELIMITED) and the windowed-key byte layout.

Why exact byte layouts matter: downstream consumers (the ClickHouse loader, a real ksqlDB reading
our topics, or ours reading a real ksqlDB's) decode these bytes. KAFKA-format keys use Kafka's
primitive serializers (big-endian INT/BIGINT/DOUBLE, UTF-8 STRING); a time-windowed key is the
key bytes followed by the 8-byte big-endian window start, a session-windowed key by the 8-byte
end then the 8-byte start (Kafka Streams' layouts). JSON values hold the value columns by name
(field names match case-insensitively on input), DELIMITED values are CSV lines.

Deserializers raise `RecordError` with ksqlDB-like reasons; the engine turns those into
processing-log entries instead of crashing.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from coinstream.ksql.errors import RecordError
from coinstream.ksql.types import CoercionError, SqlType, coercer, decimal_plain, java_double_str

SUPPORTED_FORMATS = ("KAFKA", "JSON", "DELIMITED", "NONE")
KNOWN_UNSUPPORTED_FORMATS = ("AVRO", "PROTOBUF", "PROTOBUF_NOSR", "JSON_SR")
KAFKA_FORMAT_TYPES = ("INTEGER", "BIGINT", "DOUBLE", "STRING", "BYTES")

_LONG = struct.Struct(">q")
_INT = struct.Struct(">i")
_DOUBLE = struct.Struct(">d")


# ---- JSON helpers ---------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(decimal_plain(value).encode())
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, float):  # only reached for values orjson cannot write itself
        return orjson.Fragment(b"null")
    raise TypeError(f"cannot serialize {type(value).__name__}")


_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS

_NAN_JSON = orjson.Fragment(b'"NaN"')
_INF_JSON = orjson.Fragment(b'"Infinity"')
_NEG_INF_JSON = orjson.Fragment(b'"-Infinity"')


def _double_json(value: Any) -> Any:
    """A DOUBLE for JSON: NaN and the infinities are written as the strings Java's JSON writer uses."""
    if value is None or value - value == 0:
        return value
    if value != value:
        return _NAN_JSON
    return _INF_JSON if value > 0 else _NEG_INF_JSON


def json_double_fixer(sql_type: SqlType) -> Callable[[Any], Any] | None:
    """For a type containing DOUBLEs: a function making its values JSON-safe (see `_double_json`); else None."""
    base = sql_type.base
    if base == "DOUBLE":
        return _double_json
    if base in ("ARRAY", "MAP") and sql_type.element is not None:
        inner = json_double_fixer(sql_type.element)
        if inner is None:
            return None
        if base == "ARRAY":
            return lambda value: None if value is None else [inner(item) for item in value]
        return lambda value: None if value is None else {k: inner(v) for k, v in value.items()}
    if base == "STRUCT":
        fixers = {name: fixer for name, typ in sql_type.fields if (fixer := json_double_fixer(typ)) is not None}
        if not fixers:
            return None
        return lambda value: (
            None if value is None else {k: (fixers[k](v) if k in fixers else v) for k, v in value.items()}
        )
    return None


def json_dumps(value: Any) -> bytes:
    """JSON bytes as ksqlDB writes them: decimals as plain numbers, bytes as base64."""
    return orjson.dumps(value, default=_json_default)


def json_loads_exact(data: bytes | str) -> Any:
    """Parse JSON keeping decimal literals exact (for DECIMAL columns and test expectations)."""
    return json.loads(data, parse_float=Decimal)


def _bytes_to_base64(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


# ---- primitive (KAFKA format) --------------------------------------------------------------------------------------


def kafka_serializer(sql_type: SqlType) -> Callable[[Any], bytes | None]:
    base = sql_type.base
    if base == "STRING":
        return lambda v: None if v is None else v.encode("utf-8")
    if base == "INTEGER":
        return lambda v: None if v is None else _INT.pack(v)
    if base == "BIGINT":
        return lambda v: None if v is None else _LONG.pack(v)
    if base == "DOUBLE":
        return lambda v: None if v is None else _DOUBLE.pack(v)
    if base == "BYTES":
        return lambda v: None if v is None else bytes(v)
    raise ValueError(f"The 'KAFKA' format does not support type '{sql_type}'")


def kafka_deserializer(sql_type: SqlType) -> Callable[[bytes | None], Any]:
    base = sql_type.base

    def sized(unpack: Callable, size: int, name: str) -> Callable[[bytes | None], Any]:
        def decode(data: bytes | None) -> Any:
            if data is None:
                return None
            if len(data) != size:
                raise RecordError(f"Size of data received by {name}Deserializer is not {size}")
            return unpack(data)[0]

        return decode

    if base == "STRING":

        def decode_string(data: bytes | None) -> Any:
            if data is None:
                return None
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise RecordError("key/value is not valid UTF-8") from None

        return decode_string
    if base == "INTEGER":
        return sized(_INT.unpack, 4, "Integer")
    if base == "BIGINT":
        return sized(_LONG.unpack, 8, "Long")
    if base == "DOUBLE":
        return sized(_DOUBLE.unpack, 8, "Double")
    if base == "BYTES":
        return lambda data: None if data is None else bytes(data)
    raise ValueError(f"The 'KAFKA' format does not support type '{sql_type}'")


# ---- DELIMITED --------------------------------------------------------------------------------------------------------


def _delimited_text(value: Any, sql_type: SqlType) -> str:
    if value is None:
        return ""
    base = sql_type.base
    if base == "DOUBLE":
        return java_double_str(value)
    if base == "DECIMAL":
        return decimal_plain(value)
    if base == "BOOLEAN":
        return "true" if value else "false"
    if base == "BYTES":
        return base64.b64encode(value).decode()
    return str(value)


def _csv_needs_quotes(text: str, first: bool, delimiter: str) -> bool:
    """ksqlDB's CSV printer (minimal quoting): a record's first field is quoted unless it starts with
    an ASCII letter or digit (an empty string too); any field is quoted when it starts with a
    character up to '#', contains a delimiter, quote or line break, or ends with a character up to
    a space. NULL prints as nothing, unquoted."""
    if not text:
        return first
    c = text[0]
    if first and not ("0" <= c <= "9" or "A" <= c <= "Z" or "a" <= c <= "z"):
        return True
    if c <= "#":
        return True
    if delimiter in text or '"' in text or "\n" in text or "\r" in text:
        return True
    return text[-1] <= " "


def delimited_serializer(types: list[SqlType], delimiter: str) -> Callable[[tuple], bytes]:
    def encode(values: tuple) -> bytes:
        fields = []
        for index, (value, sql_type) in enumerate(zip(values, types, strict=False)):
            text = _delimited_text(value, sql_type)
            if value is not None and _csv_needs_quotes(text, index == 0, delimiter):
                text = '"' + text.replace('"', '""') + '"'
            fields.append(text)
        return delimiter.join(fields).encode("utf-8")

    return encode


def delimited_deserializer(types: list[SqlType], delimiter: str) -> Callable[[bytes], list]:
    converters = [coercer(t) for t in types]
    expected = len(types)

    def decode(data: bytes) -> list:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError("DELIMITED value is not valid UTF-8") from None
        fields = next(csv.reader(io.StringIO(text), delimiter=delimiter), []) if '"' in text else text.split(delimiter)
        if len(fields) != expected:
            raise RecordError(f"Unexpected field count, csvFields:{len(fields)} schemaFields:{expected}")
        try:
            return [None if field == "" else convert(field) for field, convert in zip(fields, converters, strict=False)]
        except CoercionError as error:
            raise RecordError(f"Failed to deserialize DELIMITED value: {error}") from None

    return decode


# ---- row-level serdes ---------------------------------------------------------------------------------------------------


class RowSerde:
    """Serialize/deserialize the key or the value part of a row for one format and column list.

    `names`/`types` are the columns in schema order. `wrap_single` controls JSON/KAFKA wrapping of
    a single column (keys are never wrapped; values are by default).
    """

    def __init__(
        self,
        fmt: str,
        names: list[str],
        types: list[SqlType],
        *,
        is_key: bool,
        wrap_single: bool | None = None,
        delimiter: str = ",",
    ) -> None:
        self.format = fmt
        self.names = names
        self.types = types
        self.is_key = is_key
        self.delimiter = delimiter
        if wrap_single is None:
            wrap_single = not is_key
        self.unwrapped = len(names) == 1 and (fmt == "KAFKA" or not wrap_single)
        self._coercers = [coercer(t) for t in types]
        self.exact_json = any(_contains_decimal(t) for t in types)

    # ---- serialize ------------------------------------------------------------------------------------------------

    def serializer(self) -> Callable[[tuple], bytes | None]:
        encode = self._serializer()
        if not self.is_key or not self.names:
            return encode

        def encode_key(values: tuple) -> bytes | None:
            # a key whose columns are all NULL (a record without a key) is written without a key
            if all(value is None for value in values):
                return None
            return encode(values)

        return encode_key

    def _serializer(self) -> Callable[[tuple], bytes | None]:
        fmt = self.format
        names = self.names
        if not names or fmt == "NONE":
            return lambda values: None
        if fmt == "KAFKA":
            single = kafka_serializer(self.types[0])
            return lambda values: single(values[0])
        if fmt == "DELIMITED":
            encode = delimited_serializer(self.types, self.delimiter)
            return encode
        needs_b64 = any(_contains_bytes(t) for t in self.types)
        fixers = [json_double_fixer(t) for t in self.types]
        if self.unwrapped:
            fix = fixers[0]
            if needs_b64:
                return lambda values: json_dumps(_bytes_to_base64(values[0]))
            if fix is not None:
                return lambda values: json_dumps(fix(values[0]))
            return lambda values: json_dumps(values[0])
        # dict literal built by generated code: cheaper than dict(zip(...)) per record
        items = ", ".join(
            f"{name!r}: " + (f"_fix{index}(values[{index}])" if fixers[index] is not None else f"values[{index}]")
            for index, name in enumerate(names)
        )
        namespace: dict[str, Any] = {"json_dumps": json_dumps}
        namespace.update({f"_fix{index}": fix for index, fix in enumerate(fixers) if fix is not None})
        exec(
            compile(f"def serialize(values):\n    return json_dumps({{{items}}})\n", "<ksql json serializer>", "exec"),
            namespace,
        )
        return namespace["serialize"]

    # ---- deserialize ----------------------------------------------------------------------------------------------------

    def deserializer(self) -> Callable[[bytes | None], list]:
        """bytes -> list of values in column order (raises RecordError)."""
        fmt = self.format
        count = len(self.names)
        if count == 0 or fmt == "NONE":
            return lambda data: []
        if fmt == "KAFKA":
            single = kafka_deserializer(self.types[0])

            def decode_kafka(data: bytes | None) -> list:
                return [single(data)]

            return decode_kafka
        if fmt == "DELIMITED":
            decode_delimited = delimited_deserializer(self.types, self.delimiter)
            return lambda data: [None] * count if data is None else decode_delimited(data)
        return self._json_deserializer()

    def _json_deserializer(self) -> Callable[[bytes | None], list]:
        loads = json_loads_exact if self.exact_json else orjson.loads
        coercers = self._coercers
        count = len(self.names)
        if self.unwrapped:
            convert = coercers[0]

            def decode_single(data: bytes | None) -> list:
                if data is None:
                    return [None]
                try:
                    return [convert(loads(data))]
                except (ValueError, TypeError) as error:
                    raise RecordError(f"Failed to deserialize JSON: {error}") from None

            return decode_single
        index_of: dict[str, int] = {}
        upper_index = {name.upper(): i for i, name in reversed(list(enumerate(self.names)))}
        for i, name in enumerate(self.names):
            index_of[name] = i

        def resolve(field: str) -> int:
            """Case-insensitive fallback for a field name; remembered (bounded) for the next record."""
            index = index_of.get(field)
            if index is None:
                index = upper_index.get(field.upper(), -1)
            if len(index_of) < 10_000:
                index_of[field] = index
            return index

        # Generated per schema: copy the fields into row slots, then check each slot inline and
        # convert only values that are not already of the column's Python type.
        namespace: dict[str, Any] = {
            "loads": loads,
            "get": index_of.get,
            "resolve": resolve,
            "RecordError": RecordError,
            "CoercionError": CoercionError,
            "dict": dict,
            "float": float,
            "str": str,
            "int": int,
            "list": list,
        }
        lines = [
            "def decode_object(data):",
            f"    if data is None: return [None] * {count}",
            "    try:",
            "        obj = loads(data)",
            "    except (ValueError, TypeError) as error:",
            "        raise RecordError(f'Failed to deserialize JSON: {error}') from None",
            "    if type(obj) is not dict:",
            "        raise RecordError(f'Failed to deserialize JSON: expected an object, got {type(obj).__name__}')",
            f"    row = [None] * {count}",
            "    for field, value in obj.items():",
            "        index = get(field)",
            "        if index is None: index = resolve(field)",
            "        if index >= 0: row[index] = value",
            "    index = -1",
            "    try:",
        ]
        for index, sql_type in enumerate(self.types):
            namespace[f"c{index}"] = coercers[index]
            check = _fast_check(sql_type)
            lines.append(f"        v = row[{index}]")
            if sql_type.base == "DOUBLE":  # JSON writes integral doubles as ints: float() is exact enough
                lines.append(
                    f"        if v is not None and type(v) is not float: index = {index}; "
                    f"row[{index}] = float(v) if type(v) is int else c{index}(v)"
                )
            elif check is None:
                lines.append(f"        if v is not None: index = {index}; row[{index}] = c{index}(v)")
            else:
                lines.append(f"        if v is not None and not ({check}): index = {index}; row[{index}] = c{index}(v)")
        lines += [
            "    except CoercionError as error:",
            "        raise RecordError(f'Failed to deserialize JSON field {names[index]!r}: {error}') from None",
            "    return row",
        ]
        namespace["names"] = list(self.names)
        exec(compile("\n".join(lines) + "\n", "<ksql json decoder>", "exec"), namespace)
        return namespace["decode_object"]


def _fast_check(sql_type: SqlType) -> str | None:
    """A Python condition on `v` that is true when `v` needs no conversion for `sql_type`."""
    base = sql_type.base
    if base == "DOUBLE":
        return "type(v) is float"
    if base == "STRING":
        return "type(v) is str"
    if base == "BOOLEAN":
        return "v is True or v is False"
    if base in ("INTEGER", "DATE"):
        return "type(v) is int and -2147483648 <= v <= 2147483647"
    if base in ("BIGINT", "TIMESTAMP"):
        return "type(v) is int and -9223372036854775808 <= v <= 9223372036854775807"
    if base == "ARRAY" and sql_type.element is not None and sql_type.element.base in ("STRING", "DOUBLE"):
        element = "str" if sql_type.element.base == "STRING" else "float"
        return f"type(v) is list and all(type(x) is {element} for x in v)"
    return None


def _contains_decimal(sql_type: SqlType) -> bool:
    if sql_type.base == "DECIMAL":
        return True
    children = [sql_type.element, sql_type.key] + [t for _, t in sql_type.fields]
    return any(child is not None and _contains_decimal(child) for child in children)


def _contains_bytes(sql_type: SqlType) -> bool:
    if sql_type.base == "BYTES":
        return True
    children = [sql_type.element, sql_type.key] + [t for _, t in sql_type.fields]
    return any(child is not None and _contains_bytes(child) for child in children)


# ---- windowed keys ---------------------------------------------------------------------------------------------------------


def time_windowed_key(key: bytes | None, window_start: int) -> bytes:
    return (key or b"") + _LONG.pack(window_start)


def session_windowed_key(key: bytes | None, window_start: int, window_end: int) -> bytes:
    return (key or b"") + _LONG.pack(window_end) + _LONG.pack(window_start)


def split_windowed_key(data: bytes, session: bool) -> tuple[bytes, int, int | None]:
    """(key bytes, window start, window end or None for time windows)."""
    if session:
        if len(data) < 16:
            raise RecordError("session-windowed key shorter than 16 bytes")
        end = _LONG.unpack(data[-16:-8])[0]
        start = _LONG.unpack(data[-8:])[0]
        return data[:-16], start, end
    if len(data) < 8:
        raise RecordError("windowed key shorter than 8 bytes")
    return data[:-8], _LONG.unpack(data[-8:])[0], None


# ---- partitioning -------------------------------------------------------------------------------------------------------


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2` (the Java client's default partitioner hash), as a signed 32-bit int."""
    mask = 0xFFFFFFFF
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for index in range(0, length - length % 4, 4):
        k = data[index] | (data[index + 1] << 8) | (data[index + 2] << 16) | (data[index + 3] << 24)
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition the Java producer (and Kafka Streams' windowed partitioner) picks for `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
