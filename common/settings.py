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
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from coinstream.common.coin_codes import parse_coin_codes
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

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `clickhouse_connect.get_client`."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "database": self.database,
            "secure": self.secure,
        }


def setting(default: Any, section: str, form: str, doc: str, **constraints: Any) -> Any:
    """Declare a setting once: its default, its bounds (pydantic's ge/le/gt/pattern), the form
    error messages name (`form`), the explanation `.env.example` and the README print (`doc`), and
    the section it is listed under. CLI options and component defaults read it from here."""
    return Field(default, description=doc, json_schema_extra={"form": form, "section": section}, **constraints)


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

    # ---- LiveCoinWatch --------------------------------------------------------------------------
    lcw_api_key: SecretStr | None = setting(
        None,
        "LiveCoinWatch",
        "a LiveCoinWatch API key (unset = use the simulated API)",
        "API key from https://www.livecoinwatch.com/tools/api . Unset = use the simulated API.",
    )
    lcw_base_url: str | None = setting(
        None,
        "LiveCoinWatch",
        "an http(s) URL such as https://api.livecoinwatch.com",
        "Base URL (default: the real API with a key, the simulated API http://127.0.0.1:SIM_API_PORT without).",
    )
    sim_api_port: int = setting(
        SIMULATED_API_PORT,
        "LiveCoinWatch",
        "a TCP port number 1-65535",
        "Port of the simulated API that `coinstream up` starts when LCW_API_KEY and LCW_BASE_URL are unset.",
        ge=1,
        le=65535,
    )
    coins: Annotated[tuple[str, ...], NoDecode] = setting(
        DEFAULT_COINS,
        "LiveCoinWatch",
        "comma-separated coin codes such as BTC,ETH,SOL",
        "Comma-separated coin codes to follow.",
    )
    currency: str = setting(
        "USD", "LiveCoinWatch", "a 3-5 letter currency code such as USD", "Quote currency.", pattern=r"^[A-Z]{3,5}$"
    )
    poll_interval_s: float | None = setting(
        None,
        "LiveCoinWatch",
        "a number of seconds > 0",
        "Seconds between current-rate polls (default: derived from the daily credit budget).",
        gt=0,
    )
    daily_credit_budget: int = setting(
        10_000,
        "LiveCoinWatch",
        "a whole number of credits > 0",
        "Credits per UTC day the producers may spend together (LiveCoinWatch free tier: 10000).",
        gt=0,
    )
    historical_daily_credits: int = setting(
        500,
        "LiveCoinWatch",
        "a whole number of credits >= 0",
        "Of that budget, credits reserved each day for the historical backfill.",
        ge=0,
    )
    historical_backfill_days: int = setting(
        30,
        "LiveCoinWatch",
        "a whole number of days >= 1",
        "Daily closes (the rate at 12:00 UTC): `coinstream backfill` without --start fetches the latest this "
        "many closed days.",
        ge=1,
    )
    historical_close_margin_s: float = setting(
        300.0,
        "LiveCoinWatch",
        "a number of seconds >= 0",
        "A day counts as closed this many seconds after its 12:00 UTC (the API needs a moment to have the "
        "12:00 point); the scheduled job (`coinstream produce historical`) wakes up then.",
        ge=0,
    )
    lcw_connect_timeout_s: float = setting(
        5.0, "LiveCoinWatch", "a number of seconds > 0", "HTTP connect timeout towards the API, in seconds.", gt=0
    )
    lcw_read_timeout_s: float = setting(
        15.0, "LiveCoinWatch", "a number of seconds > 0", "HTTP read timeout towards the API, in seconds.", gt=0
    )
    lcw_retry_attempts: int = setting(
        5,
        "LiveCoinWatch",
        "a whole number of attempts >= 1",
        "Attempts in all on 429, 5xx, timeouts, connection errors and malformed bodies.",
        ge=1,
    )
    lcw_retry_backoff_s: float = setting(
        0.5,
        "LiveCoinWatch",
        "a number of seconds >= 0 (first retry wait; doubles per attempt)",
        "The first retry wait, doubling per attempt, with jitter. A Retry-After header is honoured.",
        ge=0,
    )
    lcw_retry_max_wait_s: float = setting(
        30.0,
        "LiveCoinWatch",
        "a number of seconds >= 0 (longest single retry wait)",
        "The longest single retry wait; a Retry-After header asking for longer ends the attempts instead.",
        ge=0,
    )

    # ---- Kafka ----------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = setting(
        None,
        "Kafka",
        "host:port[,host:port…]",
        "Unset = the local broker started by `coinstream broker` / `coinstream up` on 127.0.0.1:KAFKA_LOCAL_PORT.",
    )
    kafka_local_port: int = setting(
        LOCAL_KAFKA_PORT,
        "Kafka",
        "a TCP port number 1-65535",
        "Port of the local broker on 127.0.0.1 when KAFKA_BOOTSTRAP_SERVERS is unset.",
        ge=1,
        le=65535,
    )
    local_broker_max_memory_mb: int = setting(
        256,
        "Kafka",
        "a whole number of MiB >= 0 (0 = never rotate)",
        "The local broker keeps every record in memory. When its memory passes this many MiB, `coinstream up` "
        "rotates it: pauses the producers, waits until the engine and the loader have committed everything, "
        "restarts the broker empty and resumes (nothing is lost or doubled). 0 = never.",
        ge=0,
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = setting(
        "PLAINTEXT",
        "Kafka",
        "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (Confluent Cloud: SASL_SSL).",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = setting(
        None,
        "Kafka",
        "one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Confluent Cloud: PLAIN).",
    )
    kafka_sasl_username: str | None = setting(
        None, "Kafka", "the SASL user name (Confluent Cloud: the API key)", "SASL user (Confluent Cloud: API key)."
    )
    kafka_sasl_password: SecretStr | None = setting(
        None,
        "Kafka",
        "the SASL password (Confluent Cloud: the API secret)",
        "SASL password (Confluent Cloud: API secret).",
    )
    kafka_ssl_ca_location: str | None = setting(
        None, "Kafka", "a path to a CA bundle file", "Path to a CA bundle for SSL, if the system one is not enough."
    )
    kafka_topic_partitions: int = setting(
        1, "Kafka", "a whole number >= 1", "Partitions of the topics coinstream creates.", ge=1
    )
    kafka_replication_factor: int = setting(
        1, "Kafka", "a whole number >= 1", "Replication factor of the topics coinstream creates.", ge=1
    )

    # ---- ClickHouse -----------------------------------------------------------------------------
    clickhouse_url: SecretStr | None = setting(
        None,
        "ClickHouse",
        "http(s)://user:password@host:port/database",
        "Unset = the embedded server started by `coinstream clickhouse serve` / `coinstream up` on "
        "127.0.0.1:CLICKHOUSE_PORT.",
    )
    clickhouse_user: str = setting(
        "default", "ClickHouse", "a user name", "The read-write user of the embedded server."
    )
    clickhouse_password: SecretStr = setting(
        SecretStr(""),
        "ClickHouse",
        "a password",
        "Its password. Passwords left empty are generated on the embedded server's first start and stored, "
        "readable by the owner only, in $COINSTREAM_DATA_DIR/clickhouse/credentials.env, where every coinstream "
        "command finds them (`cat` it to configure Metabase or a SQL client). Set them here to choose your own.",
    )
    clickhouse_readonly_user: str = setting(
        "dashboard", "ClickHouse", "a user name", "The read-only user dashboards use."
    )
    clickhouse_readonly_password: SecretStr = setting(
        SecretStr(""), "ClickHouse", "a password", "Its password (empty: generated, as above)."
    )
    clickhouse_port: int = setting(
        LOCAL_CLICKHOUSE_PORT,
        "ClickHouse",
        "a TCP port number 1-65535",
        "Port of the embedded server on 127.0.0.1.",
        ge=1,
        le=65535,
    )

    # ---- Freshness ------------------------------------------------------------------------------
    # Each bounds the delay its stage adds; 250 ms each keeps a rate visible in the views within a
    # second (benchmarks/freshness.py) at four inserts a second per table.
    ksql_commit_interval_ms: int = setting(
        250,
        "Freshness",
        "a whole number of milliseconds, at least 10",
        "How often the local ksql engine emits its updated candles and averages (and checkpoints its state), "
        "in ms. Bounds the delay it adds to a rate reaching the views; larger means fewer, bigger writes.",
        ge=10,
    )
    loader_batch_ms: int = setting(
        250,
        "Freshness",
        "a whole number of milliseconds, 1-600000",
        "How long the loader collects messages before it inserts them (one insert per table), in ms.",
        ge=1,
        le=600_000,
    )
    indicators_interval_ms: int = setting(
        5000,
        "Freshness",
        "a whole number of milliseconds, 100-3600000",
        "How often `coinstream indicators` recomputes the indicator series whose candles changed, in ms: "
        "how far the v_indicators views may lag the candles.",
        ge=100,
        le=3_600_000,
    )
    rate_max_clock_skew_ms: int = setting(
        DEFAULT_MAX_CLOCK_SKEW_MS,
        "Freshness",
        "a whole number of milliseconds >= 0",
        "How far a live rate's fetched_at may be ahead of the wall clock, in ms, before the record is refused "
        "as coming from the future. The producer, the loader (error table) and the ksql statements "
        "(coins_current_rejected) apply the same rule.",
        ge=0,
    )

    # ---- Metrics and HTTP -----------------------------------------------------------------------
    loader_metrics_port: int = setting(
        9464,
        "Metrics and HTTP",
        "a TCP port number 0-65535 (0 = no metrics endpoint)",
        "Prometheus metrics of `coinstream load` (consumer lag, rows/s) on METRICS_HOST:PORT; 0 = off.",
        ge=0,
        le=65535,
    )
    producer_metrics_port: int = setting(
        9465,
        "Metrics and HTTP",
        "a TCP port number 0-65535 (0 = no metrics endpoint)",
        "Prometheus metrics of `coinstream produce current` (records, delivery failures, credits used, retries "
        "by reason) on METRICS_HOST:PORT; 0 = off.",
        ge=0,
        le=65535,
    )
    ksql_metrics_port: int = setting(
        9466,
        "Metrics and HTTP",
        "a TCP port number 0-65535 (0 = no metrics endpoint)",
        "Prometheus metrics of the local ksql engine, `coinstream ksql run` (records in/out by topic, "
        "processing-log entries by kind, commit cycles, open windows, consumer lag) on METRICS_HOST:PORT; "
        "0 = off. Not used where a ksqlDB server runs the statements (KSQLDB_URL).",
        ge=0,
        le=65535,
    )
    historical_metrics_port: int = setting(
        9467,
        "Metrics and HTTP",
        "a TCP port number 0-65535 (0 = no metrics endpoint)",
        "Prometheus metrics of the scheduled daily-close job, `coinstream produce historical` (records, "
        "delivery failures, credits used, retries by reason), while it runs; 0 = off.",
        ge=0,
        le=65535,
    )
    metrics_host: str = setting(
        "127.0.0.1",
        "Metrics and HTTP",
        "an IP address to bind such as 127.0.0.1 (0.0.0.0 inside a container)",
        "The address /metrics endpoints bind. Keep 127.0.0.1 on a host; docker-compose.yml sets 0.0.0.0 inside "
        "the containers so their published ports (bound to the host's 127.0.0.1) reach them.",
    )
    http_allowed_origins: Annotated[tuple[str, ...], NoDecode] = setting(
        (),
        "Metrics and HTTP",
        "comma-separated web origins such as http://localhost:3000 (unset = none)",
        "Web origins (comma-separated scheme://host[:port]) whose pages may call the local HTTP servers "
        "(ClickHouse, dashboard, simulated API). Unset = none: a request carrying any other Origin header is "
        "refused, and so is one whose Host header is not a loopback name or address.",
    )

    # ---- ksqlDB ---------------------------------------------------------------------------------
    ksqldb_url: str | None = setting(
        None,
        "ksqlDB",
        "an http(s) URL such as http://localhost:8088",
        "A real ksqlDB server for `coinstream ksql apply` (e.g. http://localhost:8088). Unset = the local engine.",
    )
    ksqldb_user: str | None = setting(
        None,
        "ksqlDB",
        "a user name (Confluent Cloud: the ksqlDB API key)",
        "Basic-auth user (Confluent Cloud: the ksqlDB API key).",
    )
    ksqldb_password: SecretStr | None = setting(
        None,
        "ksqlDB",
        "a password (Confluent Cloud: the ksqlDB API secret)",
        "Basic-auth password (Confluent Cloud: the ksqlDB API secret).",
    )

    # ---- Metabase -------------------------------------------------------------------------------
    metabase_url: str | None = setting(
        None,
        "Metabase",
        "an http(s) URL such as http://localhost:3000",
        "Where `coinstream metabase provision` creates the dashboards.",
    )
    metabase_user: str | None = setting(
        None, "Metabase", "a Metabase user's e-mail address", "As whom: a Metabase user's e-mail address."
    )
    metabase_password: SecretStr | None = setting(None, "Metabase", "that user's password", "That user's password.")
    metabase_api_key: SecretStr | None = setting(
        None, "Metabase", "a Metabase API key", "Alternatively an API key instead of user and password."
    )

    # ---- Local state ----------------------------------------------------------------------------
    coinstream_data_dir: Path = setting(
        Path("./data"),
        "Local state",
        "a directory path",
        "Where the embedded ClickHouse keeps its data (in DIR/clickhouse) and other local state.",
    )
    dashboard_port: int = setting(
        8050,
        "Local state",
        "a TCP port number 1-65535",
        "Port of the local web dashboard (`coinstream dashboard`, `coinstream up`) on 127.0.0.1.",
        ge=1,
        le=65535,
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "INFO", "Local state", "one of DEBUG, INFO, WARNING, ERROR", "DEBUG, INFO, WARNING or ERROR."
    )

    @field_validator("coins", mode="before")
    @classmethod
    def _split_coins(cls, value: object) -> object:
        return parse_coin_codes(value) if isinstance(value, str) else value

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


def setting_default(name: str) -> Any:
    """The declared default of setting `name`: what a component uses when built without settings,
    so its default and the setting's are one value."""
    return Settings.model_fields[name].default


def _form(name: str) -> str:
    extra = Settings.model_fields[name].json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["form"])


# The expected form of each setting (error messages name it), by variable name.
EXPECTED_FORMS: dict[str, str] = {name.upper(): _form(name) for name in Settings.model_fields}


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


def load_settings(env_file: str | os.PathLike[str] | None = ".env", **overrides: Any) -> Settings:
    """Read the settings once; raise `SettingsError` naming any malformed variable."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]  # pydantic-settings' own init parameter
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached: the environment does not change under a running process)."""
    return load_settings()
