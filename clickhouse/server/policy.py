"""What the embedded server refuses to run, decided on ClickHouse's own parse of the statement.

Why this exists: chDB runs ClickHouse in clickhouse-local's mode, where `user_files_path` is not
enforced (`file()` reads any path of the host) and chDB needs the FILE grant for ordinary DDL
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from coinstream.clickhouse.server import sqlscan
from coinstream.clickhouse.server.errors import (
    ACCESS_DENIED,
    INTO_OUTFILE_NOT_ALLOWED,
    NOT_IMPLEMENTED,
    SUPPORT_IS_DISABLED,
    ClickHouseError,
)

# Functions and table functions that take a file path, and the index of that argument.
_PATH_ARGUMENT = {"file": 0, "filecluster": 1}
_PATH_FUNCTIONS = frozenset(_PATH_ARGUMENT)
# Table functions and engines that run programs of the host.
_EXECUTABLE = frozenset({"executable", "executablepool"})
# Table functions that read only the server's own tables or generate rows. Every other one
# (url, s3, remote, mysql, filesystem, python, iceberg, ...) reaches files, the network or programs;
# ClickHouse's grants refuse most of them already, this list refuses the rest, including those a
# newer chDB may add. file() and fileCluster() are judged by their path.
_LOCAL_TABLE_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "values",
        "view",
        "viewIfPermitted",
        "viewExplain",
        "merge",
        "generateRandom",
        "generateSeries",
        "generate_series",
        "null",
        "input",
        "loop",
        "format",
        "dictionary",
        "primes",
    )
)
# Table functions that share their name with a scalar function: judged by position only.
_SCALAR_TOO = frozenset({"file", "format", "fuzzquery"})
# Scalar functions that call out to the network (LLM endpoints).
_NETWORK_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "aiClassify",
        "aiEmbed",
        "aiExtract",
        "aiFilter",
        "aiGenerate",
        "aiRedact",
        "aiSimilarity",
        "aiTranslate",
        "disk",
    )
)
# Table settings that place a table's data on another disk (a `disk(type = web, ...)` reaches URLs).
_DISK_SETTINGS = frozenset({"DISK", "STORAGE_POLICY", "TABLE_DISK"})
# Table and database engines that keep their data inside the server's own directory, or reach
# nothing at all. Every other engine (URL, S3, Kafka, MySQL, Filesystem, ...) reaches outside.
_LOCAL_ENGINES = frozenset(
    name.lower()
    for name in (
        "Memory",
        "Log",
        "TinyLog",
        "StripeLog",
        "Null",
        "Set",
        "Join",
        "Buffer",
        "Merge",
        "Dictionary",
        "GenerateRandom",
        "View",
        "MaterializedView",
        "LiveView",
        "Atomic",
        "Ordinary",
        "Lazy",
    )
)
# Dictionary sources: only the server's own tables, named by table (not by a query, a WHERE
# condition or an invalidate query, which run unchecked), without a host to connect to.
_LOCAL_DICTIONARY_SOURCES = frozenset({"clickhouse", "null"})
_LOCAL_SOURCE_KEYS = frozenset({"TABLE", "DB", "UPDATE_FIELD", "UPDATE_LAG"})
# SYSTEM statements that stop the embedded engine (chDB then hangs every client).
_FATAL_SYSTEM = frozenset({"SHUTDOWN", "KILL"})

_CHILDREN_RE = re.compile(r"\s*\(children (\d+)\)\s*$")


class IncompleteAst(ValueError):
    """`EXPLAIN AST` printed fewer nodes than it announced (its output was cut short)."""


@dataclass
class AstNode:
    """One line of `EXPLAIN AST`: its label ("Function", "Literal", "Storage definition", ...),
    the rest of the line (a function's name, a literal's value) and its children."""

    label: str
    detail: str
    children: list[AstNode] = field(default_factory=list)
    declared_children: int = 0

    def walk(self) -> Iterator[AstNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def function_name(self) -> str:
        return self.detail.split()[0].strip("`") if self.detail.split() else ""

    def arguments(self) -> list[AstNode]:
        """A function node's arguments (its ExpressionList's children)."""
        for child in self.children:
            if child.label == "ExpressionList":
                return child.children
        return []


_TWO_WORD_LABELS = ("Storage definition", "Dictionary definition", "Columns definition", "SYSTEM query")


def parse_explain_ast(text: str) -> AstNode:
    """The tree printed by `EXPLAIN AST` (one node per line, one space of indent per level).

    Every node announces how many children it has; a tree with fewer (output cut short by a
    result limit in the statement's own SETTINGS) raises IncompleteAst rather than hide nodes.
    """
    root = AstNode("root", "")
    stack: list[tuple[int, AstNode]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        announced = _CHILDREN_RE.search(line)
        content = _CHILDREN_RE.sub("", line.strip())
        label, detail = content, ""
        for two_words in _TWO_WORD_LABELS:
            if content.startswith(two_words):
                label, detail = two_words, content[len(two_words) :].strip()
                break
        else:
            label, _, detail = content.partition(" ")
        node = AstNode(label, detail.strip(), declared_children=int(announced.group(1)) if announced else 0)
        while stack[-1][0] >= depth:
            stack.pop()
        stack[-1][1].children.append(node)
        stack.append((depth, node))
    if not root.children:
        raise IncompleteAst("EXPLAIN AST printed nothing")
    for node in root.walk():
        if node is not root and len(node.children) != node.declared_children:
            raise IncompleteAst(
                f"{node.label} announced {node.declared_children} children, printed {len(node.children)}"
            )
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


# Statements whose nodes become part of a stored object (a table, view, dictionary, altered query).
_STORING_STATEMENTS = frozenset({"CreateQuery", "AttachQuery", "AlterQuery"})


def check_tree(
    tree: AstNode,
    statement: str,
    *,
    readonly: bool,
    user_files: Path,
    table_functions: frozenset[str] = frozenset(),
) -> None:
    """Raise ClickHouseError if the parsed statement reaches outside what its user may reach.

    `table_functions`: the engine's table-function names (lower case). A call of one outside the
    allowlist is refused wherever it appears, also as the argument of another table function
    (`loop(...)`, `viewIfPermitted(... ELSE ...)`); any call in a table position must be on the
    allowlist, whatever its name.
    """
    words = _significant_tokens(statement)
    _check_outfile_and_infile(words)
    _check_disk_settings(words)
    stores = any(node.label in _STORING_STATEMENTS for node in tree.walk())
    engines = {id(child) for node in tree.walk() if node.label == "Storage definition" for child in node.children}
    table_positions = {id(child) for child in _table_function_nodes(tree)}
    for node in tree.walk():
        if (
            stores
            and node.label == "Function"
            and id(node) not in engines
            and node.function_name.lower() in _PATH_FUNCTIONS
        ):
            raise _refuse(
                ACCESS_DENIED,
                f"A view or table over {node.function_name}() is not allowed on the embedded server: "
                "it would hand the file to every user who may read the view; insert the file's rows "
                "into a table instead",
            )
        if node.label == "BackupQuery":
            raise _refuse(
                SUPPORT_IS_DISABLED,
                "BACKUP and RESTORE are disabled on the embedded server: they read and write paths "
                "outside the server's directory; copy the stopped server's data directory instead",
            )
        if "NamedCollection" in node.label:
            raise _refuse(
                SUPPORT_IS_DISABLED,
                "Named collections are disabled on the embedded server: they exist to hand "
                "connection details of outside systems to table functions and engines",
            )
        if node.label == "SYSTEM query":
            _check_system(words)
        if node.label == "Function" and id(node) not in engines:
            name = node.function_name.lower()
            _check_function(
                node,
                readonly=readonly,
                user_files=user_files,
                table_function=(id(node) in table_positions or (name in table_functions and name not in _SCALAR_TOO)),
            )
        if node.label == "Storage definition":
            _check_engine(node, user_files=user_files)
        if node.label == "Dictionary definition":
            _check_dictionary(node, words)
        if node.label == "AttachQuery":
            _check_attach(words)


def _table_function_nodes(tree: AstNode) -> Iterator[AstNode]:
    """The Function nodes that name a table function: a table expression (FROM, JOIN, DESCRIBE),
    `INSERT INTO FUNCTION`, `CREATE TABLE ... AS table_function(...)`."""
    for node in tree.walk():
        if node.label in ("TableExpression", "InsertQuery", "CreateQuery"):
            yield from (child for child in node.children if child.label == "Function")


def _check_function(node: AstNode, *, readonly: bool, user_files: Path, table_function: bool) -> None:
    name = node.function_name.lower()
    if name in _EXECUTABLE:
        raise _refuse(ACCESS_DENIED, f"{node.function_name}() is not allowed: it runs programs of the host")
    if name in _NETWORK_FUNCTIONS:
        raise _refuse(
            ACCESS_DENIED, f"{node.function_name}() is not allowed on the embedded server: it reaches the network"
        )
    if table_function and name not in _LOCAL_TABLE_FUNCTIONS and name not in _PATH_FUNCTIONS:
        raise _refuse(
            ACCESS_DENIED,
            f"Table function {node.function_name} is not allowed on the embedded server: only table "
            "functions over the server's own data (numbers, values, view, merge, generateRandom, "
            "...) and file() inside the user files directory are",
        )
    if name not in _PATH_FUNCTIONS:
        return
    if readonly:
        raise _refuse(ACCESS_DENIED, f"Not enough privileges: the read-only user may not use {node.function_name}()")
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


def _check_dictionary(definition: AstNode, words: list[sqlscan.Token]) -> None:
    for child in definition.children:
        if child.label == "FunctionWithKeyValueArguments":
            source = child.function_name.lower()
            if source not in _LOCAL_DICTIONARY_SOURCES or not _source_keys_are_local(words):
                raise _refuse(
                    SUPPORT_IS_DISABLED,
                    f"Dictionary source {child.function_name.upper()} is disabled in the embedded "
                    "server: only the server's own tables may feed a dictionary (CLICKHOUSE with "
                    f"{', '.join(sorted(_LOCAL_SOURCE_KEYS))} only; no host, query or condition)",
                )


def _source_keys_are_local(words: list[sqlscan.Token]) -> bool:
    """Whether every key inside the SOURCE(...) clause of a CREATE DICTIONARY is a local one.

    The keys are not printed by EXPLAIN AST, so they are read from the statement's tokens: inside
    `SOURCE(name(...))` every word is either a key or the value of the key before it."""
    for index, token in enumerate(words):
        if not (token.is_word("SOURCE") and index + 1 < len(words) and words[index + 1].text == "("):
            continue
        depth, previous_key = token.depth, False
        for inner in words[index + 3 :]:  # past SOURCE ( name
            if inner.depth <= depth and inner.text == ")":
                break
            if inner.kind in ("word", "quoted") and inner.text != "(":
                if previous_key:
                    previous_key = False
                    continue
                if inner.text.upper() not in _LOCAL_SOURCE_KEYS:
                    return False
                previous_key = True
            elif inner.kind in ("string", "number"):
                previous_key = False
    return True


def _significant_tokens(statement: str) -> list[sqlscan.Token]:
    """The statement's tokens (comments skipped); a trailing line comment ends the statement."""
    try:
        return list(sqlscan.tokens(statement))
    except sqlscan.Incomplete:
        try:
            return list(sqlscan.tokens(statement + "\n"))
        except sqlscan.Incomplete:
            raise _refuse(ACCESS_DENIED, "The statement ends inside a string, identifier or comment") from None


def _check_outfile_and_infile(words: list[sqlscan.Token]) -> None:
    """INTO OUTFILE (after any statement: SELECT, SHOW, DESCRIBE, EXPLAIN, ...) writes a path of the
    machine and FROM INFILE reads one; ClickHouse's own HTTP interface refuses both. The keywords
    are found as tokens, so strings, quoted names and comments do not count."""
    for token, following in zip(words, words[1:], strict=False):
        if token.is_word("INTO") and following.is_word("OUTFILE"):
            raise _refuse(INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed")
        if token.is_word("FROM") and following.is_word("INFILE"):
            raise _refuse(ACCESS_DENIED, "FROM INFILE is not allowed: send the data in the request body")


def _check_disk_settings(words: list[sqlscan.Token]) -> None:
    """A table's `disk`/`storage_policy` setting: a `disk(type = web, ...)` fetches URLs, a local one
    creates directories anywhere. Tables stay on the server's default disk."""
    for token, following in zip(words, words[1:], strict=False):
        if token.kind == "word" and token.text.upper() in _DISK_SETTINGS and following.text == "=":
            raise _refuse(
                SUPPORT_IS_DISABLED,
                f"The table setting {token.text} is disabled in the embedded server: tables stay on its own disk",
            )


def _check_attach(words: list[sqlscan.Token]) -> None:
    """`ATTACH TABLE t FROM 'path'` would take a directory of the host as the table's data."""
    for token, following in zip(words, words[1:], strict=False):
        if token.depth == 0 and token.is_word("FROM") and following.kind == "string":
            raise _refuse(ACCESS_DENIED, "ATTACH ... FROM a path is not allowed on the embedded server")


def _check_system(words: list[sqlscan.Token]) -> None:
    names = [token.text.upper() for token in words if token.kind == "word"]
    if len(names) > 1 and names[1] in _FATAL_SYSTEM:
        raise _refuse(
            NOT_IMPLEMENTED,
            f"SYSTEM {names[1]} is not supported by the embedded server: stop it with SIGTERM "
            "(Ctrl+C in `coinstream up`)",
        )
