"""Publishing, history, rollback and concurrent publishes, on both stores."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from server.domain.canonical import canonical_json
from tests.api.helpers import Api, AppFactory

ENV = "/api/v1/apps/shop/envs/prod"


def expected_checksum(items: dict[str, str]) -> str:
    canonical = json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


async def test_publish_makes_an_immutable_release(api: Api) -> None:
    await api.app_with_env()
    items = {"db.url": "mysql://x", "greeting": "héllo <b>&"}
    await api.set_items("shop", "prod", items)
    release = await api.publish("shop", "prod", "first")
    assert release.status == 201
    assert release.body["version"] == 1
    assert release.body["items"] == items
    assert release.body["checksum"] == expected_checksum(items)
    assert release.body["author"] == "admin"
    assert release.body["comment"] == "first"
    assert release.body["created_at"].endswith("Z")
    # Editing the draft changes nothing that clients see.
    await api.set_items("shop", "prod", {"db.url": "changed"})
    config = await api.call("GET", f"{ENV}/config")
    assert config.body["items"] == items
    stored = await api.call("GET", f"{ENV}/releases/1")
    assert stored.body["items"] == items


async def test_nothing_to_publish(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1"})
    assert (await api.publish("shop", "prod")).status == 201
    before = await api.snapshot()
    again = await api.publish("shop", "prod")
    assert again.status == 409
    assert again.body["error"]["code"] == "nothing_to_publish"
    assert await api.snapshot() == before


async def test_publish_body_validation(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1"})
    before = await api.snapshot()
    for body in ({"comment": 3}, {"comment": "x", "force": True}, {"comment": "c" * 5000}):
        answer = await api.call("POST", f"{ENV}/releases", body)
        assert answer.status == 400, answer.text
    assert await api.snapshot() == before
    empty = await api.call("POST", f"{ENV}/releases", data=b"")
    assert empty.status == 201


async def test_history_pages_and_release_view(api: Api) -> None:
    await api.app_with_env()
    for n in range(1, 6):
        await api.set_items("shop", "prod", {"n": str(n)})
        assert (await api.publish("shop", "prod", f"c{n}")).status == 201
    page = await api.call("GET", f"{ENV}/releases?limit=2")
    assert [r["version"] for r in page.body["releases"]] == [5, 4]
    assert "items" not in page.body["releases"][0]
    older = await api.call("GET", f"{ENV}/releases?limit=2&before=4")
    assert [r["version"] for r in older.body["releases"]] == [3, 2]
    assert (await api.call("GET", f"{ENV}/releases?limit=0")).status == 400
    assert (await api.call("GET", f"{ENV}/releases?before=x")).status == 400
    one = await api.call("GET", f"{ENV}/releases/3")
    assert one.body["items"] == {"n": "3"}
    assert one.body["comment"] == "c3"
    assert (await api.call("GET", f"{ENV}/releases/99")).status == 404
    assert (await api.call("GET", f"{ENV}/releases/abc")).status == 400


async def test_rollback_makes_a_new_release_and_resets_the_draft(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1", "b": "2"})
    await api.publish("shop", "prod")
    await api.call("PATCH", f"{ENV}/items", {"set": {"a": "9", "c": "3"}, "delete": ["b"]})
    await api.publish("shop", "prod")
    rolled = await api.call("POST", f"{ENV}/releases/1/rollback", {"comment": "bad deploy"})
    assert rolled.status == 201
    assert rolled.body["version"] == 3
    assert rolled.body["items"] == {"a": "1", "b": "2"}
    assert rolled.body["rollback_of"] == 1
    assert rolled.body["comment"] == "bad deploy"
    draft = await api.call("GET", f"{ENV}/items")
    assert {i["key"]: i["value"] for i in draft.body["items"]} == {"a": "1", "b": "2"}
    config = await api.call("GET", f"{ENV}/config")
    assert config.body["version"] == 3
    same = await api.call("POST", f"{ENV}/releases/3/rollback", {})
    assert same.status == 409
    assert (await api.call("POST", f"{ENV}/releases/42/rollback", {})).status == 404


async def draft(api: Api) -> dict[str, dict[str, Any]]:
    """The draft's items by key, as the API shows them."""
    answer = await api.call("GET", f"{ENV}/items")
    assert answer.status == 200, answer.text
    return {item["key"]: item for item in answer.body["items"]}


async def test_rollback_reconciles_the_draft_key_by_key(api: Api) -> None:
    await api.app_with_env()
    await api.call("PUT", f"{ENV}/items/same", {"value": "s", "comment": "left alone"})
    await api.call("PUT", f"{ENV}/items/changed", {"value": "1", "comment": "tuned"})
    await api.call("PUT", f"{ENV}/items/dropped", {"value": "d", "comment": "was here"})
    assert (await api.publish("shop", "prod")).status == 201
    edit = {"set": {"changed": "2", "added": "a"}, "delete": ["dropped"]}
    assert (await api.call("PATCH", f"{ENV}/items", edit)).status == 200
    assert (await api.publish("shop", "prod")).status == 201
    before = await draft(api)
    rolled = await api.call("POST", f"{ENV}/releases/1/rollback", {})
    assert rolled.status == 201, rolled.text
    after = await draft(api)
    values = {k: i["value"] for k, i in after.items()}
    assert values == {"same": "s", "changed": "1", "dropped": "d"}
    # An unchanged key is not written: same revision, author and time.
    assert after["same"] == before["same"]
    # Everything the rollback wrote shares one new draft revision.
    revision = after["changed"]["revision"]
    assert revision > max(i["revision"] for i in before.values())
    assert after["dropped"]["revision"] == revision
    # A changed key keeps its comment; a key the draft lacked comes back without one
    # (releases hold values only).
    assert after["changed"]["comment"] == "tuned"
    assert after["dropped"]["comment"] == ""


async def test_rollback_to_the_draft_it_already_has_rewrites_no_item(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1", "b": "2"})
    assert (await api.publish("shop", "prod")).status == 201
    await api.set_items("shop", "prod", {"a": "10"})
    assert (await api.publish("shop", "prod")).status == 201
    await api.set_items("shop", "prod", {"a": "1"})  # the draft is release 1 again
    before = await draft(api)
    rolled = await api.call("POST", f"{ENV}/releases/1/rollback", {})
    assert rolled.status == 201, rolled.text
    assert rolled.body["items"] == {"a": "1", "b": "2"}
    assert await draft(api) == before


async def test_rollback_restores_more_items_than_a_since_lowered_limit(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    roomy = await api_factory(sqlite_url)
    await roomy.app_with_env()
    await roomy.set_items("shop", "prod", {"a": "1", "b": "2", "c": "3", "d": "4"})
    assert (await roomy.publish("shop", "prod")).status == 201
    trim = {"delete": ["b", "c", "d"]}
    assert (await roomy.call("PATCH", f"{ENV}/items", trim)).status == 200
    assert (await roomy.publish("shop", "prod")).status == 201
    # The same store, restarted with room for two items per env.
    tight = await api_factory(sqlite_url, max_items_per_env=2)
    rolled = await tight.call("POST", f"{ENV}/releases/1/rollback", {})
    assert rolled.status == 201, rolled.text
    assert sorted(await draft(tight)) == ["a", "b", "c", "d"]
    # Past the limit the draft may change and shrink, but not grow.
    assert (await tight.call("PATCH", f"{ENV}/items", {"set": {"a": "9"}})).status == 200
    assert (await tight.call("PUT", f"{ENV}/items/b", {"value": "9"})).status == 200
    swap = {"set": {"e": "5"}, "delete": ["a"]}
    assert (await tight.call("PATCH", f"{ENV}/items", swap)).status == 200
    grow = await tight.call("PATCH", f"{ENV}/items", {"set": {"f": "6"}})
    assert grow.status == 413
    assert grow.body["error"]["code"] == "too_many_items"
    assert (await tight.call("PUT", f"{ENV}/items/f", {"value": "6"})).status == 413
    assert (await tight.call("PATCH", f"{ENV}/items", {"delete": ["b"]})).status == 200
    assert sorted(await draft(tight)) == ["c", "d", "e"]


async def test_twenty_concurrent_publishes_give_versions_one_to_twenty(api: Api) -> None:
    await api.app_with_env()

    async def edit_and_publish(n: int) -> int:
        await api.call("PUT", f"{ENV}/items/k{n}", {"value": str(n)})
        for attempt in range(100):
            answer = await api.publish("shop", "prod", f"p{n}")
            if answer.status == 201:
                return int(answer.body["version"])
            # Another publish already carried this edit: the draft equals the latest release.
            assert answer.body["error"]["code"] == "nothing_to_publish", answer.text
            await api.call("PUT", f"{ENV}/items/k{n}", {"value": f"{n}-{attempt}"})
        raise AssertionError("no publish succeeded in 100 attempts")

    versions = await asyncio.gather(*(edit_and_publish(n) for n in range(20)))
    assert sorted(versions) == list(range(1, 21))
    history = await api.call("GET", f"{ENV}/releases?limit=100")
    assert [r["version"] for r in history.body["releases"]] == list(range(20, 0, -1))
    assert (await api.call("GET", f"{ENV}/config")).body["version"] == 20


async def test_a_release_over_the_size_limit_is_refused(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    roomy = await api_factory(sqlite_url)
    await roomy.app_with_env()
    await roomy.set_items("shop", "prod", {"a": "x" * 600, "b": "y" * 600})
    # A draft cannot grow past the limit; this one was written before it was lowered.
    api = await api_factory(sqlite_url, max_release_bytes=1000)
    before = await api.snapshot()
    refused = await api.publish("shop", "prod")
    assert refused.status == 413
    assert refused.body["error"]["code"] == "release_too_large"
    size = len(canonical_json({"a": "x" * 600, "b": "y" * 600}).encode())
    assert f"is {size} bytes as a release" in refused.body["error"]["message"]
    assert await api.snapshot() == before
