"""The draft over HTTP: single items, If-Match, batches, limits, diff."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from tests.api.helpers import Api, AppFactory

ITEMS = "/api/v1/apps/shop/envs/prod/items"


async def test_put_get_replace_delete_item(api: Api) -> None:
    await api.app_with_env()
    created = await api.call("PUT", f"{ITEMS}/db.url", {"value": "mysql://a", "comment": "primary"})
    assert created.status == 201
    assert created.body["value"] == "mysql://a"
    assert created.body["updated_by"] == "admin"
    one = await api.call("GET", f"{ITEMS}/db.url")
    assert one.status == 200
    assert one.headers["ETag"] == f'"{one.body["revision"]}"'
    replaced = await api.call("PUT", f"{ITEMS}/db.url", {"value": "mysql://b"})
    assert replaced.status == 200
    assert replaced.body["comment"] == "primary"  # kept when not given
    assert replaced.body["revision"] > created.body["revision"]
    listed = await api.call("GET", ITEMS)
    assert [(i["key"], i["value"]) for i in listed.body["items"]] == [("db.url", "mysql://b")]
    assert (await api.call("DELETE", f"{ITEMS}/db.url")).status == 204
    assert (await api.call("GET", f"{ITEMS}/db.url")).status == 404
    assert (await api.call("DELETE", f"{ITEMS}/db.url")).status == 404


async def test_items_and_diff_carry_the_drafts_revision(api: Api) -> None:
    """What the page lists and diffs is tied to a revision it can publish exactly."""
    await api.app_with_env()
    env = "/api/v1/apps/shop/envs/prod"

    async def revisions() -> tuple[int, int, int]:
        items = (await api.call("GET", ITEMS)).body["draft_revision"]
        diff = (await api.call("GET", f"{env}/diff")).body["draft_revision"]
        settings = (await api.call("GET", env)).body["draft_revision"]
        return items, diff, settings

    empty = await revisions()
    assert empty[0] == empty[1] == empty[2]
    patched = await api.call("PATCH", ITEMS, {"set": {"a": "1", "b": "2"}})
    assert await revisions() == (patched.body["draft_revision"],) * 3
    assert patched.body["draft_revision"] > empty[0]
    stale = patched.body["draft_revision"]
    await api.call("PUT", f"{ITEMS}/a", {"value": "changed"})
    moved = (await api.call("GET", ITEMS)).body["draft_revision"]
    assert moved > stale
    refused = await api.call("POST", f"{env}/releases", {"draft_revision": stale})
    assert (refused.status, refused.body["error"]["code"]) == (409, "draft_changed")
    published = await api.call("POST", f"{env}/releases", {"draft_revision": moved})
    assert published.status == 201, published.text


async def test_keys_are_case_sensitive_and_unicode_values_kept(api: Api) -> None:
    await api.app_with_env()
    await api.call("PUT", f"{ITEMS}/Key", {"value": "upper"})
    await api.call("PUT", f"{ITEMS}/key", {"value": "lower ünïcödé 🚀 <>&"})
    listed = await api.call("GET", ITEMS)
    assert {i["key"]: i["value"] for i in listed.body["items"]} == {
        "Key": "upper",
        "key": "lower ünïcödé 🚀 <>&",
    }


async def test_if_match(api: Api) -> None:
    await api.app_with_env()
    first = await api.call("PUT", f"{ITEMS}/k", {"value": "1"})
    revision = first.body["revision"]
    ok = await api.call("PUT", f"{ITEMS}/k", {"value": "2"}, headers={"If-Match": f'"{revision}"'})
    assert ok.status == 200
    before = await api.snapshot()
    stale = await api.call(
        "PUT", f"{ITEMS}/k", {"value": "3"}, headers={"If-Match": f'"{revision}"'}
    )
    assert stale.status == 412
    assert stale.body["error"]["code"] == "precondition_failed"
    stale_delete = await api.call("DELETE", f"{ITEMS}/k", headers={"If-Match": f'"{revision}"'})
    assert stale_delete.status == 412
    assert await api.snapshot() == before
    # Any tag that is not the item's revision fails the precondition.
    bad = await api.call("PUT", f"{ITEMS}/k", {"value": "3"}, headers={"If-Match": "nonsense"})
    assert bad.status == 412


async def test_if_none_match_star_creates_only(api: Api) -> None:
    await api.app_with_env()
    star = {"If-None-Match": "*"}
    created = await api.call("PUT", f"{ITEMS}/k", {"value": "1"}, headers=star)
    assert created.status == 201
    before = await api.snapshot()
    again = await api.call("PUT", f"{ITEMS}/k", {"value": "2"}, headers=star)
    assert again.status == 412
    assert again.body["error"]["code"] == "precondition_failed"
    bad = await api.call("PUT", f"{ITEMS}/k", {"value": "2"}, headers={"If-None-Match": '"3"'})
    assert bad.status == 400
    assert await api.snapshot() == before


async def test_concurrent_puts_with_same_if_match_give_one_200_and_one_412(api: Api) -> None:
    await api.app_with_env()
    revision = (await api.call("PUT", f"{ITEMS}/k", {"value": "0"})).body["revision"]
    answers = await asyncio.gather(
        *(
            api.call("PUT", f"{ITEMS}/k", {"value": v}, headers={"If-Match": f'"{revision}"'})
            for v in ("a", "b")
        )
    )
    assert sorted(a.status for a in answers) == [200, 412]
    winner = next(a for a in answers if a.status == 200)
    assert (await api.call("GET", f"{ITEMS}/k")).body["value"] == winner.body["value"]


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        ("bad key", {"value": "x"}, 400, "invalid_key"),
        ("k" * 256, {"value": "x"}, 400, "invalid_key"),
        ("ok", {"value": 5}, 400, "invalid_request"),
        ("ok", {"value": None}, 400, "invalid_request"),
        ("ok", {"value": "x", "extra": 1}, 400, "invalid_request"),
        ("ok", {"comment": "no value"}, 400, "invalid_request"),
        ("ok", {"value": "x" * (64 * 1024 + 1)}, 413, "value_too_large"),
    ],
)
async def test_bad_item_writes_change_nothing(
    api: Api, key: str, body: dict[str, Any], status: int, code: str
) -> None:
    await api.app_with_env()
    before = await api.snapshot()
    answer = await api.call("PUT", f"{ITEMS}/{key}", body)
    assert answer.status == status, answer.text
    assert answer.body["error"]["code"] == code
    assert await api.snapshot() == before


async def test_body_over_limit_is_413(api: Api) -> None:
    await api.app_with_env()
    before = await api.snapshot()
    big = {"set": {f"k{i}": "v" * 60_000 for i in range(40)}}  # ~2.4 MB > 2 MiB
    body = io.BytesIO(json.dumps(big).encode())
    answer = await api.call("PATCH", ITEMS, data=body, headers={"Content-Type": "application/json"})
    assert answer.status == 413
    assert answer.body["error"]["code"] == "too_large"
    assert await api.snapshot() == before


async def test_unknown_app_or_env_is_404(api: Api) -> None:
    await api.app_with_env()
    assert (await api.call("GET", "/api/v1/apps/nope/envs/prod/items")).body["error"][
        "code"
    ] == "not_found"
    assert (
        await api.call("PUT", "/api/v1/apps/shop/envs/nope/items/k", {"value": "1"})
    ).status == 404


async def test_patch_is_all_or_nothing(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1", "b": "2"})
    done = await api.call("PATCH", ITEMS, {"set": {"a": "10", "c": "3"}, "delete": ["b"]})
    assert done.status == 200
    assert done.body["changed"] == ["a", "b", "c"]
    listed = await api.call("GET", ITEMS)
    assert {i["key"]: i["value"] for i in listed.body["items"]} == {"a": "10", "c": "3"}
    before = await api.snapshot()
    for body, status in [
        ({"set": {"d": "4", "bad key": "x"}}, 400),
        ({"set": {"d": "4"}, "delete": ["missing"]}, 404),
        ({"set": {"d": "4"}, "delete": ["d"]}, 400),
        ({"set": {"d": 4}}, 400),
        ({"sett": {"d": "4"}}, 400),
        ({}, 400),
    ]:
        answer = await api.call("PATCH", ITEMS, body)
        assert answer.status == status, (body, answer.text)
        assert await api.snapshot() == before


async def test_patch_keeps_comments_and_leaves_unchanged_items_alone(api: Api) -> None:
    await api.app_with_env()
    await api.call("PUT", f"{ITEMS}/a", {"value": "1", "comment": "first"})
    kept = (await api.call("PUT", f"{ITEMS}/b", {"value": "2", "comment": "second"})).body
    done = await api.call("PATCH", ITEMS, {"set": {"a": "10", "b": "2"}})
    assert done.status == 200
    assert done.body["changed"] == ["a"]
    items = {i["key"]: i for i in (await api.call("GET", ITEMS)).body["items"]}
    assert items["a"]["comment"] == "first"
    assert items["a"]["revision"] > kept["revision"]
    assert items["b"] == kept
    # A batch of the values the draft already has writes nothing: no revision, no audit.
    before = await api.snapshot()
    again = await api.call("PATCH", ITEMS, {"set": {"a": "10", "b": "2"}})
    assert again.status == 200
    assert again.body == {"draft_revision": done.body["draft_revision"], "changed": []}
    assert await api.snapshot() == before


async def test_items_per_env_limit(api_factory: AppFactory, sqlite_url: str) -> None:
    api = await api_factory(sqlite_url, max_items_per_env=3)
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1", "b": "2", "c": "3"})
    before = await api.snapshot()
    over = await api.call("PUT", f"{ITEMS}/d", {"value": "4"})
    assert over.status == 413
    assert over.body["error"]["code"] == "too_many_items"
    over = await api.call("PATCH", ITEMS, {"set": {"d": "4"}})
    assert over.status == 413
    assert await api.snapshot() == before
    # Replacing and swapping within the limit still works.
    swap = await api.call("PATCH", ITEMS, {"set": {"d": "4"}, "delete": ["a"]})
    assert swap.status == 200


async def test_diff(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1", "b": "2", "c": "3"})
    first = await api.call("GET", "/api/v1/apps/shop/envs/prod/diff")
    assert first.body == {
        "base_version": None,
        "draft_revision": first.body["draft_revision"],
        "added": {"a": "1", "b": "2", "c": "3"},
        "changed": {},
        "removed": {},
        "secret_keys": [],
    }
    await api.publish("shop", "prod")
    edit = await api.call("PATCH", ITEMS, {"set": {"a": "10", "d": "4"}, "delete": ["c"]})
    diff = await api.call("GET", "/api/v1/apps/shop/envs/prod/diff")
    assert diff.body == {
        "base_version": 1,
        "draft_revision": edit.body["draft_revision"],
        "added": {"d": "4"},
        "changed": {"a": {"old": "1", "new": "10"}},
        "removed": {"c": "3"},
        "secret_keys": [],
    }
