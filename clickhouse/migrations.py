"""Apply the schema files `clickhouse/schema/NNNN_*.sql` in order, each exactly once.

Why files plus a ledger: the SQL files are the source of truth (CONTRIBUTING), readable and
reviewable as SQL; this module only runs them. Each applied file is recorded in the
`_schema_migrations` table with the SHA-256 of its bytes, so

- re-running is a no-op (recorded files are skipped),
- editing a file that was already applied is an error (a schema change is a new file), and
- a missing applied file is an error (the database is ahead of the code).

One exception, listed by hand in `REWORDED`: an applied file whose comments were reworded after
its release. Its released checksum is still accepted, but only while the file's code (its
statements without comments, whitespace normalized) has the checksum recorded beside it, so any
change to what the file executes is still refused.

All checks happen before anything is executed. Statements in the files are written to be
idempotent (`CREATE ... IF NOT EXISTS`, `CREATE OR REPLACE VIEW`), so a file interrupted half-way
is simply run again; it is recorded only after its last statement succeeded.

ClickHouse's HTTP interface runs one statement per request, hence the small splitter below. It
works with any clickhouse-connect client: the embedded server, a real ClickHouse (`CLICKHOUSE_URL`)
or chDB in-process; statements run in the client's current database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
MIGRATIONS_TABLE = "_schema_migrations"
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# name -> (SHA-256 of the bytes as released and applied, SHA-256 of its code): comment-only
# rewordings (they stated facts by pointing at a document outside the project).
REWORDED: dict[str, tuple[str, str]] = {
    "0001_landing_tables.sql": (
        "335ab6a264a7db641c1677ed4b6fbde8f2498ae22c1ad80ced6750295720357d",
        "2903f229eb653a7d0a74b7a864f825044a578f583bac96bea6c33f524afbc379",
    ),
    "0002_error_tables.sql": (
        "abbcb39edeac7e620f75b5139ecba9b78032ce6b0097cee416e3e652b4168707",
        "4c26a08774152435dbaee493ec6a466eaca1d27dc246a4f453e09ac36a2de90a",
    ),
    "0005_views_history.sql": (
        "456f728629305d302d71f3912673d8f2b8a37d23df68104118472799806b02e8",
        "4285579e7f1853c5a54fb7108f58289675e0b591d4d9a02c82849ab02af65057",
    ),
}

_LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}
(
    name        String,
    checksum    String,
    statements  UInt32,
    applied_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY name
"""


class MigrationError(RuntimeError):
    """The schema files and the database disagree; nothing was executed."""


@dataclass(frozen=True)
class Migration:
    """One schema file: its name (the ledger key), the SHA-256 of its bytes, its statements."""

    name: str
    checksum: str
    statements: tuple[str, ...]

    @property
    def code_checksum(self) -> str:
        """SHA-256 of what the file executes: its statements without comments, whitespace
        normalized (comments and layout do not count)."""
        code = [
            " ".join(" ".join(split_statements(statement, comments=False)).split()) for statement in self.statements
        ]
        return hashlib.sha256("\n".join(code).encode()).hexdigest()

    def matches(self, recorded: str) -> bool:
        """The ledger's checksum is this file's, or its released one before a comment rewording."""
        if recorded == self.checksum:
            return True
        released, code = REWORDED.get(self.name, ("", ""))
        return recorded == released and self.code_checksum == code


@dataclass
class MigrationReport:
    """What `migrate` did: the files applied now and the files already recorded."""

    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)


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


def load_migrations(directory: Path = SCHEMA_DIR) -> list[Migration]:
    """The schema files in name order. A `.sql` file not named `NNNN_name.sql` is an error."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        if not _FILE_NAME.match(path.name):
            raise MigrationError(f"schema file {path.name} is not named NNNN_lowercase_name.sql")
        data = path.read_bytes()
        statements = tuple(split_statements(data.decode("utf-8")))
        if not statements:
            raise MigrationError(f"schema file {path.name} holds no statement")
        migrations.append(Migration(path.name, hashlib.sha256(data).hexdigest(), statements))
    numbers = [name.name[:4] for name in migrations]
    duplicates = sorted({number for number in numbers if numbers.count(number) > 1})
    if duplicates:
        raise MigrationError(f"several schema files share the number(s) {', '.join(duplicates)}")
    return migrations


def applied_migrations(client: Any) -> dict[str, str]:
    """name -> checksum of every file recorded in the ledger (creating the ledger if needed)."""
    client.command(_LEDGER_DDL)
    rows = client.query(f"SELECT name, checksum FROM {MIGRATIONS_TABLE}").result_rows
    recorded: dict[str, str] = {}
    for name, checksum in rows:
        if recorded.get(name, checksum) != checksum:
            raise MigrationError(f"the ledger records {name} twice with different checksums")
        recorded[name] = checksum
    return recorded


def check(migrations: list[Migration], recorded: dict[str, str]) -> None:
    """Refuse to run when an applied file changed or disappeared."""
    by_name = {migration.name: migration for migration in migrations}
    problems = []
    for name, checksum in sorted(recorded.items()):
        migration = by_name.get(name)
        if migration is None:
            problems.append(f"{name} was applied but the file is missing")
        elif not migration.matches(checksum):
            problems.append(
                f"{name} was changed after it was applied "
                f"(recorded sha256 {checksum[:12]}…, file {migration.checksum[:12]}…); "
                "put schema changes in a new file"
            )
    if problems:
        raise MigrationError("schema files do not match the database:\n  " + "\n  ".join(problems))


def migrate(client: Any, directory: Path = SCHEMA_DIR) -> MigrationReport:
    """Apply every schema file not yet recorded, in order; record each after it succeeded."""
    migrations = load_migrations(directory)
    recorded = applied_migrations(client)
    check(migrations, recorded)
    report = MigrationReport()
    for migration in migrations:
        if migration.name in recorded:
            report.already_applied.append(migration.name)
            continue
        for statement in migration.statements:
            client.command(statement)
        client.insert(
            MIGRATIONS_TABLE,
            [[migration.name, migration.checksum, len(migration.statements)]],
            column_names=["name", "checksum", "statements"],
        )
        report.applied.append(migration.name)
    return report
