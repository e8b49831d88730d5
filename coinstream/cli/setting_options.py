"""Command-line options that override a setting for one run, declared from the setting itself.

An option such as `coinstream load --batch-ms` is the setting LOADER_BATCH_MS for one run: its
accepted range and its default are the setting's (`coinstream.common.settings.Settings`), so the
two cannot disagree. The option's value, when not given, is the setting's current value (from the
environment or `.env`), filled in before the command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import annotated_types
import click

from coinstream.common.settings import Settings
from coinstream.common.settings_docs import default_text

F = TypeVar("F", bound=Callable[..., Any])


def _numeric_bound(bound: object, setting: str) -> float:
    """A bound of the setting's range (annotated_types types it only as comparable), as a number."""
    if not isinstance(bound, (int, float)):
        raise TypeError(f"setting {setting} has a non-numeric bound {bound!r}; give the option its own type")
    return bound


def option_type(setting: str, allow_zero: bool = False) -> click.ParamType:
    """The click type accepting exactly what the setting accepts (plus 0 with `allow_zero`)."""
    field = Settings.model_fields[setting]
    low: float | None = None
    high: float | None = None
    low_open = False
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            low = _numeric_bound(rule.ge, setting)
        elif isinstance(rule, annotated_types.Gt):
            low, low_open = _numeric_bound(rule.gt, setting), True
        elif isinstance(rule, annotated_types.Le):
            high = _numeric_bound(rule.le, setting)
    if allow_zero:
        low, low_open = 0, False
    annotation = field.annotation
    if annotation is int:
        return click.IntRange(None if low is None else int(low), None if high is None else int(high))
    if annotation in (float, float | None):
        return click.FloatRange(low, high, min_open=low_open)
    raise TypeError(f"setting {setting} is not a number; give the option its own type")


class SettingOption(click.Option):
    """An option standing for a setting; `setting` names it (the tests compare the two)."""

    def __init__(self, *args: Any, setting: str, **kwargs: Any) -> None:
        self.setting = setting
        super().__init__(*args, **kwargs)


def setting_option(
    *param_decls: str,
    setting: str,
    help: str,
    allow_zero: str | None = None,
    fill_from_settings: bool = True,
    **kwargs: Any,
) -> Callable[[F], F]:
    """A click option overriding `setting` for one run.

    `allow_zero` (its meaning, e.g. "any free port") extends the range with 0. With
    `fill_from_settings`, an option not given takes the setting's value; without, it stays None
    (for commands where "not given" means something of its own).
    """
    field = Settings.model_fields[setting]
    default = default_text(field) or "unset"
    extra = f"; 0 = {allow_zero}" if allow_zero else ""

    def fill(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is None and fill_from_settings and isinstance(ctx.obj, Settings):
            return getattr(ctx.obj, setting)
        return value

    return click.option(
        *param_decls,
        cls=SettingOption,
        setting=setting,
        type=option_type(setting, allow_zero is not None),
        default=None,
        callback=fill,
        help=f"{help} (default: {setting.upper()}, {default}{extra}).",
        **kwargs,
    )
