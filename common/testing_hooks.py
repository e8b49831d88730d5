"""Fault-injection seams for the test suite: inert unless `COINSTREAM_TEST_HOOKS` is set.

The shipped CLI has no testing options. A test that must kill a component at an exact point, hold it
between two steps or start its clock at a fixed instant sets the variable in the environment of the
process it starts, as `NAME=VALUE` pairs separated by `;`:

    COINSTREAM_TEST_HOOKS="ksql.fail-at=after-outputs:2"
    COINSTREAM_TEST_HOOKS="loader.pause-after-insert=60"
    COINSTREAM_TEST_HOOKS="clock.start=2024-03-05T12:00:00Z"

An unknown name is an error, so a misspelt hook cannot make a test pass without doing anything.
"""

from __future__ import annotations

import os

ENVIRONMENT_VARIABLE = "COINSTREAM_TEST_HOOKS"

HOOKS = {
    "ksql.fail-at": "`ksql run` exits like kill -9 at STAGE of the Nth cycle with input (STAGE[:N])",
    "loader.pause-after-insert": "the loader sleeps this many seconds between an insert and its offset commit",
    "clock.start": "the historical producer's clock starts at this UTC instant and runs at the wall clock's pace",
}


class UnknownTestHook(ValueError):
    """The environment names a hook no component has."""


def active_hooks(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The hooks requested by the environment, by name."""
    text = (os.environ if environ is None else environ).get(ENVIRONMENT_VARIABLE, "")
    hooks: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(";"))):
        name, separator, value = pair.partition("=")
        name = name.strip()
        if not separator or name not in HOOKS:
            raise UnknownTestHook(f"{ENVIRONMENT_VARIABLE}: unknown hook {name!r} (known: {', '.join(sorted(HOOKS))})")
        hooks[name] = value.strip()
    return hooks


def hook_value(name: str) -> str | None:
    """The value requested for hook `name`, or None (always None in production)."""
    if name not in HOOKS:
        raise UnknownTestHook(f"no test hook is called {name!r}")
    return active_hooks().get(name)
