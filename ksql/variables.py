"""Variable substitution: `${name}` in statement text replaced by a value, as ksqlDB does.

Why: a value that is a setting of the deployment (the allowed clock skew of a live rate) belongs in
the settings, not in the statements; ksqlDB substitutes `${name}` from variables defined with
`DEFINE` or sent with a request (`sessionVariables`), and `coinstream ksql apply` sends them that
way. The local engine substitutes the same variables before parsing.

ksqlDB's rules kept here: names start with a letter or an underscore followed by letters, digits
or underscores; they are case-insensitive; `$${name}` is an escaped reference that stays literal
(as `${name}`); substitution is textual, inside string literals too. A reference to an undefined
variable is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from coinstream.ksql.errors import InvalidStatement

_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """`text` with every `${name}` replaced by its value; `$${name}` becomes `${name}`."""
    return _substitute(text, variables)[0]


def _substitute(text: str, variables: Mapping[str, str]) -> tuple[str, list[tuple[int, int]]]:
    """The substituted text, and for each replacement (its end in the new text, the length the
    new text lost or gained there): enough to map a position back to the text as written."""
    by_name = {name.lower(): value for name, value in variables.items()}
    parts: list[str] = []
    shifts: list[tuple[int, int]] = []
    last = written = 0
    for match in _REFERENCE.finditer(text):
        escaped, name = match.group(1), match.group(2)
        if escaped:
            value = "${" + name + "}"
        else:
            found = by_name.get(name.lower())
            if found is None:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                raise InvalidStatement(
                    f"variable ${{{name}}} is not defined (known: {', '.join(sorted(by_name)) or 'none'})",
                    line,
                    column,
                )
            value = found
        parts += [text[last : match.start()], value]
        written += match.start() - last + len(value)
        shifts.append((written, len(match.group(0)) - len(value)))
        last = match.end()
    parts.append(text[last:])
    return "".join(parts), shifts


def statement_templates(text: str, variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """(substituted, original) text of each statement of a script: what a statement was written
    as, before its `${name}` references got their values. The engine names a query's changelog
    after the statement as written, so a changed setting (a variable's value) keeps its state.

    The statements are found by the parser's grammar in the substituted script (the one way
    statements are split here); their bounds, never inside a value, map back to the text as
    written."""
    from coinstream.ksql.parser import split_statements

    substituted, shifts = _substitute(text, variables)

    def written(position: int) -> int:
        return position + sum(shift for end, shift in shifts if end <= position)

    return [
        (
            substituted[info.start : info.end].strip() + ";",
            text[written(info.start) : written(info.end)].strip() + ";",
        )
        for info in split_statements(substituted)
    ]
