"""What the embedded server refuses to run, decided on ClickHouse's own parse of the statement.

Why this exists: chDB runs ClickHouse in clickhouse-local's mode, where `user_files_path` is not
enforced (`file()` reads any path of the machine) and chDB needs the FILE grant for ordinary DDL
and inserts. A real server confines every path to its user-files directory; the embedded one does
the same here. The rest of the confinement is ClickHouse's own machinery, set up in
`confinement.py`: grants refuse every other external source (url, s3, remote, mysql, ...) to every
user, and the read-only user runs with `readonly=1`, under which ClickHouse refuses table functions
and setting changes itself.

The decision is taken on the statement as ClickHouse parses it (`EXPLAIN AST`, with the request's
query parameters substituted), so case, backticks, comments, subqueries and CTEs make no
difference: every function call, table function, table engine and dictionary source appears as a
node, whatever was written around it. Only literal paths can be checked; a path computed by an
expression or a parameter the parser did not substitute is refused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from clickhouse.server import sqlscan
from clickhouse.server.errors import (
    ACCESS_DENIED, INTO_OUTFILE_NOT_ALLOWED, NOT_IMPLEMENTED, SUPPORT_IS_DISABLED, ClickHouseError,
)

# Functions and table functions that take a file path, and the index of that argument.
_PATH_ARGUMENT = {"file": 0, "filecluster": 1}
_PATH_FUNCTIONS = frozenset(_PATH_ARGUMENT)
# Table functions and engines that run programs of the machine.
_EXECUTABLE = frozenset({"executable", "executablepool"})
# Table and database engines that keep their data inside the server's own directory, or reach
# nothing at all. Every other engine (URL, S3, Kafka, MySQL, Filesystem, ...) reaches outside.
_LOCAL_ENGINES = frozenset(name.lower() for name in (
    "Memory", "Log", "TinyLog", "StripeLog", "Null", "Set", "Join", "Buffer", "Merge", "Dictionary",
    "GenerateRandom", "View", "MaterializedView", "LiveView", "Atomic", "Ordinary", "Lazy",
))
# Dictionary sources: only the server's own tables, without a host to connect to.
_LOCAL_DICTIONARY_SOURCES = frozenset({"clickhouse", "null"})
_REMOTE_SOURCE_KEYS = frozenset({"HOST", "PORT", "USER", "PASSWORD", "SECURE"})
# SYSTEM statements that stop the embedded engine (chDB then hangs every client).
_FATAL_SYSTEM = frozenset({"SHUTDOWN", "KILL"})

_CHILDREN_RE = re.compile(r"\s*\(children \d+\)\s*$")


@dataclass
class AstNode:
    """One line of `EXPLAIN AST`: its label ("Function", "Literal", "Storage definition", ...),
    the rest of the line (a function's name, a literal's value) and its children."""

    label: str
    detail: str
    children: list["AstNode"] = field(default_factory=list)

    def walk(self) -> Iterator["AstNode"]:
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def function_name(self) -> str:
        return self.detail.split()[0].strip("`") if self.detail.split() else ""

    def arguments(self) -> list["AstNode"]:
        """A function node's arguments (its ExpressionList's children)."""
        for child in self.children:
            if child.label == "ExpressionList":
                return child.children
        return []


_TWO_WORD_LABELS = ("Storage definition", "Dictionary definition", "Columns definition", "SYSTEM query")


def parse_explain_ast(text: str) -> AstNode:
    """The tree printed by `EXPLAIN AST` (one node per line, one space of indent per level)."""
    root = AstNode("root", "")
    stack: list[tuple[int, AstNode]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        content = _CHILDREN_RE.sub("", line.strip())
        label, detail = content, ""
        for two_words in _TWO_WORD_LABELS:
            if content.startswith(two_words):
                label, detail = two_words, content[len(two_words):].strip()
                break
        else:
            label, _, detail = content.partition(" ")
        node = AstNode(label, detail.strip())
        while stack[-1][0] >= depth:
            stack.pop()
        stack[-1][1].children.append(node)
        stack.append((depth, node))
    return root


def literal_string(node: AstNode) -> str | None:
    """The value of a string literal node (`Literal '...'`), or None if it is anything else."""
    if node.label != "Literal" or not node.detail.startswith("'") or not node.detail.endswith("'"):
        return None
    body, out, index = node.detail[1:-1], [], 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f", "\\": "\\", "'": "'"}
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            out.append(escapes.get(body[index + 1], body[index + 1]))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def path_is_confined(path: str, user_files: Path) -> bool:
    """Whether a path given to file() stays inside `user_files`, as ClickHouse's user_files_path.

    Relative paths are relative to the user-files directory (the server runs there). Glob
    patterns are allowed, but no `..` component anywhere (also not inside `{a,b}` alternatives),
    and the part before the first glob character must resolve, symlinks followed, inside it.
    """
    if not path or "\0" in path:
        return False
    if any(part == ".." for part in re.split(r"[/{},]", path)):
        return False
    root = os.path.realpath(user_files)
    full = path if os.path.isabs(path) else os.path.join(root, path)
    prefix = re.split(r"[*?{\[]", full, maxsplit=1)[0]
    resolved = os.path.realpath(prefix or "/")
    return resolved == root or resolved.startswith(root + os.sep)


def _refuse(code: int, message: str) -> ClickHouseError:
    return ClickHouseError.make(code, message)


def check_tree(tree: AstNode, statement: str, *, readonly: bool, user_files: Path) -> None:
    """Raise ClickHouseError if the parsed statement reaches outside what its user may reach."""
    creates = any(node.label in ("CreateQuery", "AttachQuery") for node in tree.walk())
    engines = {
        id(child) for node in tree.walk() if node.label == "Storage definition" for child in node.children
    }
    for node in tree.walk():
        if (creates and node.label == "Function" and id(node) not in engines
                and node.function_name.lower() in _PATH_FUNCTIONS):
            raise _refuse(
                ACCESS_DENIED,
                f"A view or table over {node.function_name}() is not allowed on the embedded server: "
                "it would hand the file to every user who may read the view; insert the file's rows "
                "into a table instead",
            )
        if node.label in ("SelectWithUnionQuery", "SelectIntersectExceptQuery") and any(
            child.label == "Literal" for child in node.children
        ):
            raise _refuse(INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed")
        if node.label == "InsertQuery" and any(child.label == "Literal" for child in node.children):
            raise _refuse(ACCESS_DENIED, "FROM INFILE is not allowed: send the data in the request body")
        if node.label == "BackupQuery":
            raise _refuse(
                SUPPORT_IS_DISABLED,
                "BACKUP and RESTORE are disabled on the embedded server: they read and write paths "
                "outside the server's directory; copy the stopped server's data directory instead",
            )
        if node.label == "SYSTEM" and node.detail.startswith("query"):
            _check_system(statement)
        if node.label == "Function":
            _check_function(node, readonly=readonly, user_files=user_files)
        if node.label == "Storage definition":
            _check_engine(node, user_files=user_files)
        if node.label == "Dictionary definition":
            _check_dictionary(node, statement)
        if node.label == "AttachQuery":
            _check_attach(statement)


def _check_function(node: AstNode, *, readonly: bool, user_files: Path) -> None:
    name = node.function_name.lower()
    if name in _EXECUTABLE:
        raise _refuse(ACCESS_DENIED, f"{node.function_name}() is not allowed: it runs programs of the machine")
    if name not in _PATH_FUNCTIONS:
        return
    if readonly:
        raise _refuse(
            ACCESS_DENIED, f"Not enough privileges: the read-only user may not use {node.function_name}()"
        )
    arguments = node.arguments()
    index = _PATH_ARGUMENT[name]
    path = literal_string(arguments[index]) if len(arguments) > index else None
    _check_path(node.function_name, path, user_files)


def _check_path(what: str, path: str | None, user_files: Path) -> None:
    if path is None:
        raise _refuse(
            ACCESS_DENIED,
            f"{what}: the path must be a string literal (an expression or parameter cannot be checked "
            "against the user files directory)",
        )
    if not path_is_confined(path, user_files):
        raise _refuse(
            ACCESS_DENIED,
            f"File is not inside {os.path.realpath(user_files)}: {what}() paths must stay in the user "
            "files directory (relative paths are relative to it)",
        )


def _check_engine(storage: AstNode, *, user_files: Path) -> None:
    for child in storage.children:
        if child.label != "Function":
            continue
        engine = child.function_name
        lowered = engine.lower()
        if lowered == "file":
            arguments = child.arguments()
            if len(arguments) > 1:
                _check_path("File", literal_string(arguments[1]), user_files)
            return
        if lowered == "kafka":
            raise _refuse(
                SUPPORT_IS_DISABLED,
                "The Kafka table engine is disabled in the embedded chDB server: chDB cannot run it "
                "and creating one corrupts the database. Land topics with the ClickPipes-style loader "
                "instead",
            )
        if lowered.endswith("mergetree") or lowered in _LOCAL_ENGINES:
            return
        raise _refuse(
            SUPPORT_IS_DISABLED,
            f"Engine {engine} is disabled in the embedded server: it reaches outside the server "
            "(files, network or programs)",
        )


def _check_dictionary(definition: AstNode, statement: str) -> None:
    for child in definition.children:
        if child.label == "FunctionWithKeyValueArguments":
            source = child.function_name.lower()
            if source not in _LOCAL_DICTIONARY_SOURCES or _names_remote_keys(statement):
                raise _refuse(
                    SUPPORT_IS_DISABLED,
                    f"Dictionary source {child.function_name.upper()} is disabled in the embedded "
                    "server: only the server's own tables (CLICKHOUSE without HOST/PORT) may feed "
                    "a dictionary",
                )


def _names_remote_keys(statement: str) -> bool:
    """Whether the SOURCE(...) clause of a CREATE DICTIONARY names a host, port or login."""
    found = list(sqlscan.tokens(statement))
    for index, token in enumerate(found):
        if token.is_word("SOURCE") and index + 1 < len(found) and found[index + 1].text == "(":
            depth = token.depth
            for inner in found[index + 2:]:
                if inner.depth <= depth and inner.text == ")":
                    break
                if inner.kind == "word" and inner.text.upper() in _REMOTE_SOURCE_KEYS:
                    return True
    return False


def _check_attach(statement: str) -> None:
    """`ATTACH TABLE t FROM 'path'` would take a directory of the machine as the table's data."""
    found = list(sqlscan.tokens(statement))
    for token, following in zip(found, found[1:]):
        if token.depth == 0 and token.is_word("FROM") and following.kind == "string":
            raise _refuse(ACCESS_DENIED, "ATTACH ... FROM a path is not allowed on the embedded server")


def _check_system(statement: str) -> None:
    words = [token.text.upper() for token in sqlscan.tokens(statement) if token.kind == "word"]
    if len(words) > 1 and words[1] in _FATAL_SYSTEM:
        raise _refuse(
            NOT_IMPLEMENTED,
            f"SYSTEM {words[1]} is not supported by the embedded server: stop it with SIGTERM "
            "(Ctrl+C in `coinstream up`)",
        )
