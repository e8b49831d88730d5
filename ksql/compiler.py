"""Compile ksqlDB expressions into Python source, then into functions, once per statement.

Why code generation: walking an expression tree per record costs a Python call per node; an
expression compiled to one Python expression (with SQL NULL propagation written inline) costs
roughly what hand-written code would. Type inference happens here too, with ksqlDB's rules:
INT op INT is INT (wrapping like Java), BIGINT wins over INT, DECIMAL over integers, DOUBLE over
everything; integer division truncates toward zero; comparisons and arithmetic with a NULL
operand are NULL; AND/OR use three-valued logic.

Values that cannot be written as Python literals (Decimals, compiled regexes, function
implementations) are passed to the generated code through its namespace, never pasted into the
source, so no statement text can inject code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Protocol

from coinstream.ksql import ast
from coinstream.ksql.aggregates import insort_desc, is_aggregate
from coinstream.ksql.errors import InvalidStatement, UnsupportedStatement
from coinstream.ksql.functions import Arg, is_unimplemented_ksql_function, resolve_scalar
from coinstream.ksql.types import (
    BIGINT,
    BOOLEAN,
    DOUBLE,
    INT_MAX,
    INT_MIN,
    INTEGER,
    LONG_MAX,
    LONG_MIN,
    NULL,
    STRING,
    SqlType,
    array_of,
    decimal_for_integral,
    decimal_plain,
    decimal_type,
    java_double_str,
    wrap_int,
    wrap_long,
)


@dataclass(frozen=True)
class Slot(ast.Expr):
    """A value the planner has already placed somewhere (a row slot, a group key, an aggregate)."""

    code: str
    type: SqlType
    label: str
    nullable: bool = True


@dataclass
class Compiled:
    code: str
    type: SqlType
    nullable: bool = True


class Scope(Protocol):
    def resolve(self, ref: ast.ColumnRef) -> Slot: ...


# ---- runtime helpers used by generated code ---------------------------------------------------------------------


def _idiv(a: int, b: int) -> int:
    """Java integer division: truncates toward zero; division by zero raises."""
    if b == 0:
        raise ZeroDivisionError("/ by zero")
    quotient = abs(a) // abs(b)
    return quotient if (a >= 0) == (b >= 0) else -quotient


def _imod(a: int, b: int) -> int:
    """Java `%`: the result has the sign of the dividend."""
    if b == 0:
        raise ZeroDivisionError("/ by zero")
    return a - b * _idiv(a, b)


def _fdiv(a: float, b: float) -> float:
    """Java double division: x/0.0 is +-Infinity, 0.0/0.0 is NaN."""
    a, b = float(a), float(b)
    if b == 0.0:
        if a == 0.0 or a != a:
            return math.nan
        return math.inf if (a > 0) == (math.copysign(1.0, b) > 0) else -math.inf
    return a / b


def _fmod(a: float, b: float) -> float:
    a, b = float(a), float(b)
    if b == 0.0 or math.isinf(a):
        return math.nan
    return math.fmod(a, b)


_DECIMAL_CONTEXT = Context(prec=80)


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def _dec_result(value: Decimal, precision: int, scale: int) -> Decimal:
    result = value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP, context=_DECIMAL_CONTEXT)
    if abs(result) >= Decimal(10) ** (precision - scale):
        raise ArithmeticError(f"Numeric field overflow: {value} does not fit DECIMAL({precision}, {scale})")
    return result


def _dec_div(a: Any, b: Any, precision: int, scale: int) -> Decimal:
    divisor = _dec(b)
    if divisor == 0:
        raise ZeroDivisionError("Division by zero")
    return _dec_result(_DECIMAL_CONTEXT.divide(_dec(a), divisor), precision, scale)


def _dec_mod(a: Any, b: Any, precision: int, scale: int) -> Decimal:
    divisor = _dec(b)
    if divisor == 0:
        raise ZeroDivisionError("Division by zero")
    return _dec_result(_DECIMAL_CONTEXT.remainder(_dec(a), divisor), precision, scale)


DECIMAL_OF_DOUBLE = SqlType("DECIMAL", 38, 17)  # only a marker type: the value keeps its own scale


def _dec_of_double(value: float) -> Decimal:
    """BigDecimal.valueOf(double): the shortest decimal text; NaN and the infinities fail."""
    if value - value != 0:
        raise ValueError(f"Character {value} is neither a decimal digit number, decimal point, nor exponent")
    return Decimal(repr(float(value)))


def _null_boolean() -> bool:
    """ksqlDB evaluates AND, OR and NOT on Java Booleans: a NULL operand fails the expression."""
    raise ValueError("NULL operand of AND, OR or NOT")


def _in_list(value: Any, items: tuple) -> bool:
    """ksqlDB's IN: NULL never matches (a NULL value or item is skipped), so the result is never NULL."""
    if value is None:
        return False
    return any(item is not None and item == value for item in items)


_JAVA_DOT = "[^\n\r\u0085\u2028\u2029]"  # Java's '.' does not match line terminators


def _like_regex(pattern: str, escape: str | None) -> re.Pattern:
    """ksqlDB's LIKE as a regex: % and _ are Java's .* and . (no line terminators); the escape
    character makes the next one literal, and ending the pattern with it is an error."""
    parts = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if escape is not None and char == escape:
            if index + 1 >= len(pattern):
                raise ValueError("LIKE pattern must not end with escape character")
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        if char == "%":
            parts.append(f"{_JAVA_DOT}*")
        elif char == "_":
            parts.append(_JAVA_DOT)
        else:
            parts.append(re.escape(char))
        index += 1
    return re.compile("".join(parts))


def _like(value: str, pattern: str, escape: str | None) -> bool:
    return _like_regex(pattern, escape).fullmatch(value) is not None


def _array_at(values: list, index: int) -> Any:
    """ksqlDB arrays are 1-based; negative indexes count from the end; out of range is NULL."""
    if index > 0:
        return values[index - 1] if index <= len(values) else None
    if index < 0:
        return values[index] if -index <= len(values) else None
    return None


def _to_int_saturating(value: float, low: int, high: int) -> int:
    if value != value:
        return 0
    if value >= high:
        return high
    if value <= low:
        return low
    return int(value)


def _cast_to_string(value: Any, source: SqlType) -> str:
    base = source.base
    if base == "BOOLEAN":
        return "true" if value else "false"
    if base == "DOUBLE":
        return java_double_str(value)
    if base == "DECIMAL":
        return decimal_plain(value)
    return str(value)


def _parse_java_int(text: str, low: int, high: int) -> int:
    value = int(text.strip())
    if not low <= value <= high:
        raise ValueError(f'For input string: "{text}"')
    return value


def _parse_java_double(text: str) -> float:
    stripped = text.strip()
    if stripped in ("NaN", "Infinity", "+Infinity", "-Infinity"):
        return float(stripped.replace("Infinity", "inf"))
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[dDfF]?", stripped):
        raise ValueError(f'For input string: "{text}"')
    return float(stripped.rstrip("dDfF"))


HELPERS: dict[str, Any] = {
    "_idiv": _idiv,
    "_imod": _imod,
    "_fdiv": _fdiv,
    "_fmod": _fmod,
    "_dec": _dec,
    "_dec_result": _dec_result,
    "_dec_div": _dec_div,
    "_dec_mod": _dec_mod,
    "_in_list": _in_list,
    "_null_boolean": _null_boolean,
    "_dec_of_double": _dec_of_double,
    "_like": _like,
    "_array_at": _array_at,
    "_wrap_int": wrap_int,
    "_wrap_long": wrap_long,
    "_to_int_saturating": _to_int_saturating,
    "_cast_to_string": _cast_to_string,
    "_parse_java_int": _parse_java_int,
    "_parse_java_double": _parse_java_double,
    "_insort_desc": insort_desc,
    "Decimal": Decimal,
    "InvalidOperation": InvalidOperation,
}


# ---- the compiler -----------------------------------------------------------------------------------------------


def _err(node: ast.Expr, message: str) -> InvalidStatement:
    return InvalidStatement(message, node.pos.line, node.pos.column)


def _unsupported(node: ast.Expr, what: str) -> UnsupportedStatement:
    return UnsupportedStatement(what, node.pos.line, node.pos.column)


def expression_text(node: ast.Expr) -> str:
    """A readable rendering of an expression, for error messages and generated column names."""
    if isinstance(node, ast.ColumnRef):
        return f"{node.source}.{node.name}" if node.source else node.name
    if isinstance(node, ast.Literal):
        if isinstance(node.value, str):
            return "'" + node.value.replace("'", "''") + "'"
        return (
            "NULL"
            if node.value is None
            else str(node.value).upper()
            if isinstance(node.value, bool)
            else str(node.value)
        )
    if isinstance(node, ast.FunctionCall):
        inner = "*" if node.star else ", ".join(expression_text(arg) for arg in node.args)
        return f"{node.name}({inner})"
    if isinstance(node, ast.Arith):
        return f"({expression_text(node.left)} {node.op} {expression_text(node.right)})"
    if isinstance(node, ast.Deref):
        return f"{expression_text(node.base)}->{node.field_name}"
    if isinstance(node, Slot):
        return node.label
    return type(node).__name__.upper()


class Compiler:
    """Turns expressions into Python source over names the caller provides (`row`, `post`, ...)."""

    def __init__(self, namespace: dict[str, Any] | None = None) -> None:
        self.namespace: dict[str, Any] = dict(HELPERS)
        if namespace:
            self.namespace.update(namespace)
        self._counter = 0

    # ---- plumbing -----------------------------------------------------------------------------------------------

    def const(self, value: Any) -> str:
        self._counter += 1
        name = f"_k{self._counter}"
        self.namespace[name] = value
        return name

    def tmp(self) -> str:
        self._counter += 1
        return f"_t{self._counter}"

    def function(self, name: str, params: str, body: list[str]) -> Callable:
        """Define `def name(params): body` in this compiler's namespace and return it."""
        source = f"def {name}({params}):\n" + "".join(f"    {line}\n" for line in body)
        exec(compile(source, f"<ksql {name}>", "exec"), self.namespace)
        function = self.namespace[name]
        function.__ksql_source__ = source
        return function

    def _null_guard(self, parts: list[Compiled], build: Callable[[list[str]], str]) -> str:
        """`build(names)` when no part is NULL, else None; each part evaluated once."""
        names = []
        checks = []
        for part in parts:
            if part.nullable:
                name = self.tmp()
                checks.append(f"({name} := {part.code}) is None")
                names.append(name)
            else:
                names.append(f"({part.code})")
        body = build(names)
        if not checks:
            return f"({body})"
        return f"(None if {' or '.join(checks)} else {body})"

    def convert(self, compiled: Compiled, target: SqlType) -> Compiled:
        """Widen a numeric value to `target` (INT->BIGINT is free, ->DOUBLE float(), ->DECIMAL Decimal())."""
        source = compiled.type
        if source in (target, NULL) or target.base in ("INTEGER", "BIGINT") and source.is_integral:
            return Compiled(compiled.code, target, compiled.nullable)
        if target.base == "DOUBLE" and source.is_numeric:
            code = self._null_guard([compiled], lambda n: f"float({n[0]})")
            return Compiled(code, target, compiled.nullable)
        if target.base == "DECIMAL" and source.is_numeric and source.base != "DOUBLE":
            code = self._null_guard(
                [compiled], lambda n: f"_dec_result(_dec({n[0]}), {target.precision}, {target.scale})"
            )
            return Compiled(code, target, compiled.nullable)
        if source.base == target.base and source.base in ("ARRAY", "MAP", "STRUCT"):
            return Compiled(compiled.code, target, compiled.nullable)
        raise InvalidStatement(f"Cannot convert {source} to {target}")

    # ---- entry point ----------------------------------------------------------------------------------------------

    def compile(self, node: ast.Expr, scope: Scope) -> Compiled:
        method = getattr(self, "_c_" + type(node).__name__, None)
        if method is None:  # pragma: no cover - every AST node has a method
            raise _unsupported(node, f"expression {type(node).__name__}")
        return method(node, scope)

    def _c_Slot(self, node: Slot, scope: Scope) -> Compiled:
        return Compiled(node.code, node.type, node.nullable)

    def _c_ColumnRef(self, node: ast.ColumnRef, scope: Scope) -> Compiled:
        return self._c_Slot(scope.resolve(node), scope)

    def _c_Literal(self, node: ast.Literal, scope: Scope) -> Compiled:
        value = node.value
        if value is None:
            return Compiled("None", NULL, True)
        if isinstance(value, bool):
            return Compiled("True" if value else "False", node.type, False)
        if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            return Compiled(repr(value), node.type, False)
        return Compiled(self.const(value), node.type, False)

    # ---- arithmetic -------------------------------------------------------------------------------------------------

    def _arith_type(self, node: ast.Expr, left: SqlType, right: SqlType, op: str) -> SqlType:
        if op == "+" and STRING in (left, right) and all(side in (STRING, NULL) for side in (left, right)):
            raise _unsupported(node, "the + operator on strings (use CONCAT)")
        for side in (left, right):
            if side != NULL and not side.is_numeric:
                raise _err(node, f"Error processing expression: unsupported arithmetic between {left} and {right}")
        if left == NULL and right == NULL:
            return NULL
        if left == NULL:
            return right
        if right == NULL:
            return left
        if "DOUBLE" in (left.base, right.base):
            return DOUBLE
        if "DECIMAL" in (left.base, right.base):
            a = left if left.base == "DECIMAL" else decimal_for_integral(left)
            b = right if right.base == "DECIMAL" else decimal_for_integral(right)
            p1, s1, p2, s2 = a.precision, a.scale, b.precision, b.scale
            if op in "+-":
                scale = max(s1, s2)
                precision = scale + max(p1 - s1, p2 - s2) + 1
            elif op == "*":
                precision, scale = p1 + p2 + 1, s1 + s2
            elif op == "/":
                scale = max(6, s1 + p2 + 1)
                precision = p1 - s1 + s2 + scale
            else:
                scale = max(s1, s2)
                precision = min(p1 - s1, p2 - s2) + scale
            return decimal_type(min(precision, 38), min(scale, min(precision, 38)))
        return BIGINT if "BIGINT" in (left.base, right.base) else INTEGER

    def _c_Arith(self, node: ast.Arith, scope: Scope) -> Compiled:
        left = self.compile(node.left, scope)
        right = self.compile(node.right, scope)
        result = self._arith_type(node, left.type, right.type, node.op)
        if result == NULL or left.type == NULL or right.type == NULL:
            return Compiled("None", result, True)
        op = node.op
        if result.base in ("INTEGER", "BIGINT"):
            low, high = (INT_MIN, INT_MAX) if result.base == "INTEGER" else (LONG_MIN, LONG_MAX)
            wrap = "_wrap_int" if result.base == "INTEGER" else "_wrap_long"
            if op in "+-*":
                value = self.tmp()

                def build(n):
                    return f"{value} if {low} <= ({value} := {n[0]} {op} {n[1]}) <= {high} else {wrap}({value})"
            elif op == "/":

                def build(n):
                    return f"{wrap}(_idiv({n[0]}, {n[1]}))"
            else:

                def build(n):
                    return f"_imod({n[0]}, {n[1]})"
        elif result.base == "DOUBLE":
            left = self.convert(left, DOUBLE) if left.type.base == "DECIMAL" else left
            right = self.convert(right, DOUBLE) if right.type.base == "DECIMAL" else right
            if op in "+-*":

                def build(n):
                    return f"float({n[0]}) {op} {n[1]}"
            elif op == "/":

                def build(n):
                    return f"_fdiv({n[0]}, {n[1]})"
            else:

                def build(n):
                    return f"_fmod({n[0]}, {n[1]})"
        else:  # DECIMAL
            p, s = result.precision, result.scale
            if op in "+-*":

                def build(n):
                    return f"_dec_result(_dec({n[0]}) {op} _dec({n[1]}), {p}, {s})"
            elif op == "/":

                def build(n):
                    return f"_dec_div({n[0]}, {n[1]}, {p}, {s})"
            else:

                def build(n):
                    return f"_dec_mod({n[0]}, {n[1]}, {p}, {s})"

        return Compiled(self._null_guard([left, right], build), result, True)

    def _c_Negate(self, node: ast.Negate, scope: Scope) -> Compiled:
        operand = self.compile(node.operand, scope)
        if operand.type == NULL:
            return operand
        if not operand.type.is_numeric:
            raise _err(node, f"Error processing expression: cannot negate {operand.type}")
        if operand.type.base == "INTEGER":

            def build(n):
                return f"_wrap_int(-{n[0]})"
        elif operand.type.base == "BIGINT":

            def build(n):
                return f"_wrap_long(-{n[0]})"
        else:

            def build(n):
                return f"-{n[0]}"

        return Compiled(self._null_guard([operand], build), operand.type, operand.nullable)

    def _c_Concat(self, node: ast.Concat, scope: Scope) -> Compiled:
        raise _unsupported(node, "the || operator (use CONCAT)")

    # ---- predicates --------------------------------------------------------------------------------------------------

    def _comparable(
        self,
        node: ast.Expr,
        left: SqlType,
        right: SqlType,
        equality_only: bool = False,
        operands: tuple[ast.Expr, ...] = (),
    ) -> None:
        if NULL in (left, right):
            return
        if (left == STRING) != (right == STRING) and any(
            isinstance(operand, ast.Literal) and operand.value is not None for operand in operands
        ):
            # ksqlDB converts a literal to the other side's type (strings to numbers, booleans, times)
            raise _unsupported(node, f"comparing {left} with {right} through a string literal")
        if left.is_numeric and right.is_numeric:
            return
        if left.base == right.base and left.base in ("STRING", "TIMESTAMP", "DATE", "TIME", "BYTES"):
            return
        if left.base == right.base == "BOOLEAN":
            if equality_only:
                return
            raise _err(node, "Cannot compare BOOLEAN values with < or >")
        if left.base == right.base and left.base in ("ARRAY", "MAP", "STRUCT"):
            raise _unsupported(node, f"comparing {left.base} values")
        raise _err(node, f"Cannot compare {left} to {right}")

    def _reject_null_comparison(self, node: ast.Expr, left: Compiled, right: Compiled, op: str) -> None:
        if NULL in (left.type, right.type):
            raise _err(node, f"Comparison with NULL not supported: {left.type} {op} {right.type}")

    def _double_as_decimal(self, compiled: Compiled) -> Compiled:
        code = self._null_guard([compiled], lambda n: f"_dec_of_double({n[0]})")
        return Compiled(code, DECIMAL_OF_DOUBLE, compiled.nullable)

    def _double_with_decimal(self, left: Compiled, right: Compiled) -> tuple[Compiled, Compiled]:
        """DOUBLE against DECIMAL compares as decimals, the DOUBLE taken as its shortest decimal text
        (ksqlDB's BigDecimal.valueOf)."""
        bases = {left.type.base, right.type.base}
        if bases == {"DOUBLE", "DECIMAL"}:
            left = self._double_as_decimal(left) if left.type.base == "DOUBLE" else left
            right = self._double_as_decimal(right) if right.type.base == "DOUBLE" else right
        return left, right

    def _c_Compare(self, node: ast.Compare, scope: Scope) -> Compiled:
        """ksqlDB's comparison: FALSE (not NULL) when either side is NULL."""
        left = self.compile(node.left, scope)
        right = self.compile(node.right, scope)
        self._reject_null_comparison(node, left, right, node.op)
        self._comparable(node, left.type, right.type, node.op in ("=", "<>"), (node.left, node.right))
        left, right = self._double_with_decimal(left, right)
        python_op = {"=": "==", "<>": "!="}.get(node.op, node.op)
        code = self._null_guard([left, right], lambda n: f"{n[0]} {python_op} {n[1]}")
        if left.nullable or right.nullable:
            code = f"({code} is True)"
        return Compiled(code, BOOLEAN, False)

    def _boolean(self, node: ast.Expr, compiled: Compiled) -> Compiled:
        if compiled.type not in (BOOLEAN, NULL):
            raise _err(node, f"Type mismatch: expected BOOLEAN, got {compiled.type}")
        return compiled

    def _c_And(self, node: ast.And, scope: Scope) -> Compiled:
        return self._three_valued(node, scope, dominant=False)

    def _c_Or(self, node: ast.Or, scope: Scope) -> Compiled:
        return self._three_valued(node, scope, dominant=True)

    def _three_valued(self, node: ast.And | ast.Or, scope: Scope, dominant: bool) -> Compiled:
        """AND (dominant False) or OR (dominant True) as ksqlDB evaluates them (Java's && and || on
        Booleans): the left side decides when it is the dominant value; otherwise the right side is
        the result. A NULL operand that is evaluated fails the expression (see `_null_boolean`)."""
        left = self._boolean(node.left, self.compile(node.left, scope))
        right = self._boolean(node.right, self.compile(node.right, scope))
        a, b = self.tmp(), self.tmp()
        left_code = f"({a} := {left.code})"
        right_code = f"({b} := {right.code})"
        if left.nullable:
            left_code = f"(_null_boolean() if {left_code} is None else {a})"
        if right.nullable:
            right_code = f"(_null_boolean() if {right_code} is None else {b})"
        code = f"({dominant} if {left_code} is {dominant} else {right_code})"
        return Compiled(code, BOOLEAN, False)

    def _c_Not(self, node: ast.Not, scope: Scope) -> Compiled:
        operand = self._boolean(node.operand, self.compile(node.operand, scope))
        if not operand.nullable:
            return Compiled(f"(not {operand.code})", BOOLEAN, False)
        a = self.tmp()
        return Compiled(f"(_null_boolean() if ({a} := {operand.code}) is None else not {a})", BOOLEAN, False)

    def _c_IsNull(self, node: ast.IsNull, scope: Scope) -> Compiled:
        value = self.compile(node.value, scope)
        return Compiled(f"(({value.code}) is {'not ' if node.negate else ''}None)", BOOLEAN, False)

    def _c_IsDistinct(self, node: ast.IsDistinct, scope: Scope) -> Compiled:
        left = self.compile(node.left, scope)
        right = self.compile(node.right, scope)
        self._reject_null_comparison(node, left, right, "IS NOT DISTINCT FROM" if node.negate else "IS DISTINCT FROM")
        self._comparable(node, left.type, right.type, True, (node.left, node.right))
        left, right = self._double_with_decimal(left, right)
        op = "==" if node.negate else "!="
        return Compiled(f"(({left.code}) {op} ({right.code}))", BOOLEAN, False)

    def _c_Between(self, node: ast.Between, scope: Scope) -> Compiled:
        value = self.compile(node.value, scope)
        low = self.compile(node.low, scope)
        high = self.compile(node.high, scope)
        self._comparable(node, value.type, low.type, False, (node.value, node.low))
        self._comparable(node, value.type, high.type, False, (node.value, node.high))
        if DOUBLE in (value.type, low.type, high.type) and any(c.type.base == "DECIMAL" for c in (value, low, high)):
            value, low, high = (self._double_as_decimal(c) if c.type == DOUBLE else c for c in (value, low, high))
        # ksqlDB: (value >= low AND value <= high) with FALSE comparisons on NULL; NOT BETWEEN negates that
        negate = "not " if node.negate else ""
        code = self._null_guard([value, low, high], lambda n: f"({n[1]} <= {n[0]} <= {n[2]})")
        if any(c.nullable for c in (value, low, high)):
            code = f"({code} is True)"
        return Compiled(f"({negate}{code})", BOOLEAN, False)

    def _c_InList(self, node: ast.InList, scope: Scope) -> Compiled:
        value = self.compile(node.value, scope)
        items = [self.compile(item, scope) for item in node.items]
        for item, item_node in zip(items, node.items, strict=False):
            self._comparable(item_node, value.type, item.type, True, (node.value, item_node))
        tuple_code = "(" + "".join(f"{item.code}, " for item in items) + ")"
        code = f"_in_list({value.code}, {tuple_code})"
        if node.negate:
            code = f"(not {code})"
        return Compiled(code, BOOLEAN, False)

    def _c_Like(self, node: ast.Like, scope: Scope) -> Compiled:
        value = self.compile(node.value, scope)
        pattern = self.compile(node.pattern, scope)
        for part, part_node in ((value, node.value), (pattern, node.pattern)):
            if part.type not in (STRING, NULL):
                raise _err(part_node, f"LIKE needs STRING operands, got {part.type}")
        # A NULL operand gives NULL here (ksqlDB fails the expression: the column is NULL as well, and
        # AND, OR, NOT and CASE WHEN fail on the NULL); a pattern ending with the escape character fails.
        negate = "not " if node.negate else ""
        literal = isinstance(node.pattern, ast.Literal) and isinstance(node.pattern.value, str)
        try:
            regex = self.const(_like_regex(node.pattern.value, node.escape)) if literal else None  # type: ignore[attr-defined]  # `literal` checked the node is a string Literal
        except ValueError:
            regex = None
        if regex is not None:
            code = self._null_guard([value], lambda n: f"{negate}({regex}.fullmatch({n[0]}) is not None)")
        else:
            escape = repr(node.escape)
            code = self._null_guard([value, pattern], lambda n: f"{negate}_like({n[0]}, {n[1]}, {escape})")
        return Compiled(code, BOOLEAN, value.nullable or pattern.nullable)

    # ---- CAST and CASE ------------------------------------------------------------------------------------------------

    def _c_Cast(self, node: ast.Cast, scope: Scope) -> Compiled:
        value = self.compile(node.value, scope)
        source, target = value.type, node.type
        if source == NULL:
            return Compiled("None", target, True)
        if source == target:
            return Compiled(value.code, target, value.nullable)
        sb, tb = source.base, target.base
        # The cast as a template of its one operand ({0}).
        pattern: str
        if tb in ("INTEGER", "BIGINT"):
            low, high = (INT_MIN, INT_MAX) if tb == "INTEGER" else (LONG_MIN, LONG_MAX)
            wrap = "_wrap_int" if tb == "INTEGER" else "_wrap_long"
            if sb in ("INTEGER", "BIGINT"):
                pattern = f"{wrap}({{0}})"
            elif sb == "DOUBLE":
                pattern = f"_to_int_saturating({{0}}, {low}, {high})"
            elif sb == "DECIMAL":
                pattern = f"{wrap}(int({{0}}))"
            elif sb == "STRING":
                pattern = f"_parse_java_int({{0}}, {low}, {high})"
            else:
                raise _err(node, f"Cast of {source} to {target} is not supported")
        elif tb == "DOUBLE":
            if sb in ("INTEGER", "BIGINT", "DECIMAL"):
                pattern = "float({0})"
            elif sb == "STRING":
                pattern = "_parse_java_double({0})"
            else:
                raise _err(node, f"Cast of {source} to {target} is not supported")
        elif tb == "DECIMAL":
            p, s = target.precision, target.scale
            if sb in ("INTEGER", "BIGINT", "DECIMAL"):
                pattern = f"_dec_result(_dec({{0}}), {p}, {s})"
            elif sb == "DOUBLE":
                pattern = f"_dec_result(Decimal(repr({{0}})), {p}, {s})"
            elif sb == "STRING":
                pattern = f"_dec_result(Decimal({{0}}.strip()), {p}, {s})"
            else:
                raise _err(node, f"Cast of {source} to {target} is not supported")
        elif tb == "STRING":
            if sb in ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL", "BOOLEAN"):
                source_const = self.const(source)
                pattern = f"_cast_to_string({{0}}, {source_const})"
            else:
                raise _unsupported(node, f"CAST from {source} to STRING")
        else:
            raise _unsupported(node, f"CAST from {source} to {target}")
        return Compiled(self._null_guard([value], lambda n: pattern.format(n[0])), target, True)

    def _common_type(self, node: ast.Expr, types: list[SqlType]) -> SqlType:
        concrete = [t for t in types if t != NULL]
        if not concrete:
            return NULL
        result = concrete[0]
        for other in concrete[1:]:
            if other == result:
                continue
            if other.is_numeric and result.is_numeric:
                if "DOUBLE" in (other.base, result.base):
                    result = DOUBLE
                elif "DECIMAL" in (other.base, result.base):
                    raise _unsupported(node, "mixing DECIMAL with other numeric types in CASE")
                else:
                    result = BIGINT if "BIGINT" in (other.base, result.base) else INTEGER
            elif STRING in (result, other):
                # ksqlDB converts string literals to the other elements' type here
                raise _unsupported(node, f"mixing {result} and {other} values (string conversion)")
            else:
                raise _err(
                    node,
                    f"Invalid Case expression. Type for all 'THEN' clauses should be the same. "
                    f"Found {result} and {other}",
                )
        return result

    def _c_Case(self, node: ast.Case, scope: Scope) -> Compiled:
        results = [self.compile(result, scope) for _, result in node.whens]
        default = self.compile(node.default, scope) if node.default is not None else Compiled("None", NULL)
        result_type = self._common_type(node, [r.type for r in results] + [default.type])
        results = [self.convert(r, result_type) for r in results]
        default = self.convert(default, result_type)
        code = default.code
        if node.operand is None:
            conditions = [self._boolean(cond, self.compile(cond, scope)) for cond, _ in node.whens]
            for condition, result in reversed(list(zip(conditions, results, strict=False))):
                test = condition.code
                if condition.nullable:  # ksqlDB unboxes each WHEN condition: NULL fails the expression
                    c = self.tmp()
                    test = f"(_null_boolean() if ({c} := {condition.code}) is None else {c})"
                code = f"(({result.code}) if ({test}) is True else {code})"
            return Compiled(code, result_type, True)
        operand = self.compile(node.operand, scope)
        name = self.tmp()
        for (when_node, _), result in reversed(list(zip(node.whens, results, strict=False))):
            when = self.compile(when_node, scope)
            self._comparable(when_node, operand.type, when.type, True)
            code = f"(({result.code}) if {name} == ({when.code}) else {code})"
        code = f"({code} if ({name} := {operand.code}) is not None else ({default.code}))"
        return Compiled(code, result_type, True)

    # ---- collections and structs --------------------------------------------------------------------------------------

    def _c_Subscript(self, node: ast.Subscript, scope: Scope) -> Compiled:
        base = self.compile(node.base, scope)
        index = self.compile(node.index, scope)
        if base.type.base == "ARRAY":
            if index.type.base not in ("INTEGER", "BIGINT"):
                raise _err(node, f"Array index must be an integer, got {index.type}")
            assert base.type.element is not None
            return Compiled(
                self._null_guard([base, index], lambda n: f"_array_at({n[0]}, {n[1]})"), base.type.element, True
            )
        if base.type.base == "MAP":
            assert base.type.element is not None
            if index.type != base.type.key and index.type != NULL:
                raise _err(node, f"Map key must be {base.type.key}, got {index.type}")
            return Compiled(self._null_guard([base, index], lambda n: f"{n[0]}.get({n[1]})"), base.type.element, True)
        raise _err(node, f"Cannot subscript a {base.type}")

    def _c_Deref(self, node: ast.Deref, scope: Scope) -> Compiled:
        base = self.compile(node.base, scope)
        if base.type.base != "STRUCT":
            raise _err(node, f"Cannot dereference a {base.type} with ->")
        for name, field_type in base.type.fields:
            if name == node.field_name:
                key = repr(name)

                def get_field(n: list[str], key: str = key) -> str:
                    return f"{n[0]}.get({key})"

                return Compiled(self._null_guard([base], get_field), field_type, True)
        raise _err(node, f"Could not find field '{node.field_name}' in '{expression_text(node.base)}'.")

    def _c_ArrayCtor(self, node: ast.ArrayCtor, scope: Scope) -> Compiled:
        items = [self.compile(item, scope) for item in node.items]
        element = self._common_type(node, [item.type for item in items])
        if element == NULL:
            raise _err(node, "Cannot construct an array with only NULL elements")
        items = [self.convert(item, element) for item in items]
        return Compiled("[" + ", ".join(item.code for item in items) + "]", array_of(element), False)

    # ---- functions ------------------------------------------------------------------------------------------------------

    def _c_FunctionCall(self, node: ast.FunctionCall, scope: Scope) -> Compiled:
        if is_aggregate(node.name):
            raise _err(
                node,
                f"Aggregate function {node.name} is not allowed here (only in the SELECT and "
                f"HAVING of a query with GROUP BY)",
            )
        if node.star:
            raise _err(node, f"Function '{node.name}' does not accept '*'")
        if is_unimplemented_ksql_function(node.name):
            raise _unsupported(node, f"function {node.name}")
        compiled = [self.compile(arg, scope) for arg in node.args]
        args = [
            Arg(c.type, arg.value) if isinstance(arg, ast.Literal) else Arg(c.type)
            for c, arg in zip(compiled, node.args, strict=False)
        ]
        resolved = resolve_scalar(node.name, args, node.pos.line, node.pos.column)
        impl = self.const(resolved.impl)
        if resolved.null_propagating:
            code = self._null_guard(compiled, lambda n: f"{impl}({', '.join(n)})")
            nullable: bool = True
        else:
            code = f"{impl}({', '.join(c.code for c in compiled)})"
            nullable = True
        if node.name == "AS_VALUE" and compiled:
            nullable = compiled[0].nullable
            code = compiled[0].code
        return Compiled(code, resolved.type, nullable)
