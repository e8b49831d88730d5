"""Aggregate functions (UDAFs): resolution, and the Python statements that update their state.

Why generated statements: an aggregation runs every aggregate of the query once per record and
window, so instead of calling an object per aggregate we emit a few lines of Python per aggregate
and the planner compiles them, together, into one `update(st, row)` function. Each aggregate owns
consecutive slots of the per-(key, window) state list; `result_code` reads its final value.

State values are plain JSON-able Python values (numbers, strings, lists, dicts, Decimal, bytes)
so the Kafka runner can write them to its changelog topic.

Semantics (ksqlDB): COUNT(*) counts rows, COUNT(x) non-null x; SUM starts at 0 and skips nulls
(INT->INT, BIGINT->BIGINT, DOUBLE->DOUBLE, DECIMAL->DECIMAL); MIN/MAX skip nulls (NULL when none);
AVG is a DOUBLE over non-null values, 0.0 when there are none; EARLIEST/LATEST_BY_OFFSET follow
processing order and ignore nulls unless asked not to, with an optional N giving an ARRAY;
TOPK/TOPKDISTINCT keep the K largest (distinct) non-null values, descending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from coinstream.ksql.errors import InvalidStatement, UnsupportedStatement
from coinstream.ksql.types import BIGINT, DOUBLE, INTEGER, NULL, SqlType, array_of, decimal_type

AGGREGATE_NAMES = {
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "EARLIEST_BY_OFFSET",
    "LATEST_BY_OFFSET",
    "TOPK",
    "TOPKDISTINCT",
}
KNOWN_UNSUPPORTED_AGGREGATES = {
    "COLLECT_LIST",
    "COLLECT_SET",
    "COUNT_DISTINCT",
    "HISTOGRAM",
    "STDDEV_SAMP",
    "STDDEV_SAMPLE",
    "CORRELATION",
    "ATTR",
}


def is_aggregate(name: str) -> bool:
    return name in AGGREGATE_NAMES or name in KNOWN_UNSUPPORTED_AGGREGATES


@dataclass
class AggregateCall:
    """One aggregate of a query, bound to its argument (already compiled to code over `row`)."""

    name: str
    result_type: SqlType
    slots: int
    init_codes: list[str]  # one Python expression per slot (fresh values: lists are created per window)
    update_template: list[str]  # lines using {v} (the argument value) and {s0}.. (slots)
    result_template: str  # expression using {s0}..
    arg_code: str | None = None  # Python expression producing the argument value from `row`
    arg_nullable: bool = True
    constants: dict[str, Any] = field(default_factory=dict)
    # Session windows only: lines folding another state's slots {b0}.. into {a0}.. (Kafka Streams'
    # session merger); values that depend on order carry the input offset as their sequence.
    merge_template: list[str] = field(default_factory=list)

    def slot_names(self, base: int) -> dict[str, str]:
        return {f"s{index}": f"st[{base + index}]" for index in range(self.slots)}

    def merge_names(self, base: int) -> dict[str, str]:
        names = {f"a{index}": f"acc[{base + index}]" for index in range(self.slots)}
        names.update({f"b{index}": f"other[{base + index}]" for index in range(self.slots)})
        return names


def _literal_param(args, index: int, expected: str, name: str, pos) -> Any:
    from coinstream.ksql import ast

    node = args[index]
    if not isinstance(node, ast.Literal) or node.type.base != expected:
        what = "a BOOLEAN literal" if expected == "BOOLEAN" else "an INTEGER literal"
        raise InvalidStatement(f"{name}: parameter {index + 1} must be {what}", pos.line, pos.column)
    return node.value


def resolve_aggregate(
    name: str, args: tuple, arg_types: list[SqlType], star: bool, pos, session: bool = False
) -> AggregateCall:
    """Build the `AggregateCall` for `name(args)`; `arg_types[i]` is the type of `args[i]`.

    With `session`, the call also gets a merge template, and order-dependent aggregates keep
    (sequence, value) pairs; the update template may then use {seq}.
    """
    call = _resolve(name, args, arg_types, star, pos, session)
    if session and not call.merge_template:
        call.merge_template = _simple_merge(call)
    return call


def _simple_merge(call: AggregateCall) -> list[str]:
    """Merges for aggregates whose state combines without order (COUNT, SUM, MIN, MAX, AVG, TOPK*)."""
    name = call.name
    if name == "COUNT":
        return ["{a0} += {b0}"]
    if name == "SUM":
        if call.result_type.base == "INTEGER":
            return ["{a0} = _wrap_int({a0} + {b0})"]
        if call.result_type.base == "BIGINT":
            return ["{a0} = _wrap_long({a0} + {b0})"]
        return ["{a0} += {b0}"]
    if name in ("MIN", "MAX"):
        op = "<" if name == "MIN" else ">"
        return [f"if {{b0}} is not None and ({{a0}} is None or {{b0}} {op} {{a0}}): {{a0}} = {{b0}}"]
    if name == "AVG":
        return ["{a0} += {b0}", "{a1} += {b1}"]
    raise AssertionError(f"no merge for {name}")  # pragma: no cover - the others define their own


def _resolve(name: str, args: tuple, arg_types: list[SqlType], star: bool, pos, session: bool) -> AggregateCall:
    from coinstream.ksql import ast

    line, column = pos.line, pos.column
    if name in KNOWN_UNSUPPORTED_AGGREGATES:
        raise UnsupportedStatement(f"aggregate function {name}", line, column)

    def reject() -> InvalidStatement:
        types = ", ".join(str(t) for t in arg_types) if not star else "*"
        return InvalidStatement(f"Function '{name}' does not accept parameters ({types}).", line, column)

    if name == "COUNT":
        if star or not args or (isinstance(args[0], ast.Literal) and args[0].value is not None and len(args) == 1):
            return AggregateCall(name, BIGINT, 1, ["0"], ["{s0} += 1"], "{s0}")
        if len(args) != 1:
            raise reject()
        return AggregateCall(name, BIGINT, 1, ["0"], ["if {v} is not None: {s0} += 1"], "{s0}")
    if star or not args:
        raise reject()
    value_type = arg_types[0]
    base = value_type.base

    if name == "SUM":
        if len(args) != 1:
            raise reject()
        if base == "INTEGER":
            return AggregateCall(name, INTEGER, 1, ["0"], ["if {v} is not None: {s0} = _wrap_int({s0} + {v})"], "{s0}")
        if base == "BIGINT":
            return AggregateCall(name, BIGINT, 1, ["0"], ["if {v} is not None: {s0} = _wrap_long({s0} + {v})"], "{s0}")
        if base == "DOUBLE":
            return AggregateCall(name, DOUBLE, 1, ["0.0"], ["if {v} is not None: {s0} += {v}"], "{s0}")
        if base == "DECIMAL":
            result = decimal_type(min(38, value_type.precision + 10), value_type.scale)
            zero = Decimal(0).scaleb(-value_type.scale)
            return AggregateCall(
                name, result, 1, ["_ZERO"], ["if {v} is not None: {s0} += {v}"], "{s0}", constants={"_ZERO": zero}
            )
        raise reject()

    if name in ("MIN", "MAX"):
        if len(args) != 1:
            raise reject()
        if base not in ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL", "STRING", "BYTES", "DATE", "TIME", "TIMESTAMP"):
            raise reject()
        op = "<" if name == "MIN" else ">"
        return AggregateCall(
            name,
            value_type,
            1,
            ["None"],
            [f"if {{v}} is not None and ({{s0}} is None or {{v}} {op} {{s0}}): {{s0}} = {{v}}"],
            "{s0}",
        )

    if name == "AVG":
        if len(args) != 1:
            raise reject()
        if base in ("INTEGER", "BIGINT"):
            init = "0"
        elif base == "DOUBLE":
            init = "0.0"
        elif base == "DECIMAL":
            raise UnsupportedStatement("AVG over DECIMAL", line, column)
        else:
            raise reject()
        return AggregateCall(
            name,
            DOUBLE,
            2,
            [init, "0"],
            ["if {v} is not None:", "    {s0} += {v}", "    {s1} += 1"],
            "(float({s0}) / {s1} if {s1} else 0.0)",
        )

    if name in ("EARLIEST_BY_OFFSET", "LATEST_BY_OFFSET"):
        if value_type == NULL:
            raise reject()
        count = None
        ignore_nulls = True
        if len(args) == 2:
            if isinstance(args[1], ast.Literal) and args[1].type.base == "BOOLEAN":
                ignore_nulls = args[1].value
            else:
                count = _literal_param(args, 1, "INTEGER", name, pos)
        elif len(args) == 3:
            count = _literal_param(args, 1, "INTEGER", name, pos)
            ignore_nulls = _literal_param(args, 2, "BOOLEAN", name, pos)
        elif len(args) != 1:
            raise reject()
        if count is not None and count <= 0:
            raise InvalidStatement(f"{name}: the number of values must be greater than 0", line, column)
        earliest = name == "EARLIEST_BY_OFFSET"
        guard = "if {v} is not None:" if ignore_nulls else "if True:"
        if session:
            # (sequence, value) pairs: merging sessions must restore processing order.
            if count is None:
                if earliest:
                    return AggregateCall(
                        name,
                        value_type,
                        1,
                        ["None"],
                        [guard, "    if {s0} is None: {s0} = [{seq}, {v}]"],
                        "({s0}[1] if {s0} is not None else None)",
                        merge_template=["if {b0} is not None and ({a0} is None or {b0}[0] < {a0}[0]): {a0} = {b0}"],
                    )
                return AggregateCall(
                    name,
                    value_type,
                    1,
                    ["None"],
                    [guard, "    {s0} = [{seq}, {v}]"],
                    "({s0}[1] if {s0} is not None else None)",
                    merge_template=["if {b0} is not None and ({a0} is None or {b0}[0] > {a0}[0]): {a0} = {b0}"],
                )
            if earliest:
                lines = [guard, f"    if len({{s0}}) < {count}: {{s0}}.append([{{seq}}, {{v}}])"]
                merge = [f"{{a0}} = sorted({{a0}} + {{b0}})[:{count}]"]
            else:
                lines = [guard, "    {s0}.append([{seq}, {v}])", f"    if len({{s0}}) > {count}: del {{s0}}[0]"]
                merge = [f"{{a0}} = sorted({{a0}} + {{b0}})[-{count}:]"]
            return AggregateCall(
                name, array_of(value_type), 1, ["[]"], lines, "[pair[1] for pair in {s0}]", merge_template=merge
            )
        if count is None:
            if earliest:
                if ignore_nulls:
                    return AggregateCall(
                        name, value_type, 1, ["None"], ["if {s0} is None and {v} is not None: {s0} = {v}"], "{s0}"
                    )
                return AggregateCall(
                    name,
                    value_type,
                    2,
                    ["False", "None"],
                    ["if not {s0}:", "    {s0} = True", "    {s1} = {v}"],
                    "{s1}",
                )
            return AggregateCall(name, value_type, 1, ["None"], [guard, "    {s0} = {v}"], "{s0}")
        if earliest:
            lines = [guard, f"    if len({{s0}}) < {count}: {{s0}}.append({{v}})"]
        else:
            lines = [guard, "    {s0}.append({v})", f"    if len({{s0}}) > {count}: del {{s0}}[0]"]
        return AggregateCall(name, array_of(value_type), 1, ["[]"], lines, "list({s0})")

    if name in ("TOPK", "TOPKDISTINCT"):
        if name == "TOPK" and len(args) == 3:
            raise UnsupportedStatement("TOPK(value, other, k) (a STRUCT per entry)", line, column)
        if len(args) != 2:
            raise reject()
        k = _literal_param(args, 1, "INTEGER", name, pos)
        if k <= 0:
            raise InvalidStatement(f"{name}: k must be greater than 0", line, column)
        if base not in ("INTEGER", "BIGINT", "DOUBLE", "STRING"):
            if base == "DECIMAL":
                raise UnsupportedStatement(f"{name} over DECIMAL", line, column)
            raise reject()
        distinct = " and {v} not in {s0}" if name == "TOPKDISTINCT" else ""
        lines = [
            f"if {{v}} is not None{distinct}:",
            "    _insort_desc({s0}, {v})",
            f"    if len({{s0}}) > {k}: {{s0}}.pop()",
        ]
        merge_distinct = " if _x not in {a0}" if name == "TOPKDISTINCT" else ""
        merge = [f"for _x in [_x for _x in {{b0}}{merge_distinct}]: _insort_desc({{a0}}, _x)", f"del {{a0}}[{k}:]"]
        return AggregateCall(name, array_of(value_type), 1, ["[]"], lines, "list({s0})", merge_template=merge)

    raise InvalidStatement(f"Can't find any functions with the name '{name}'", line, column)


def insort_desc(values: list, value: Any) -> None:
    """Insert keeping `values` sorted in descending order (after existing equal values)."""
    low, high = 0, len(values)
    while low < high:
        middle = (low + high) // 2
        if values[middle] < value:
            high = middle
        else:
            low = middle + 1
    values.insert(low, value)
