"""Metabase's native-query templating: `{{tag}}` variables and `[[ … ]]` optional clauses.

Why here: the card SQL in the spec is written for Metabase, which substitutes a dashboard filter's
value into it before sending it to ClickHouse. To test the cards, and to let the local dashboard run
the very same SQL, coinstream applies the same rules:

- `{{coin}}` is replaced by the value as a SQL literal (a text tag: a quoted string);
- `[[ AND code = {{coin}} ]]` is kept (without the brackets) only when every tag inside it has a
  value, and dropped otherwise; optional clauses do not nest;
- a tag outside an optional clause without a value is an error.

`substitute` inlines literals, as Metabase does. `bind` produces ClickHouse query parameters
(`{coin:String}`) instead, so the local dashboard never splices user input into SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_TOKEN = re.compile(r"\[\[|\]\]|\{\{(.*?)\}\}", re.DOTALL)
_TAG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# ClickHouse types for server-side binding, by the Python type of the value.
_BIND_TYPES: dict[type, str] = {str: "String", int: "Int64", float: "Float64"}

Value = str | int | float


class NativeQueryError(ValueError):
    """The SQL template is malformed, or a required tag has no value."""


@dataclass(frozen=True)
class _Tag:
    name: str


@dataclass(frozen=True)
class _Optional:
    parts: tuple[str | _Tag, ...]


def _parse(sql: str) -> tuple[str | _Tag | _Optional, ...]:
    """Split the template into text, tags and optional clauses (one level, as Metabase allows)."""
    top: list[str | _Tag | _Optional] = []
    inner: list[str | _Tag] | None = None
    position = 0
    for match in _TOKEN.finditer(sql):
        target = top if inner is None else inner
        if match.start() > position:
            target.append(sql[position : match.start()])
        token = match.group(0)
        if token == "[[":
            if inner is not None:
                raise NativeQueryError("optional clauses [[ … ]] cannot be nested")
            inner = []
        elif token == "]]":
            if inner is None:
                raise NativeQueryError("']]' without a matching '[['")
            top.append(_Optional(tuple(inner)))
            inner = None
        else:
            name = match.group(1).strip()
            if not _TAG_NAME.match(name):
                raise NativeQueryError(
                    f"unsupported template tag {{{{{match.group(1)}}}}} (only plain variables are supported)"
                )
            target.append(_Tag(name))
        position = match.end()
    if inner is not None:
        raise NativeQueryError("'[[' without a matching ']]'")
    top.append(sql[position:])
    return tuple(top)


def template_tags(sql: str) -> tuple[str, ...]:
    """The tag names a template uses, in order of first use."""
    names: list[str] = []
    for part in _parse(sql):
        for piece in part.parts if isinstance(part, _Optional) else (part,):
            if isinstance(piece, _Tag) and piece.name not in names:
                names.append(piece.name)
    return tuple(names)


def sql_literal(value: Value) -> str:
    """A ClickHouse literal for a value: numbers as they are, text quoted with \\ and ' escaped."""
    if isinstance(value, bool):
        raise NativeQueryError("boolean values are not supported")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise NativeQueryError(f"unsupported value type {type(value).__name__}")


def _render(sql: str, values: Mapping[str, Value | None], placeholder: Callable[[str, Value], str]) -> str:
    """`sql` with each tag that has a value replaced by `placeholder(name, value)`."""
    present: dict[str, Value] = {name: value for name, value in values.items() if value is not None and value != ""}
    out: list[str] = []
    for part in _parse(sql):
        if isinstance(part, _Optional):
            tags = {piece.name for piece in part.parts if isinstance(piece, _Tag)}
            if tags <= present.keys():
                out.extend(placeholder(p.name, present[p.name]) if isinstance(p, _Tag) else p for p in part.parts)
        elif isinstance(part, _Tag):
            if part.name not in present:
                raise NativeQueryError(f"the required parameter '{part.name}' has no value")
            out.append(placeholder(part.name, present[part.name]))
        else:
            out.append(part)
    return "".join(out)


def substitute(sql: str, values: Mapping[str, Value | None]) -> str:
    """The SQL Metabase would send: values inlined as literals, optional clauses resolved.

    A missing, None or empty value counts as "no value", like an unset dashboard filter.
    """
    return _render(sql, values, lambda name, value: sql_literal(value))


def bind(sql: str, values: Mapping[str, Value | None]) -> tuple[str, dict[str, Value]]:
    """The same query with ClickHouse server-side parameters (`{name:Type}`) and their values."""
    used: dict[str, Value] = {}

    def placeholder(name: str, value: Value) -> str:
        kind = _BIND_TYPES.get(type(value))
        if kind is None:
            raise NativeQueryError(f"unsupported value type {type(value).__name__} for '{name}'")
        used[name] = value
        return f"{{{name}:{kind}}}"

    return _render(sql, values, placeholder), used
