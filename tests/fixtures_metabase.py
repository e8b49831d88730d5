"""A fake Metabase: the REST endpoints provisioning uses, with Metabase's validation and quirks.

Load with ``pytest_plugins = ["tests.fixtures_metabase"]``; the `fake_metabase` fixture is a running
`FakeMetabase` on a free loopback port (stopped after the test).

Why a fake and not a mock: Metabase cannot run here (DESIGN §6). This is a small HTTP server that
keeps objects like Metabase does and refuses what Metabase would refuse, so provisioning is tested
through real HTTP and real JSON: sessions and API keys, the answer shapes ({"data": [...]} for
databases, a list for the rest), fields Metabase adds (ids, timestamps, entity ids), the redacted
stored password, and checks of every request body (a card's template tags must match the
`{{tags}}` of its SQL, dashcards must reference existing cards and dashboard parameters, mappings
must target a template tag of their card, new dashcards have negative ids). A body that breaks a
rule gets Metabase's 400 answer {"errors": {field: reason}} and is recorded in `problems`, which
tests assert to be empty.

`fail(method, path, name=..., status=..., message=...)` makes the next matching requests fail,
to test error reporting. `writes` lists every request that changed something.

Test modules import the names below directly, so assertion rewriting is off: PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

USERNAME = "admin@example.com"
PASSWORD = "metabase-Pa55word"
API_KEY = "mb_test_api_key_0123456789"
REDACTED = "**MetabasePass**"
DISPLAYS = {"table", "scalar", "line", "bar", "combo", "area", "row", "pie", "smartscalar"}
TAG_TYPES = {"text", "number", "date", "dimension"}
TAG_IN_SQL = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
BODY = web.RequestKey("body", object)  # the decoded JSON body, read once by the middleware


class Invalid(Exception):
    """A request body Metabase would refuse: field -> reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass
class Failure:
    method: str
    path: str
    name: str | None
    status: int
    message: str


class FakeMetabase:
    """In-memory Metabase objects behind aiohttp routes; run with `start()` / `stop()`."""

    def __init__(self) -> None:
        self._ids = itertools.count(2)  # id 1 is the admin's personal collection
        self.sessions: set[str] = set()
        self.databases: dict[int, dict[str, Any]] = {}
        self.collections: dict[int, dict[str, Any]] = {
            1: {
                "id": 1,
                "name": "Admin's Personal Collection",
                "personal_owner_id": 1,
                "location": "/",
                "archived": False,
            },
        }
        self.cards: dict[int, dict[str, Any]] = {}
        self.dashboards: dict[int, dict[str, Any]] = {}
        self.failures: list[Failure] = []
        self.writes: list[tuple[str, str, Any]] = []
        self.problems: list[str] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ---- test controls -------------------------------------------------------------------------

    def fail(
        self, method: str, path: str, *, name: str | None = None, status: int = 500, message: str = "Internal error"
    ) -> None:
        self.failures.append(Failure(method, path, name, status, message))

    def card_by_name(self, name: str) -> dict[str, Any]:
        return next(card for card in self.cards.values() if card["name"] == name)

    def start(self) -> FakeMetabase:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._runner = web.AppRunner(self._app(), access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = self._runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-metabase", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Metabase did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    # ---- HTTP plumbing -------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/api/session", self._login)
        app.router.add_delete("/api/session", self._logout)
        app.router.add_get("/api/database", self._list_databases)
        app.router.add_post("/api/database", self._create_database)
        app.router.add_put("/api/database/{id:\\d+}", self._update_database)
        app.router.add_get("/api/collection", self._list_collections)
        app.router.add_post("/api/collection", self._create_collection)
        app.router.add_put("/api/collection/{id:\\d+}", self._update_collection)
        app.router.add_get("/api/card", self._list_cards)
        app.router.add_post("/api/card", self._create_card)
        app.router.add_put("/api/card/{id:\\d+}", self._update_card)
        app.router.add_get("/api/dashboard", self._list_dashboards)
        app.router.add_post("/api/dashboard", self._create_dashboard)
        app.router.add_get("/api/dashboard/{id:\\d+}", self._get_dashboard)
        app.router.add_put("/api/dashboard/{id:\\d+}", self._update_dashboard)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        request[BODY] = body
        for failure in self.failures:
            if (
                failure.method == request.method
                and failure.path == request.path
                and (failure.name is None or (body or {}).get("name") == failure.name)
            ):
                return web.json_response({"message": failure.message}, status=failure.status)
        if (request.path != "/api/session" or request.method != "POST") and (
            request.headers.get("X-Metabase-Session") not in self.sessions
            and request.headers.get("x-api-key") != API_KEY
        ):
            return web.Response(status=401, text="Unauthenticated")
        try:
            response = await handler(request)
        except Invalid as error:
            self.problems.append(f"{request.method} {request.path}: {error}")
            return web.json_response({"errors": {error.field: error.reason}}, status=400)
        if request.method != "GET" and request.path != "/api/session":
            self.writes.append((request.method, request.path, body))
        return response

    def _object(self, store: dict[int, dict[str, Any]], request: web.Request) -> dict[str, Any]:
        found = store.get(int(request.match_info["id"]))
        if found is None:
            raise web.HTTPNotFound(text="Not found.")
        return found

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("created_at", "2024-03-10T10:00:00Z")
        obj["updated_at"] = "2024-03-10T10:00:01Z"
        obj.setdefault("entity_id", uuid.uuid4().hex[:21])
        return obj

    # ---- session -------------------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.Response:
        body = request[BODY] or {}
        if body.get("username") != USERNAME or body.get("password") != PASSWORD:
            return web.json_response({"errors": {"password": "did not match stored password"}}, status=401)
        session = str(uuid.uuid4())
        self.sessions.add(session)
        return web.json_response({"id": session})

    async def _logout(self, request: web.Request) -> web.Response:
        self.sessions.discard(request.headers.get("X-Metabase-Session", ""))
        return web.Response(status=204)

    # ---- databases -----------------------------------------------------------------------------

    def _check_database(self, body: dict[str, Any], partial: bool) -> None:
        if not partial or "name" in body:
            _non_blank(body, "name")
        if (not partial or "engine" in body) and body.get("engine") != "clickhouse":
            raise Invalid("engine", "Invalid engine type (this Metabase has the clickhouse driver)")
        if not partial or "details" in body:
            details = body.get("details")
            if not isinstance(details, dict):
                raise Invalid("details", "value must be a map.")
            for key, kind in (
                ("host", str),
                ("port", int),
                ("user", str),
                ("password", str),
                ("dbname", str),
                ("ssl", bool),
            ):
                if not isinstance(details.get(key), kind) or isinstance(details.get(key), bool) != (kind is bool):
                    raise Invalid("details", f"{key} must be a {kind.__name__}")

    def _public_database(self, db: dict[str, Any]) -> dict[str, Any]:
        shown = copy.deepcopy(db)
        shown["details"]["password"] = REDACTED
        return shown

    async def _list_databases(self, request: web.Request) -> web.Response:
        data = [self._public_database(db) for db in self.databases.values()]
        return web.json_response({"data": data, "total": len(data)})

    async def _create_database(self, request: web.Request) -> web.Response:
        body = request[BODY] or {}
        self._check_database(body, partial=False)
        db = self._stamp(
            {
                "id": next(self._ids),
                "name": body["name"],
                "engine": body["engine"],
                "details": dict(body["details"]),
                "is_full_sync": True,
                "features": ["native-parameters"],
            }
        )
        self.databases[db["id"]] = db
        return web.json_response(self._public_database(db))

    async def _update_database(self, request: web.Request) -> web.Response:
        db = self._object(self.databases, request)
        body = request[BODY] or {}
        self._check_database(body, partial=True)
        db.update(copy.deepcopy(body))
        return web.json_response(self._public_database(self._stamp(db)))

    # ---- collections ---------------------------------------------------------------------------

    async def _list_collections(self, request: web.Request) -> web.Response:
        root = {"id": "root", "name": "Our analytics", "can_write": True}
        return web.json_response([root, *self.collections.values()])

    async def _create_collection(self, request: web.Request) -> web.Response:
        body = request[BODY] or {}
        _non_blank(body, "name")
        collection = self._stamp(
            {
                "id": next(self._ids),
                "name": body["name"],
                "description": body.get("description"),
                "location": "/",
                "archived": False,
                "personal_owner_id": None,
                "slug": body["name"].lower(),
            }
        )
        self.collections[collection["id"]] = collection
        return web.json_response(collection)

    async def _update_collection(self, request: web.Request) -> web.Response:
        collection = self._object(self.collections, request)
        collection.update(request[BODY] or {})
        return web.json_response(self._stamp(collection))

    # ---- cards ---------------------------------------------------------------------------------

    def _check_card(self, body: dict[str, Any], partial: bool) -> None:
        if not partial or "name" in body:
            _non_blank(body, "name")
        if (not partial or "display" in body) and body.get("display") not in DISPLAYS:
            raise Invalid("display", "value must be a valid display type.")
        if (not partial or "visualization_settings" in body) and not isinstance(
            body.get("visualization_settings"), dict
        ):
            raise Invalid("visualization_settings", "value must be a map.")
        if (
            "collection_id" in body
            and body["collection_id"] is not None
            and body["collection_id"] not in self.collections
        ):
            raise Invalid("collection_id", "no such collection")
        if not partial or "dataset_query" in body:
            self._check_native_query(body.get("dataset_query"))

    def _check_native_query(self, query: Any) -> None:
        if not isinstance(query, dict) or query.get("type") != "native":
            raise Invalid("dataset_query", "must be a native query")
        if query.get("database") not in self.databases:
            raise Invalid("dataset_query", "database must be the id of an existing database")
        native = query.get("native")
        if not isinstance(native, dict) or not isinstance(native.get("query"), str) or not native["query"].strip():
            raise Invalid("dataset_query", "native.query must be a non-blank string")
        tags = native.get("template-tags", {})
        used = set(TAG_IN_SQL.findall(native["query"]))
        if not isinstance(tags, dict) or set(tags) != used:
            raise Invalid(
                "dataset_query", f"template-tags {sorted(tags)} do not match the query's variables {sorted(used)}"
            )
        for name, tag in tags.items():
            if (
                not isinstance(tag, dict)
                or tag.get("name") != name
                or not isinstance(tag.get("display-name"), str)
                or tag.get("type") not in TAG_TYPES
            ):
                raise Invalid("dataset_query", f"template tag {name} needs name, display-name, type")
            try:
                uuid.UUID(str(tag.get("id")))
            except ValueError:
                raise Invalid("dataset_query", f"template tag {name} needs a UUID id") from None

    def _derive_card(self, card: dict[str, Any]) -> dict[str, Any]:
        """What Metabase adds: parameters from the template tags, result metadata, query type."""
        tags = card["dataset_query"]["native"].get("template-tags", {})
        card["parameters"] = [
            {
                "id": tag["id"],
                "type": "category",
                "target": ["variable", ["template-tag", name]],
                "name": tag["display-name"],
                "slug": name,
            }
            for name, tag in tags.items()
        ]
        card["query_type"] = "native"
        card["result_metadata"] = None
        card["database_id"] = card["dataset_query"]["database"]
        return self._stamp(card)

    async def _list_cards(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.cards.values()))

    async def _create_card(self, request: web.Request) -> web.Response:
        body = request[BODY] or {}
        self._check_card(body, partial=False)
        card = {
            "id": next(self._ids),
            "archived": False,
            "description": None,
            "collection_id": None,
            **copy.deepcopy(body),
        }
        self.cards[card["id"]] = self._derive_card(card)
        return web.json_response(card)

    async def _update_card(self, request: web.Request) -> web.Response:
        card = self._object(self.cards, request)
        body = request[BODY] or {}
        self._check_card(body, partial=True)
        card.update(copy.deepcopy(body))
        return web.json_response(self._derive_card(card))

    # ---- dashboards ----------------------------------------------------------------------------

    def _check_parameters(self, parameters: Any) -> None:
        if not isinstance(parameters, list):
            raise Invalid("parameters", "value must be an array of parameters")
        for parameter in parameters:
            for key in ("id", "name", "slug", "type"):
                if not isinstance(parameter, dict) or not isinstance(parameter.get(key), str):
                    raise Invalid("parameters", f"each parameter needs a string {key}")
            if parameter.get("values_source_type") == "card":
                config = parameter.get("values_source_config") or {}
                field = config.get("value_field")
                if config.get("card_id") not in self.cards or not (
                    isinstance(field, list) and len(field) == 3 and field[0] == "field"
                ):
                    raise Invalid("parameters", "values_source_config needs card_id and value_field")

    def _summary(self, dashboard: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in dashboard.items() if key != "dashcards"}

    async def _list_dashboards(self, request: web.Request) -> web.Response:
        return web.json_response([self._summary(d) for d in self.dashboards.values()])

    async def _create_dashboard(self, request: web.Request) -> web.Response:
        body = request[BODY] or {}
        _non_blank(body, "name")
        if body.get("collection_id") not in self.collections:
            raise Invalid("collection_id", "no such collection")
        self._check_parameters(body.get("parameters", []))
        dashboard = self._stamp(
            {
                "id": next(self._ids),
                "name": body["name"],
                "description": body.get("description"),
                "collection_id": body["collection_id"],
                "archived": False,
                "parameters": copy.deepcopy(body.get("parameters", [])),
                "dashcards": [],
                "tabs": [],
                "width": "fixed",
            }
        )
        self.dashboards[dashboard["id"]] = dashboard
        return web.json_response(self._summary(dashboard))

    async def _get_dashboard(self, request: web.Request) -> web.Response:
        dashboard = self._object(self.dashboards, request)
        shown = copy.deepcopy(dashboard)
        for dashcard in shown["dashcards"]:
            dashcard["card"] = copy.deepcopy(self.cards.get(dashcard["card_id"]))
        return web.json_response(shown)

    async def _update_dashboard(self, request: web.Request) -> web.Response:
        dashboard = self._object(self.dashboards, request)
        body = request[BODY] or {}
        parameters = body.get("parameters", dashboard["parameters"])
        self._check_parameters(parameters)
        parameter_ids = {parameter["id"] for parameter in parameters}
        dashcards = dashboard["dashcards"]
        if "dashcards" in body:
            dashcards = [self._dashcard(d, dashboard, parameter_ids) for d in body["dashcards"]]
        dashboard.update({key: copy.deepcopy(value) for key, value in body.items() if key not in ("dashcards",)})
        dashboard["parameters"] = copy.deepcopy(parameters)
        dashboard["dashcards"] = dashcards
        return web.json_response(self._summary(self._stamp(dashboard)))

    def _dashcard(self, body: Any, dashboard: dict[str, Any], parameter_ids: set[str]) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            raise Invalid("dashcards", "each dashcard needs an integer id (negative for new ones)")
        existing = {d["id"] for d in dashboard["dashcards"]}
        if body["id"] > 0 and body["id"] not in existing:
            raise Invalid("dashcards", f"dashcard {body['id']} is not on this dashboard")
        card = self.cards.get(body.get("card_id"))
        if card is None:
            raise Invalid("dashcards", "card_id must be an existing card")
        for key in ("row", "col", "size_x", "size_y"):
            if not isinstance(body.get(key), int) or body[key] < (1 if key.startswith("size") else 0):
                raise Invalid("dashcards", f"{key} must be a valid integer")
        if body["col"] + body["size_x"] > 24:
            raise Invalid("dashcards", "a dashcard must fit the 24-column grid")
        tags = card["dataset_query"]["native"].get("template-tags", {})
        for mapping in body.get("parameter_mappings", []):
            target = mapping.get("target")
            if (
                mapping.get("parameter_id") not in parameter_ids
                or mapping.get("card_id") != body["card_id"]
                or not (
                    isinstance(target, list)
                    and len(target) == 2
                    and target[0] == "variable"
                    and target[1][:1] == ["template-tag"]
                    and target[1][1] in tags
                )
            ):
                raise Invalid("dashcards", f"bad parameter mapping {mapping}")
        dashcard_id = body["id"] if body["id"] > 0 else next(self._ids)
        return self._stamp(
            {
                **copy.deepcopy(body),
                "id": dashcard_id,
                "dashboard_id": dashboard["id"],
                "series": [],
                "dashboard_tab_id": None,
            }
        )


def _non_blank(body: dict[str, Any], key: str) -> None:
    if not isinstance(body.get(key), str) or not body[key].strip():
        raise Invalid(key, "value must be a non-blank string.")


@pytest.fixture
def fake_metabase() -> Iterator[FakeMetabase]:
    server = FakeMetabase().start()
    try:
        yield server
    finally:
        server.stop()
