"""Editing an app, deleting an env and discarding a draft over HTTP, on both stores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.keys import PUBLISHED
from tests.api.helpers import Api
from tests.api.test_watch import connect, nothing_within, receive

APP = "/api/v1/apps/shop"
PROD = f"{APP}/envs/prod"
DEV = f"{APP}/envs/dev"


async def shop(api: Api) -> None:
    """The app shop with envs dev and prod."""
    answer = await api.call("POST", "/api/v1/apps", {"name": "shop", "envs": ["dev", "prod"]})
    assert answer.status == 201, answer.text


async def audit_actions(api: Api) -> list[str]:
    answer = await api.call("GET", "/api/v1/audit?app=shop")
    return [entry["action"] for entry in answer.body["entries"]]


# PATCH /apps/{app}


async def test_an_owner_edits_the_description_once(api: Api) -> None:
    await shop(api)
    answer = await api.call("PATCH", APP, {"description": "the web shop"})
    assert answer.status == 200, answer.text
    assert (answer.body["name"], answer.body["description"]) == ("shop", "the web shop")
    assert answer.body["envs"] == ["dev", "prod"]
    assert (await api.call("GET", APP)).body["description"] == "the web shop"
    before = await api.snapshot()
    again = await api.call("PATCH", APP, {"description": "the web shop"})
    assert again.status == 200
    assert (await api.call("PATCH", APP, {})).status == 200
    assert await api.snapshot() == before  # nothing new: nothing written, not even audited
    assert (await audit_actions(api)).count("app.update") == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"description": "x" * 1001}, 400, "invalid_description"),
        ({"description": 7}, 400, "invalid_request"),
        ({"anonymous_read": "yes"}, 400, "invalid_request"),
        ({"anonymous_read": 1}, 400, "invalid_request"),
        ({"anonymous_read": None, "description": "x" * 1001}, 400, "invalid_description"),
        ({"name": "other"}, 400, "invalid_request"),
    ],
)
async def test_bad_app_edits_change_nothing(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    await shop(api)
    before = await api.snapshot()
    answer = await api.call("PATCH", APP, body)
    assert (answer.status, answer.body["error"]["code"]) == (status, code), answer.text
    assert await api.snapshot() == before


async def test_an_owner_turns_anonymous_read_on_and_off_audited(api: Api) -> None:
    await shop(api)
    assert (await api.call("GET", APP)).body["anonymous_read"] is False
    on = await api.call("PATCH", APP, {"anonymous_read": True})
    assert (on.status, on.body["anonymous_read"]) == (200, True), on.text
    assert (await api.call("GET", APP)).body["anonymous_read"] is True
    listed = await api.call("GET", "/api/v1/apps")
    assert [a["anonymous_read"] for a in listed.body["apps"] if a["name"] == "shop"] == [True]
    before = await api.snapshot()
    assert (await api.call("PATCH", APP, {"anonymous_read": True})).status == 200
    assert await api.snapshot() == before
    both = await api.call("PATCH", APP, {"anonymous_read": False, "description": "d"})
    assert (both.body["anonymous_read"], both.body["description"]) == (False, "d")
    entries = (await api.call("GET", "/api/v1/audit?app=shop&action=app.update")).body["entries"]
    details = [entry["summary"] for entry in entries]
    assert len(details) == 2
    assert any("anonymous_read on" in d for d in details)
    assert any("anonymous_read off" in d and "description changed" in d for d in details)


async def test_only_an_owner_turns_anonymous_read_on(api: Api) -> None:
    await shop(api)
    _, publisher = await api.token_for("write:shop")
    before = await api.snapshot()
    answer = await api.call("PATCH", APP, {"anonymous_read": True}, token=publisher)
    assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")
    assert await api.snapshot() == before


async def test_editing_an_app_needs_its_owner(api: Api) -> None:
    await shop(api)
    _, publisher = await api.token_for("write:shop")
    before = await api.snapshot()
    answer = await api.call("PATCH", APP, {"description": "mine"}, token=publisher)
    assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")
    missing = await api.call("PATCH", "/api/v1/apps/nope", {"description": "x"})
    assert missing.status == 404
    assert await api.snapshot() == before


# DELETE /apps/{app}/envs/{env}


async def test_deleting_an_env_removes_its_draft_and_releases(api: Api) -> None:
    await shop(api)
    await api.set_items("shop", "dev", {"a": "1"})
    assert (await api.publish("shop", "dev")).status == 201
    await api.set_items("shop", "prod", {"b": "2"})
    assert (await api.publish("shop", "prod")).status == 201
    answer = await api.call("DELETE", DEV)
    assert answer.status == 204, answer.text
    assert (await api.call("GET", APP)).body["envs"] == ["prod"]
    assert (await api.call("GET", f"{DEV}/items")).status == 404
    assert (await api.call("GET", f"{DEV}/config")).status == 404
    assert (await api.call("GET", f"{PROD}/config")).body["items"] == {"b": "2"}
    snapshot = await api.snapshot()
    assert [row[1] for row in snapshot["items"]] == ["b"]
    assert len(snapshot["releases"]) == 1
    assert "env.delete" in await audit_actions(api)


async def test_the_last_env_cannot_be_deleted(api: Api) -> None:
    await api.app_with_env("shop", "prod")
    before = await api.snapshot()
    answer = await api.call("DELETE", PROD)
    assert (answer.status, answer.body["error"]["code"]) == (409, "last_env")
    assert await api.snapshot() == before


async def test_deleting_an_env_needs_its_owner_and_an_existing_env(api: Api) -> None:
    await shop(api)
    _, publisher = await api.token_for("write:shop")
    before = await api.snapshot()
    answer = await api.call("DELETE", DEV, token=publisher)
    assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")
    assert (await api.call("DELETE", f"{APP}/envs/nope")).status == 404
    assert (await api.call("DELETE", "/api/v1/apps/nope/envs/dev")).status == 404
    assert await api.snapshot() == before


async def test_an_env_created_again_continues_the_versions_of_the_deleted_one(api: Api) -> None:
    await shop(api)
    for value in ("1", "2", "3"):
        await api.set_items("shop", "dev", {"a": value})
        assert (await api.publish("shop", "dev")).status == 201
    assert (await api.call("DELETE", DEV)).status == 204
    assert (await api.call("POST", f"{APP}/envs", {"name": "dev"})).status == 201
    assert (await api.call("GET", f"{DEV}/items")).body["items"] == []
    await api.set_items("shop", "dev", {"a": "new"})
    release = await api.publish("shop", "dev")
    assert release.body["version"] == 4
    # Deleted and created again twice: still going up, never back.
    assert (await api.call("DELETE", DEV)).status == 204
    assert (await api.call("POST", f"{APP}/envs", {"name": "dev"})).status == 201
    await api.set_items("shop", "dev", {"a": "newer"})
    assert (await api.publish("shop", "dev")).body["version"] == 5
    # Deleted before its first release, created again: above the last one all the same.
    assert (await api.call("DELETE", DEV)).status == 204
    assert (await api.call("POST", f"{APP}/envs", {"name": "dev"})).status == 201
    assert (await api.call("DELETE", DEV)).status == 204
    assert (await api.call("POST", f"{APP}/envs", {"name": "dev"})).status == 201
    await api.set_items("shop", "dev", {"a": "newest"})
    assert (await api.publish("shop", "dev")).body["version"] == 6


async def test_a_subscriber_of_a_deleted_env_gets_env_deleted_and_keeps_its_socket(
    api: Api,
) -> None:
    await shop(api)
    for env in ("dev", "prod"):
        await api.set_items("shop", env, {"a": env})
        assert (await api.publish("shop", env)).status == 201
    ws = await connect(api)
    for env in ("dev", "prod"):
        await ws.send_json({"op": "subscribe", "app": "shop", "env": env})
        assert (await receive(ws))["env"] == env

    assert (await api.call("DELETE", DEV)).status == 204

    message = await receive(ws)
    assert (message["type"], message["code"]) == ("error", "env_deleted")
    assert "dev" in message["message"]
    # The other subscription goes on; the deleted env's is gone, also once created again.
    await api.set_items("shop", "prod", {"a": "prod 2"})
    assert (await api.publish("shop", "prod")).status == 201
    pushed = await receive(ws)
    assert (pushed["type"], pushed["env"], pushed["items"]) == ("release", "prod", {"a": "prod 2"})
    assert (await api.call("POST", f"{APP}/envs", {"name": "dev"})).status == 201
    await api.set_items("shop", "dev", {"a": "again"})
    assert (await api.publish("shop", "dev")).status == 201
    assert await nothing_within(ws, 0.3)
    await ws.close()


@pytest.mark.parametrize("published", [True, False], ids=["published", "never-published"])
async def test_a_long_poll_on_a_deleted_env_ends_with_404(api: Api, published: bool) -> None:
    await shop(api)
    after = 0
    if published:
        await api.set_items("shop", "dev", {"a": "1"})
        assert (await api.publish("shop", "dev")).status == 201
        after = 1
    poll = asyncio.create_task(api.call("GET", f"{DEV}/config?after={after}&wait=30"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not api.app[PUBLISHED].waiting:
        assert loop.time() < deadline, "the long poll never started waiting"
        await asyncio.sleep(0.01)
    started = loop.time()
    assert (await api.call("DELETE", DEV)).status == 204
    answer = await asyncio.wait_for(poll, 5)
    assert (answer.status, answer.body["error"]["code"]) == (404, "not_found")
    assert loop.time() - started < 5


# POST …/discard


async def test_discard_puts_the_draft_back_to_the_latest_release(api: Api) -> None:
    await shop(api)
    put = await api.call("PUT", f"{PROD}/items/kept", {"value": "1", "comment": "stays"})
    assert put.status == 201
    await api.set_items("shop", "prod", {"gone": "x"})
    assert (await api.publish("shop", "prod")).status == 201
    await api.set_items("shop", "prod", {"kept": "changed", "new": "n"})
    assert (await api.call("DELETE", f"{PROD}/items/gone")).status == 204
    answer = await api.call("POST", f"{PROD}/discard")
    assert answer.status == 200, answer.text
    items = {i["key"]: (i["value"], i["comment"]) for i in answer.body["items"]}
    assert items == {"kept": ("1", "stays"), "gone": ("x", "")}
    assert answer.body["draft_revision"] > 0
    listed = await api.call("GET", f"{PROD}/items")
    assert {i["key"]: i["value"] for i in listed.body["items"]} == {"kept": "1", "gone": "x"}
    diff = await api.call("GET", f"{PROD}/diff")
    assert (diff.body["added"], diff.body["changed"], diff.body["removed"]) == ({}, {}, {})
    assert "draft.discard" in await audit_actions(api)
    # Nothing left to discard: the same revision, nothing written.
    before = await api.snapshot()
    again = await api.call("POST", f"{PROD}/discard")
    assert again.body["draft_revision"] == answer.body["draft_revision"]
    assert await api.snapshot() == before


async def test_discard_before_the_first_release_empties_the_draft(api: Api) -> None:
    await shop(api)
    await api.set_items("shop", "prod", {"a": "1", "b": "2"})
    answer = await api.call("POST", f"{PROD}/discard")
    assert answer.status == 200
    assert answer.body["items"] == []
    assert (await api.call("GET", f"{PROD}/items")).body["items"] == []


async def test_discard_needs_an_editor_and_an_existing_env(api: Api) -> None:
    await shop(api)
    await api.set_items("shop", "prod", {"a": "1"})
    _, reader = await api.token_for("read:shop")
    before = await api.snapshot()
    answer = await api.call("POST", f"{PROD}/discard", token=reader)
    assert (answer.status, answer.body["error"]["code"]) == (403, "forbidden")
    assert (await api.call("POST", f"{APP}/envs/nope/discard")).status == 404
    assert await api.snapshot() == before
