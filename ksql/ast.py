"""The syntax tree the parser produces: plain frozen dataclasses, one per construct.

Why separate from the parser: the planner, the compiler and `ksql apply` (which needs the statement
kind and name) all read statements, and none of them should depend on lark's trees. Every node
keeps the position of its first character so later errors can point at it. Identifiers are
already normalised with ksqlDB's rules (unquoted upper-cased, quoted kept as written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coinstream.ksql.types import SqlType


@dataclass(frozen=True)
class Pos:
    line: int | None = None
    column: int | None = None


NOWHERE = Pos()


# ---- expressions -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    pos: Pos = field(default=NOWHERE, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Literal(Expr):
    value: Any
    type: SqlType


@dataclass(frozen=True)
class ColumnRef(Expr):
    name: str
    source: str | None = None


@dataclass(frozen=True)
class FunctionCall(Expr):
    name: str  # upper-cased
    args: tuple[Expr, ...] = ()
    star: bool = False  # COUNT(*)


@dataclass(frozen=True)
class Arith(Expr):
    op: str  # + - * / %
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Negate(Expr):
    operand: Expr


@dataclass(frozen=True)
class Concat(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # = <> < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class And(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or(Expr):
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True)
class Between(Expr):
    value: Expr
    low: Expr
    high: Expr
    negate: bool = False


@dataclass(frozen=True)
class InList(Expr):
    value: Expr
    items: tuple[Expr, ...]
    negate: bool = False


@dataclass(frozen=True)
class Like(Expr):
    value: Expr
    pattern: Expr
    escape: str | None = None
    negate: bool = False


@dataclass(frozen=True)
class IsNull(Expr):
    value: Expr
    negate: bool = False


@dataclass(frozen=True)
class IsDistinct(Expr):
    left: Expr
    right: Expr
    negate: bool = False


@dataclass(frozen=True)
class Cast(Expr):
    value: Expr
    type: SqlType


@dataclass(frozen=True)
class Case(Expr):
    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None


@dataclass(frozen=True)
class Subscript(Expr):
    base: Expr
    index: Expr


@dataclass(frozen=True)
class Deref(Expr):
    base: Expr
    field_name: str


@dataclass(frozen=True)
class ArrayCtor(Expr):
    items: tuple[Expr, ...]


# ---- query parts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectItem:
    expr: Expr
    alias: str | None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class SelectAll:
    source: str | None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class WindowSpec:
    kind: str  # TUMBLING | HOPPING | SESSION
    size_ms: int
    advance_ms: int | None = None
    grace_ms: int | None = None
    retention_ms: int | None = None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Query:
    select: tuple[SelectItem | SelectAll, ...]
    source: str
    source_alias: str | None
    window: WindowSpec | None
    where: Expr | None
    group_by: tuple[Expr, ...]
    having: Expr | None
    emit: str | None  # CHANGES | FINAL | None
    pos: Pos = field(default=NOWHERE, compare=False)
    source_pos: Pos = field(default=NOWHERE, compare=False)


# ---- statements ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDef:
    name: str
    type: SqlType
    constraint: str | None  # KEY | PRIMARY KEY | None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Property:
    name: str  # upper-cased property name
    value: Any  # str | int | Decimal | float | bool | None
    raw: str  # the literal as written (string literals without quotes)
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Statement:
    text: str = field(compare=False, kw_only=True)
    pos: Pos = field(default=NOWHERE, compare=False, kw_only=True)


@dataclass(frozen=True)
class CreateSource(Statement):
    kind: str  # STREAM | TABLE
    name: str
    columns: tuple[ColumnDef, ...]
    properties: tuple[Property, ...]
    or_replace: bool = False
    if_not_exists: bool = False
    read_only: bool = False  # CREATE SOURCE STREAM/TABLE


@dataclass(frozen=True)
class CreateAsSelect(Statement):
    kind: str  # STREAM | TABLE
    name: str
    properties: tuple[Property, ...]
    query: Query
    or_replace: bool = False
    if_not_exists: bool = False
