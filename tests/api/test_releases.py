"""Publishing, history, rollback and concurrent publishes, on both stores."""

from __future__ import annotations

import asyncio
import hashlib
import json

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
    api = await api_factory(sqlite_url, max_release_bytes=1000)
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "x" * 600, "b": "y" * 600})
    before = await api.snapshot()
    refused = await api.publish("shop", "prod")
    assert refused.status == 413
    assert refused.body["error"]["code"] == "release_too_large"
    assert await api.snapshot() == before
