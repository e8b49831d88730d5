"""ClickHouse SQL text: one lexer, and scripts split into statements with it.

The lexer knows the token structure ClickHouse's own parser starts from — '…' strings with
backslash escapes and doubled quotes, "…" and `…` quoted identifiers, heredocs ($tag$…$tag$),
`--` and `# ` line comments and nested /* */ block comments, parentheses — not the grammar. The
embedded server uses it to find where a request's statement ends and its data begins; the
migrations and view files use it to split scripts, because ClickHouse's HTTP interface runs one
statement per request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NUMBER_RE = re.compile(r"[0-9][0-9A-Za-z_.]*")
_HEREDOC_RE = re.compile(r"\$([A-Za-z0-9_]*)\$")


class Incomplete(Exception):
    """The text ends inside a token (string, comment, quoted identifier): more input is needed."""


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "quoted" (`x` or "x"), "string", "number", "punct"
    text: str
    start: int
    end: int
    depth: int  # parenthesis/bracket depth at the token

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


def tokens(text: str) -> Iterator[Token]:
    """Yield the significant tokens of `text` (whitespace and comments skipped).

    Raises `Incomplete` when the text ends inside a string, comment or quoted identifier.
    """
    pos, depth, size = 0, 0, len(text)
    while pos < size:
        char = text[pos]
        if char in " \t\r\n\f\v":
            pos += 1
        elif text.startswith("--", pos) or (char == "#" and text[pos + 1 : pos + 2] in (" ", "!")):
            newline = text.find("\n", pos)
            if newline < 0:
                raise Incomplete
            pos = newline + 1
        elif text.startswith("/*", pos):
            pos = _skip_block_comment(text, pos)
        elif char in "'\"`":
            end = _skip_quoted(text, pos, char)
            kind = "string" if char == "'" else "quoted"
            yield Token(kind, text[pos:end], pos, end, depth)
            pos = end
        elif char == "$" and (match := _HEREDOC_RE.match(text, pos)):
            close = text.find(match.group(0), match.end())
            if close < 0:
                raise Incomplete
            end = close + len(match.group(0))
            yield Token("string", text[pos:end], pos, end, depth)
            pos = end
        elif match := _WORD_RE.match(text, pos):
            yield Token("word", match.group(0), pos, match.end(), depth)
            pos = match.end()
        elif match := _NUMBER_RE.match(text, pos):
            yield Token("number", match.group(0), pos, match.end(), depth)
            pos = match.end()
        else:
            if char in ")]":
                depth = max(0, depth - 1)
            yield Token("punct", char, pos, pos + 1, depth)
            if char in "([":
                depth += 1
            pos += 1


def _skip_block_comment(text: str, pos: int) -> int:
    """End of a /* */ comment; ClickHouse allows them nested."""
    level, pos = 0, pos
    while True:
        opening, closing = text.find("/*", pos), text.find("*/", pos)
        if closing < 0:
            raise Incomplete
        if 0 <= opening < closing:
            level, pos = level + 1, opening + 2
        else:
            level, pos = level - 1, closing + 2
            if level == 0:
                return pos


def _skip_quoted(text: str, pos: int, quote: str) -> int:
    """End of a quoted token: backslash escapes and doubled quotes both continue it."""
    index = pos + 1
    while True:
        if index >= len(text):
            raise Incomplete
        char = text[index]
        if char == "\\":
            index += 2
        elif char == quote:
            if text[index + 1 : index + 2] == quote:
                index += 2
            elif index + 1 >= len(text):
                # A doubled quote may still follow in the next chunk of input.
                raise Incomplete
            else:
                return index + 1
        else:
            index += 1


def split_statements(sql: str, comments: bool = True) -> list[str]:
    """Split a script on the `;` tokens; drop pieces without code (only comments or blanks).

    Each statement keeps its text as written, comments included (stripped of surrounding blanks);
    with `comments=False` it is rebuilt from its tokens, one space wherever blanks or comments
    separated two of them — the statement's code, whatever its layout. A script ending inside a
    string or comment raises `Incomplete`.
    """
    text = sql + "\n"  # a last line comment, or a quote at the very end, is complete
    statements: list[str] = []
    start = 0
    pending: list[Token] = []
    for token in tokens(text):
        if token.kind == "punct" and token.text == ";":
            if pending:
                statements.append(_statement(text, start, token.start, pending, comments))
            start, pending = token.end, []
        else:
            pending.append(token)
    if pending:
        statements.append(_statement(text, start, len(text), pending, comments))
    return statements


def _statement(text: str, start: int, end: int, found: list[Token], comments: bool) -> str:
    if comments:
        return text[start:end].strip()
    parts = [found[0].text]
    for previous, token in zip(found, found[1:], strict=False):
        parts.append((" " if token.start > previous.end else "") + token.text)
    return "".join(parts)
