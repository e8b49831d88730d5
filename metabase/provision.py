"""Bring a Metabase in line with the dashboard spec: create or update, by name, and nothing else.

Why reconcile rather than recreate: Metabase keeps ids, permissions, subscriptions and history on
its objects; deleting and recreating them would break links and alerts on every run. So each object
(the ClickHouse connection, the collection, every card, the dashboard) is looked up by name,
compared with the body the spec calls for, and only then created or updated. Comparison is
"does Metabase's object contain our body": Metabase adds fields of its own (ids, timestamps,
result metadata, a redacted password), which are ignored. A second run therefore sends no write.

Order matters: cards need the database and collection ids; the dashboard's dashcards, parameter
mappings and the coin filter's value source need the card ids.

On a Metabase error, `ProvisionError` names the object being provisioned and carries what was
done before it, so the operator sees both what failed and what already changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coinstream.metabase import payloads
from coinstream.metabase.client import MetabaseClient, MetabaseError
from coinstream.metabase.spec import DashboardSpec

REDACTED = "**MetabasePass**"  # what Metabase shows instead of a stored password


@dataclass(frozen=True)
class Outcome:
    """What happened to one object: created, updated (with the fields that differed) or unchanged."""

    kind: str
    name: str
    action: str
    object_id: int | str | None
    changed: tuple[str, ...] = ()

    def describe(self) -> str:
        detail = f" ({', '.join(self.changed)})" if self.changed else ""
        return f"{self.action:<9} {self.kind:<10} {self.name!r} id {self.object_id}{detail}"


@dataclass
class ProvisionReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.action == action)

    def summary(self) -> str:
        return f"{self.count('created')} created, {self.count('updated')} updated, {self.count('unchanged')} unchanged"


class ProvisionError(RuntimeError):
    """Metabase refused or failed a request while provisioning one object."""

    def __init__(self, kind: str, name: str, cause: MetabaseError, report: ProvisionReport) -> None:
        self.kind, self.name, self.cause, self.report = kind, name, cause, report
        super().__init__(f"{kind} {name!r}: {cause}")


def contains(actual: Any, desired: Any) -> bool:
    """True when `actual` (Metabase's object) holds everything in `desired` (our body).

    Dicts: every desired key, recursively (a desired None also matches a missing key); lists:
    same length, element by element; anything else: equal.
    """
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return False
        return all(contains(actual.get(key), value) for key, value in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(contains(a, d) for a, d in zip(actual, desired, strict=False))
        )
    return actual == desired


def differing_fields(actual: dict[str, Any], desired: dict[str, Any]) -> tuple[str, ...]:
    return tuple(key for key, value in desired.items() if not contains(actual.get(key), value))


def _items(answer: Any) -> list[dict[str, Any]]:
    """A list endpoint's items: Metabase answers either a list or {"data": [...]}."""
    if isinstance(answer, dict):
        answer = answer.get("data", [])
    return [item for item in answer or [] if isinstance(item, dict)]


def _legacy_dataset_query(query: Any) -> Any:
    """A card's dataset_query in the legacy native shape, whichever shape Metabase answered.

    Newer Metabase versions may answer MBQL 5 ({database, stages: [{native, template-tags}]}).
    """
    if isinstance(query, dict) and isinstance(query.get("stages"), list) and query["stages"]:
        stage = query["stages"][0]
        return {
            "type": "native",
            "database": query.get("database"),
            "native": {"query": stage.get("native"), "template-tags": stage.get("template-tags", {})},
        }
    return query


class Provisioner:
    """One provisioning run against one Metabase."""

    def __init__(self, client: MetabaseClient, spec: DashboardSpec, clickhouse_details: dict[str, Any]) -> None:
        self.client = client
        self.spec = spec
        self.details = clickhouse_details
        self.report = ProvisionReport()
        client.add_secret(str(clickhouse_details.get("password") or ""))

    def run(self) -> ProvisionReport:
        database_id = self._step("database", self.spec.connection_name, self.ensure_database)
        collection_id = self._step("collection", self.spec.collection_name, self.ensure_collection)
        existing_cards = self._step("cards", "listing", lambda: _items(self.client.get("/api/card", {"f": "all"})))
        card_ids = {
            card.key: self._step(
                "card", card.name, lambda card=card: self.ensure_card(card, database_id, collection_id, existing_cards)
            )
            for card in self.spec.cards
        }
        self._step("dashboard", self.spec.name, lambda: self.ensure_dashboard(collection_id, card_ids))
        return self.report

    def _step(self, kind: str, name: str, action: Any) -> Any:
        try:
            return action()
        except MetabaseError as error:
            raise ProvisionError(kind, name, error, self.report) from None

    def _record(self, kind: str, name: str, action: str, object_id: Any, changed: tuple[str, ...] = ()) -> None:
        self.report.outcomes.append(Outcome(kind, name, action, object_id, changed))

    # ---- the objects ---------------------------------------------------------------------------

    def ensure_database(self) -> int:
        desired = payloads.database_body(self.spec, self.details)
        found = [db for db in _items(self.client.get("/api/database")) if db.get("name") == desired["name"]]
        if not found:
            created = self.client.post("/api/database", desired)
            self._record("database", desired["name"], "created", created["id"])
            return created["id"]
        existing = min(found, key=lambda db: db["id"])
        comparable = {**desired, "details": dict(desired["details"])}
        stored_password = (existing.get("details") or {}).get("password")
        if stored_password in (None, REDACTED):
            # Metabase never shows a stored password; compare everything else.
            comparable["details"].pop("password")
        changed = differing_fields(existing, comparable)
        if changed:
            self.client.put(f"/api/database/{existing['id']}", desired)
            self._record("database", desired["name"], "updated", existing["id"], changed)
        else:
            self._record("database", desired["name"], "unchanged", existing["id"])
        return existing["id"]

    def ensure_collection(self) -> int | str:
        desired = payloads.collection_body(self.spec)
        found = [
            c
            for c in _items(self.client.get("/api/collection"))
            if c.get("name") == desired["name"]
            and not c.get("archived")
            and c.get("personal_owner_id") is None
            and isinstance(c.get("id"), int)
        ]
        if not found:
            created = self.client.post("/api/collection", desired)
            self._record("collection", desired["name"], "created", created["id"])
            return created["id"]
        existing = min(found, key=lambda c: c["id"])
        changed = differing_fields(existing, desired)
        if changed:
            self.client.put(f"/api/collection/{existing['id']}", {key: desired[key] for key in changed})
            self._record("collection", desired["name"], "updated", existing["id"], changed)
        else:
            self._record("collection", desired["name"], "unchanged", existing["id"])
        return existing["id"]

    def ensure_card(
        self, card: Any, database_id: int, collection_id: int | str, existing_cards: list[dict[str, Any]]
    ) -> int:
        desired = payloads.card_body(self.spec, card, database_id, collection_id)
        found = [
            c
            for c in existing_cards
            if c.get("name") == card.name and c.get("collection_id") == collection_id and not c.get("archived")
        ]
        if not found:
            created = self.client.post("/api/card", desired)
            self._record("card", card.name, "created", created["id"])
            return created["id"]
        existing = min(found, key=lambda c: c["id"])
        existing = {**existing, "dataset_query": _legacy_dataset_query(existing.get("dataset_query"))}
        changed = differing_fields(existing, desired)
        if changed:
            self.client.put(f"/api/card/{existing['id']}", {key: desired[key] for key in changed})
            self._record("card", card.name, "updated", existing["id"], changed)
        else:
            self._record("card", card.name, "unchanged", existing["id"])
        return existing["id"]

    def ensure_dashboard(self, collection_id: int | str, card_ids: dict[str, int]) -> int:
        name = self.spec.name
        parameters = payloads.dashboard_parameters(self.spec, card_ids)
        found = [
            d
            for d in _items(self.client.get("/api/dashboard", {"f": "all"}))
            if d.get("name") == name and d.get("collection_id") == collection_id and not d.get("archived")
        ]
        created = not found
        if created:
            dashboard_id = self.client.post(
                "/api/dashboard",
                {
                    "name": name,
                    "description": self.spec.description or None,
                    "collection_id": collection_id,
                    "parameters": parameters,
                },
            )["id"]
        else:
            dashboard_id = min(d["id"] for d in found)
        existing = self.client.get(f"/api/dashboard/{dashboard_id}")
        desired_cards = payloads.dashcards(self.spec, card_ids)
        current_cards = existing.get("dashcards", existing.get("ordered_cards")) or []
        changed = differing_fields(existing, {"description": self.spec.description or None, "parameters": parameters})
        if not _same_dashcards(current_cards, desired_cards):
            changed += ("dashcards",)
        if changed:
            self.client.put(
                f"/api/dashboard/{dashboard_id}",
                {
                    "description": self.spec.description or None,
                    "parameters": parameters,
                    "dashcards": _with_ids(current_cards, desired_cards),
                },
            )
        if created:
            self._record("dashboard", name, "created", dashboard_id)
        else:
            self._record("dashboard", name, "updated" if changed else "unchanged", dashboard_id, changed)
        return dashboard_id


def _same_dashcards(current: list[dict[str, Any]], desired: list[dict[str, Any]]) -> bool:
    """Exactly one dashcard per desired card, each holding the desired place and mappings."""
    if len(current) != len(desired):
        return False
    by_card = {dashcard.get("card_id"): dashcard for dashcard in current}
    return all(contains(by_card.get(want["card_id"]), want) for want in desired)


def _with_ids(current: list[dict[str, Any]], desired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Desired dashcards with ids: a card's existing dashcard keeps its id, a new one gets -1, -2, …

    Dashcards left out of the list (cards no longer in the spec) are removed by Metabase.
    """
    existing_ids: dict[Any, int] = {}
    for dashcard in sorted(current, key=lambda d: d.get("id", 0)):
        existing_ids.setdefault(dashcard.get("card_id"), dashcard["id"])
    bodies, new = [], 0
    for want in desired:
        dashcard_id = existing_ids.get(want["card_id"])
        if dashcard_id is None:
            new -= 1
            dashcard_id = new
        bodies.append({"id": dashcard_id, **want})
    return bodies


def provision(client: MetabaseClient, spec: DashboardSpec, clickhouse_details: dict[str, Any]) -> ProvisionReport:
    """Create or update the connection, collection, cards and dashboard of `spec`; report each."""
    return Provisioner(client, spec, clickhouse_details).run()
