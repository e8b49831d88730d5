"""Turn parsed statements into source definitions and executable query plans.

Why a planner separate from the engine: every check ksqlDB makes when a statement is submitted
(unknown columns, missing KAFKA_TOPIC, GROUP BY key not in the projection, EMIT FINAL without a
window, ...) happens here, once, with the statement's positions at hand. What comes out is a
`QueryPlan` of compiled functions over a fixed row layout; the engine only runs them.

Row layout of a source: key columns, value columns, then ROWTIME, ROWPARTITION, ROWOFFSET,
WINDOWSTART, WINDOWEND. After aggregation, expressions read `post`: the GROUP BY values, window
start, window end, then one value per aggregate.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from coinstream.ksql import ast
from coinstream.ksql.aggregates import AggregateCall, is_aggregate, resolve_aggregate
from coinstream.ksql.compiler import Compiled, Compiler, Slot, expression_text
from coinstream.ksql.errors import InvalidStatement, UnsupportedStatement
from coinstream.ksql.functions import is_function
from coinstream.ksql.parser import TIME_UNITS_MS, parse
from coinstream.ksql.serde import KAFKA_FORMAT_TYPES, KNOWN_UNSUPPORTED_FORMATS, SUPPORTED_FORMATS
from coinstream.ksql.types import BIGINT, BOOLEAN, INTEGER, NULL, SqlType
from coinstream.ksql.windows import SessionWindows, TimeWindows, make_session_windows, make_time_windows

STRUCTURED_INTERMEDIATE_AGGREGATES = frozenset(
    {"AVG", "EARLIEST_BY_OFFSET", "LATEST_BY_OFFSET", "TOPK", "TOPKDISTINCT"}
)
PSEUDO_COLUMNS = ("ROWTIME", "ROWPARTITION", "ROWOFFSET", "WINDOWSTART", "WINDOWEND")
PSEUDO_TYPES = {
    "ROWTIME": BIGINT,
    "ROWPARTITION": INTEGER,
    "ROWOFFSET": BIGINT,
    "WINDOWSTART": BIGINT,
    "WINDOWEND": BIGINT,
}

SOURCE_PROPERTIES = {
    "KAFKA_TOPIC",
    "VALUE_FORMAT",
    "KEY_FORMAT",
    "FORMAT",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "WRAP_SINGLE_VALUE",
    "VALUE_DELIMITER",
    "KEY_DELIMITER",
    "WINDOW_TYPE",
    "WINDOW_SIZE",
    "RETENTION_MS",
}
SINK_PROPERTIES = {
    "KAFKA_TOPIC",
    "VALUE_FORMAT",
    "KEY_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "WRAP_SINGLE_VALUE",
    "VALUE_DELIMITER",
    "KEY_DELIMITER",
    "RETENTION_MS",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
}
KNOWN_UNSUPPORTED_PROPERTIES = {
    "KEY_SCHEMA_ID",
    "VALUE_SCHEMA_ID",
    "KEY_SCHEMA_FULL_NAME",
    "VALUE_SCHEMA_FULL_NAME",
    "VALUE_AVRO_SCHEMA_FULL_NAME",
    "KEY_PROTOBUF_NULLABLE_REPRESENTATION",
    "VALUE_PROTOBUF_NULLABLE_REPRESENTATION",
    "SOURCE_CONNECTOR",
    "HEADERS",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: SqlType


@dataclass
class SourceDef:
    """A stream or table the catalog knows: declared by CREATE, or the sink of a query."""

    name: str
    kind: str  # STREAM | TABLE
    key_columns: list[Column]
    value_columns: list[Column]
    topic: str
    key_format: str
    value_format: str
    wrap_single_value: bool | None = None
    value_delimiter: str = ","
    key_delimiter: str = ","
    timestamp_column: str | None = None
    timestamp_format: str | None = None
    window_kind: str | None = None  # TUMBLING | HOPPING | SESSION: the key carries a window
    window_size: int | None = None
    partitions: int | None = None
    replicas: int | None = None
    statement: ast.Statement | None = None
    query: QueryPlan | None = None

    @property
    def columns(self) -> list[Column]:
        return self.key_columns + self.value_columns

    @property
    def width(self) -> int:
        """Length of a decoded row (columns plus the five pseudo columns)."""
        return len(self.key_columns) + len(self.value_columns) + len(PSEUDO_COLUMNS)

    def pseudo_index(self, name: str) -> int:
        return len(self.key_columns) + len(self.value_columns) + PSEUDO_COLUMNS.index(name)

    def find(self, name: str) -> tuple[int, Column] | None:
        for index, column in enumerate(self.columns):
            if column.name == name:
                return index, column
        return None


def _not_planned(*args: Any) -> Any:
    raise RuntimeError("this function is not part of the query's plan")


@dataclass
class QueryPlan:
    """Everything the engine needs to run one persistent query."""

    query_id: str
    kind: str  # "project" | "aggregate"
    source: SourceDef
    sink: SourceDef
    statement: ast.CreateAsSelect
    compiler: Compiler
    where: Callable[[list], Any] | None = None
    # project queries
    project: Callable[[list], tuple] = _not_planned
    project_key: Callable[[list], tuple] = _not_planned
    # aggregate queries
    group_key: Callable[[list], tuple | None] = _not_planned
    windows: TimeWindows | SessionWindows | None = None
    emit_final: bool = False
    aggregates: list[AggregateCall] = field(default_factory=list)
    agg_init: Callable[[], list] = _not_planned
    agg_update: Callable[[list, list], None] = _not_planned
    agg_merge: Callable[[list, list], None] | None = None  # session windows: fold one state into another
    agg_project: Callable[[tuple, Any, Any, list], tuple] = _not_planned
    having: Callable[[tuple, Any, Any, list], Any] | None = None
    item_functions: list[Callable] = field(default_factory=list)  # per value column, for error isolation
    item_labels: list[str] = field(default_factory=list)
    # Source of the post-aggregation row and of each value column (lets the engine fuse projection
    # and serialization into one generated function).
    post_code: str = ""
    value_codes: list[str] = field(default_factory=list)


# ---- scopes -------------------------------------------------------------------------------------------------------------


class RowScope:
    """Resolves column references of a query against its source's row layout."""

    def __init__(self, source: SourceDef, alias: str | None, clause: str = "SELECT") -> None:
        self.source = source
        self.alias = alias
        self.clause = clause

    def check_qualifier(self, ref: ast.ColumnRef) -> None:
        if ref.source is not None and ref.source not in (self.source.name, self.alias):
            raise InvalidStatement(
                f"'{ref.source}' is not a valid stream/table name or alias.", ref.pos.line, ref.pos.column
            )

    def resolve(self, ref: ast.ColumnRef) -> Slot:
        self.check_qualifier(ref)
        found = self.source.find(ref.name)
        if found is not None:
            index, column = found
            return Slot(f"row[{index}]", column.type, column.name)
        if ref.name in PSEUDO_COLUMNS:
            if ref.name in ("WINDOWSTART", "WINDOWEND") and self.source.window_kind is None:
                raise InvalidStatement(
                    f"{self.clause} column '{ref.name}' cannot be resolved (the source is not windowed).",
                    ref.pos.line,
                    ref.pos.column,
                )
            return Slot(
                f"row[{self.source.pseudo_index(ref.name)}]",
                PSEUDO_TYPES[ref.name],
                ref.name,
                nullable=ref.name in ("WINDOWSTART", "WINDOWEND"),
            )
        raise InvalidStatement(f"{self.clause} column '{ref.name}' cannot be resolved.", ref.pos.line, ref.pos.column)


class PostAggregationScope:
    """After rewriting, any column reference left over is a non-aggregate expression: an error."""

    def resolve(self, ref: ast.ColumnRef) -> Slot:
        raise InvalidStatement(
            f"Non-aggregate SELECT expression(s) not part of GROUP BY: {expression_text(ref)}",
            ref.pos.line,
            ref.pos.column,
        )


# ---- expression tree utilities ---------------------------------------------------------------------------------------------


def _children(node: ast.Expr) -> list[ast.Expr]:
    result = []
    for item in dataclasses.fields(node):
        if item.name == "pos":
            continue
        value = getattr(node, item.name)
        if isinstance(value, ast.Expr):
            result.append(value)
        elif isinstance(value, tuple):
            for element in value:
                if isinstance(element, ast.Expr):
                    result.append(element)
                elif isinstance(element, tuple):
                    result.extend(e for e in element if isinstance(e, ast.Expr))
    return result


def _transform(node: ast.Expr, function: Callable[[ast.Expr], ast.Expr | None]) -> ast.Expr:
    """Rebuild `node` bottom-up; `function` may return a replacement (or None to recurse)."""
    replacement = function(node)
    if replacement is not None:
        return replacement
    changes: dict[str, Any] = {}
    for item in dataclasses.fields(node):
        if item.name == "pos":
            continue
        value = getattr(node, item.name)
        if isinstance(value, ast.Expr):
            changes[item.name] = _transform(value, function)
        elif isinstance(value, tuple) and value and any(isinstance(e, (ast.Expr, tuple)) for e in value):
            new_items: list[Any] = []
            for element in value:
                if isinstance(element, ast.Expr):
                    new_items.append(_transform(element, function))
                elif isinstance(element, tuple):
                    new_items.append(tuple(_transform(e, function) if isinstance(e, ast.Expr) else e for e in element))
                else:
                    new_items.append(element)
            changes[item.name] = tuple(new_items)
    return dataclasses.replace(node, **changes) if changes else node


def _walk(node: ast.Expr):
    yield node
    for child in _children(node):
        yield from _walk(child)


def _unqualify(node: ast.Expr, scope: RowScope) -> ast.Expr:
    def strip(expr: ast.Expr) -> ast.Expr | None:
        if isinstance(expr, ast.ColumnRef) and expr.source is not None:
            scope.check_qualifier(expr)
            return ast.ColumnRef(expr.name, None, pos=expr.pos)
        return None

    return _transform(node, strip)


def _contains_aggregate(node: ast.Expr) -> bool:
    return any(isinstance(n, ast.FunctionCall) and is_aggregate(n.name) for n in _walk(node))


# ---- properties ---------------------------------------------------------------------------------------------------------------


def _properties(
    statement: ast.Statement, props: tuple[ast.Property, ...], allowed: set[str]
) -> dict[str, ast.Property]:
    result: dict[str, ast.Property] = {}
    for prop in props:
        if prop.name in KNOWN_UNSUPPORTED_PROPERTIES:
            raise UnsupportedStatement(f"WITH property {prop.name}", prop.pos.line, prop.pos.column)
        if prop.name not in allowed:
            if prop.name in SOURCE_PROPERTIES | SINK_PROPERTIES:
                raise InvalidStatement(
                    f"Invalid config variable(s) in the WITH clause: {prop.name}", prop.pos.line, prop.pos.column
                )
            raise InvalidStatement(
                f"Invalid config variable(s) in the WITH clause: {prop.name}", prop.pos.line, prop.pos.column
            )
        if prop.name in result:
            raise InvalidStatement(f"Duplicate property {prop.name}", prop.pos.line, prop.pos.column)
        result[prop.name] = prop
    return result


def _string_prop(props: dict[str, ast.Property], name: str) -> str | None:
    prop = props.get(name)
    if prop is None:
        return None
    if not isinstance(prop.value, str):
        raise InvalidStatement(f"{name} must be a string literal", prop.pos.line, prop.pos.column)
    return prop.value


def _int_prop(props: dict[str, ast.Property], name: str) -> int | None:
    prop = props.get(name)
    if prop is None:
        return None
    value = prop.value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidStatement(f"{name} must be a positive integer", prop.pos.line, prop.pos.column)
    return value


def _bool_prop(props: dict[str, ast.Property], name: str) -> bool | None:
    prop = props.get(name)
    if prop is None:
        return None
    if isinstance(prop.value, bool):
        return prop.value
    if isinstance(prop.value, str) and prop.value.lower() in ("true", "false"):
        return prop.value.lower() == "true"
    raise InvalidStatement(f"{name} must be true or false", prop.pos.line, prop.pos.column)


def _format(props: dict[str, ast.Property], name: str) -> str | None:
    text = _string_prop(props, name)
    if text is None:
        return None
    upper = text.upper()
    prop = props[name]
    if upper in KNOWN_UNSUPPORTED_FORMATS:
        raise UnsupportedStatement(f"format {upper}", prop.pos.line, prop.pos.column)
    if upper not in SUPPORTED_FORMATS:
        raise InvalidStatement(f"Unknown format: {text}", prop.pos.line, prop.pos.column)
    return upper


def _formats(
    props: dict[str, ast.Property], default_key: str | None, default_value: str | None, statement: ast.Statement
) -> tuple[str, str]:
    both = _format(props, "FORMAT")
    key = _format(props, "KEY_FORMAT")
    value = _format(props, "VALUE_FORMAT")
    if both is not None and (key is not None or value is not None):
        which = "KEY_FORMAT" if key is not None else "VALUE_FORMAT"
        raise InvalidStatement(
            f"Cannot supply both '{which}' and 'FORMAT' properties, as 'FORMAT' sets both key and value formats.",
            statement.pos.line,
            statement.pos.column,
        )
    key = key or both or default_key or "KAFKA"
    value = value or both or default_value
    if value is None:
        raise InvalidStatement(
            "Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either "
            "provide one or set a default via the 'ksql.persistence.default.format.value' "
            "config.",
            statement.pos.line,
            statement.pos.column,
        )
    if value == "NONE":
        raise UnsupportedStatement("VALUE_FORMAT NONE", statement.pos.line, statement.pos.column)
    return key, value


def _delimiter(props: dict[str, ast.Property], name: str) -> str:
    text = _string_prop(props, name)
    if text is None:
        return ","
    named = {"SPACE": " ", "TAB": "\t"}
    delimiter = named.get(text.upper(), text)
    if len(delimiter) != 1:
        prop = props[name]
        raise InvalidStatement(
            f"Invalid delimiter '{text}': a delimiter is one character, SPACE or TAB", prop.pos.line, prop.pos.column
        )
    return delimiter


def _check_formats(source: SourceDef, pos: ast.Pos) -> None:
    """Format limits ksqlDB enforces on column types and counts."""
    if source.wrap_single_value is not None:
        if source.wrap_single_value and source.value_format in ("KAFKA", "DELIMITED"):
            raise InvalidStatement(
                f"Format '{source.value_format}' does not support 'WRAP_SINGLE_VALUE' set to 'true'.",
                pos.line,
                pos.column,
            )
        if len(source.value_columns) != 1:
            raise InvalidStatement(
                "'WRAP_SINGLE_VALUE' is only valid for single-field value schemas", pos.line, pos.column
            )
    if source.window_kind is not None and not source.key_columns:
        raise InvalidStatement("Windowed sources require a key column.", pos.line, pos.column)
    if source.key_format == "KAFKA":
        if len(source.key_columns) > 1:
            raise InvalidStatement(
                "The 'KAFKA' format only supports a single field. Got: "
                + ", ".join(c.name for c in source.key_columns),
                pos.line,
                pos.column,
            )
        for column in source.key_columns:
            if column.type.base not in KAFKA_FORMAT_TYPES:
                raise InvalidStatement(
                    f"The 'KAFKA' format does not support type '{column.type}'", pos.line, pos.column
                )
    if source.key_format == "NONE" and source.key_columns:
        raise InvalidStatement(
            "The 'NONE' format can only be used when no columns are defined. Got: "
            + ", ".join(c.name for c in source.key_columns),
            pos.line,
            pos.column,
        )
    if source.value_format == "KAFKA":
        if len(source.value_columns) != 1:
            raise InvalidStatement(
                "The 'KAFKA' format only supports a single field. Got: "
                + ", ".join(c.name for c in source.value_columns),
                pos.line,
                pos.column,
            )
        if source.value_columns[0].type.base not in KAFKA_FORMAT_TYPES:
            raise InvalidStatement(
                f"The 'KAFKA' format does not support type '{source.value_columns[0].type}'", pos.line, pos.column
            )
    for fmt, columns in ((source.key_format, source.key_columns), (source.value_format, source.value_columns)):
        if fmt == "DELIMITED":
            for column in columns:
                if not column.type.is_primitive:
                    raise InvalidStatement(
                        f"The 'DELIMITED' format does not support type '{column.type.base}', column: `{column.name}`",
                        pos.line,
                        pos.column,
                    )


def parse_window_size(text: str, prop: ast.Property) -> int:
    match = re.fullmatch(r"\s*(\d+)\s+(\w+)\s*", text)
    if match is None:
        raise InvalidStatement(
            f"Configuration WINDOW_SIZE is invalid: Invalid duration: '{text}'. Expected '<number> <unit>'",
            prop.pos.line,
            prop.pos.column,
        )
    unit = match.group(2).upper()
    if unit not in TIME_UNITS_MS:
        raise InvalidStatement(
            f"Configuration WINDOW_SIZE is invalid: Invalid duration: '{text}'. Unknown time unit: '{unit}'",
            prop.pos.line,
            prop.pos.column,
        )
    return int(match.group(1)) * TIME_UNITS_MS[unit]


# ---- the catalog -----------------------------------------------------------------------------------------------------------------


class Catalog:
    """The sources and queries defined by a script, in statement order."""

    def __init__(self) -> None:
        self.sources: dict[str, SourceDef] = {}
        self.queries: list[QueryPlan] = []
        self._query_counter = 0
        # (substituted, original) statement texts when the script had variables (plan_script).
        self.templates: list[tuple[str, str]] = []

    def written_text(self, statement_text: str) -> str:
        """The statement as written, before variable substitution (itself without variables)."""
        bare = statement_text.rstrip(";").strip()
        for substituted, original in self.templates:
            if bare and bare in substituted:
                lines = original.strip().splitlines()
                while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
                    lines.pop(0)  # the comments before it are not the statement
                return "\n".join(lines)
        return statement_text

    def execute_script(self, text: str) -> Catalog:
        for statement in parse(text):
            self.execute(statement)
        return self

    def execute(self, statement: ast.Statement) -> None:
        if isinstance(statement, ast.CreateSource):
            self._create_source(statement)
        elif isinstance(statement, ast.CreateAsSelect):
            self._create_as_select(statement)
        else:  # pragma: no cover - the parser only yields the two kinds
            raise UnsupportedStatement(type(statement).__name__)

    def _register(self, source: SourceDef, statement: ast.Statement, or_replace: bool, if_not_exists: bool) -> bool:
        existing = self.sources.get(source.name)
        if existing is not None:
            if if_not_exists:
                return False
            if not or_replace:
                kind = existing.kind.lower()
                raise InvalidStatement(
                    f"Cannot add {source.kind.lower()} '{source.name}': A {kind} with the same name already exists",
                    statement.pos.line,
                    statement.pos.column,
                )
            if existing.kind != source.kind:
                raise InvalidStatement(
                    f"Cannot replace {existing.kind.lower()} '{source.name}' with a {source.kind.lower()}",
                    statement.pos.line,
                    statement.pos.column,
                )
            if existing.query is not None:
                self.queries = [q for q in self.queries if q is not existing.query]
        self.sources[source.name] = source
        return True

    # ---- CREATE STREAM / TABLE --------------------------------------------------------------------------------------

    def _create_source(self, statement: ast.CreateSource) -> None:
        pos = statement.pos
        props = _properties(statement, statement.properties, SOURCE_PROPERTIES)
        topic = _string_prop(props, "KAFKA_TOPIC")
        if topic is None:
            raise InvalidStatement(
                'Missing required property "KAFKA_TOPIC" which has no default value.', pos.line, pos.column
            )
        if not statement.columns:
            raise InvalidStatement("The statement does not define any columns.", pos.line, pos.column)
        keys: list[Column] = []
        values: list[Column] = []
        seen: set[str] = set()
        for column in statement.columns:
            if column.name in seen:
                raise InvalidStatement(f"Duplicate column names: {column.name}", column.pos.line, column.pos.column)
            seen.add(column.name)
            if column.name.upper() in PSEUDO_COLUMNS:
                raise InvalidStatement(
                    f"'{column.name}' is a reserved column name.", column.pos.line, column.pos.column
                )
            if column.constraint == "PRIMARY KEY" and statement.kind == "STREAM":
                raise InvalidStatement(
                    f"Column `{column.name}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.",
                    column.pos.line,
                    column.pos.column,
                )
            if column.constraint == "KEY" and statement.kind == "TABLE":
                raise InvalidStatement(
                    f"Column `{column.name}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.",
                    column.pos.line,
                    column.pos.column,
                )
            (keys if column.constraint else values).append(Column(column.name, column.type))
        if statement.kind == "TABLE" and not keys:
            raise InvalidStatement("Tables require a PRIMARY KEY. Please define the PRIMARY KEY.", pos.line, pos.column)
        key_format, value_format = _formats(props, None, None, statement)
        if not keys and "KEY_FORMAT" not in props and "FORMAT" not in props:
            key_format = "KAFKA"
        window_kind = window_size = None
        window_type = _string_prop(props, "WINDOW_TYPE")
        if window_type is not None:
            window_kind = window_type.upper()
            if window_kind not in ("TUMBLING", "HOPPING", "SESSION"):
                prop = props["WINDOW_TYPE"]
                raise InvalidStatement(
                    f"Configuration WINDOW_TYPE is invalid: '{window_type}'. Valid values are "
                    f"SESSION, HOPPING and TUMBLING",
                    prop.pos.line,
                    prop.pos.column,
                )
            size_text = _string_prop(props, "WINDOW_SIZE")
            if window_kind == "SESSION":
                if size_text is not None:
                    prop = props["WINDOW_SIZE"]
                    raise InvalidStatement(
                        "'WINDOW_SIZE' should not be set for SESSION windows.", prop.pos.line, prop.pos.column
                    )
            else:
                if size_text is None:
                    raise InvalidStatement(
                        f"{window_kind} windows require 'WINDOW_SIZE' to be provided in the WITH clause.",
                        pos.line,
                        pos.column,
                    )
                window_size = parse_window_size(size_text, props["WINDOW_SIZE"])
        elif "WINDOW_SIZE" in props:
            prop = props["WINDOW_SIZE"]
            raise InvalidStatement("'WINDOW_SIZE' requires 'WINDOW_TYPE'.", prop.pos.line, prop.pos.column)
        source = SourceDef(
            name=statement.name,
            kind=statement.kind,
            key_columns=keys,
            value_columns=values,
            topic=topic,
            key_format=key_format,
            value_format=value_format,
            wrap_single_value=_bool_prop(props, "WRAP_SINGLE_VALUE"),
            value_delimiter=_delimiter(props, "VALUE_DELIMITER"),
            key_delimiter=_delimiter(props, "KEY_DELIMITER"),
            window_kind=window_kind,
            window_size=window_size,
            partitions=_int_prop(props, "PARTITIONS"),
            replicas=_int_prop(props, "REPLICAS"),
            statement=statement,
        )
        self._timestamp(source, props, pos)
        _check_formats(source, pos)
        existing = self.sources.get(source.name)
        replaces_source = (
            existing is not None and isinstance(existing.statement, ast.CreateSource) and existing.statement.read_only
        )
        if statement.or_replace and (statement.read_only or replaces_source):
            kind = statement.kind.lower()
            raise InvalidStatement(
                f"Cannot add {kind} '{source.name}': CREATE OR REPLACE is not supported on source {kind}s.",
                pos.line,
                pos.column,
            )
        self._register(source, statement, statement.or_replace, statement.if_not_exists)

    def _timestamp(self, source: SourceDef, props: dict[str, ast.Property], pos: ast.Pos) -> None:
        ts_prop = props.get("TIMESTAMP")
        fmt = _string_prop(props, "TIMESTAMP_FORMAT")
        if ts_prop is None:
            if fmt is not None:
                prop = props["TIMESTAMP_FORMAT"]
                raise InvalidStatement(
                    "TIMESTAMP_FORMAT requires the TIMESTAMP property.", prop.pos.line, prop.pos.column
                )
            return
        raw = _string_prop(props, "TIMESTAMP") or ""
        from coinstream.ksql.parser import normalize_identifier

        name = normalize_identifier(raw.strip())
        found = source.find(name)
        if found is None:
            raise InvalidStatement(
                f"The TIMESTAMP column set in the WITH clause does not exist in the schema: '{name}'",
                ts_prop.pos.line,
                ts_prop.pos.column,
            )
        column = found[1]
        if column.type.base == "STRING":
            if fmt is None:
                raise InvalidStatement(
                    f"A String timestamp field has been specified without also specifying the "
                    f"TIMESTAMP_FORMAT for column '{name}'",
                    ts_prop.pos.line,
                    ts_prop.pos.column,
                )
            from coinstream.ksql import timefmt

            try:
                timefmt.parser(fmt)
            except timefmt.PatternError as error:
                raise UnsupportedStatement(
                    f"TIMESTAMP_FORMAT '{fmt}': {error}", ts_prop.pos.line, ts_prop.pos.column
                ) from None
        elif column.type.base not in ("BIGINT", "TIMESTAMP"):
            raise InvalidStatement(
                f"Timestamp column, `{name}`, should be LONG(INT64), TIMESTAMP, or a String "
                f"with a timestamp_format specified.",
                ts_prop.pos.line,
                ts_prop.pos.column,
            )
        source.timestamp_column = name
        source.timestamp_format = fmt

    # ---- CREATE ... AS SELECT ------------------------------------------------------------------------------------------

    def _create_as_select(self, statement: ast.CreateAsSelect) -> None:
        query = statement.query
        pos = statement.pos
        existing = self.sources.get(statement.name)
        if existing is not None and statement.if_not_exists:
            return
        source = self.sources.get(query.source)
        if source is None:
            raise InvalidStatement(f"{query.source} does not exist.", query.source_pos.line, query.source_pos.column)
        if source.kind == "TABLE":
            raise UnsupportedStatement("queries that read a TABLE", query.source_pos.line, query.source_pos.column)
        props = _properties(statement, statement.properties, SINK_PROPERTIES)
        if "TIMESTAMP" in props or "TIMESTAMP_FORMAT" in props:
            prop = props.get("TIMESTAMP") or props["TIMESTAMP_FORMAT"]
            raise UnsupportedStatement(
                "TIMESTAMP in the WITH clause of CREATE ... AS SELECT", prop.pos.line, prop.pos.column
            )
        scope = RowScope(source, query.source_alias)
        select_items = [item for item in query.select]
        aggregating = bool(query.group_by) or any(
            isinstance(item, ast.SelectItem) and _contains_aggregate(item.expr) for item in select_items
        )
        if query.having is not None and not query.group_by:
            raise InvalidStatement("HAVING requires GROUP BY", query.having.pos.line, query.having.pos.column)
        if query.window is not None and not query.group_by:
            raise InvalidStatement(
                "WINDOW clause requires a GROUP BY clause.", query.window.pos.line, query.window.pos.column
            )
        if aggregating and not query.group_by:
            raise InvalidStatement(
                "Aggregate functions can not be used without a GROUP BY clause (ksqlDB has no global aggregation).",
                query.pos.line,
                query.pos.column,
            )
        produces_table = aggregating
        if statement.kind == "TABLE" and not produces_table:
            raise InvalidStatement(
                "Invalid result type. Your SELECT query produces a STREAM. Please use CREATE "
                "STREAM AS SELECT statement instead.",
                pos.line,
                pos.column,
            )
        if statement.kind == "STREAM" and produces_table:
            raise InvalidStatement(
                "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE "
                "TABLE AS SELECT statement instead.",
                pos.line,
                pos.column,
            )
        if query.emit == "FINAL" and query.window is None:
            raise InvalidStatement(
                "EMIT FINAL is only supported for windowed aggregations.", query.pos.line, query.pos.column
            )
        self._query_counter += 1
        query_id = f"{'CTAS' if statement.kind == 'TABLE' else 'CSAS'}_{statement.name.upper()}_{self._query_counter}"
        compiler = Compiler()
        if aggregating:
            plan = self._plan_aggregate(statement, source, scope, compiler, query_id, props)
        else:
            plan = self._plan_project(statement, source, scope, compiler, query_id, props)
        if self._register(plan.sink, statement, statement.or_replace, False):
            self.queries.append(plan)

    def _sink(
        self,
        statement: ast.CreateAsSelect,
        source: SourceDef,
        props: dict[str, ast.Property],
        keys: list[Column],
        values: list[Column],
        window_kind: str | None,
        window_size: int | None,
    ) -> SourceDef:
        key_format, value_format = _formats(props, source.key_format, source.value_format, statement)
        if keys and key_format == "NONE" and "KEY_FORMAT" not in props and "FORMAT" not in props:
            key_format = "KAFKA"  # inherited from a source without key columns
        topic = _string_prop(props, "KAFKA_TOPIC") or statement.name
        sink = SourceDef(
            name=statement.name,
            kind=statement.kind,
            key_columns=keys,
            value_columns=values,
            topic=topic,
            key_format=key_format if keys else ("NONE" if key_format == "NONE" else key_format),
            value_format=value_format,
            wrap_single_value=_bool_prop(props, "WRAP_SINGLE_VALUE"),
            value_delimiter=_delimiter(props, "VALUE_DELIMITER")
            if "VALUE_DELIMITER" in props
            else source.value_delimiter,
            key_delimiter=_delimiter(props, "KEY_DELIMITER"),
            window_kind=window_kind,
            window_size=window_size,
            partitions=_int_prop(props, "PARTITIONS") or source.partitions,
            replicas=_int_prop(props, "REPLICAS") or source.replicas,
            statement=statement,
        )
        if not values:
            raise InvalidStatement(
                "The projection contains no value columns.", statement.pos.line, statement.pos.column
            )
        _check_formats(sink, statement.pos)
        return sink

    @staticmethod
    def _name_columns(
        items: list[tuple[ast.Expr, str | None]], statement: ast.Statement, source: SourceDef
    ) -> list[str]:
        """Output column names: alias, else the column name, else the field name of a dereference
        (with `_1`, `_2`, ... when a source column or an earlier generated name has it), else KSQL_COL_n
        (skipping the n a source column already uses)."""
        names = []
        counter = 0
        taken = {column.name for column in source.columns}
        for expr, alias in items:
            if alias is not None and alias in PSEUDO_COLUMNS:
                raise InvalidStatement(
                    f"`{alias}` is a reserved column name. You cannot use it as an alias for a column.",
                    expr.pos.line,
                    expr.pos.column,
                )
            if alias is None and isinstance(expr, ast.ColumnRef) and expr.name in PSEUDO_COLUMNS:
                raise InvalidStatement(
                    f"Reserved column name in select: `{expr.name}`. Please remove or alias the column.",
                    expr.pos.line,
                    expr.pos.column,
                )
            if alias is not None:
                name = alias
            elif isinstance(expr, ast.ColumnRef):
                name = expr.name
            elif isinstance(expr, ast.Deref):
                name = expr.field_name
                suffix = 0
                while name in taken:
                    suffix += 1
                    name = f"{expr.field_name}_{suffix}"
            else:
                while f"KSQL_COL_{counter}" in taken:
                    counter += 1
                name = f"KSQL_COL_{counter}"
                counter += 1
            taken.add(name)
            names.append(name)
        seen = set()
        for name in names:
            if name in seen:
                raise InvalidStatement(
                    f"Duplicate column names: {name}. Use aliases to rename columns.",
                    statement.pos.line,
                    statement.pos.column,
                )
            seen.add(name)
        return names

    def _expand_select(self, query: ast.Query, source: SourceDef, scope: RowScope) -> list[tuple[ast.Expr, str | None]]:
        items: list[tuple[ast.Expr, str | None]] = []
        for item in query.select:
            if isinstance(item, ast.SelectAll):
                if item.source is not None and item.source not in (source.name, query.source_alias):
                    raise InvalidStatement(
                        f"'{item.source}' is not a valid stream/table name or alias.", item.pos.line, item.pos.column
                    )
                for column in source.columns:
                    items.append((ast.ColumnRef(column.name, pos=item.pos), None))
            else:
                items.append((_unqualify(item.expr, scope), item.alias))
        return items

    # ---- stream projections ------------------------------------------------------------------------------------------------

    def _plan_project(self, statement, source, scope, compiler, query_id, props) -> QueryPlan:
        query = statement.query
        items = self._expand_select(query, source, scope)
        names = self._name_columns(items, statement, source)
        key_names = {column.name for column in source.key_columns}
        key_items: dict[str, tuple[str, SqlType, str]] = {}
        value_codes: list[Compiled] = []
        value_columns: list[Column] = []
        for (expr, _alias), name in zip(items, names, strict=False):
            compiled = compiler.compile(expr, scope)
            if isinstance(expr, ast.ColumnRef) and expr.name in key_names:
                if expr.name in key_items:
                    raise InvalidStatement(
                        f"The projection contains the key column `{expr.name}` more than once.",
                        expr.pos.line,
                        expr.pos.column,
                    )
                key_items[expr.name] = (name, compiled.type, compiled.code)
                continue
            if compiled.type == NULL:
                raise InvalidStatement(
                    f"Can't infer a type of null for column {name}. Please explicitly cast it.",
                    expr.pos.line,
                    expr.pos.column,
                )
            value_codes.append(compiled)
            value_columns.append(Column(name, compiled.type))
        missing = [column.name for column in source.key_columns if column.name not in key_items]
        if missing:
            raise InvalidStatement(
                f"Key missing from projection (ie, SELECT). The query used to build `{statement.name}` "
                f"must include the key column {', '.join(missing)} in its projection "
                f"(eg, SELECT {missing[0]}...).",
                query.pos.line,
                query.pos.column,
            )
        key_columns = [Column(key_items[c.name][0], key_items[c.name][1]) for c in source.key_columns]
        sink = self._sink(statement, source, props, key_columns, value_columns, source.window_kind, source.window_size)
        where = self._where(query, source, compiler)
        project = compiler.function("project", "row", [f"return ({''.join(c.code + ', ' for c in value_codes)})"])
        project_key = compiler.function(
            "project_key", "row", [f"return ({''.join(key_items[c.name][2] + ', ' for c in source.key_columns)})"]
        )
        item_functions = [
            compiler.function(f"item_{i}", "row", [f"return {c.code}"]) for i, c in enumerate(value_codes)
        ]
        return QueryPlan(
            query_id,
            "project",
            source,
            sink,
            statement,
            compiler,
            where=where,
            project=project,
            project_key=project_key,
            item_functions=item_functions,
            item_labels=[c.name for c in value_columns],
        )

    def _where(self, query: ast.Query, source: SourceDef, compiler: Compiler) -> Callable | None:
        if query.where is None:
            return None
        if _contains_aggregate(query.where):
            raise InvalidStatement(
                "Aggregate functions are not allowed in WHERE (use HAVING).",
                query.where.pos.line,
                query.where.pos.column,
            )
        scope = RowScope(source, query.source_alias, "WHERE")
        compiled = compiler.compile(_unqualify(query.where, scope), scope)
        if compiled.type not in (BOOLEAN, NULL):
            raise InvalidStatement(
                f"Type error in WHERE expression: Should evaluate to boolean but is "
                f"{expression_text(query.where)} ({compiled.type}) instead.",
                query.where.pos.line,
                query.where.pos.column,
            )
        return compiler.function("where", "row", [f"return ({compiled.code}) is True"])

    # ---- aggregations ------------------------------------------------------------------------------------------------------

    def _plan_aggregate(self, statement, source, scope, compiler, query_id, props) -> QueryPlan:
        query = statement.query
        if source.window_kind is not None:
            raise UnsupportedStatement("aggregating a windowed source", query.source_pos.line, query.source_pos.column)
        if source.value_format == "KAFKA":
            raise InvalidStatement(
                f"Source(s) {source.name} are using the 'KAFKA' value format. This format does not yet support "
                "GROUP BY.",
                query.source_pos.line,
                query.source_pos.column,
            )
        window = query.window
        session = window is not None and window.kind == "SESSION"
        if session and query.emit == "FINAL":
            raise UnsupportedStatement("EMIT FINAL with SESSION windows", window.pos.line, window.pos.column)
        if session and window.retention_ms is not None:
            raise UnsupportedStatement("RETENTION for SESSION windows", window.pos.line, window.pos.column)
        for item in query.select:
            if isinstance(item, ast.SelectAll):
                raise UnsupportedStatement("SELECT * in an aggregate query", item.pos.line, item.pos.column)
        items = self._expand_select(query, source, scope)
        for expr in [e for e, _ in items] + ([query.having] if query.having is not None else []):
            for node in _walk(expr):
                if isinstance(node, ast.FunctionCall) and not is_aggregate(node.name) and not is_function(node.name):
                    # name the unknown function before complaining about its arguments
                    raise InvalidStatement(
                        f"Can't find any functions with the name '{node.name}'", node.pos.line, node.pos.column
                    )
        group_scope = RowScope(source, query.source_alias, "GROUP BY")
        group_by = [_unqualify(expr, group_scope) for expr in query.group_by]
        group_compiled = []
        for expr in group_by:
            if _contains_aggregate(expr):
                raise InvalidStatement("GROUP BY does not support aggregate functions.", expr.pos.line, expr.pos.column)
            compiled = compiler.compile(expr, group_scope)
            if compiled.type == NULL:
                raise InvalidStatement("Can't GROUP BY a NULL literal", expr.pos.line, expr.pos.column)
            if not compiled.type.is_primitive:
                raise UnsupportedStatement(
                    f"GROUP BY a {compiled.type.base} expression", expr.pos.line, expr.pos.column
                )
            group_compiled.append(compiled)
        key_count = len(group_by)

        # Collect the aggregates (deduplicated) from SELECT and HAVING.
        agg_nodes: list[ast.FunctionCall] = []
        having = _unqualify(query.having, scope) if query.having is not None else None
        for expr in [e for e, _ in items] + ([having] if having is not None else []):
            for node in _walk(expr):
                if isinstance(node, ast.FunctionCall) and is_aggregate(node.name):
                    for arg in node.args:
                        if _contains_aggregate(arg):
                            raise InvalidStatement(
                                "Aggregate functions can not be nested.", arg.pos.line, arg.pos.column
                            )
                    if node not in agg_nodes:
                        agg_nodes.append(node)
        aggregates: list[AggregateCall] = []
        for node in agg_nodes:
            arg_types = []
            arg_code = None
            arg_nullable = True
            if node.args and not node.star:
                first = compiler.compile(node.args[0], scope)
                arg_types.append(first.type)
                arg_code, arg_nullable = first.code, first.nullable
                for extra in node.args[1:]:
                    arg_types.append(compiler.compile(extra, scope).type)
            call = resolve_aggregate(node.name, node.args, arg_types, node.star, node.pos, session=session)
            call.arg_code = arg_code
            call.arg_nullable = arg_nullable
            aggregates.append(call)
            if node.name in STRUCTURED_INTERMEDIATE_AGGREGATES:
                # the aggregate's state (a STRUCT or an ARRAY) is kept in the value format
                sink_format = _format(props, "VALUE_FORMAT") or _format(props, "FORMAT") or source.value_format
                if source.value_format == "DELIMITED":
                    raise InvalidStatement(
                        "One of the functions used in the statement has an intermediate type that the value "
                        "format can not handle. Please remove the function or change the format.",
                        node.pos.line,
                        node.pos.column,
                    )
                if sink_format == "DELIMITED":
                    raise UnsupportedStatement(
                        f"{node.name} with a DELIMITED sink value format", node.pos.line, node.pos.column
                    )

        windowed = window is not None

        def rewrite(expr: ast.Expr) -> ast.Expr | None:
            for index, group_expr in enumerate(group_by):
                if expr == group_expr:
                    return Slot(f"post[{index}]", group_compiled[index].type, expression_text(expr))
            if isinstance(expr, ast.FunctionCall) and is_aggregate(expr.name):
                index = agg_nodes.index(expr)
                return Slot(f"post[{key_count + 2 + index}]", aggregates[index].result_type, expression_text(expr))
            if (
                isinstance(expr, ast.ColumnRef)
                and expr.name in ("WINDOWSTART", "WINDOWEND")
                and source.find(expr.name) is None
            ):
                if not windowed:
                    raise InvalidStatement(
                        f"SELECT column '{expr.name}' cannot be resolved (the query is not windowed).",
                        expr.pos.line,
                        expr.pos.column,
                    )
                offset = 0 if expr.name == "WINDOWSTART" else 1
                return Slot(f"post[{key_count + offset}]", BIGINT, expr.name, nullable=False)
            return None

        post_scope = PostAggregationScope()
        key_columns: list[Column | None] = [None] * key_count
        value_columns: list[Column] = []
        value_codes: list[Compiled] = []
        names = self._name_columns(items, statement, source)
        for (expr, _alias), name in zip(items, names, strict=False):
            rewritten = _transform(expr, rewrite)
            compiled = compiler.compile(rewritten, post_scope)
            if (
                isinstance(rewritten, Slot)
                and rewritten.code.startswith("post[")
                and int(rewritten.code[5:-1]) < key_count
            ):
                index = int(rewritten.code[5:-1])
                if key_columns[index] is not None:
                    raise InvalidStatement(
                        f"The projection contains the grouping expression "
                        f"{expression_text(group_by[index])} more than once.",
                        expr.pos.line,
                        expr.pos.column,
                    )
                key_columns[index] = Column(name, compiled.type)
                continue
            if compiled.type == NULL:
                raise InvalidStatement(
                    f"Can't infer a type of null for column {name}. Please explicitly cast it.",
                    expr.pos.line,
                    expr.pos.column,
                )
            value_columns.append(Column(name, compiled.type))
            value_codes.append(compiled)
        for index, column in enumerate(key_columns):
            if column is None:
                text = expression_text(group_by[index])
                raise InvalidStatement(
                    f"Key missing from projection (ie, SELECT). The query used to build "
                    f"`{statement.name}` must include the grouping expression {text} in its "
                    f"projection (eg, SELECT {text}...).",
                    query.pos.line,
                    query.pos.column,
                )
        having_compiled = None
        if having is not None:
            having_compiled = compiler.compile(_transform(having, rewrite), post_scope)
            if having_compiled.type not in (BOOLEAN, NULL):
                raise InvalidStatement(
                    "HAVING expression should evaluate to BOOLEAN", having.pos.line, having.pos.column
                )

        emit_final = query.emit == "FINAL"
        windows: TimeWindows | SessionWindows | None = None
        if session:
            windows = make_session_windows(window.size_ms, window.grace_ms)
        elif window is not None:
            time_windows = make_time_windows(
                window.kind, window.size_ms, window.advance_ms, window.grace_ms, window.retention_ms, emit_final
            )
            windows = time_windows
            if window.retention_ms is not None and window.retention_ms < window.size_ms + time_windows.grace:
                raise InvalidStatement(
                    f"The retention period of the window store {statement.name} must be no "
                    f"smaller than its window size plus the grace period. Got size=["
                    f"{window.size_ms}], grace=[{time_windows.grace}], retention=["
                    f"{window.retention_ms}]",
                    window.pos.line,
                    window.pos.column,
                )
        sink = self._sink(
            statement,
            source,
            props,
            [c for c in key_columns if c is not None],
            value_columns,
            window.kind if window is not None else None,
            window.size_ms if window is not None and not session else None,
        )

        # Generated functions.
        where = self._where(query, source, compiler)
        body = []
        for index, compiled in enumerate(group_compiled):
            body.append(f"_g{index} = {compiled.code}")
            body.append(f"if _g{index} is None: return None")
        body.append("return (" + "".join(f"_g{i}, " for i in range(key_count)) + ")")
        group_key = compiler.function("group_key", "row", body)

        for call in aggregates:
            compiler.namespace.update(call.constants)
        init_codes = ["-1", "0"]
        for call in aggregates:
            init_codes.extend(call.init_codes)
        agg_init = compiler.function("agg_init", "", [f"return [{', '.join(init_codes)}]"])
        update_body: list[str] = []
        merge_body: list[str] = ["if other[0] > acc[0]: acc[0] = other[0]"]
        result_codes: list[str] = []
        sequence = f"row[{source.pseudo_index('ROWOFFSET')}]"
        base = 2
        for index, call in enumerate(aggregates):
            slots = call.slot_names(base)
            if call.arg_code is not None:
                update_body.append(f"_v{index} = {call.arg_code}")
            value_name = f"_v{index}" if call.arg_code is not None else "None"
            for line in call.update_template:
                update_body.append(line.format(v=value_name, seq=sequence, **slots))
            for line in call.merge_template:
                merge_body.append(line.format(**call.merge_names(base)))
            result_codes.append(call.result_template.format(**slots))
            base += call.slots
        agg_update = compiler.function("agg_update", "st, row", update_body or ["pass"])
        agg_merge = compiler.function("agg_merge", "acc, other", merge_body) if session else None
        post_code = "post = key + (ws, we, " + "".join(code + ", " for code in result_codes) + ")"
        agg_project = compiler.function(
            "agg_project", "key, ws, we, st", [post_code, f"return ({''.join(c.code + ', ' for c in value_codes)})"]
        )
        having_function = None
        if having_compiled is not None:
            having_function = compiler.function(
                "having", "key, ws, we, st", [post_code, f"return ({having_compiled.code}) is True"]
            )
        item_functions = [
            compiler.function(f"item_{i}", "key, ws, we, st", [post_code, f"return {c.code}"])
            for i, c in enumerate(value_codes)
        ]
        return QueryPlan(
            query_id,
            "aggregate",
            source,
            sink,
            statement,
            compiler,
            where=where,
            group_key=group_key,
            windows=windows,
            emit_final=emit_final,
            aggregates=aggregates,
            agg_init=agg_init,
            agg_update=agg_update,
            agg_merge=agg_merge,
            agg_project=agg_project,
            having=having_function,
            item_functions=item_functions,
            item_labels=[c.name for c in value_columns],
            post_code=post_code,
            value_codes=[c.code for c in value_codes],
        )


def plan_script(text: str, variables: Mapping[str, str] | None = None) -> Catalog:
    """Parse and plan a whole script; raises InvalidStatement/UnsupportedStatement. With
    `variables`, `${name}` references are substituted first (ksql/variables.py)."""
    from coinstream.ksql.variables import statement_templates, substitute

    catalog = Catalog()
    if variables is not None:
        catalog.templates = statement_templates(text, variables)
        text = substitute(text, variables)
    return catalog.execute_script(text)
