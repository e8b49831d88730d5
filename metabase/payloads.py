"""The request bodies Metabase's REST API expects, built from the dashboard spec.

Why pure functions apart from the HTTP calls: the bodies are also what provisioning compares
against what Metabase already holds, so "is this card up to date?" is "does Metabase's card contain
this body?". Everything here is deterministic: template-tag ids are UUIDs derived from the card and
tag names, the dashboard parameter id is its slug, so a second run builds identical bodies.

Shapes follow Metabase's API docs: a native card's `dataset_query` is
{type: "native", native: {query, template-tags}, database}; a dashboard's dashcards carry
{card_id, row, col, size_x, size_y, parameter_mappings} with mappings
{parameter_id, card_id, target: ["variable", ["template-tag", name]]}.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from coinstream.metabase.spec import Card, DashboardSpec, Parameter

# A dashboard parameter's type decides the template tag's type and the filter's section.
_TAG_TYPES = {"string": "text", "category": "text", "number": "number", "date": "date"}
_TAG_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/coinstream/template-tags")


def clickhouse_details(host: str, port: int, user: str, password: str, database: str, ssl: bool) -> dict[str, Any]:
    """Connection details for Metabase's `clickhouse` driver (the read-only dashboard user)."""
    return {"host": host, "port": port, "user": user, "password": password, "dbname": database, "ssl": ssl}


def database_body(spec: DashboardSpec, details: dict[str, Any]) -> dict[str, Any]:
    return {"name": spec.connection_name, "engine": spec.engine, "details": dict(details)}


def collection_body(spec: DashboardSpec) -> dict[str, Any]:
    return {"name": spec.collection_name, "description": spec.collection_description or None}


def _section(parameter: Parameter) -> str:
    return parameter.type.split("/")[0]


def template_tag(card: Card, parameter: Parameter) -> dict[str, Any]:
    """A card's variable for a dashboard parameter: optional, since the SQL wraps it in [[ … ]]."""
    return {
        "id": str(uuid.uuid5(_TAG_ID_NAMESPACE, f"{card.key}/{parameter.slug}")),
        "name": parameter.slug,
        "display-name": parameter.name,
        "type": _TAG_TYPES.get(_section(parameter), "text"),
        "required": False,
    }


def card_body(spec: DashboardSpec, card: Card, database_id: int, collection_id: int | str | None) -> dict[str, Any]:
    parameters = {parameter.slug: parameter for parameter in spec.parameters}
    return {
        "name": card.name,
        "description": card.description or None,
        "display": card.display,
        "collection_id": collection_id,
        "visualization_settings": copy.deepcopy(card.visualization),
        "dataset_query": {
            "type": "native",
            "native": {
                "query": card.sql,
                "template-tags": {tag: template_tag(card, parameters[tag]) for tag in card.tags},
            },
            "database": database_id,
        },
    }


def dashboard_parameters(spec: DashboardSpec, card_ids: dict[str, int]) -> list[dict[str, Any]]:
    """The dashboard's filters; a filter with `values_from` takes its choices from that card's column."""
    bodies = []
    for parameter in spec.parameters:
        body: dict[str, Any] = {
            "id": parameter.slug,
            "name": parameter.name,
            "slug": parameter.slug,
            "type": parameter.type,
            "sectionId": _section(parameter),
        }
        if parameter.default is not None:
            body["default"] = [parameter.default]
        if parameter.required:
            body["required"] = True
        if parameter.values_card is not None:
            body["values_query_type"] = "list"
            body["values_source_type"] = "card"
            body["values_source_config"] = {
                "card_id": card_ids[parameter.values_card],
                "value_field": ["field", parameter.values_column, {"base-type": "type/Text"}],
            }
        bodies.append(body)
    return bodies


def dashcards(spec: DashboardSpec, card_ids: dict[str, int]) -> list[dict[str, Any]]:
    """One dashcard per card at its grid place, each tag mapped to the dashboard parameter of its name."""
    bodies = []
    for card in spec.cards:
        card_id = card_ids[card.key]
        bodies.append(
            {
                "card_id": card_id,
                "row": card.layout.row,
                "col": card.layout.col,
                "size_x": card.layout.size_x,
                "size_y": card.layout.size_y,
                "parameter_mappings": [
                    {"parameter_id": tag, "card_id": card_id, "target": ["variable", ["template-tag", tag]]}
                    for tag in card.tags
                ],
                "visualization_settings": {},
            }
        )
    return bodies
