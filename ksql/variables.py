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
    by_name = {name.lower(): value for name, value in variables.items()}

    def replace(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        value = by_name.get(name.lower())
        if value is None:
            line = text.count("\n", 0, match.start()) + 1
            column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
            raise InvalidStatement(
                f"variable ${{{name}}} is not defined (known: {', '.join(sorted(by_name)) or 'none'})", line, column
            )
        return value

    return _REFERENCE.sub(replace, text)


def _pieces(text: str) -> list[str]:
    """`text` cut after each `;` outside quotes and comments (each piece keeps its `;`)."""
    pieces, start, i, n = [], 0, 0, len(text)
    while i < n:
        char = text[i]
        if char in "'`\"":
            end = i + 1
            while end < n:
                if text[end] == char:
                    if end + 1 < n and text[end + 1] == char:  # a doubled quote inside
                        end += 2
                        continue
                    break
                end += 1
            i = end + 1
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
        elif char == ";":
            pieces.append(text[start : i + 1])
            start = i = i + 1
        else:
            i += 1
    if text[start:].strip():
        pieces.append(text[start:])
    return pieces


def statement_templates(text: str, variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """(substituted, original) text of each statement of a script: what a statement was written
    as, before its `${name}` references got their values. The engine names a query's changelog
    after the statement as written, so a changed setting (a variable's value) keeps its state."""
    return [(substitute(piece, variables), piece) for piece in _pieces(text)]
