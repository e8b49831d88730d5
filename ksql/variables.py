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

from ksql.errors import InvalidStatement

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
            raise InvalidStatement(f"variable ${{{name}}} is not defined (known: "
                                   f"{', '.join(sorted(by_name)) or 'none'})", line, column)
        return value

    return _REFERENCE.sub(replace, text)
