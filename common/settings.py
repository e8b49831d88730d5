"""One typed settings object for every component, read from the environment and `.env`.

Why one object: every stage needs the same few facts (where Kafka is, where ClickHouse is, which
coins), and an operator should find every knob in `.env.example`. Unset Kafka, ClickHouse and API-key
settings select the embedded local defaults (Tansu broker, chDB server, simulated API), so the same code runs on a laptop and in
production, switched by settings only.

Validation happens once, at start: a malformed value fails with the variable's name and the form
it expects. Error messages never include the offending value, because the value may be a secret.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from coinstream.common.rate_validity import DEFAULT_MAX_CLOCK_SKEW_MS

DEFAULT_COINS: tuple[str, ...] = (
    "USDT",
    "BTC",
    "ETH",
    "FDUSD",
    "XRP",
    "SOL",
    "USDC",
    "DOGE",
    "LINK",
    "AAVE",
)
SIMULATED_API_PORT = 8788
LOCAL_KAFKA_PORT = 9092
LOCAL_CLICKHOUSE_PORT = 8123


class SettingsError(ValueError):
    """A setting is malformed. The message names the variable and the expected form, never the value."""


@dataclass(frozen=True)
class ClickHouseTarget:
    """Where and as whom to reach ClickHouse over HTTP (parsed from CLICKHOUSE_URL or the local default)."""

    host: str
    port: int
    username: str
    password: str
    database: str
    secure: bool

    @property
    def http_url(self) -> str:
        """The URL without credentials, safe to print."""
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.host}:{self.port}/{self.database}"

    def connect_kwargs(self) -> dict:
        """Keyword arguments for `clickhouse_connect.get_client`."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "database": self.database,
            "secure": self.secure,
        }


# The expected form of each setting, used in error messages and mirrored in `.env.example`.
EXPECTED_FORMS: dict[str, str] = {
    "LCW_API_KEY": "a LiveCoinWatch API key (unset = use the simulated API)",
    "LCW_BASE_URL": "an http(s) URL such as https://api.livecoinwatch.com",
    "COINS": "comma-separated coin codes such as BTC,ETH,SOL",
    "CURRENCY": "a 3-5 letter currency code such as USD",
    "POLL_INTERVAL_S": "a number of seconds > 0",
    "DAILY_CREDIT_BUDGET": "a whole number of credits > 0",
    "HISTORICAL_DAILY_CREDITS": "a whole number of credits >= 0",
    "HISTORICAL_BACKFILL_DAYS": "a whole number of days >= 1",
    "HISTORICAL_CLOSE_MARGIN_S": "a number of seconds >= 0",
    "LCW_CONNECT_TIMEOUT_S": "a number of seconds > 0",
    "LCW_READ_TIMEOUT_S": "a number of seconds > 0",
    "LCW_RETRY_ATTEMPTS": "a whole number of attempts >= 1",
    "LCW_RETRY_BACKOFF_S": "a number of seconds >= 0 (first retry wait; doubles per attempt)",
    "LCW_RETRY_MAX_WAIT_S": "a number of seconds >= 0 (longest single retry wait)",
    "KAFKA_BOOTSTRAP_SERVERS": "host:port[,host:port…]",
    "KAFKA_LOCAL_PORT": "a TCP port number 1-65535",
    "LOCAL_BROKER_MAX_MEMORY_MB": "a whole number of MiB >= 0 (0 = never rotate)",
    "SIM_API_PORT": "a TCP port number 1-65535",
    "DASHBOARD_PORT": "a TCP port number 1-65535",
    "KAFKA_SECURITY_PROTOCOL": "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
    "KAFKA_SASL_MECHANISM": "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "the SASL user name (Confluent Cloud: the API key)",
    "KAFKA_SASL_PASSWORD": "the SASL password (Confluent Cloud: the API secret)",
    "KAFKA_SSL_CA_LOCATION": "a path to a CA bundle file",
    "KAFKA_TOPIC_PARTITIONS": "a whole number >= 1",
    "KAFKA_REPLICATION_FACTOR": "a whole number >= 1",
    "CLICKHOUSE_URL": "http(s)://user:password@host:port/database",
    "CLICKHOUSE_USER": "a user name",
    "CLICKHOUSE_PASSWORD": "a password",
    "CLICKHOUSE_READONLY_USER": "a user name",
    "CLICKHOUSE_READONLY_PASSWORD": "a password",
    "CLICKHOUSE_PORT": "a TCP port number 1-65535",
    "KSQLDB_URL": "an http(s) URL such as http://localhost:8088",
    "KSQLDB_USER": "a user name (Confluent Cloud: the ksqlDB API key)",
    "KSQLDB_PASSWORD": "a password (Confluent Cloud: the ksqlDB API secret)",
    "METABASE_URL": "an http(s) URL such as http://localhost:3000",
    "METABASE_USER": "a Metabase user's e-mail address",
    "METABASE_PASSWORD": "that user's password",
    "METABASE_API_KEY": "a Metabase API key",
    "KSQL_COMMIT_INTERVAL_MS": "a whole number of milliseconds, at least 10",
    "RATE_MAX_CLOCK_SKEW_MS": "a whole number of milliseconds >= 0",
    "LOADER_BATCH_MS": "a whole number of milliseconds, 1-600000",
    "LOADER_METRICS_PORT": "a TCP port number 0-65535 (0 = no metrics endpoint)",
    "PRODUCER_METRICS_PORT": "a TCP port number 0-65535 (0 = no metrics endpoint)",
    "KSQL_METRICS_PORT": "a TCP port number 0-65535 (0 = no metrics endpoint)",
    "HISTORICAL_METRICS_PORT": "a TCP port number 0-65535 (0 = no metrics endpoint)",
    "METRICS_HOST": "an IP address to bind such as 127.0.0.1 (0.0.0.0 inside a container)",
    "HTTP_ALLOWED_ORIGINS": "comma-separated web origins such as http://localhost:3000 (unset = none)",
    "COINSTREAM_DATA_DIR": "a directory path",
    "LOG_LEVEL": "one of DEBUG, INFO, WARNING, ERROR",
}


def _check_http_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    return value.rstrip("/")


class Settings(BaseSettings):
    """Every setting of coinstream. Field names are the environment variables, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
        # `NAME=` (as in .env.example, and as docker compose passes an env_file) means unset.
        env_ignore_empty=True,
    )

    # LiveCoinWatch
    lcw_api_key: SecretStr | None = None
    lcw_base_url: str | None = None
    coins: Annotated[tuple[str, ...], NoDecode] = DEFAULT_COINS
    currency: str = Field("USD", pattern=r"^[A-Z]{3,5}$")
    poll_interval_s: float | None = Field(None, gt=0)
    daily_credit_budget: int = Field(10_000, gt=0)
    historical_daily_credits: int = Field(500, ge=0)
    # Daily closes: the default backfill window (the latest N closed days), and how long after
    # 12:00 UTC a day counts as closed (the API needs a moment to have the 12:00 point).
    historical_backfill_days: int = Field(30, ge=1)
    historical_close_margin_s: float = Field(300.0, ge=0)
    lcw_connect_timeout_s: float = Field(5.0, gt=0)
    lcw_read_timeout_s: float = Field(15.0, gt=0)
    lcw_retry_attempts: int = Field(5, ge=1)
    lcw_retry_backoff_s: float = Field(0.5, ge=0)
    lcw_retry_max_wait_s: float = Field(30.0, ge=0)

    # Kafka
    kafka_bootstrap_servers: str | None = None
    kafka_local_port: int = Field(LOCAL_KAFKA_PORT, ge=1, le=65535)
    local_broker_max_memory_mb: int = Field(256, ge=0)
    sim_api_port: int = Field(SIMULATED_API_PORT, ge=1, le=65535)
    dashboard_port: int = Field(8050, ge=1, le=65535)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = None
    kafka_topic_partitions: int = Field(1, ge=1)
    kafka_replication_factor: int = Field(1, ge=1)

    # ClickHouse
    clickhouse_url: SecretStr | None = None
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_readonly_user: str = "dashboard"
    # Empty = the embedded server generates them on its first start (common/local_credentials.py).
    clickhouse_readonly_password: SecretStr = SecretStr("")
    clickhouse_port: int = Field(LOCAL_CLICKHOUSE_PORT, ge=1, le=65535)

    # ksqlDB and Metabase
    ksqldb_url: str | None = None
    ksqldb_user: str | None = None
    ksqldb_password: SecretStr | None = None
    metabase_url: str | None = None
    metabase_user: str | None = None
    metabase_password: SecretStr | None = None
    metabase_api_key: SecretStr | None = None

    # Freshness against write rate: how often the local ksql engine emits its updated windows
    # (and checkpoints), and how long the loader collects messages before one insert per table.
    # Each bounds the delay its stage adds; 250 ms each keeps a rate visible in the views within
    # a second (benchmarks/freshness.py) at four inserts a second per table.
    ksql_commit_interval_ms: int = Field(250, ge=10)
    rate_max_clock_skew_ms: int = Field(DEFAULT_MAX_CLOCK_SKEW_MS, ge=0)
    loader_batch_ms: int = Field(250, ge=1, le=600_000)

    # ClickHouse loader: Prometheus /metrics on 127.0.0.1 (0 = off)
    loader_metrics_port: int = Field(9464, ge=0, le=65535)
    # The local ksql engine (`coinstream ksql run`) and the scheduled daily-close job
    # (`coinstream produce historical`): Prometheus /metrics (0 = off).
    ksql_metrics_port: int = Field(9466, ge=0, le=65535)
    historical_metrics_port: int = Field(9467, ge=0, le=65535)
    # Current-rates producer: Prometheus /metrics (0 = off). METRICS_HOST: the address /metrics
    # endpoints bind; loopback by default, 0.0.0.0 only where a container network must scrape them.
    producer_metrics_port: int = Field(9465, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # Web origins (scheme://host[:port]) whose pages may call the local HTTP servers (ClickHouse,
    # dashboard, simulated API). None by default: a request carrying any other Origin header is
    # refused, so a hostile page open in the user's browser cannot reach them.
    http_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()

    # Local state and logging
    coinstream_data_dir: Path = Path("./data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("coins", mode="before")
    @classmethod
    def _split_coins(cls, value: object) -> object:
        if isinstance(value, str):
            codes = tuple(code.strip().upper() for code in value.split(",") if code.strip())
            if not codes or any(not code.replace("_", "").isalnum() for code in codes):
                raise ValueError("not a list of coin codes")
            return codes
        return value

    @field_validator("http_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            origins = tuple(item.strip().rstrip("/") for item in value.split(",") if item.strip())
            for origin in origins:
                parts = urlsplit(origin)
                if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
                    raise ValueError("not a list of origins")
            return origins
        return value

    @field_validator("currency", "log_level", "kafka_security_protocol", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("lcw_base_url", "ksqldb_url", "metabase_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @field_validator("metrics_host")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        ipaddress.ip_address(value.strip())  # ValueError: reported by name, never by value
        return value.strip()

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("not host:port")
        return value.strip()

    @field_validator("clickhouse_url")
    @classmethod
    def _clickhouse_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        _parse_clickhouse_url(value.get_secret_value())
        return value

    # ---- derived views -------------------------------------------------------------------------

    @property
    def uses_simulated_api(self) -> bool:
        """True when no API key is set: the producers talk to the simulated LiveCoinWatch API."""
        return self.lcw_api_key is None or self.lcw_api_key.get_secret_value() == ""

    @property
    def effective_lcw_base_url(self) -> str:
        """The LiveCoinWatch base URL: explicit, else the real API with a key, else the simulator."""
        if self.lcw_base_url:
            return self.lcw_base_url
        if self.uses_simulated_api:
            return f"http://127.0.0.1:{self.sim_api_port}"
        return "https://api.livecoinwatch.com"

    @property
    def uses_local_kafka(self) -> bool:
        return self.kafka_bootstrap_servers is None

    def ksql_variables(self) -> dict[str, str]:
        """The variables the project's ksql statements reference (`${name}`), from the settings."""
        return {"max_clock_skew_ms": str(self.rate_max_clock_skew_ms)}

    @property
    def effective_kafka_bootstrap(self) -> str:
        """Configured bootstrap servers, else the local broker's default address."""
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_local_port}"

    @property
    def uses_local_clickhouse(self) -> bool:
        return self.clickhouse_url is None

    @property
    def uses_local_ksql_engine(self) -> bool:
        """True unless KSQLDB_URL names a ksqlDB server, which then runs the statements."""
        return not self.ksqldb_url

    def clickhouse_target(self, readonly: bool = False) -> ClickHouseTarget:
        """Where to reach ClickHouse: CLICKHOUSE_URL, else the local embedded server.

        With `readonly`, the local server's read-only user is used (dashboards). Against an external
        server the read-only user applies only when CLICKHOUSE_READONLY_USER is explicitly set —
        in the environment or in `.env` alike (pydantic's `model_fields_set` covers both; an empty
        `NAME=` counts as unset), so no source of settings is consulted behind the object's back.
        """
        if self.clickhouse_url is not None:
            target = _parse_clickhouse_url(self.clickhouse_url.get_secret_value())
            if readonly and "clickhouse_readonly_user" in self.model_fields_set:
                return ClickHouseTarget(
                    target.host,
                    target.port,
                    self.clickhouse_readonly_user,
                    self.clickhouse_readonly_password.get_secret_value(),
                    target.database,
                    target.secure,
                )
            return target
        password, readonly_password = self.local_clickhouse_passwords()
        user, password = (
            (self.clickhouse_readonly_user, readonly_password) if readonly else (self.clickhouse_user, password)
        )
        return ClickHouseTarget("127.0.0.1", self.clickhouse_port, user, password, "default", False)

    def local_clickhouse_passwords(self, data_dir: Path | None = None) -> tuple[str, str]:
        """The embedded server's passwords (full, read-only): explicit settings, else the ones it
        generated in its data directory (`common/local_credentials.py`; "" before its first start).
        """
        from coinstream.common.local_credentials import read_credentials

        explicit = self.clickhouse_password.get_secret_value()
        explicit_readonly = self.clickhouse_readonly_password.get_secret_value()
        if explicit and explicit_readonly:
            return explicit, explicit_readonly
        stored = read_credentials(data_dir or self.clickhouse_data_dir)
        return (
            explicit or (stored.password if stored else ""),
            explicit_readonly or (stored.readonly_password if stored else ""),
        )

    @property
    def clickhouse_data_dir(self) -> Path:
        return (self.coinstream_data_dir / "clickhouse").resolve()


def _parse_clickhouse_url(url: str) -> ClickHouseTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    try:
        port = parts.port or (8443 if parts.scheme == "https" else 8123)
    except ValueError:
        raise ValueError("bad port") from None
    database = parts.path.strip("/") or "default"
    if "/" in database:
        raise ValueError("bad database name")
    return ClickHouseTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username or "default"),
        password=unquote(parts.password or ""),
        database=database,
        secure=parts.scheme == "https",
    )


def describe_validation_error(error: ValidationError) -> str:
    """Turn pydantic's error into lines naming each variable and its expected form.

    pydantic's own text includes the input value; we rebuild the message from the location and
    our expected-form table only, so a mistyped secret is never echoed.
    """
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else "?"
        variable = field.upper()
        expected = EXPECTED_FORMS.get(variable, "a valid value")
        lines.append(f"{variable} is malformed: expected {expected}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(env_file: str | os.PathLike | None = ".env", **overrides: object) -> Settings:
    """Read the settings once; raise `SettingsError` naming any malformed variable."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached: the environment does not change under a running process)."""
    return load_settings()
