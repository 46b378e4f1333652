"""Apps and envs over HTTP, on both stores."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import Api


async def test_create_list_get_app(api: Api) -> None:
    created = await api.call(
        "POST", "/api/v1/apps", {"name": "shop", "description": "web shop", "envs": ["dev", "prod"]}
    )
    assert created.status == 201
    assert created.body["name"] == "shop"
    assert created.body["envs"] == ["dev", "prod"]
    listed = await api.call("GET", "/api/v1/apps")
    assert [a["name"] for a in listed.body["apps"]] == ["shop"]
    assert listed.body["apps"][0]["description"] == "web shop"
    one = await api.call("GET", "/api/v1/apps/shop")
    assert one.status == 200
    assert one.body["envs"] == ["dev", "prod"]


async def test_app_without_envs_gets_default(api: Api) -> None:
    created = await api.call("POST", "/api/v1/apps", {"name": "solo"})
    assert created.status == 201
    assert created.body["envs"] == ["default"]


async def test_duplicate_app_is_409_and_changes_nothing(api: Api) -> None:
    await api.app_with_env()
    before = await api.snapshot()
    again = await api.call("POST", "/api/v1/apps", {"name": "shop"})
    assert again.status == 409
    assert again.body["error"]["code"] == "exists"
    assert await api.snapshot() == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "Bad Name"}, "invalid_name"),
        ({"name": "-dash"}, "invalid_name"),
        ({"name": "a" * 65}, "invalid_name"),
        ({"name": 7}, "invalid_request"),
        ({"name": "ok", "colour": "red"}, "invalid_request"),
        ({"name": "ok", "envs": ["Prod!"]}, "invalid_name"),
        ({"name": "ok", "envs": "prod"}, "invalid_request"),
        ({"name": "ok", "envs": ["dev", "dev"]}, "invalid_request"),
        ({}, "invalid_request"),
    ],
)
async def test_bad_app_bodies_are_400_and_change_nothing(
    api: Api, body: dict[str, Any], code: str
) -> None:
    before = await api.snapshot()
    answer = await api.call("POST", "/api/v1/apps", body)
    assert answer.status == 400, answer.text
    assert answer.body["error"]["code"] == code
    assert answer.body["error"]["message"]
    assert await api.snapshot() == before


async def test_malformed_json_is_400(api: Api) -> None:
    before = await api.snapshot()
    answer = await api.call(
        "POST", "/api/v1/apps", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400
    assert answer.body["error"]["code"] == "invalid_json"
    answer = await api.call("POST", "/api/v1/apps", data=b"[1, 2]")
    assert answer.status == 400
    assert await api.snapshot() == before


async def test_add_env(api: Api) -> None:
    await api.app_with_env("shop", "dev")
    added = await api.call("POST", "/api/v1/apps/shop/envs", {"name": "staging"})
    assert added.status == 201
    assert added.body["envs"] == ["dev", "staging"]
    again = await api.call("POST", "/api/v1/apps/shop/envs", {"name": "staging"})
    assert again.status == 409
    missing = await api.call("POST", "/api/v1/apps/nope/envs", {"name": "dev"})
    assert missing.status == 404


async def test_delete_app_removes_history_but_keeps_audit(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1"})
    assert (await api.publish("shop", "prod")).status == 201
    deleted = await api.call("DELETE", "/api/v1/apps/shop")
    assert deleted.status == 204
    assert (await api.call("GET", "/api/v1/apps/shop")).status == 404
    assert (await api.call("GET", "/api/v1/apps/shop/envs/prod/config")).status == 404
    snapshot = await api.snapshot()
    assert snapshot["releases"] == []
    assert snapshot["items"] == []
    assert snapshot["envs"] == []
    audit = await api.call("GET", "/api/v1/audit?app=shop")
    assert next(e["action"] for e in audit.body["entries"]) == "app.delete"
    # The name can be used again; its versions go on from the deleted app's.
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "2"})
    assert (await api.publish("shop", "prod")).body["version"] == 2


async def test_delete_app_needs_admin(api: Api) -> None:
    await api.app_with_env()
    _, writer = await api.token_for("write:shop")
    before = await api.snapshot()
    answer = await api.call("DELETE", "/api/v1/apps/shop", token=writer)
    assert answer.status == 403
    assert answer.body["error"]["code"] == "forbidden"
    assert await api.snapshot() == before


async def test_apps_list_shows_only_readable_apps(api: Api) -> None:
    await api.app_with_env("shop", "prod")
    await api.app_with_env("blog", "prod")
    _, reader = await api.token_for("read:blog")
    listed = await api.call("GET", "/api/v1/apps", token=reader)
    assert [a["name"] for a in listed.body["apps"]] == ["blog"]
    assert (await api.call("GET", "/api/v1/apps/shop", token=reader)).status == 403


async def test_versions_go_on_across_deletions_of_an_app_and_for_envs_added_later(
    api: Api,
) -> None:
    async def publish(env: str, value: str) -> int:
        await api.set_items("shop", env, {"a": value})
        answer = await api.publish("shop", env)
        assert answer.status == 201, answer.text
        version: int = answer.body["version"]
        return version

    await api.app_with_env("shop", "prod")
    assert [await publish("prod", str(n)) for n in range(3)] == [1, 2, 3]
    assert (await api.call("DELETE", "/api/v1/apps/shop")).status == 204
    await api.app_with_env("shop", "prod")
    assert await publish("prod", "again") == 4
    assert (await api.call("POST", "/api/v1/apps/shop/envs", {"name": "dev"})).status == 201
    assert await publish("dev", "first") == 1
    assert (await api.call("DELETE", "/api/v1/apps/shop")).status == 204
    await api.app_with_env("shop", "prod")
    assert await publish("prod", "third life") == 5
    assert (await api.call("POST", "/api/v1/apps/shop/envs", {"name": "dev"})).status == 201
    assert await publish("dev", "second life") == 2
    assert (await api.call("GET", "/api/v1/apps/shop/envs/prod/config")).body["version"] == 5
