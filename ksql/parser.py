"""Parse ksqlDB statements (the subset in ksql/grammar.lark) into `ksql.ast` nodes.

Why lark: a real grammar gives exact error positions and rejects anything it does not know,
where regular expressions would silently accept malformed or partly understood statements.
Statements outside the subset that ksqlDB would accept (INSERT INTO, joins, PARTITION BY, ...)
raise `UnsupportedStatement`; text that is not ksqlDB raises `InvalidStatement`, both with the
line and column of the problem.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from coinstream.ksql import ast
from coinstream.ksql.errors import InvalidStatement, KsqlError, UnsupportedStatement
from coinstream.ksql.types import (
    BIGINT,
    BOOLEAN,
    DOUBLE,
    INT_MAX,
    INT_MIN,
    INTEGER,
    LONG_MAX,
    NULL,
    SIMPLE_TYPE_NAMES,
    STRING,
    SqlType,
    array_of,
    decimal_type,
    map_of,
    struct_of,
)

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")

TIME_UNITS_MS = {
    "MILLISECOND": 1,
    "MILLISECONDS": 1,
    "SECOND": 1000,
    "SECONDS": 1000,
    "MINUTE": 60_000,
    "MINUTES": 60_000,
    "HOUR": 3_600_000,
    "HOURS": 3_600_000,
    "DAY": 86_400_000,
    "DAYS": 86_400_000,
}

# How lark's terminal names read in an error message.
_TERMINAL_TEXT = {
    "SEMICOLON": "';'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "DOT": "'.'",
    "STAR": "'*'",
    "EQUAL": "'='",
    "LESSTHAN": "'<'",
    "MORETHAN": "'>'",
    "LSQB": "'['",
    "RSQB": "']'",
    "MINUS": "'-'",
    "PLUS": "'+'",
    "SLASH": "'/'",
    "PERCENT": "'%'",
    "IDENT": "an identifier",
    "DIGIT_IDENT": "an identifier",
    "QUOTED_IDENT": "an identifier",
    "DQ_IDENT": "an identifier",
    "STRING": "a string",
    "INT_NUMBER": "a number",
    "DECIMAL_NUMBER": "a number",
    "FLOAT_NUMBER": "a number",
    "$END": "end of input",
}


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    # cache=True keeps lark's analysed grammar in the temp directory (keyed by the grammar's hash):
    # building the LALR tables takes ~0.3 s, loading them ~20 ms, and every `ksql test` is a process.
    options = dict(parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=False)
    try:
        return Lark(GRAMMAR_PATH.read_text(), cache=True, **options)
    except OSError:  # unwritable temp directory: build without the cache
        return Lark(GRAMMAR_PATH.read_text(), **options)


def parse(text: str) -> list[ast.Statement]:
    """Parse a script of `;`-terminated statements; raise `InvalidStatement`/`UnsupportedStatement`."""
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None
    try:
        return _Builder(text).transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, KsqlError):
            raise error.orig_exc from None
        raise


def _syntax_error(text: str, error: UnexpectedInput) -> KsqlError:
    line, column = error.line, error.column
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        # Point just past the last non-blank character: that is where something is missing.
        content = text.rstrip()
        line = content.count("\n") + 1
        column = len(content) - (content.rfind("\n") + 1) + 1
        return InvalidStatement("unexpected end of input (is a ';' missing?)", line, column)
    offset = getattr(error, "pos_in_stream", None)
    if offset is not None and "=>" in text[max(0, offset - 1) : offset + 2]:
        return UnsupportedStatement("lambda functions", line, column)
    # ksqlDB syntax this grammar does not have: name it rather than call the text invalid
    for token, construct in (
        ("=>", "lambda functions"),
        (":=", "MAP(k := v) / STRUCT(f := v) constructors"),
        ("->*", "selecting all fields of a STRUCT (->*)"),
    ):
        found = text.find(token)
        if found >= 0:
            found_line = text.count("\n", 0, found) + 1
            found_column = found - (text.rfind("\n", 0, found) + 1) + 1
            return UnsupportedStatement(construct, found_line, found_column)
    if isinstance(error, UnexpectedToken):
        expected = sorted(
            {_TERMINAL_TEXT.get(name, f"'{name.strip('_')}'") for name in error.expected if not name.startswith("__")}
        )
        shown = ", ".join(expected[:12]) + (", ..." if len(expected) > 12 else "")
        return InvalidStatement(f"syntax error at '{error.token}': expected {shown}", line, column)
    if isinstance(error, UnexpectedCharacters):
        return InvalidStatement(f"syntax error: unexpected character '{error.char}'", line, column)
    return InvalidStatement(f"syntax error: {error}", line, column)


def _pos(meta_or_token) -> ast.Pos:
    line = getattr(meta_or_token, "line", None)
    column = getattr(meta_or_token, "column", None)
    return ast.Pos(line, column)


def normalize_identifier(token: Token | str) -> str:
    """ksqlDB's rule: unquoted identifiers are upper-cased; `quoted` and "quoted" keep their case."""
    text = str(token)
    if text.startswith("`") and text.endswith("`") and len(text) >= 2:
        return text[1:-1].replace("``", "`")
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return text[1:-1].replace('""', '"')
    return text.upper()


def parse_duration(amount: int, unit: str, pos: ast.Pos) -> int:
    factor = TIME_UNITS_MS.get(unit.upper())
    if factor is None:
        raise InvalidStatement(
            f"unknown time unit '{unit}' (use MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS)", pos.line, pos.column
        )
    return amount * factor


def decimal_literal_type(value: Decimal) -> SqlType:
    _sign, digits, exponent = value.as_tuple()
    scale = max(0, -int(exponent))
    precision = max(len(digits), scale, 1)
    return decimal_type(min(precision, 38), min(scale, 38))


@v_args(meta=True)
class _Builder(Transformer):
    """Turns lark's tree into `ksql.ast` nodes, raising for constructs outside the subset."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    # ---- script and statements --------------------------------------------------------------------------

    def start(self, meta, children):
        return list(children)

    def _statement_text(self, meta) -> str:
        if getattr(meta, "empty", True):
            return ""
        return self._text[meta.start_pos : meta.end_pos].strip() + ";"

    def create_source(self, meta, children):
        parts = _CreateParts(children)
        return ast.CreateSource(
            parts.kind,
            parts.name,
            parts.columns,
            parts.properties,
            parts.or_replace,
            parts.if_not_exists,
            parts.read_only,
            text=self._statement_text(meta),
            pos=_pos(meta),
        )

    def create_as_select(self, meta, children):
        parts = _CreateParts(children)
        return ast.CreateAsSelect(
            parts.kind,
            parts.name,
            parts.properties,
            parts.query,
            parts.or_replace,
            parts.if_not_exists,
            text=self._statement_text(meta),
            pos=_pos(meta),
        )

    def select_statement(self, meta, children):
        raise UnsupportedStatement(
            "transient (push/pull) SELECT queries: only CREATE STREAM/TABLE AS SELECT runs in the local engine",
            meta.line,
            meta.column,
        )

    def other_statement(self, meta, children):
        words = [str(child).upper() for child in children[:2] if isinstance(child, Token)]
        head = words[0] if words else "this"
        if head in ("TYPE", "SINK", "CONNECTOR"):
            head = "CREATE " + head
        elif head == "SOURCE":
            head = "CREATE SOURCE CONNECTOR"
        raise UnsupportedStatement(f"{head} statements", meta.line, meta.column)

    def kind(self, meta, children):
        return ("KIND", str(children[0]).upper())

    def or_replace(self, meta, children):
        return "OR_REPLACE"

    def if_not_exists(self, meta, children):
        return "IF_NOT_EXISTS"

    # ---- columns, properties, types -----------------------------------------------------------------------

    def identifier(self, meta, children):
        return _Ident(normalize_identifier(children[0]), _pos(children[0]))

    def table_elements(self, meta, children):
        return _Columns(tuple(children))

    def table_element(self, meta, children):
        ident, sql_type = children[0], children[1]
        constraint = children[2] if len(children) > 2 else None
        return ast.ColumnDef(ident.name, sql_type, constraint, ident.pos)

    def key_constraint(self, meta, children):
        return "KEY"

    def primary_key_constraint(self, meta, children):
        return "PRIMARY KEY"

    def headers_constraint(self, meta, children):
        raise UnsupportedStatement("HEADERS/HEADER columns", meta.line, meta.column)

    def with_clause(self, meta, children):
        return _Props(tuple(children))

    def property(self, meta, children):
        ident, literal = children
        value = literal.value
        raw = value if isinstance(value, str) else ("" if value is None else str(value))
        return ast.Property(ident.name.upper(), value, raw, ident.pos)

    def simple_type(self, meta, children):
        ident = children[0]
        params = children[1] if len(children) > 1 else None
        name = ident.name.upper()
        if name == "DECIMAL":
            if params is None or len(params) != 2:
                raise InvalidStatement(
                    "DECIMAL needs a precision and a scale, e.g. DECIMAL(10, 2)", ident.pos.line, ident.pos.column
                )
            try:
                return decimal_type(params[0], params[1])
            except ValueError as error:
                raise InvalidStatement(str(error), ident.pos.line, ident.pos.column) from None
        if name in ("VARCHAR", "STRING") and params is not None:
            return STRING
        if params is not None:
            raise InvalidStatement(f"type {name} takes no parameters", ident.pos.line, ident.pos.column)
        if name in SIMPLE_TYPE_NAMES:
            return SIMPLE_TYPE_NAMES[name]
        raise UnsupportedStatement(
            f"type '{ident.name}' (custom types are not supported)", ident.pos.line, ident.pos.column
        )

    def type_params(self, meta, children):
        return [int(child) for child in children]

    def array_type(self, meta, children):
        return array_of(children[-1])

    def map_type(self, meta, children):
        key, value = children[-2], children[-1]
        if key != STRING:
            raise InvalidStatement(f"MAP keys must be STRING, not {key}", meta.line, meta.column)
        return map_of(key, value)

    def struct_type(self, meta, children):
        fields = [child for child in children if isinstance(child, tuple)]
        names = [name for name, _ in fields]
        if len(set(names)) != len(names):
            raise InvalidStatement("duplicate STRUCT field names", meta.line, meta.column)
        return struct_of(fields)

    def struct_field(self, meta, children):
        return (children[0].name, children[1])

    # ---- queries ---------------------------------------------------------------------------------------------

    def query(self, meta, children):
        select = children[0]
        source_alias = children[1]
        parts: dict[str, Any] = {"window": None, "where": None, "group_by": (), "having": None, "emit": None}
        for child in children[2:]:
            parts[child[0]] = child[1]
        return ast.Query(
            select,
            source_alias[0],
            source_alias[1],
            parts["window"],
            parts["where"],
            parts["group_by"],
            parts["having"],
            parts["emit"],
            pos=_pos(meta),
            source_pos=source_alias[2],
        )

    def select_items(self, meta, children):
        return tuple(children)

    def select_all(self, meta, children):
        return ast.SelectAll(None, _pos(meta))

    def select_all_from(self, meta, children):
        return ast.SelectAll(children[0].name, _pos(meta))

    def select_expr(self, meta, children):
        alias = children[1].name if len(children) > 1 else None
        return ast.SelectItem(children[0], alias, _pos(meta))

    def relation(self, meta, children):
        if len(children) > 1:
            join_meta = children[1]
            raise UnsupportedStatement("JOIN", join_meta.line, join_meta.column)
        return children[0]

    def aliased_relation(self, meta, children):
        name = children[0]
        alias = children[1].name if len(children) > 1 else None
        return (name.name, alias, name.pos)

    def join(self, meta, children):
        return meta

    def window_clause(self, meta, children):
        return ("window", children[-1])

    def _window(self, meta, kind, durations, options):
        grace = retention = None
        for option_kind, value in options:
            if option_kind == "grace":
                grace = value
            else:
                retention = value
        size = durations[0]
        advance = durations[1] if len(durations) > 1 else None
        pos = _pos(meta)
        if size <= 0:
            raise InvalidStatement("window SIZE must be greater than zero", pos.line, pos.column)
        if advance is not None:
            if advance <= 0:
                raise InvalidStatement("window ADVANCE BY must be greater than zero", pos.line, pos.column)
            if advance > size:
                raise InvalidStatement(
                    "window ADVANCE BY must not be larger than the window SIZE", pos.line, pos.column
                )
        return ast.WindowSpec(kind, size, advance, grace, retention, pos)

    def tumbling(self, meta, children):
        return self._window(meta, "TUMBLING", [children[0]], children[1])

    def hopping(self, meta, children):
        return self._window(meta, "HOPPING", [children[0], children[1]], children[2])

    def session(self, meta, children):
        return self._window(meta, "SESSION", [children[0]], children[1])

    def window_options(self, meta, children):
        kinds = [kind for kind, _ in children]
        if len(set(kinds)) != len(kinds) or kinds not in ([], ["retention"], ["grace"], ["retention", "grace"]):
            raise InvalidStatement(
                "window options must be RETENTION then GRACE PERIOD, each at most once", meta.line, meta.column
            )
        return children

    def retention(self, meta, children):
        return ("retention", children[0])

    def grace(self, meta, children):
        return ("grace", children[0])

    def duration(self, meta, children):
        amount, unit = children
        return parse_duration(int(amount), unit.name, unit.pos)

    def where_clause(self, meta, children):
        return ("where", children[0])

    def group_by_clause(self, meta, children):
        return ("group_by", tuple(children))

    def partition_by_clause(self, meta, children):
        raise UnsupportedStatement("PARTITION BY", meta.line, meta.column)

    def having_clause(self, meta, children):
        return ("having", children[0])

    def emit_clause(self, meta, children):
        return ("emit", str(children[0]).upper())

    def limit_clause(self, meta, children):
        raise UnsupportedStatement("LIMIT in a persistent query", meta.line, meta.column)

    # ---- expressions -----------------------------------------------------------------------------------------

    def or_op(self, meta, children):
        return ast.Or(children[0], children[1], pos=_pos(meta))

    def and_op(self, meta, children):
        return ast.And(children[0], children[1], pos=_pos(meta))

    def not_op(self, meta, children):
        return ast.Not(children[-1], pos=_pos(meta))

    def comparison(self, meta, children):
        left, op, right = children
        op = "<>" if op == "!=" else op
        return ast.Compare(op, left, right, pos=_pos(meta))

    def comp_op(self, meta, children):
        return str(children[0])

    @staticmethod
    def _split_not(children):
        negate = any(isinstance(child, Token) and child.type == "NOT" for child in children)
        rest = [child for child in children if not (isinstance(child, Token) and child.type in ("NOT", "NULL"))]
        return negate, rest

    def between(self, meta, children):
        negate, (value, low, high) = self._split_not(children)
        return ast.Between(value, low, high, negate, pos=_pos(meta))

    def in_list(self, meta, children):
        negate, rest = self._split_not(children)
        return ast.InList(rest[0], tuple(rest[1:]), negate, pos=_pos(meta))

    def like(self, meta, children):
        negate, rest = self._split_not(children)
        escape = None
        if len(rest) > 2:
            escape = _unquote(rest[2])
            if len(escape) != 1:
                raise InvalidStatement("LIKE ESCAPE must be a single character", meta.line, meta.column)
        return ast.Like(rest[0], rest[1], escape, negate, pos=_pos(meta))

    def is_null(self, meta, children):
        negate, rest = self._split_not(children)
        return ast.IsNull(rest[0], negate, pos=_pos(meta))

    def is_distinct(self, meta, children):
        negate, rest = self._split_not(children)
        return ast.IsDistinct(rest[0], rest[1], negate, pos=_pos(meta))

    def concat_op(self, meta, children):
        return ast.Concat(children[0], children[1], pos=_pos(meta))

    def _arith(self, op, meta, children):
        return ast.Arith(op, children[0], children[1], pos=_pos(meta))

    def add(self, meta, children):
        return self._arith("+", meta, children)

    def sub(self, meta, children):
        return self._arith("-", meta, children)

    def mul(self, meta, children):
        return self._arith("*", meta, children)

    def div(self, meta, children):
        return self._arith("/", meta, children)

    def mod(self, meta, children):
        return self._arith("%", meta, children)

    def neg(self, meta, children):
        operand = children[0]
        if isinstance(operand, ast.Literal) and operand.type.is_numeric:
            value = -operand.value
            sql_type = operand.type
            if sql_type == BIGINT and value == INT_MIN:
                sql_type = INTEGER
            return ast.Literal(value, sql_type, pos=_pos(meta))
        return ast.Negate(operand, pos=_pos(meta))

    def pos(self, meta, children):
        return children[0]

    def subscript(self, meta, children):
        return ast.Subscript(children[0], children[1], pos=_pos(meta))

    def deref(self, meta, children):
        return ast.Deref(children[0], children[1].name, pos=_pos(meta))

    def cast(self, meta, children):
        return ast.Cast(children[0], children[1], pos=_pos(meta))

    def when_clause(self, meta, children):
        return ("when", children[0], children[1])

    def else_clause(self, meta, children):
        return ("else", children[0])

    def searched_case(self, meta, children):
        return self._case(meta, None, children)

    def simple_case(self, meta, children):
        return self._case(meta, children[0], children[1:])

    def _case(self, meta, operand, parts):
        whens = tuple((part[1], part[2]) for part in parts if part[0] == "when")
        default = next((part[1] for part in parts if part[0] == "else"), None)
        return ast.Case(operand, whens, default, pos=_pos(meta))

    def func_star(self, meta, children):
        return ast.FunctionCall(children[0].name.upper(), (), True, pos=_pos(meta))

    def func_call(self, meta, children):
        return ast.FunctionCall(children[0].name.upper(), tuple(children[1:]), False, pos=_pos(meta))

    def array_ctor(self, meta, children):
        return ast.ArrayCtor(tuple(child for child in children if not isinstance(child, Token)), pos=_pos(meta))

    def column_ref(self, meta, children):
        ident = children[0]
        return ast.ColumnRef(ident.name, None, pos=ident.pos)

    def qualified_column_ref(self, meta, children):
        source, column = children
        return ast.ColumnRef(column.name, source.name, pos=source.pos)

    # ---- literals ----------------------------------------------------------------------------------------------

    def string_lit(self, meta, children):
        return ast.Literal(_unquote(children[0]), STRING, pos=_pos(meta))

    def int_lit(self, meta, children):
        value = int(children[0])
        if value > LONG_MAX:
            raise InvalidStatement(f"number {value} is out of range for BIGINT", meta.line, meta.column)
        return ast.Literal(value, INTEGER if INT_MIN <= value <= INT_MAX else BIGINT, pos=_pos(meta))

    def decimal_lit(self, meta, children):
        value = Decimal(str(children[0]))
        return ast.Literal(value, decimal_literal_type(value), pos=_pos(meta))

    def double_lit(self, meta, children):
        value = float(children[0])
        if value in (float("inf"), float("-inf")):
            raise InvalidStatement(f"Number overflows DOUBLE: {children[0]}", meta.line, meta.column)
        return ast.Literal(value, DOUBLE, pos=_pos(meta))

    def true_lit(self, meta, children):
        return ast.Literal(True, BOOLEAN, pos=_pos(meta))

    def false_lit(self, meta, children):
        return ast.Literal(False, BOOLEAN, pos=_pos(meta))

    def null_lit(self, meta, children):
        return ast.Literal(None, NULL, pos=_pos(meta))


class _Ident:
    __slots__ = ("name", "pos")

    def __init__(self, name: str, pos: ast.Pos) -> None:
        self.name = name
        self.pos = pos


class _Columns:
    __slots__ = ("columns",)

    def __init__(self, columns: tuple) -> None:
        self.columns = columns


class _Props:
    __slots__ = ("properties",)

    def __init__(self, properties: tuple) -> None:
        self.properties = properties


class _CreateParts:
    """The parts of a CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] statement, plain or AS SELECT."""

    __slots__ = ("or_replace", "if_not_exists", "read_only", "kind", "name", "columns", "properties", "query")

    def __init__(self, children) -> None:
        self.or_replace = self.if_not_exists = self.read_only = False
        # the grammar always gives a kind and a name (and a query for AS SELECT)
        self.kind: str = ""
        self.name: str = ""
        self.query: ast.Query = None  # type: ignore[assignment]  # the grammar always supplies it for AS SELECT
        self.columns: tuple = ()
        self.properties: tuple = ()
        for child in children:
            if child == "OR_REPLACE":
                self.or_replace = True
            elif child == "IF_NOT_EXISTS":
                self.if_not_exists = True
            elif isinstance(child, Token) and child.type == "SOURCE":
                self.read_only = True
            elif isinstance(child, tuple) and child and child[0] == "KIND":
                self.kind = child[1]
            elif isinstance(child, _Ident):
                self.name = child.name
            elif isinstance(child, _Columns):
                self.columns = child.columns
            elif isinstance(child, _Props):
                self.properties = child.properties
            elif isinstance(child, ast.Query):
                self.query = child


def _unquote(token) -> str:
    text = str(token)
    return text[1:-1].replace("''", "'")


@dataclass(frozen=True)
class StatementInfo:
    """What `ksql apply` needs to know about a statement, from syntax alone."""

    text: str
    kind: str  # CREATE | OTHER
    object_type: str | None  # STREAM | TABLE
    name: str | None
    if_not_exists: bool
    or_replace: bool
    line: int
    column: int
    start: int = -1  # offsets of the statement in the script (its `;` excluded)
    end: int = -1


def split_statements(text: str) -> list[StatementInfo]:
    """Split a script into statements and identify CREATEs, checking syntax only.

    Unlike `parse`, constructs outside the engine's subset (joins, PARTITION BY, ...) are fine
    here: a real ksqlDB server will run them. Malformed text still raises `InvalidStatement`.
    """
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None
    result = []
    for node in tree.children:
        assert isinstance(node, Tree)
        meta = node.meta
        statement_text = text[meta.start_pos : meta.end_pos].strip() + ";"
        if node.data in ("create_source", "create_as_select"):
            object_type = name = None
            if_not_exists = or_replace = False
            for child in node.children:
                if isinstance(child, Token):
                    continue
                if child.data == "kind":
                    object_type = str(child.children[0]).upper()
                elif child.data == "identifier" and name is None:
                    name = normalize_identifier(child.children[0])  # type: ignore[arg-type]  # an identifier node holds one Token
                elif child.data == "if_not_exists":
                    if_not_exists = True
                elif child.data == "or_replace":
                    or_replace = True
            result.append(
                StatementInfo(
                    statement_text,
                    "CREATE",
                    object_type,
                    name,
                    if_not_exists,
                    or_replace,
                    meta.line,
                    meta.column,
                    meta.start_pos,
                    meta.end_pos,
                )
            )
        else:
            result.append(
                StatementInfo(
                    statement_text,
                    "OTHER",
                    None,
                    None,
                    False,
                    False,
                    meta.line,
                    meta.column,
                    meta.start_pos,
                    meta.end_pos,
                )
            )
    return result
