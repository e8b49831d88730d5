"""The embedded engine's own ClickHouse configuration: grants, the user-files directory, limits.

Why: chDB is ClickHouse in clickhouse-local's mode, which trusts its caller with the whole machine
(`url()` reaches any address, `file()` any path). The embedded server serves other processes, so
it configures the engine like a locked-down server, with ClickHouse's own machinery wherever chDB
honours it:

- grants: the engine's single internal user gets every privilege except the external sources
  (URL, S3, REMOTE, MYSQL, POSTGRES, HDFS, AZURE, MONGO, REDIS, JDBC, ODBC, SQLITE, KAFKA, ...),
  so ClickHouse itself refuses `url()`, `s3()`, `remote()`, `mysql()` and the rest to every user,
  including queries that would point back at this server. FILE stays granted because chDB checks
  it for ordinary DDL and inserts; paths are confined by `policy.py` instead, and relative paths
  resolve inside the user-files directory because the server process runs there;
- no custom disks (`custom_local_disks_base_directory` is left undefined, so ClickHouse refuses
  `disk(type = local, path = ...)`);
- a profile every connection starts under, whose constraints make the settings that name paths or
  URLs, switch the SQL dialect or enable network features constant for every user;
- the read-only user's limits (`ReadonlyLimits`) and a settings profile whose constraints make
  every setting outside a short allowlist constant and cap the limits: the server sets the limits
  on each read-only connection, applies the profile, then `readonly = 2`. From then on ClickHouse
  checks every change (URL settings, `SET`, `SETTINGS` clauses) against the constraints itself.

The configuration is written afresh at every start into `<data>/server-config/`, readable by the
owner only, and passed to chDB as its `config-file`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

USER_FILES_DIR = "user_files"
CONFIG_DIR = "server-config"
READONLY_PROFILE = "coinstream_readonly"
CONFINED_PROFILE = "coinstream_confined"

# Settings constant for every user: they name a path or a URL the engine would read or write
# (format schemas and templates, an error log file, a schema registry, base URLs), switch the SQL
# dialect (the server judges statements as ClickHouse SQL parses them), or turn on features that
# reach the network (AI functions and their endpoints, data-lake catalogs, disks from outside).
_CONFINED_SETTINGS = frozenset(
    {
        "dialect",
        "polyglot_dialect",
        "allow_experimental_kusto_dialect",
        "allow_experimental_prql_dialect",
        "allow_experimental_polyglot_dialect",
        "enable_json_ast_dialect",
        "enable_trino_dialect",
        "format_schema",
        "format_schema_source",
        "format_template_resultset",
        "format_template_row",
        "output_format_schema",
        "format_avro_schema_registry_url",
        "input_format_record_errors_file_path",
        "into_outfile_create_parent_directories",
        "rename_files_after_processing",
        "url_base",
        "s3_base",
        "allow_experimental_ai_functions",
        "allow_experimental_database_glue_catalog",
        "allow_experimental_database_unity_catalog",
        "allow_experimental_database_hms_catalog",
        "allow_experimental_database_paimon_rest_catalog",
        "allow_database_glue_catalog",
        "allow_database_unity_catalog",
        "dynamic_disk_allow_from_env",
        "dynamic_disk_allow_from_zk",
        "dynamic_disk_allow_include",
        "allow_get_client_http_header",
        "s3_allow_server_credentials_in_user_queries",
        "format_display_secrets_in_show_and_select",
    }
)
_CONFINED_PREFIXES = ("ai_function_",)

# Settings a read-only user may change (within the caps for the limits): output formatting and
# what dashboard tools send. Every other setting is constant for it.
_READONLY_CHANGEABLE_PREFIXES = ("output_format_", "format_csv_", "format_tsv_", "format_custom_")
_READONLY_CHANGEABLE = frozenset(
    {
        "max_execution_time",
        "max_memory_usage",
        "max_result_rows",
        "max_result_bytes",
        "result_overflow_mode",
        "max_block_size",
        "max_threads",
        "extremes",
        "join_use_nulls",
        "session_timezone",
        "date_time_output_format",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "log_comment",
        "cancel_http_readonly_queries_on_client_close",
        "wait_end_of_query",
        "readonly",
        "database",  # USE db changes it
    }
)


@dataclass(frozen=True)
class ReadonlyLimits:
    """Limits the read-only user runs under and cannot lift (its connections are `readonly = 1`).

    A request may ask for a lower value of a limit; a higher one, or 0 (unlimited), is refused.
    """

    max_execution_time_s: int = 60
    max_memory_usage: int = 2_000_000_000
    max_result_rows: int = 1_000_000
    max_result_bytes: int = 1_000_000_000
    # Threads per read-only query: half the cores, so that dashboard scans leave the other half to
    # the loader, the ksql engine and the producers (measured by benchmarks/freshness.py).
    max_threads: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))
    # The nice value of a read-only query's threads (ClickHouse's `os_thread_priority`): the
    # operating system runs the loader's and the engine's work first when cores are short.
    os_thread_priority: int = 19

    def as_settings(self) -> dict[str, str]:
        return {
            "max_threads": str(self.max_threads),
            "os_thread_priority": str(self.os_thread_priority),
            "max_execution_time": str(self.max_execution_time_s),
            "max_memory_usage": str(self.max_memory_usage),
            "max_result_rows": str(self.max_result_rows),
            "max_result_bytes": str(self.max_result_bytes),
            "result_overflow_mode": "throw",
        }


@dataclass(frozen=True)
class EngineConfig:
    """Where the engine's configuration and user files live, and the connection-string suffix."""

    config_file: Path
    user_files: Path

    @property
    def connection_suffix(self) -> str:
        return f"?config-file={self.config_file}"


def _grants() -> str:
    queries = (
        "GRANT ALL ON *.*",
        "REVOKE SOURCES ON *.*",
        # chDB checks FILE for CREATE TABLE and INSERT; policy.py confines the paths.
        "GRANT FILE ON *.*",
    )
    return "".join(f"<query>{escape(query)}</query>" for query in queries)


def is_confined_setting(name: str) -> bool:
    """Whether `name` is constant for every user (see `_CONFINED_SETTINGS`)."""
    return name in _CONFINED_SETTINGS or name.startswith(_CONFINED_PREFIXES)


def _const(names: list[str]) -> list[str]:
    return [f"<{name}><const/></{name}>" for name in names if name.replace("_", "").isalnum()]


def _confined_constraints(setting_names: list[str]) -> str:
    return "".join(_const(sorted(name for name in set(setting_names) if is_confined_setting(name))))


def _readonly_constraints(setting_names: list[str], limits: ReadonlyLimits) -> str:
    caps = {
        "max_execution_time": limits.max_execution_time_s,
        "max_memory_usage": limits.max_memory_usage,
        "max_result_rows": limits.max_result_rows,
        "max_result_bytes": limits.max_result_bytes,
        "max_threads": limits.max_threads,
    }
    lines = [f"<{name}><min>1</min><max>{cap}</max></{name}>" for name, cap in caps.items()]
    lines += _const(
        sorted(
            name
            for name in set(setting_names)
            if is_confined_setting(name)
            or not (name in _READONLY_CHANGEABLE or name.startswith(_READONLY_CHANGEABLE_PREFIXES))
        )
    )
    return "".join(lines)


def write_engine_config(
    data_path: Path, setting_names: list[str], limits: ReadonlyLimits = ReadonlyLimits()
) -> EngineConfig:
    """Write the engine's config.xml and users.xml under `data_path`; create the user-files dir.

    `setting_names`: every setting the engine knows (the read-only profile makes all but the
    allowlist constant)."""
    data_path = Path(data_path).resolve()
    user_files = data_path / USER_FILES_DIR
    user_files.mkdir(parents=True, exist_ok=True)
    config_dir = data_path / CONFIG_DIR
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(config_dir, 0o700)
    users_file = config_dir / "users.xml"
    config_file = config_dir / "config.xml"
    _write_private(
        users_file,
        (
            "<clickhouse>\n"
            "  <users>\n"
            "    <default>\n"
            "      <password></password>\n"
            "      <profile>default</profile>\n"
            "      <quota>default</quota>\n"
            f"      <grants>{_grants()}</grants>\n"
            "    </default>\n"
            "  </users>\n"
            "  <profiles><default/>"
            f"<{CONFINED_PROFILE}><constraints>{_confined_constraints(setting_names)}</constraints></{CONFINED_PROFILE}>"
            f"<{READONLY_PROFILE}><constraints>{_readonly_constraints(setting_names, limits)}</constraints>"
            f"</{READONLY_PROFILE}></profiles>\n"
            "  <quotas><default/></quotas>\n"
            "</clickhouse>\n"
        ),
    )
    _write_private(
        config_file,
        (
            "<clickhouse>\n"
            f"  <user_files_path>{escape(str(user_files))}/</user_files_path>\n"
            f"  <users_config>{escape(str(users_file))}</users_config>\n"
            "</clickhouse>\n"
        ),
    )
    return EngineConfig(config_file, user_files)


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
