"""ClickHouse SQL scripts split into statements: ClickHouse's HTTP interface runs one per request."""

from __future__ import annotations


def split_statements(sql: str, comments: bool = True) -> list[str]:
    """Split a SQL script on `;` outside quotes and comments; drop comment-only pieces (and,
    with `comments=False`, the comments inside statements too, each replaced by a space).

    Handles '…' strings (backslash and doubled-quote escapes), "…" and `…` identifiers,
    `-- …` / `# …` line comments and `/* … */` block comments.
    """
    statements: list[str] = []
    current: list[str] = []
    has_code = False
    index, length = 0, len(sql)
    while index < length:
        char = sql[index]
        pair = sql[index : index + 2]
        if pair == "--" or char == "#":
            end = sql.find("\n", index)
            end = length if end < 0 else end
            current.append(sql[index:end] if comments else " ")
            index = end
            continue
        if pair == "/*":
            end = sql.find("*/", index + 2)
            end = length if end < 0 else end + 2
            current.append(sql[index:end] if comments else " ")
            index = end
            continue
        if char in ("'", '"', "`"):
            end = index + 1
            while end < length:
                if sql[end] == "\\":
                    end += 2
                    continue
                if sql[end] == char:
                    if sql[end + 1 : end + 2] == char:  # doubled quote
                        end += 2
                        continue
                    break
                end += 1
            current.append(sql[index : end + 1])
            has_code = True
            index = end + 1
            continue
        if char == ";":
            if has_code:
                statements.append("".join(current).strip())
            current, has_code = [], False
            index += 1
            continue
        if not char.isspace():
            has_code = True
        current.append(char)
        index += 1
    if has_code:
        statements.append("".join(current).strip())
    return statements
