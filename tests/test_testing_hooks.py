"""Fault injection reaches a component only through COINSTREAM_TEST_HOOKS, never a CLI option."""

from __future__ import annotations

import click
import pytest

from coinstream.cli import main
from coinstream.common.testing_hooks import ENVIRONMENT_VARIABLE, UnknownTestHook, active_hooks, hook_value


def test_hooks_are_inert_without_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    assert active_hooks() == {}
    assert hook_value("ksql.fail-at") is None
    assert hook_value("loader.pause-after-insert") is None


def test_hooks_are_parsed_by_name():
    environ = {ENVIRONMENT_VARIABLE: " ksql.fail-at=mid-changelog:5 ; clock.start=2025-03-31T12:59:30Z;"}
    assert active_hooks(environ) == {"ksql.fail-at": "mid-changelog:5", "clock.start": "2025-03-31T12:59:30Z"}


@pytest.mark.parametrize("text", ["ksql.fail-att=after-outputs", "loader.pause-after-insert", "=3"])
def test_a_misspelt_hook_is_an_error_not_a_silent_no_op(text: str):
    with pytest.raises(UnknownTestHook, match="unknown hook"):
        active_hooks({ENVIRONMENT_VARIABLE: text})


def test_asking_for_an_undeclared_hook_is_a_programming_error():
    with pytest.raises(UnknownTestHook, match="no test hook is called 'ksql.fail'"):
        hook_value("ksql.fail")


def _commands(group: click.Group, prefix: str = "coinstream"):
    for name, command in sorted(group.commands.items()):
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix} {name}")


def test_the_shipped_cli_has_no_hidden_options():
    hidden = [
        f"{path} {'/'.join(parameter.opts)}"
        for path, command in _commands(main)
        for parameter in command.params
        if isinstance(parameter, click.Option) and parameter.hidden
    ]
    assert hidden == []
    assert len(list(_commands(main))) >= 20
