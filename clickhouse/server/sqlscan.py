"""The HTTP layer's questions about a request's SQL, answered with the one ClickHouse lexer
(`coinstream.clickhouse.sql_text.tokens`).

The HTTP interface receives a query and, for INSERTs, the data in one byte stream
(`INSERT INTO t FORMAT Native\\n<binary>`). Before chDB sees anything the server has to know where
the statement ends and the data begins, which output format a SELECT asked for (to label the
response), and a statement's first keyword. Those questions need the token structure (strings,
quoted identifiers, comments, parentheses), not the full grammar; chDB parses and validates the statement itself afterwards.

The scanner works on `str`; callers holding bytes decode them as latin-1, which maps every byte to
one character, so offsets found here are byte offsets into the original body.
"""

from __future__ import annotations

from dataclasses import dataclass

from coinstream.clickhouse.sql_text import Incomplete, Token, tokens

__all__ = ["Incomplete", "InsertSplit", "NeedMore", "Token", "first_keyword", "output_format", "split_insert", "tokens"]


def _complete_tokens(text: str) -> tuple[list[Token], bool]:
    """All tokens, and whether the scan reached the end of the text without `Incomplete`."""
    found: list[Token] = []
    try:
        for token in tokens(text):
            found.append(token)
    except Incomplete:
        return found, False
    return found, True


@dataclass(frozen=True)
class InsertSplit:
    """An INSERT statement carrying inline data.

    `text[:statement_end]` is the INSERT without its FORMAT clause or VALUES keyword (what chDB's
    streaming insert wants), `input_format` the data's format, `data_start` the offset where the
    data begins, and `uses_select` whether the data feeds an `INSERT ... SELECT ... FROM input()`.
    """

    statement_end: int
    input_format: str
    data_start: int
    uses_select: bool


class NeedMore(Exception):
    """The text seen so far ends before the point where query and data could be told apart."""


def split_insert(text: str, final: bool) -> InsertSplit | None:
    """Find where an INSERT's inline data starts, ClickHouse-style.

    Returns None when the text is not an INSERT with inline data (then the whole text is the
    query). Raises `NeedMore` when `final` is False and the answer depends on text not seen yet.
    ClickHouse's rule: data follows `VALUES`, or follows `FORMAT <name>` after the spaces and at
    most one line break.
    """
    significant, _ = _complete_tokens(text)
    if not significant:
        if final:
            return None
        raise NeedMore
    first = significant[0]
    if not first.is_word("INSERT"):
        if first.end == len(text) and not final and "INSERT".startswith(first.text.upper()):
            raise NeedMore  # "INS" might become "INSERT"
        return None
    uses_select = False
    for index, token in enumerate(significant):
        if token.depth != 0:
            continue
        if token.is_word("SELECT", "WITH"):
            uses_select = True
        elif token.is_word("VALUES") and not uses_select:
            if token.end == len(text) and not final:
                raise NeedMore  # "VALUES" may be the prefix of a longer word
            return InsertSplit(token.start, "Values", token.end, False)
        elif token.is_word("FORMAT") and index + 1 < len(significant):
            name = significant[index + 1]
            if name.kind not in ("word", "quoted"):
                continue
            if name.end == len(text) and not final:
                raise NeedMore
            data_start = _data_start_after(text, name.end, final)
            fmt = name.text.strip('`"') if name.kind == "quoted" else name.text
            return InsertSplit(token.start, fmt, data_start, uses_select)
    if final:
        return None
    raise NeedMore


def _data_start_after(text: str, pos: int, final: bool) -> int:
    """Skip spaces and tabs, then at most one line break (\\r\\n or \\n)."""
    size = len(text)
    while pos < size and text[pos] in " \t\f":
        pos += 1
    if pos == size and not final:
        raise NeedMore  # the line break, or the data, may be in the next chunk
    if text.startswith("\r\n", pos):
        return pos + 2
    if pos < size and text[pos] == "\r" and pos + 1 == size and not final:
        raise NeedMore
    if pos < size and text[pos] == "\n":
        return pos + 1
    return pos


def first_keyword(query: str) -> str:
    """The statement's first word, upper-cased ("" if none): SELECT, INSERT, CREATE, ..."""
    found, _ = _complete_tokens(query)
    for token in found:
        if token.kind == "word":
            return token.text.upper()
        if token.text != "(":
            return ""
    return ""


def output_format(query: str) -> str | None:
    """The format named by a top-level `FORMAT x` clause of a (non-INSERT) query, if any."""
    found, _ = _complete_tokens(query)
    result = None
    for index, token in enumerate(found[:-1]):
        if token.depth == 0 and token.is_word("FORMAT"):
            name = found[index + 1]
            if name.kind in ("word", "quoted"):
                result = name.text.strip('`"') if name.kind == "quoted" else name.text
    return result
