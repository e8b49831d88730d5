"""A command-line option that overrides a setting takes its range and default from the setting."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from coinstream.cli import main
from coinstream.cli.setting_options import SettingOption, setting_option
from coinstream.common.settings import Settings, load_settings


def _options():
    def walk(group: click.Group, path: str):
        for name, command in sorted(group.commands.items()):
            if isinstance(command, click.Group):
                yield from walk(command, f"{path} {name}")
            for parameter in command.params:
                if isinstance(parameter, click.Option):
                    yield f"{path} {name} {parameter.opts[0]}", parameter

    return dict(walk(main, "coinstream"))


def test_the_overriding_options_and_their_ranges():
    found = {
        name: (option.setting, option.type.min, option.type.max)
        for name, option in _options().items()
        if isinstance(option, SettingOption)
    }
    assert found == {
        "coinstream broker --port": ("kafka_local_port", 1, 65535),
        "coinstream clickhouse serve --port": ("clickhouse_port", 0, 65535),
        "coinstream dashboard --port": ("dashboard_port", 0, 65535),
        "coinstream indicators --interval-ms": ("indicators_interval_ms", 100, 3_600_000),
        "coinstream ksql run --commit-interval-ms": ("ksql_commit_interval_ms", 10, None),
        "coinstream ksql run --metrics-port": ("ksql_metrics_port", 0, 65535),
        "coinstream load --batch-ms": ("loader_batch_ms", 1, 600_000),
        "coinstream load --metrics-port": ("loader_metrics_port", 0, 65535),
        "coinstream produce current --interval": ("poll_interval_s", 0, None),
        "coinstream produce current --metrics-port": ("producer_metrics_port", 0, 65535),
        "coinstream produce historical --metrics-port": ("historical_metrics_port", 0, 65535),
        "coinstream sim-api --port": ("sim_api_port", 0, 65535),
    }


def test_no_other_numeric_option_names_a_setting_as_its_default():
    # Text options that name a setting (URLs, users, --coins through common.coin_codes, derived
    # paths and days) are checked where they are parsed; a number's range is what can drift.
    variables = {name.upper() for name in Settings.model_fields}
    naming = [
        name
        for name, option in _options().items()
        if not isinstance(option, SettingOption)
        and isinstance(option.type, (click.types.IntParamType, click.types.FloatParamType))
        and any(re.search(rf"default:?\s+{variable}\b", option.help or "") for variable in variables)
    ]
    assert naming == []


def _probe(**settings: object) -> click.Group:
    @click.group()
    @click.pass_context
    def group(ctx: click.Context) -> None:
        ctx.obj = load_settings(env_file=None, **settings)

    @group.command()
    @setting_option("--batch-ms", setting="loader_batch_ms", help="batch age")
    @setting_option("--port", setting="dashboard_port", allow_zero="any free port", help="port")
    def probe(batch_ms: int, port: int) -> None:
        click.echo(f"{batch_ms} {port}")

    return group


def test_an_option_not_given_takes_the_settings_value():
    assert CliRunner().invoke(_probe(), ["probe"]).output == "250 8050\n"
    assert CliRunner().invoke(_probe(loader_batch_ms=777, dashboard_port=9000), ["probe"]).output == "777 9000\n"
    given = CliRunner().invoke(_probe(loader_batch_ms=777), ["probe", "--batch-ms", "5", "--port", "0"])
    assert given.output == "5 0\n"


def test_an_option_outside_the_settings_range_is_refused():
    for args in (["--batch-ms", "0"], ["--batch-ms", "600001"], ["--port", "65536"]):
        result = CliRunner().invoke(_probe(), ["probe", *args])
        assert result.exit_code == 2, args
        assert "is not in the range" in result.output
