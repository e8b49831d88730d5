"""docker-compose.yml without a Docker engine: the Compose Specification's JSON schema, then the
properties the schema cannot see — dependencies that can be met, app services that are real
`coinstream` command lines on the built image, ports published on loopback only and matching what
each process listens on, secrets only from .env and only in the containers that use them (no
env_file), settings every container can load, and the read-only ClickHouse user's pinned limits.

The schema is the one check-jsonschema vendors (compose-spec.json, loaded from the installed
package, not copied here). Interpolation follows the Compose Specification's rules (`${VAR}`,
`${VAR:-default}`, `${VAR:?error}`, `$$`), with .env.example plus the secrets an operator must add.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml

from coinstream.cli import main as cli
from coinstream.common.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
APP_IMAGE = "coinstream:local"
# What an operator adds to a copy of .env.example before `docker compose up`.
SECRETS = {
    "LCW_API_KEY": "lcw-key-0123456789",
    "CLICKHOUSE_PASSWORD": "0123456789abcdef0123456789abcdef",
    "CLICKHOUSE_READONLY_PASSWORD": "ro-0123456789abcdef",
    "METABASE_USER": "admin@example.com",
    "METABASE_PASSWORD": "mb-Pa55word-0123",
    "METABASE_DB_PASSWORD": "mbdb-0123456789abcdef",
}
REQUIRED = {
    "LCW_API_KEY",
    "CLICKHOUSE_PASSWORD",
    "CLICKHOUSE_READONLY_PASSWORD",
    "METABASE_PASSWORD",
    "METABASE_DB_PASSWORD",
}
# Required too, though not secret: the Metabase admin the stack creates and provisions as.
REQUIRED_SETTINGS = {"METABASE_USER"}
# Which secrets each service's environment holds, by hand from what its command reads (the
# ClickHouse admin password travels inside CLICKHOUSE_URL). Anything more is a leak.
SECRETS_BY_SERVICE = {
    "kafka": set(),
    "ksqldb-server": set(),
    "clickhouse": {"CLICKHOUSE_PASSWORD", "CLICKHOUSE_READONLY_PASSWORD"},
    "metabase-db": {"METABASE_DB_PASSWORD"},
    "metabase": {"METABASE_DB_PASSWORD"},
    "migrate": {"CLICKHOUSE_PASSWORD"},  # migrations: the admin user
    "ksql-apply": set(),  # ksqlDB without auth here
    "metabase-setup": {"METABASE_PASSWORD"},  # creates the Metabase admin
    "metabase-provision": {
        "METABASE_PASSWORD",  # logs in to Metabase, gives it
        "CLICKHOUSE_READONLY_PASSWORD",
    },  # the read-only ClickHouse user
    "loader": {"CLICKHOUSE_PASSWORD"},  # inserts
    "producer": {"LCW_API_KEY"},  # LiveCoinWatch only, no ClickHouse
    "historical": {"LCW_API_KEY", "CLICKHOUSE_PASSWORD"},  # + writes its progress
    "indicators": {"CLICKHOUSE_PASSWORD"},  # reads candles, writes the indicator store
    "dashboard": {"CLICKHOUSE_READONLY_PASSWORD"},  # reads as the read-only user
    "sim-api": set(),
}

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation over every string of a loaded compose file."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        present = current is not None and (current != "" or not (op or "").startswith(":"))
        if op in ("-", ":-"):
            return current if present else arg
        if op in ("?", ":?"):
            if not present:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return current
        if op in ("+", ":+"):
            return arg if present else ""
        return current or ""

    return _VARIABLE.sub(replace, value)


def strings(value: Any) -> list[str]:
    """Every string of a loaded compose file (what Compose interpolates; comments are not)."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return [value] if isinstance(value, str) else []


def referenced_variables(document: dict[str, Any]) -> dict[str, set[str]]:
    """Every variable the file interpolates, with the operators it is used with ('' = plain)."""
    found: dict[str, set[str]] = {}
    for text in strings(document):
        for match in _VARIABLE.finditer(text):
            name = match["braced"] or match["named"]
            if name:
                found.setdefault(name, set()).add(match["op"] or "")
    return found


def env_example() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", (REPO / ".env.example").read_text(), re.M))


def operator_env() -> dict[str, str]:
    """The .env of the README's steps: .env.example with the secrets filled in."""
    return {**env_example(), **SECRETS}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict[str, Any]:
    return interpolate(raw, operator_env())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in services.items() if service.get("image") == APP_IMAGE}


def compose_schema() -> dict[str, Any]:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendored / "compose-spec.json").read_text(encoding="utf-8"))


# ---- the schema -----------------------------------------------------------------------------------


def test_valid_against_the_compose_specification_schema(raw, compose):
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    for document in (raw, compose):
        errors = sorted(validator_class(schema).iter_errors(document), key=lambda e: list(e.path))
        assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_the_schema_refuses_what_compose_refuses():
    """The check has teeth: an unknown key and a malformed depends_on condition are errors."""
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    bad = {
        "services": {
            "a": {"image": "x:1", "imagee": "typo", "depends_on": {"b": {"condition": "service_ready"}}},
            "b": {"image": "x:1"},
        }
    }
    messages = sorted(error.message for error in validator.iter_errors(bad))
    assert messages == [
        "Unevaluated properties are not allowed ('depends_on', 'imagee' were unexpected)",
        "{'b': {'condition': 'service_ready'}} is not valid under any of the given schemas",
    ]


# ---- dependencies -------------------------------------------------------------------------------


def test_every_dependency_exists_and_its_condition_can_be_met(services):
    problems = []
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            if target not in services:
                problems.append(f"{name} depends on unknown {target}")
                continue
            condition = spec["condition"]
            dependency = services[target]
            if condition == "service_healthy" and "test" not in dependency.get("healthcheck", {}):
                problems.append(f"{name} waits for {target} to be healthy; it has no health check")
            if condition == "service_completed_successfully" and dependency.get("restart") != "no":
                problems.append(f"{name} waits for {target} to complete; it restarts instead")
            if dependency.get("profiles") and spec.get("required", True):
                problems.append(f"{name} requires {target}, which only runs with a profile")
    assert problems == []


def test_no_dependency_cycle(services):
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in visiting, f"cycle: {' -> '.join(path + (name,))}"
        if name in order:
            return
        visiting.add(name)
        for target in services[name].get("depends_on", {}):
            visit(target, path + (name,))
        visiting.discard(name)
        order.append(name)

    for name in services:
        visit(name, ())
    assert sorted(order) == sorted(services)


def test_start_order_of_the_pipeline(services):
    """What must be true before each app service starts (the issue's dependency list)."""

    def waits_for(name: str) -> dict[str, str]:
        return {target: spec["condition"] for target, spec in services[name]["depends_on"].items()}

    assert waits_for("migrate") == {"clickhouse": "service_healthy"}
    assert waits_for("loader") == {"kafka": "service_healthy", "migrate": "service_completed_successfully"}
    assert waits_for("ksql-apply") == {"ksqldb-server": "service_healthy", "loader": "service_healthy"}
    assert waits_for("producer") == {"kafka": "service_healthy", "sim-api": "service_healthy"}
    assert waits_for("historical") == {
        "kafka": "service_healthy",
        "sim-api": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert waits_for("indicators") == {"migrate": "service_completed_successfully"}
    assert waits_for("metabase-setup") == {"metabase": "service_healthy"}
    assert waits_for("metabase-provision") == {
        "metabase-setup": "service_completed_successfully",
        "migrate": "service_completed_successfully",
    }
    assert waits_for("ksqldb-server") == {"kafka": "service_healthy"}
    assert waits_for("metabase") == {"metabase-db": "service_healthy"}


# ---- the app services ---------------------------------------------------------------------------


def resolve(argv: list[str]) -> click.Context:
    """Parse `coinstream ARGV` with the real CLI (sub-commands, options, choices), without running it."""
    command: click.Command = cli
    rest = list(argv)
    while isinstance(command, click.Group):
        assert rest and rest[0] in command.commands, f"no command {argv}"
        command = command.commands[rest.pop(0)]
    return command.make_context(" ".join(argv), rest)


def test_app_services_run_the_built_image_with_a_real_command_line(services):
    apps = app_services(services)
    assert sorted(apps) == [
        "dashboard",
        "historical",
        "indicators",
        "ksql-apply",
        "loader",
        "metabase-provision",
        "metabase-setup",
        "migrate",
        "producer",
        "sim-api",
    ]
    for name, service in apps.items():
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        assert (REPO / service["build"]["dockerfile"]).is_file()
        assert "env_file" not in service, name
        assert (service["platform"], service["init"]) == ("linux/amd64", True), name
        if name != "metabase-setup":
            resolve(service["command"])
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "coinstream"]:
            resolve(test[2:])
    assert resolve(apps["ksql-apply"]["command"]).params["server"] == "http://ksqldb-server:8088"
    assert resolve(apps["metabase-provision"]["command"]).params["clickhouse_host"] == "clickhouse:8123"
    # The one service that is not a coinstream command runs a file this repository holds.
    setup = apps["metabase-setup"]
    source, target, mode = setup["volumes"][0].split(":")
    assert (REPO / source).is_file() and mode == "ro"
    assert setup["entrypoint"] == ["python", target]


def test_one_shot_jobs_and_long_running_services(services):
    apps = app_services(services)
    one_shot = sorted(name for name, service in apps.items() if service["restart"] == "no")
    assert one_shot == ["ksql-apply", "metabase-provision", "metabase-setup", "migrate"]
    for name, service in services.items():
        if name not in one_shot:
            assert service["restart"] == "unless-stopped", name


KAFKA_CLIENTS = {"loader", "producer", "historical"}
CLICKHOUSE_WRITERS = {"migrate", "loader", "historical", "indicators"}
CLICKHOUSE_READERS = {"dashboard", "metabase-provision"}
METRICS_SERVICES = {"loader", "producer", "historical"}


def container_settings(service: dict[str, Any], env: pytest.MonkeyPatch):
    """The settings a container loads: its `environment` only (no env_file, no .env in its cwd)."""
    for key, value in service["environment"].items():
        env.setenv(key, str(value))
    return load_settings(env_file=None)


@pytest.mark.parametrize(
    "name",
    [
        "migrate",
        "ksql-apply",
        "metabase-setup",
        "metabase-provision",
        "loader",
        "producer",
        "historical",
        "indicators",
        "dashboard",
        "sim-api",
    ],
)
def test_every_app_container_loads_valid_settings_pointing_into_the_network(name, services, isolated_env):
    """Each container gets what its command reads, from its own `environment` alone."""
    settings = container_settings(services[name], isolated_env)
    if name in KAFKA_CLIENTS:
        assert settings.effective_kafka_bootstrap == "kafka:9092"
    else:
        assert settings.uses_local_kafka  # nothing about Kafka: it does not talk to Kafka
    target = settings.clickhouse_target()
    readonly = settings.clickhouse_target(readonly=True)
    if name in CLICKHOUSE_WRITERS:
        assert (target.host, target.port, target.username, target.password) == (
            "clickhouse",
            8123,
            "default",
            SECRETS["CLICKHOUSE_PASSWORD"],
        )
    elif name in CLICKHOUSE_READERS:
        assert (readonly.host, readonly.port, readonly.username, readonly.password) == (
            "clickhouse",
            8123,
            "dashboard",
            SECRETS["CLICKHOUSE_READONLY_PASSWORD"],
        )
        assert target.password == ""  # the URL names the server, not the read-write user
    else:
        assert settings.uses_local_clickhouse
    if name == "ksql-apply":
        assert settings.ksqldb_url == "http://ksqldb-server:8088"
    if name in ("metabase-setup", "metabase-provision"):
        assert (settings.metabase_url, settings.metabase_user, settings.metabase_password.get_secret_value()) == (
            "http://metabase:3000",
            SECRETS["METABASE_USER"],
            SECRETS["METABASE_PASSWORD"],
        )
    else:
        assert settings.metabase_password is None and settings.metabase_url is None
    assert settings.metrics_host == ("0.0.0.0" if name in METRICS_SERVICES else "127.0.0.1")
    if name in ("producer", "historical"):
        assert not settings.uses_simulated_api
        assert settings.effective_lcw_base_url == "https://api.livecoinwatch.com"
        assert settings.coins == tuple(env_example()["COINS"].split(","))
        assert (settings.currency, settings.daily_credit_budget, settings.historical_daily_credits) == (
            "USD",
            10_000,
            500,
        )
    else:
        assert settings.uses_simulated_api


def test_non_secret_settings_in_env_reach_the_services_that_use_them(isolated_env):
    """What env_file used to carry: a value set in .env still reaches the services reading it."""
    env = {
        **operator_env(),
        "COINS": "BTC,ETH",
        "POLL_INTERVAL_S": "7.5",
        "CURRENCY": "EUR",
        "LOG_LEVEL": "DEBUG",
        "HISTORICAL_BACKFILL_DAYS": "9",
        "LOADER_BATCH_MS": "400",
    }
    services = interpolate(yaml.safe_load(COMPOSE.read_text()), env)["services"]
    producer = container_settings(services["producer"], isolated_env)
    assert (producer.coins, producer.poll_interval_s, producer.currency, producer.log_level) == (
        ("BTC", "ETH"),
        7.5,
        "EUR",
        "DEBUG",
    )
    historical = services["historical"]["environment"]
    assert (historical["COINS"], historical["HISTORICAL_BACKFILL_DAYS"]) == ("BTC,ETH", "9")
    assert services["loader"]["environment"]["LOADER_BATCH_MS"] == "400"


def test_the_simulated_profile_points_the_producers_at_sim_api(services, isolated_env):
    env = {**operator_env(), "LCW_BASE_URL": "http://sim-api:8788", "LCW_API_KEY": "anything"}
    interpolated = interpolate(yaml.safe_load(COMPOSE.read_text()), env)["services"]
    settings = container_settings(interpolated["producer"], isolated_env)
    assert settings.effective_lcw_base_url == "http://sim-api:8788"
    # The simulated API accepts the host name the producers call it by.
    assert interpolated["sim-api"]["environment"]["LCW_BASE_URL"] == "http://sim-api:8788"
    assert services["sim-api"]["profiles"] == ["simulated"]
    assert services["sim-api"]["command"] == ["sim-api", "--host", "0.0.0.0", "--port", "8788"]


# ---- ports --------------------------------------------------------------------------------------


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    result = []
    for port in service.get("ports", []):
        host_ip, host_port, container_port = port.split(":")
        result.append((host_ip, int(host_port), int(container_port)))
    return result


def test_ports_are_published_on_loopback_only_and_once(services):
    all_ports = [(name, *port) for name, service in services.items() for port in published(service)]
    assert {host_ip for _, host_ip, _, _ in all_ports} == {"127.0.0.1"}
    host_ports = [host_port for _, _, host_port, _ in all_ports]
    assert len(host_ports) == len(set(host_ports))
    assert "ports" not in services["metabase-db"]  # only Metabase talks to its database


def test_published_ports_are_where_each_process_listens(services):
    env = operator_env()

    def only(name: str) -> tuple[str, int, int]:
        (port,) = published(services[name])
        return port

    # The app services: the port their settings (in their environment) or command line name.
    assert only("loader")[1:] == (int(env["LOADER_METRICS_PORT"]),) * 2 == (9464, 9464)
    assert only("producer")[1:] == (int(env["PRODUCER_METRICS_PORT"]),) * 2 == (9465, 9465)
    assert only("historical")[1:] == (int(env["HISTORICAL_METRICS_PORT"]),) * 2 == (9467, 9467)
    assert only("dashboard")[1:] == (int(env["DASHBOARD_PORT"]),) * 2 == (8050, 8050)
    for name, variable in (
        ("loader", "LOADER_METRICS_PORT"),
        ("producer", "PRODUCER_METRICS_PORT"),
        ("historical", "HISTORICAL_METRICS_PORT"),
        ("dashboard", "DASHBOARD_PORT"),
    ):
        assert services[name]["environment"][variable] == str(only(name)[2])
    assert services["dashboard"]["command"][-1] == str(only("dashboard")[2])
    assert only("sim-api") == ("127.0.0.1", int(env["SIM_API_PORT"]), 8788)
    # The infrastructure: Kafka's HOST listener, advertised as the published address; ClickHouse's
    # HTTP port at CLICKHOUSE_PORT on the host, where coinstream looks without CLICKHOUSE_URL.
    kafka = services["kafka"]["environment"]
    assert only("kafka") == ("127.0.0.1", int(env["KAFKA_LOCAL_PORT"]), 19092)
    assert "HOST://:19092" in kafka["KAFKA_LISTENERS"].split(",")
    assert f"HOST://127.0.0.1:{env['KAFKA_LOCAL_PORT']}" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "INTERNAL://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert only("clickhouse") == ("127.0.0.1", int(env["CLICKHOUSE_PORT"]), 8123)
    assert only("ksqldb-server") == ("127.0.0.1", 8088, 8088)
    assert services["ksqldb-server"]["environment"]["KSQL_LISTENERS"] == "http://0.0.0.0:8088"
    assert only("metabase") == ("127.0.0.1", 3000, 3000)


# ---- variables and secrets ----------------------------------------------------------------------


def test_every_variable_is_documented_in_env_example(raw):
    documented = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M))
    variables = referenced_variables(raw)
    assert sorted(variables) == [
        "CLICKHOUSE_PASSWORD",
        "CLICKHOUSE_PORT",
        "CLICKHOUSE_READONLY_PASSWORD",
        "CLICKHOUSE_USER",
        "COINS",
        "CURRENCY",
        "DAILY_CREDIT_BUDGET",
        "DASHBOARD_PORT",
        "HISTORICAL_BACKFILL_DAYS",
        "HISTORICAL_CLOSE_MARGIN_S",
        "HISTORICAL_DAILY_CREDITS",
        "HISTORICAL_METRICS_PORT",
        "HTTP_ALLOWED_ORIGINS",
        "INDICATORS_INTERVAL_MS",
        "KAFKA_LOCAL_PORT",
        "KAFKA_REPLICATION_FACTOR",
        "KAFKA_TOPIC_PARTITIONS",
        "LCW_API_KEY",
        "LCW_BASE_URL",
        "LCW_CONNECT_TIMEOUT_S",
        "LCW_READ_TIMEOUT_S",
        "LCW_RETRY_ATTEMPTS",
        "LCW_RETRY_BACKOFF_S",
        "LCW_RETRY_MAX_WAIT_S",
        "LOADER_BATCH_MS",
        "LOADER_METRICS_PORT",
        "LOG_LEVEL",
        "METABASE_DB_PASSWORD",
        "METABASE_PASSWORD",
        "METABASE_USER",
        "POLL_INTERVAL_S",
        "PRODUCER_METRICS_PORT",
        "SIM_API_PORT",
    ]
    assert sorted(set(variables) - documented) == []


def test_secrets_come_only_from_env_and_are_required(raw):
    variables = referenced_variables(raw)
    secret_like = {name for name in variables if re.search(r"PASSWORD|SECRET|TOKEN|API_KEY|_PASS$", name)}
    assert secret_like == REQUIRED
    for name in secret_like:
        assert variables[name] == {":?"}, f"{name} must be ${{{name}:?…}}, never defaulted"
    # No literal secret: every secret-named environment entry is exactly one required variable.
    for service_name, service in raw["services"].items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|API_KEY|_PASS$", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), (service_name, key)
    assert "${CLICKHOUSE_PASSWORD:?" in raw["services"]["loader"]["environment"]["CLICKHOUSE_URL"]


def test_no_service_reads_env_file(raw):
    """env_file: .env would hand every secret in .env to the container, used or not."""

    def keys(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [key for key, item in value.items() for key in [key, *keys(item)]]
        if isinstance(value, list):
            return [key for item in value for key in keys(item)]
        return []

    assert "env_file" not in keys(raw)
    assert "env_file" not in COMPOSE.read_text().replace("no env_file", "")


def secrets_in(service: dict[str, Any]) -> set[str]:
    """The secrets (by variable) whose value appears anywhere in the service's environment."""
    values = [str(value) for value in service.get("environment", {}).values()]
    return {
        name for name, secret in SECRETS.items() if name != "METABASE_USER" and any(secret in value for value in values)
    }


def test_every_service_gets_only_the_secrets_it_uses(services):
    assert sorted(SECRETS_BY_SERVICE) == sorted(services)
    got = {name: secrets_in(service) for name, service in services.items()}
    assert got == SECRETS_BY_SERVICE
    # The secret values are distinct, so a match is the secret and not a coincidence.
    assert len(set(SECRETS.values())) == len(SECRETS)


def test_the_secret_check_sees_a_leak():
    """Teeth: the whole operator .env in one service (what env_file did) is every secret there."""
    leaky = {"environment": operator_env()}
    assert secrets_in(leaky) == set(SECRETS) - {"METABASE_USER"}
    embedded = {"environment": {"CLICKHOUSE_URL": f"http://u:{SECRETS['CLICKHOUSE_PASSWORD']}@h/"}}
    assert secrets_in(embedded) == {"CLICKHOUSE_PASSWORD"}


@pytest.mark.parametrize("missing", sorted(REQUIRED | REQUIRED_SETTINGS))
def test_a_missing_secret_stops_compose_with_its_name(raw, missing):
    env = {key: value for key, value in operator_env().items() if key != missing}
    with pytest.raises(
        InterpolationError, match=f"required variable {missing} is missing a value: set {missing} in .env"
    ):
        interpolate(raw, env)
    # An empty value (as .env.example has it) is missing too.
    with pytest.raises(InterpolationError):
        interpolate(raw, {**env, missing: ""})


def test_env_example_as_copied_loads(isolated_env):
    (Path.cwd() / ".env").write_text((REPO / ".env.example").read_text())
    settings = load_settings()
    assert (settings.kafka_sasl_mechanism, settings.poll_interval_s) == (None, None)


# ---- images, volumes, mounted configuration -----------------------------------------------------


def test_third_party_images_are_pinned(services):
    images = {name: service["image"] for name, service in services.items() if service["image"] != APP_IMAGE}
    assert images == {
        "kafka": "apache/kafka:3.9.1",
        "ksqldb-server": "confluentinc/ksqldb-server:0.29.0",
        "clickhouse": "clickhouse/clickhouse-server:25.8",
        "metabase-db": "postgres:16-alpine",
        "metabase": "metabase/metabase:v0.56.4",
    }


def test_volumes_are_declared_and_bind_mounts_exist(compose, services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).is_file(), (name, source)
                assert volume.endswith(":ro"), (name, volume)
            else:
                assert source in compose["volumes"], (name, source)


def test_clickhouse_read_only_user_file(services):
    """The mounted users.d file defines the user the app services name, password from the env."""
    import xml.etree.ElementTree as ET

    mount = services["clickhouse"]["volumes"][1]
    source, target, _mode = mount.split(":")
    assert target == "/etc/clickhouse-server/users.d/dashboard.xml"
    root = ET.parse(REPO / source).getroot()
    user = root.find("users/dashboard")
    assert user is not None
    assert user.find("password").attrib == {"from_env": "CLICKHOUSE_READONLY_PASSWORD"}
    assert (user.find("password").text or "").strip() == ""
    profile = user.find("profile").text
    assert root.find(f"profiles/{profile}/readonly").text == "2"
    assert [query.text for query in user.findall("grants/query")] == ["GRANT SELECT ON default.*"]
    assert "CLICKHOUSE_READONLY_PASSWORD" in services["clickhouse"]["environment"]
    for name, app in app_services(services).items():
        if name in CLICKHOUSE_READERS:
            assert app["environment"]["CLICKHOUSE_READONLY_USER"] == user.tag, name
        else:
            assert "CLICKHOUSE_READONLY_USER" not in app["environment"], name


def test_clickhouse_read_only_profile_limits_cannot_be_raised(services):
    """The profile's limits, and settings constraints so a readonly=2 session cannot raise them:
    max = the limit, min 1 (0 means "no limit" for these settings), readonly itself const."""
    import xml.etree.ElementTree as ET

    source = services["clickhouse"]["volumes"][1].split(":")[0]
    root = ET.parse(REPO / source).getroot()
    profile_name = root.find("users/dashboard/profile").text
    profile = root.find(f"profiles/{profile_name}")
    limits = {
        "max_execution_time": 60,
        "max_memory_usage": 2_000_000_000,
        "max_result_rows": 1_000_000,
        "max_result_bytes": 1_000_000_000,
    }
    for setting, value in limits.items():
        assert int(profile.find(setting).text) == value, setting
        constraint = profile.find(f"constraints/{setting}")
        assert constraint is not None, setting
        assert int(constraint.find("max").text) == value, setting
        assert int(constraint.find("min").text) == 1, setting
        assert {child.tag for child in constraint} == {"min", "max"}, setting  # not changeable_in_readonly
    readonly = profile.find("constraints/readonly")
    assert [child.tag for child in readonly] == ["const"]
    assert profile.find("readonly").text == "2"
    # Nothing else constrained or loosened by accident.
    assert sorted(child.tag for child in profile.find("constraints")) == sorted([*limits, "readonly"])
    assert root.find("profiles/*/constraints/*/changeable_in_readonly") is None
