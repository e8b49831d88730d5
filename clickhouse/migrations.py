"""Apply the schema files `clickhouse/schema/NNNN_*.sql` in order, each exactly once.

Why files plus a ledger: the SQL files are the source of truth (CONTRIBUTING), readable and
reviewable as SQL; this module only runs them. Each applied file is recorded in the
`_schema_migrations` table with the SHA-256 of its bytes, so

- re-running is a no-op (recorded files are skipped),
- editing a file that was already applied is an error (a schema change is a new file), and
- a missing applied file is an error (the database is ahead of the code).

Files changed after their release are listed by hand in `RELEASED`, with the checksums they were
applied with: files whose comments were reworded, and files whose views moved to
`clickhouse/views/` (views are current state, applied after the migrations on every run, see
`view_files`). Such a file is accepted under a released checksum only while what it still
executes (its statements without comments, whitespace normalized) has the checksum recorded
beside it; a file that held only views is retired, and its released checksums stay accepted
although the file is gone. Any other change to what a file executes is still refused.

All checks happen before anything is executed. Statements in the files are written to be
idempotent (`CREATE ... IF NOT EXISTS`, `CREATE OR REPLACE VIEW`), so a file interrupted half-way
is simply run again; it is recorded only after its last statement succeeded.

ClickHouse's HTTP interface runs one statement per request, so files are split into statements
(`sql_text.split_statements`). It works with any clickhouse-connect client: the embedded server, a real ClickHouse (`CLICKHOUSE_URL`)
or chDB in-process; statements run in the client's current database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coinstream.clickhouse.sql_text import split_statements
from coinstream.clickhouse.view_files import VIEWS_DIR, ViewError, ViewReport, apply_views

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
MIGRATIONS_TABLE = "_schema_migrations"
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Released:
    """A schema file as applied by earlier releases: the SHA-256 of each released version of its
    bytes, and the checksum of what the file executes today (`Migration.code_checksum`), or None
    for a retired file (it held only views, which now live in clickhouse/views/)."""

    checksums: frozenset[str]
    code_checksum: str | None


RELEASED: dict[str, Released] = {
    # Comments reworded (they stated facts by pointing at a document outside the project).
    "0001_landing_tables.sql": Released(
        frozenset({"335ab6a264a7db641c1677ed4b6fbde8f2498ae22c1ad80ced6750295720357d"}),
        "2903f229eb653a7d0a74b7a864f825044a578f583bac96bea6c33f524afbc379",
    ),
    "0002_error_tables.sql": Released(
        frozenset({"abbcb39edeac7e620f75b5139ecba9b78032ce6b0097cee416e3e652b4168707"}),
        "4c26a08774152435dbaee493ec6a466eaca1d27dc246a4f453e09ac36a2de90a",
    ),
    # Views moved to clickhouse/views/: the tables stay.
    "0007_historical_backfill.sql": Released(
        frozenset({"df37b3d4188edc06972ff659617ff535ba33d9196e557555f3f5ae138cd81f5a"}),
        "72452bbcdd5f43665e9f8f4a7cc87db19eff37198c1ffc3f59625e325dce0f51",
    ),
    "0009_topic_incarnations.sql": Released(
        frozenset({"47536a05aebad5c6ba2669f7737ffcb43a8ff82a60277c97a2b0cf07fbba31a7"}),
        "5a0353ddc581f7189a8cdd1b4876ca946743ecc3b19786251fef8cffd42254cf",
    ),
    # Views only: retired.
    "0004_views_windowed.sql": Released(
        frozenset({"f8018e51c44c57adace775320b35835703268a2fe7e1074ac663f253fc89b35f"}), None
    ),
    "0005_views_history.sql": Released(
        frozenset(
            {
                "456f728629305d302d71f3912673d8f2b8a37d23df68104118472799806b02e8",
                "4c2e38c9e7ccc670a4346ece1375d70a004cc2318f4577e1cc6a3eefc107973d",
            }
        ),
        None,
    ),
    "0006_views_live.sql": Released(
        frozenset({"b58b351cf4f720c7c848cc9a8ff8399fa9e7563ae2bcaab161e93026ef6405a2"}), None
    ),
    "0008_views_recent.sql": Released(
        frozenset({"b24f98465cd67febd1c4bb133915e20965e38c02c6d7b7e4246576bd21882c24"}), None
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
        """The ledger's checksum is this file's, or a released one of a file that still executes
        what `RELEASED` says."""
        if recorded == self.checksum:
            return True
        released = RELEASED.get(self.name)
        return (
            released is not None
            and recorded in released.checksums
            and released.code_checksum is not None
            and self.code_checksum == released.code_checksum
        )


def retired(name: str, recorded: str) -> bool:
    """An applied file that held only views, removed once they moved to clickhouse/views/."""
    released = RELEASED.get(name)
    return released is not None and released.code_checksum is None and recorded in released.checksums


@dataclass
class MigrationReport:
    """What `migrate` did: the files applied now and the files already recorded."""

    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)
    views: ViewReport = field(default_factory=ViewReport)


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
            if not retired(name, checksum):
                problems.append(f"{name} was applied but the file is missing")
        elif not migration.matches(checksum):
            problems.append(
                f"{name} was changed after it was applied "
                f"(recorded sha256 {checksum[:12]}…, file {migration.checksum[:12]}…); "
                "put schema changes in a new file"
            )
    if problems:
        raise MigrationError("schema files do not match the database:\n  " + "\n  ".join(problems))


def migrate(client: Any, directory: Path = SCHEMA_DIR, views_directory: Path = VIEWS_DIR) -> MigrationReport:
    """Apply every schema file not yet recorded, in order, recording each after it succeeded; then
    bring the views to their files' definitions (`view_files.apply_views`)."""
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
    try:
        report.views = apply_views(client, views_directory)
    except ViewError as error:
        raise MigrationError(str(error)) from None
    return report
