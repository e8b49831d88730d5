"""Health probes of every part coinstream talks to, for `coinstream status` and container checks.

Why one module: an operator asking "is it up?" needs the same answer whether the parts are the
local embedded defaults or production services, so each probe takes its address from the settings
exactly as the components do, and asks the part something real — a Kafka metadata request, a
`SELECT 1` as the configured ClickHouse user, LiveCoinWatch's `/status` and `/credits`, ksqlDB's
`/info`, the metrics endpoints the loader, the producers and the ksql engine serve — rather than only
opening a port.

Probes run concurrently, each bounded by a timeout, so a dead part costs one timeout, not a sum.
Nothing a probe reports contains a secret: addresses are printed without credentials and every
detail passes through `scrub` with the secrets of the settings.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

import requests
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from coinstream.common.kafka_config import admin_config
from coinstream.common.settings import ClickHouseTarget, Settings
from coinstream.producers.client import LiveCoinWatchClient, RetryPolicy
from coinstream.producers.errors import LcwError

OK, DOWN, OFF = "ok", "down", "off"
PARTS = (
    "kafka",
    "clickhouse",
    "clickhouse-readonly",
    "livecoinwatch",
    "ksqldb",
    "metabase",
    "dashboard",
    "loader-metrics",
    "producer-metrics",
    "engine-metrics",
    "historical-metrics",
)
REDACTED = "[redacted]"


class ProbeFailed(Exception):
    """A part answered wrongly or not at all; the message is the detail shown to the operator."""


@dataclass(frozen=True)
class Check:
    """One part to probe: `probe()` returns a one-line detail or raises. No probe = not configured."""

    part: str
    address: str
    probe: Callable[[], str] | None
    off_reason: str = ""


@dataclass(frozen=True)
class PartHealth:
    part: str
    address: str
    state: str  # ok, down, off
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# ---- helpers ------------------------------------------------------------------------------------


def without_credentials(url: str) -> str:
    """`url` with any user:password@ removed, safe to print."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings (to scrub from anything printed)."""
    values: list[str] = []
    for secret in (
        settings.lcw_api_key,
        settings.kafka_sasl_password,
        settings.clickhouse_url,
        settings.clickhouse_password,
        settings.clickhouse_readonly_password,
        settings.ksqldb_password,
        settings.metabase_password,
        settings.metabase_api_key,
    ):
        if secret is not None and secret.get_secret_value():
            values.append(secret.get_secret_value())
    users = set()
    for readonly in (False, True):
        target = settings.clickhouse_target(readonly=readonly)
        users.add(target.username)
        values.append(target.password)
    # Very short values would garble every line they occur in, and a password equal to its user
    # name (the local read-only default) is printed anyway as the user. Longest first, so a secret
    # containing another is replaced whole.
    return sorted({value for value in values if len(value) >= 4 and value not in users}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _http(method: str, url: str, timeout_s: float, **kwargs) -> requests.Response:
    try:
        return requests.request(method, url, timeout=timeout_s, allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise ProbeFailed(f"no answer within {timeout_s:g} s") from None
    except requests.ConnectionError as error:
        raise ProbeFailed(f"cannot connect ({_root_cause(error)})") from None
    except requests.RequestException as error:
        raise ProbeFailed(f"request failed ({type(error).__name__})") from None


def _root_cause(error: BaseException) -> str:
    """The innermost reason of a connection error, e.g. 'Connection refused'."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    text = getattr(error, "strerror", None) or str(error)
    return text.rsplit(":", 1)[-1].strip() or type(error).__name__


def _expect_ok(response: requests.Response) -> requests.Response:
    if not 200 <= response.status_code < 300:
        body = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        raise ProbeFailed(f"HTTP {response.status_code}" + (f": {body}" if body else ""))
    return response


def _scrape_host(bind_host: str) -> str:
    """Where to reach an endpoint bound to `bind_host` from the local host."""
    if bind_host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bind_host == "::":
        return "[::1]"
    return f"[{bind_host}]" if ":" in bind_host else bind_host


def scrape_metrics(url: str, timeout_s: float) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A /metrics page as {sample name: [(labels, value), ...]}."""
    response = _expect_ok(_http("GET", url, timeout_s))
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    try:
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    except ValueError:
        raise ProbeFailed("the answer is not Prometheus text format") from None
    return samples


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> int:
    return int(sum(value for _labels, value in samples.get(name, [])))


# ---- probes -------------------------------------------------------------------------------------


def probe_kafka(config: dict, timeout_s: float) -> str:
    """A metadata request: brokers and topics the cluster reports."""
    # log_level 0: a dead broker is reported in the table, not as librdkafka lines on stderr.
    admin = AdminClient({**config, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as error:
        reason = error.args[0].str() if error.args and hasattr(error.args[0], "str") else str(error)
        raise ProbeFailed(f"no metadata answer within {timeout_s:g} s ({reason})") from None
    brokers = len(metadata.brokers)
    if not brokers:
        raise ProbeFailed("metadata answer lists no broker")
    topics = sum(1 for name in metadata.topics if not name.startswith("__"))
    return f"{brokers} broker{'s' if brokers != 1 else ''}, {topics} topic{'s' if topics != 1 else ''}"


def local_broker_memory(settings: Settings) -> str:
    """`; memory … MiB, last rotation …` from what `coinstream up` last wrote, for the local broker."""
    from coinstream.stack.broker_rotation import read_state

    if not settings.uses_local_kafka:
        return ""
    state = read_state(settings)
    if state is None:
        return ""
    text = f"; memory {state.rss_bytes / 1048576:.0f} MiB at {state.measured_at}"
    if state.last_rotation_at is None:
        return text + ", never rotated"
    return (
        text + f", last rotation {state.last_rotation_at} at "
        f"{(state.last_rotation_rss_bytes or 0) / 1048576:.0f} MiB ({state.rotations} in all)"
    )


def probe_clickhouse(target: ClickHouseTarget, timeout_s: float) -> str:
    """`/ping`, then `SELECT 1` as the target's user in its database."""
    base = f"{'https' if target.secure else 'http'}://{target.host}:{target.port}"
    ping = _expect_ok(_http("GET", f"{base}/ping", timeout_s)).text.strip()
    if ping != "Ok.":
        raise ProbeFailed("/ping did not answer 'Ok.'")
    answer = _expect_ok(
        _http(
            "POST",
            f"{base}/",
            timeout_s,
            data=b"SELECT 1",
            params={"database": target.database},
            headers={"X-ClickHouse-User": target.username, "X-ClickHouse-Key": target.password},
        )
    ).text.strip()
    if answer != "1":
        raise ProbeFailed(f"SELECT 1 as {target.username} answered {answer[:40]!r}")
    return f"ping Ok., SELECT 1 as {target.username}"


def probe_livecoinwatch(settings: Settings, timeout_s: float) -> str:
    """`/status` (no key, free), then `/credits` with the key (costs one credit): credits left."""
    base_url = settings.effective_lcw_base_url
    _expect_ok(_http("POST", f"{base_url}/status", timeout_s, json={}))
    # uses_simulated_api is true whenever the key is None; the explicit check narrows it for mypy.
    key = (
        None if settings.uses_simulated_api or settings.lcw_api_key is None else settings.lcw_api_key.get_secret_value()
    )
    client = LiveCoinWatchClient(
        base_url,
        key,
        retry=RetryPolicy(attempts=1, backoff_s=0, max_wait_s=0),
        connect_timeout_s=timeout_s,
        read_timeout_s=timeout_s,
    )
    try:
        credits = client.credits_status()
    except LcwError as error:
        raise ProbeFailed(str(error).removeprefix("giving up on /credits after 1 attempt(s): ")) from None
    finally:
        client.close()
    kind = "simulated API, " if settings.uses_simulated_api else ""
    return f"{kind}{credits['dailyCreditsRemaining']:,} of {credits['dailyCreditsLimit']:,} credits left today"


def probe_ksqldb(url: str, auth: tuple[str, str] | None, timeout_s: float) -> str:
    """`GET /info`: the server's version and status."""
    response = _expect_ok(_http("GET", f"{url}/info", timeout_s, auth=auth))
    try:
        info = response.json()["KsqlServerInfo"]
        return f"ksqlDB {info['version']}, {info.get('serverStatus', 'status unknown')}"
    except (ValueError, KeyError, TypeError):
        raise ProbeFailed("/info did not answer KsqlServerInfo") from None


def probe_metabase(url: str, timeout_s: float) -> str:
    """`GET /api/health`: {"status": "ok"} once Metabase has started."""
    response = _expect_ok(_http("GET", f"{url}/api/health", timeout_s))
    try:
        status = response.json()["status"]
    except (ValueError, KeyError, TypeError):
        raise ProbeFailed("/api/health did not answer a status") from None
    if status != "ok":
        raise ProbeFailed(f"/api/health says {status!r}")
    return "api/health ok"


def probe_dashboard(url: str, timeout_s: float) -> str:
    """`GET /healthz` of the local dashboard: "ok"."""
    response = _expect_ok(_http("GET", f"{url}/healthz", timeout_s))
    if response.text.strip() != "ok":
        raise ProbeFailed("/healthz did not answer 'ok'")
    return "healthz ok"


def _summary(
    url: str, timeout_s: float, component: str, marker: str, lag: str | None, totals: Sequence[tuple[str, str]]
) -> str:
    """One line from a component's /metrics: its consumer lag (if it has one), then each total.

    `marker` is a sample only that component serves: another component's endpoint at the address
    is reported as such, not summed into zeros.
    """
    samples = scrape_metrics(url, timeout_s)
    if marker not in samples:
        raise ProbeFailed(f"no {component} metrics at this address")
    parts = []
    if lag is not None:
        partitions = len(samples.get(lag, []))
        parts.append(
            f"consumer lag {_total(samples, lag):,} over {partitions} partition{'s' if partitions != 1 else ''}"
            if partitions
            else "consumer lag not reported yet"
        )  # no sample before the first report
    parts += [f"{_total(samples, name):,} {label}" for name, label in totals]
    return ", ".join(parts)


def probe_loader_metrics(url: str, timeout_s: float) -> str:
    """The loader's /metrics: consumer lag over its partitions, rows loaded, error-table rows."""
    return _summary(
        url,
        timeout_s,
        "loader",
        "coinstream_loader_batches_total",
        "coinstream_loader_consumer_lag",
        [("coinstream_loader_rows_total", "rows loaded"), ("coinstream_loader_errors_total", "to error tables")],
    )


def probe_engine_metrics(url: str, timeout_s: float) -> str:
    """The ksql engine's /metrics: consumer lag, records in and out, processing-log entries."""
    return _summary(
        url,
        timeout_s,
        "ksql engine",
        "coinstream_ksql_commit_cycles_total",
        "coinstream_ksql_consumer_lag",
        [
            ("coinstream_ksql_records_in_total", "records in"),
            ("coinstream_ksql_records_out_total", "out"),
            ("coinstream_ksql_processing_log_entries_total", "processing-log entries"),
        ],
    )


def probe_producer_metrics(url: str, timeout_s: float) -> str:
    """A producer's /metrics (current rates, or the daily-close job): records, delivery failures,
    credits used."""
    return _summary(
        url,
        timeout_s,
        "producer",
        "coinstream_lcw_credits_used_total",
        None,
        [
            ("coinstream_records_produced_total", "records produced"),
            ("coinstream_records_delivered_total", "delivered"),
            ("coinstream_delivery_failures_total", "delivery failures"),
            ("coinstream_lcw_credits_used_total", "credits used"),
        ],
    )


# ---- the list of parts --------------------------------------------------------------------------


def checks(settings: Settings, timeout_s: float) -> list[Check]:
    """Every part in `PARTS` order, with its address and probe (None where not configured)."""
    kafka = settings.effective_kafka_bootstrap
    target = settings.clickhouse_target()
    readonly = settings.clickhouse_target(readonly=True)
    metrics_host = _scrape_host(settings.metrics_host)
    result = [
        Check("kafka", kafka, lambda: probe_kafka(admin_config(settings), timeout_s) + local_broker_memory(settings)),
        Check("clickhouse", target.http_url, lambda: probe_clickhouse(target, timeout_s)),
    ]
    if readonly.username != target.username:
        result.append(Check("clickhouse-readonly", readonly.http_url, lambda: probe_clickhouse(readonly, timeout_s)))
    else:
        result.append(
            Check(
                "clickhouse-readonly",
                readonly.http_url,
                None,
                "same user as clickhouse (CLICKHOUSE_READONLY_USER unset)",
            )
        )
    lcw_url = without_credentials(settings.effective_lcw_base_url)
    result.append(Check("livecoinwatch", lcw_url, lambda: probe_livecoinwatch(settings, timeout_s)))
    ksqldb_url = settings.ksqldb_url
    if ksqldb_url:
        auth = (
            (settings.ksqldb_user, settings.ksqldb_password.get_secret_value() if settings.ksqldb_password else "")
            if settings.ksqldb_user
            else None
        )
        result.append(
            Check(
                "ksqldb",
                without_credentials(ksqldb_url),
                lambda: probe_ksqldb(ksqldb_url, auth, timeout_s),
            )
        )
    else:
        result.append(Check("ksqldb", "-", None, "KSQLDB_URL unset"))
    metabase_url = settings.metabase_url
    if metabase_url:
        result.append(
            Check(
                "metabase",
                without_credentials(metabase_url),
                lambda: probe_metabase(metabase_url, timeout_s),
            )
        )
    else:
        result.append(Check("metabase", "-", None, "METABASE_URL unset"))
    dashboard = f"http://127.0.0.1:{settings.dashboard_port}"
    result.append(Check("dashboard", dashboard, lambda: probe_dashboard(dashboard, timeout_s)))
    for part, port, variable, probe in (
        ("loader-metrics", settings.loader_metrics_port, "LOADER_METRICS_PORT", probe_loader_metrics),
        ("producer-metrics", settings.producer_metrics_port, "PRODUCER_METRICS_PORT", probe_producer_metrics),
        ("engine-metrics", settings.ksql_metrics_port, "KSQL_METRICS_PORT", probe_engine_metrics),
        ("historical-metrics", settings.historical_metrics_port, "HISTORICAL_METRICS_PORT", probe_producer_metrics),
    ):
        url = f"http://{metrics_host}:{port}/metrics"
        if part == "engine-metrics" and not settings.uses_local_ksql_engine:
            # A ksqlDB server runs the statements; `coinstream up` starts no local engine then.
            result.append(Check(part, "-", None, "KSQLDB_URL set (ksqlDB runs the statements)"))
        elif port:
            result.append(Check(part, url, functools.partial(probe, url, timeout_s)))
        else:
            result.append(Check(part, "-", None, f"{variable}=0"))
    return result


def run_checks(selected: Sequence[Check], secrets: Iterable[str] = ()) -> list[PartHealth]:
    """Probe every configured check concurrently; results in the order given."""
    secrets = list(secrets)

    def run(check: Check) -> PartHealth:
        if check.probe is None:
            return PartHealth(check.part, check.address, OFF, f"not configured: {check.off_reason}")
        try:
            return PartHealth(check.part, check.address, OK, scrub(check.probe(), secrets))
        except ProbeFailed as error:
            return PartHealth(check.part, check.address, DOWN, scrub(str(error), secrets))
        except Exception as error:
            return PartHealth(check.part, check.address, DOWN, scrub(f"{type(error).__name__}: {error}", secrets))

    if not selected:
        return []
    with ThreadPoolExecutor(max_workers=len(selected)) as pool:
        return list(pool.map(run, selected))


def render_table(results: Sequence[PartHealth]) -> str:
    header = PartHealth("PART", "ADDRESS", "STATE", "DETAIL")
    rows = [header, *results]
    widths = [max(len(getattr(row, field)) for row in rows) for field in ("part", "address", "state")]
    return "\n".join(
        f"{row.part:<{widths[0]}}  {row.address:<{widths[1]}}  {row.state:<{widths[2]}}  {row.detail}".rstrip()
        for row in rows
    )


def render_json(results: Sequence[PartHealth]) -> str:
    return json.dumps([result.as_dict() for result in results], indent=2)
