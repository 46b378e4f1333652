"""The OpenAPI document: every route fully described, from the route table's declarations."""

from __future__ import annotations

from typing import Any

import pytest

from server.api.openapi import PAGE_OPERATIONS, build_document, path_params, replies
from server.api.routes import ROUTES, Route
from server.api.spec import PATH_PARAMS, QUERY_PARAMS
from server.errors import ErrorCode
from server.pages import PAGE_ROUTES
from tests.api.helpers import Api

DOCUMENT = build_document(ROUTES)


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = DOCUMENT["paths"][route.path][route.method.lower()]
    return operation


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = DOCUMENT
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


def test_every_route_describes_the_body_of_each_success() -> None:
    # A route added with `{200: "OK"}` (a description, no model) fails here: declare a model
    # from server/api/responses.py, a Reply with media, or NO_CONTENT.
    incomplete = [
        f"{route.method} {route.path}: {status}"
        for route in ROUTES
        for status, reply in replies(route).items()
        if status < 400 and not reply.complete
    ]
    assert incomplete == []
    without_success = [r.name for r in ROUTES if not any(s < 400 for s in replies(r))]
    assert without_success == []


def test_every_declared_status_is_in_the_document_with_its_schema() -> None:
    for route in ROUTES:
        documented = _operation(route)["responses"]
        assert set(documented) == {str(status) for status in replies(route)}, route.name
        for status, answer in documented.items():
            reply = replies(route)[int(status)]
            if reply.bodiless:
                assert "content" not in answer, (route.name, status)
                continue
            assert answer["content"], (route.name, status)
            for media in answer["content"].values():
                schema = media["schema"]
                if "$ref" in schema:
                    assert _resolve(schema["$ref"]), (route.name, status)


def test_error_statuses_are_derived_from_policy_body_and_path() -> None:
    by_name = {route.name: route for route in ROUTES}
    # A caller route: 401, 403, 503; a body: 400 and 413; {app}: 404; every route: 500.
    put_item = set(_operation(by_name["put_item"])["responses"])
    assert {"400", "401", "403", "404", "412", "413", "500", "503"} <= put_item
    healthz = set(_operation(by_name["healthz"])["responses"])
    assert healthz == {"200", "500"}
    login = _operation(by_name["login"])["responses"]
    assert {"400", "401", "413", "429", "503"} <= set(login)
    assert "403" not in login  # public: no scope to miss
    publish = _operation(by_name["publish_release"])["responses"]
    assert "nothing_to_publish" in publish["409"]["description"]


def test_each_error_status_has_the_envelope_with_the_codes_of_that_status() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    for route in ROUTES:
        for status, answer in _operation(route)["responses"].items():
            if int(status) < 400 or route.name == "readyz":
                continue
            ref = answer["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/Error{status}", (route.name, status)
    codes_409 = schemas["Error409"]["properties"]["error"]["properties"]["code"]["enum"]
    assert {"exists", "nothing_to_publish", "conflict"} <= set(codes_409)
    codes_404 = schemas["Error404"]["properties"]["error"]["properties"]["code"]["enum"]
    assert codes_404 == ["no_gray", "not_found", "not_published"]
    every_code = {
        code
        for name, schema in schemas.items()
        if name.startswith("Error") and name[5:].isdigit()
        for code in schema["properties"]["error"]["properties"]["code"]["enum"]
    }
    assert "invalid_op" not in every_code  # WebSocket-only codes are no HTTP answer
    assert ErrorCode.INTERNAL.code in every_code


def test_parameters_are_typed_with_their_patterns() -> None:
    unknown = [
        f"{route.method} {route.path}: {name}"
        for route in ROUTES
        for name in path_params(route.path)
        if name not in PATH_PARAMS
    ]
    unknown += [
        f"{route.method} {route.path}: ?{name}"
        for route in ROUTES
        for name in route.query
        if isinstance(name, str) and name not in QUERY_PARAMS
    ]
    assert unknown == []
    for route in ROUTES:
        for parameter in _operation(route).get("parameters", []):
            schema = parameter["schema"]
            assert schema.get("type") in {"string", "integer"}, (route.name, parameter)
            if parameter["in"] == "path":
                assert parameter["required"] is True
                assert schema["pattern"].startswith("^"), (route.name, parameter)
    item = {p["name"]: p["schema"] for p in _operation(_route("get_item"))["parameters"]}
    assert item["app"]["pattern"] == "^[a-z0-9][a-z0-9_.-]{0,63}$"
    assert item["key"]["pattern"] == "^[A-Za-z0-9_.:/-]{1,255}$"
    config = {p["name"]: p["schema"] for p in _operation(_route("get_config"))["parameters"]}
    assert config["format"]["enum"] == ["json", "properties", "yaml", "dotenv"]
    assert config["wait"] == {"type": "integer", "minimum": 0, "maximum": 60}


def _route(name: str) -> Route:
    return next(route for route in ROUTES if route.name == name)


def test_headers_are_described_where_they_are_sent() -> None:
    config = _operation(_route("get_config"))["responses"]
    assert set(config["200"]["headers"]) == {"ETag", "X-Config-Version"}
    assert all(h["required"] for h in config["200"]["headers"].values())
    assert set(config["200"]["content"]) == {"application/json", "text/plain", "application/yaml"}
    assert "ETag" in config["304"]["headers"]
    item = _operation(_route("get_item"))["responses"]["200"]
    assert item["headers"]["ETag"]["required"] is True
    login = _operation(_route("login"))["responses"]
    assert login["429"]["headers"]["Retry-After"]["required"] is True
    assert "Retry-After" in login["503"]["headers"]
    components = DOCUMENT["components"]
    assert set(components["headers"]) == {"ETag", "X-Config-Version", "Retry-After", "Allow"}
    allow = components["responses"]["MethodNotAllowed"]["headers"]["Allow"]
    assert allow["required"] is True


def test_links_lead_to_operations_with_those_parameters() -> None:
    operations = {route.name: route for route in ROUTES}
    links = 0
    for route in ROUTES:
        for link in route.links:
            target = operations[link.operation]
            names = set(path_params(target.path)) | {
                q if isinstance(q, str) else q.name for q in target.query
            }
            assert set(link.parameters) <= names, (route.name, link)
            assert link.status in replies(route), (route.name, link)
            answer = _operation(route)["responses"][str(link.status)]
            assert answer["links"][link.name]["operationId"] == link.operation
            links += 1
    expected = {
        ("create_app", "get_app"),
        ("put_item", "get_item"),
        ("publish_release", "get_release"),
        ("create_token", "revoke_token"),
    }
    declared = {(route.name, link.operation) for route in ROUTES for link in route.links}
    assert expected <= declared
    assert links >= len(expected)


def test_request_bodies_document_what_the_domain_checks() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    app = schemas["CreateAppBody"]
    assert app["properties"]["name"]["pattern"] == "^[a-z0-9][a-z0-9_.-]{0,63}$"
    assert app["properties"]["envs"]["uniqueItems"] is True
    assert app["additionalProperties"] is False
    patch = schemas["PatchItemsBody"]
    assert patch["properties"]["set"]["propertyNames"]["pattern"].startswith("^[A-Za-z0-9")
    assert len(patch["anyOf"]) == 2  # something to set or to delete
    publish = _operation(_route("publish_release"))["requestBody"]
    assert publish["required"] is False  # an empty body publishes with no comment
    assert _operation(_route("create_app"))["requestBody"]["required"] is True
    assert _operation(_route("patch_items"))["requestBody"]["required"] is True


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_body_is_optional_exactly_where_the_document_says(api: Api) -> None:
    wrong = []
    for route in ROUTES:
        if route.body is None:
            continue
        path = route.path.format(app="shop", env="prod", key="k", id="1", version="1", name="admin")
        answer = await api.call(route.method, path, data=b"")
        refused = answer.status == 400 and answer.body["error"]["code"] == "invalid_json"
        if refused != (not route.body_optional):
            wrong.append(f"{route.method} {route.path}: {answer.status} {answer.text}")
    assert wrong == []


def test_the_admin_page_routes_are_described_with_the_static_path() -> None:
    for method, path, _ in PAGE_ROUTES:
        assert (method, path) in PAGE_OPERATIONS, (method, path)
        operation = DOCUMENT["paths"][path][method.lower()]
        assert operation["tags"] == ["admin page"]
        assert "security" not in operation  # each page checks its own session
    static = DOCUMENT["paths"]["/static/{path}"]["get"]
    assert [p["name"] for p in static["parameters"]] == ["path"]
    assert static["parameters"][0]["in"] == "path"
    operation_ids = [
        operation["operationId"]
        for item in DOCUMENT["paths"].values()
        for operation in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))


async def test_the_served_document_is_the_built_one(api: Api) -> None:
    served = await api.call("GET", "/api/openapi.json", token=None)
    assert served.status == 200
    assert served.body == DOCUMENT
