"""Load and check the dashboard spec (`metabase/dashboards/*.yaml`), the one source of truth.

Why a loader with checks: the same file drives two renderers, Metabase through its REST API
(`metabase.provision`) and the local live dashboard (`dashboard/`). A mistake in it (a template
tag without a parameter, overlapping cards, a timeframe naming a missing card) should fail once,
here, with the card's name, instead of surfacing as a broken Metabase dashboard or an empty chart.

The spec uses Metabase's own vocabulary (display, visualization_settings keys, the 24-column grid),
so nothing here translates; it only reads, checks and freezes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coinstream.metabase.native import template_tags

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
DEFAULT_SPEC = DASHBOARDS_DIR / "coinstream.yaml"

DISPLAYS = frozenset({"scalar", "table", "line", "bar", "combo"})
GRID_COLUMNS = 24  # Metabase's dashboard grid width
CANDLE_COLUMNS = ("bucket_start", "open", "high", "low", "close")


class SpecError(ValueError):
    """The spec file is malformed; the message names the file and the offending object."""


@dataclass(frozen=True)
class Layout:
    """A card's place on Metabase's grid: top-left cell and size, in grid units."""

    row: int
    col: int
    size_x: int
    size_y: int

    def cells(self) -> set[tuple[int, int]]:
        return {
            (r, c) for r in range(self.row, self.row + self.size_y) for c in range(self.col, self.col + self.size_x)
        }


@dataclass(frozen=True)
class Parameter:
    """A dashboard filter, wired to every card whose SQL uses the template tag `slug`."""

    slug: str
    name: str
    type: str
    default: str | None
    required: bool
    values_card: str | None
    values_column: str | None


@dataclass(frozen=True)
class Card:
    """One question: native SQL, its result columns, how to draw it and where."""

    key: str
    name: str
    description: str
    display: str
    sql: str
    columns: tuple[str, ...]
    visualization: dict[str, Any]
    layout: Layout

    @property
    def tags(self) -> tuple[str, ...]:
        """The template tags (`{{name}}`) the SQL uses, in order of first use."""
        return template_tags(self.sql)


@dataclass(frozen=True)
class Overlay:
    """A line drawn over the candles: column `y` of card `card` against its column `x`."""

    card: str
    x: str
    y: str
    title: str


@dataclass(frozen=True)
class Timeframe:
    """One entry of the local dashboard's timeframe selector."""

    label: str
    seconds: int
    card: str
    overlay: Overlay | None


@dataclass(frozen=True)
class Live:
    """What only the local dashboard draws: the candlestick chart and its timeframes."""

    title: str
    candlestick_title: str
    timeframes: tuple[Timeframe, ...]


@dataclass(frozen=True)
class DashboardSpec:
    """The whole dashboard: Metabase objects (connection, collection, cards) and the live part."""

    name: str
    description: str
    connection_name: str
    engine: str
    collection_name: str
    collection_description: str
    parameters: tuple[Parameter, ...]
    cards: tuple[Card, ...]
    live: Live
    source: Path

    def card(self, key: str) -> Card:
        for card in self.cards:
            if card.key == key:
                return card
        raise KeyError(key)

    def to_public_dict(self) -> dict[str, Any]:
        """The spec as JSON-able data for the browser (everything but the SQL)."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": [
                {
                    "slug": p.slug,
                    "name": p.name,
                    "type": p.type,
                    "default": p.default,
                    "required": p.required,
                    "values_from": ({"card": p.values_card, "column": p.values_column} if p.values_card else None),
                }
                for p in self.parameters
            ],
            "cards": [
                {
                    "key": c.key,
                    "name": c.name,
                    "description": c.description,
                    "display": c.display,
                    "columns": list(c.columns),
                    "visualization": copy.deepcopy(c.visualization),
                    "layout": {
                        "row": c.layout.row,
                        "col": c.layout.col,
                        "size_x": c.layout.size_x,
                        "size_y": c.layout.size_y,
                    },
                    "tags": list(c.tags),
                }
                for c in self.cards
            ],
            "live": {
                "title": self.live.title,
                "candlestick": {
                    "title": self.live.candlestick_title,
                    "timeframes": [
                        {
                            "label": t.label,
                            "seconds": t.seconds,
                            "card": t.card,
                            "overlay": None
                            if t.overlay is None
                            else {"card": t.overlay.card, "x": t.overlay.x, "y": t.overlay.y, "title": t.overlay.title},
                        }
                        for t in self.live.timeframes
                    ],
                },
            },
        }


def load_spec(path: Path | str = DEFAULT_SPEC) -> DashboardSpec:
    """Read a spec file and check it; raise `SpecError` naming what is wrong."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SpecError(f"{path}: cannot read the dashboard spec: {error}") from None
    try:
        spec = _build(raw, path)
        _check(spec)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None
    return spec


def _need(mapping: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise SpecError(f"{where}: missing '{key}'")
    value = mapping[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise SpecError(f"{where}: '{key}' must be a {kind.__name__}")
    return value


def _build(raw: Any, path: Path) -> DashboardSpec:
    if not isinstance(raw, dict):
        raise SpecError("the spec must be a mapping")
    connection = _need(raw, "connection", dict, "spec")
    collection = _need(raw, "collection", dict, "spec")
    parameters = tuple(_parameter(item, index) for index, item in enumerate(_need(raw, "parameters", list, "spec")))
    cards = tuple(_card(item, index) for index, item in enumerate(_need(raw, "cards", list, "spec")))
    live_raw = _need(raw, "live", dict, "spec")
    candlestick = _need(live_raw, "candlestick", dict, "live")
    timeframes = tuple(
        _timeframe(item, index) for index, item in enumerate(_need(candlestick, "timeframes", list, "live.candlestick"))
    )
    return DashboardSpec(
        name=_need(raw, "name", str, "spec"),
        description=str(raw.get("description", "")).strip(),
        connection_name=_need(connection, "name", str, "connection"),
        engine=_need(connection, "engine", str, "connection"),
        collection_name=_need(collection, "name", str, "collection"),
        collection_description=str(collection.get("description", "")).strip(),
        parameters=parameters,
        cards=cards,
        live=Live(
            title=_need(live_raw, "title", str, "live"),
            candlestick_title=_need(candlestick, "title", str, "live.candlestick"),
            timeframes=timeframes,
        ),
        source=path,
    )


def _parameter(raw: Any, index: int) -> Parameter:
    where = f"parameter #{index + 1}"
    values_from = raw.get("values_from") if isinstance(raw, dict) else None
    if values_from is not None and not isinstance(values_from, dict):
        raise SpecError(f"{where}: 'values_from' must be a mapping {{card, column}}")
    default = raw.get("default") if isinstance(raw, dict) else None
    return Parameter(
        slug=_need(raw, "slug", str, where),
        name=_need(raw, "name", str, where),
        type=_need(raw, "type", str, where),
        default=None if default is None else str(default),
        required=bool(raw.get("required", False)),
        values_card=_need(values_from, "card", str, f"{where} values_from") if values_from else None,
        values_column=_need(values_from, "column", str, f"{where} values_from") if values_from else None,
    )


def _card(raw: Any, index: int) -> Card:
    key = _need(raw, "key", str, f"card #{index + 1}")
    where = f"card '{key}'"
    layout = _need(raw, "layout", dict, where)
    columns = _need(raw, "columns", list, where)
    if not columns or not all(isinstance(column, str) for column in columns):
        raise SpecError(f"{where}: 'columns' must list the result's column names")
    return Card(
        key=key,
        name=_need(raw, "name", str, where),
        description=str(raw.get("description", "")).strip(),
        display=_need(raw, "display", str, where),
        sql=_need(raw, "sql", str, where).strip(),
        columns=tuple(columns),
        visualization=copy.deepcopy(_need(raw, "visualization", dict, where)),
        layout=Layout(*(_need(layout, name, int, f"{where} layout") for name in ("row", "col", "size_x", "size_y"))),
    )


def _timeframe(raw: Any, index: int) -> Timeframe:
    label = _need(raw, "label", str, f"timeframe #{index + 1}")
    where = f"timeframe '{label}'"
    overlay_raw = raw.get("overlay")
    overlay = None
    if overlay_raw is not None:
        overlay = Overlay(
            card=_need(overlay_raw, "card", str, f"{where} overlay"),
            x=_need(overlay_raw, "x", str, f"{where} overlay"),
            y=_need(overlay_raw, "y", str, f"{where} overlay"),
            title=_need(overlay_raw, "title", str, f"{where} overlay"),
        )
    return Timeframe(
        label=label, seconds=_need(raw, "seconds", int, where), card=_need(raw, "card", str, where), overlay=overlay
    )


def _check(spec: DashboardSpec) -> None:
    """Cross-object rules: unique names, known tags and cards, a grid without overlaps."""
    keys = [card.key for card in spec.cards]
    names = [card.name for card in spec.cards]
    for label, values in (
        ("card key", keys),
        ("card name", names),
        ("parameter slug", [p.slug for p in spec.parameters]),
        ("timeframe", [t.label for t in spec.live.timeframes]),
    ):
        duplicates = sorted({value for value in values if values.count(value) > 1})
        if duplicates:
            raise SpecError(f"duplicate {label}(s): {', '.join(duplicates)}")
    slugs = {parameter.slug for parameter in spec.parameters}
    by_key = {card.key: card for card in spec.cards}
    occupied: dict[tuple[int, int], str] = {}
    for card in spec.cards:
        where = f"card '{card.key}'"
        if card.display not in DISPLAYS:
            raise SpecError(f"{where}: display must be one of {', '.join(sorted(DISPLAYS))}")
        unknown = sorted(set(card.tags) - slugs)
        if unknown:
            raise SpecError(f"{where}: template tag(s) {', '.join(unknown)} match no parameter")
        for setting in ("graph.dimensions", "graph.metrics"):
            missing = [c for c in card.visualization.get(setting, []) if c not in card.columns]
            if missing:
                raise SpecError(f"{where}: {setting} names unknown column(s) {', '.join(missing)}")
        layout = card.layout
        if (
            layout.row < 0
            or layout.col < 0
            or layout.size_x < 1
            or layout.size_y < 1
            or layout.col + layout.size_x > GRID_COLUMNS
        ):
            raise SpecError(f"{where}: layout does not fit the {GRID_COLUMNS}-column grid")
        for cell in sorted(layout.cells()):
            if cell in occupied:
                raise SpecError(f"{where}: layout overlaps card '{occupied[cell]}'")
            occupied[cell] = card.key
    for parameter in spec.parameters:
        if parameter.values_card is not None:
            source = by_key.get(parameter.values_card)
            if source is None or parameter.values_column not in source.columns:
                raise SpecError(f"parameter '{parameter.slug}': values_from names no card column")
        if parameter.required and parameter.default is None:
            raise SpecError(f"parameter '{parameter.slug}': a required parameter needs a default")
    for timeframe in spec.live.timeframes:
        where = f"timeframe '{timeframe.label}'"
        candles = by_key.get(timeframe.card)
        if candles is None:
            raise SpecError(f"{where}: no card '{timeframe.card}'")
        missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
        if missing:
            raise SpecError(f"{where}: card '{candles.key}' lacks candle column(s) {', '.join(missing)}")
        if timeframe.seconds < 1:
            raise SpecError(f"{where}: seconds must be >= 1")
        overlay = timeframe.overlay
        if overlay is not None:
            source = by_key.get(overlay.card)
            if source is None or overlay.x not in source.columns or overlay.y not in source.columns:
                raise SpecError(f"{where}: the overlay names no card column")
