"""The draft's size cap (limits.max_release_bytes on every write) and the PATCH answer."""

from __future__ import annotations

from server.domain.canonical import canonical_json
from tests.api.helpers import Api, AppFactory

ENV = "/api/v1/apps/shop/envs/prod"
ITEMS = f"{ENV}/items"
# Every character JSON escapes, a DEL it does not, and non-ASCII written as itself.
AWKWARD = 'q"b\\n\nr\rt\tb\bf\fz\x00u\x1f d\x7f é 😀 \u2028 <>&'


def release_bytes(items: dict[str, str]) -> int:
    """What the draft would weigh as a release."""
    return len(canonical_json(items).encode())


async def test_the_draft_is_measured_exactly_as_its_release(
    api_factory: AppFactory, store_url: str
) -> None:
    draft = {"a": AWKWARD, "b/c": "plain", "d": "x" * 100}
    size = release_bytes(draft)
    tight = await api_factory(store_url, max_release_bytes=size - 1)
    await tight.app_with_env()
    await tight.set_items("shop", "prod", {"a": AWKWARD, "b/c": "plain"})
    before = await tight.snapshot()
    refused = await tight.call("PUT", f"{ITEMS}/d", {"value": "x" * 100})
    assert refused.status == 413, refused.text
    assert refused.body == {
        "error": {"code": "draft_too_large", "message": refused.body["error"]["message"]}
    }
    assert f"{size} bytes" in refused.body["error"]["message"]
    assert await tight.snapshot() == before
    # One byte more room and the same write fits, and the draft publishes.
    exact = await api_factory(store_url, max_release_bytes=size)
    assert (await exact.call("PUT", f"{ITEMS}/d", {"value": "x" * 100})).status == 201
    assert (await exact.publish("shop", "prod")).status == 201


async def test_a_patch_past_the_limit_is_refused_and_changes_nothing(
    api_factory: AppFactory, store_url: str
) -> None:
    api = await api_factory(store_url, max_release_bytes=1000)
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "x" * 400})
    before = await api.snapshot()
    for body in [
        {"set": {"b": "y" * 600}},
        {"set": {"a": "x" * 1000}},
        {"set": {"b": "\x01" * 120}},  # 120 bytes, 720 once escaped
    ]:
        refused = await api.call("PATCH", ITEMS, body)
        assert refused.status == 413, refused.text
        assert refused.body["error"]["code"] == "draft_too_large"
        assert await api.snapshot() == before
    refused = await api.call("PUT", f"{ITEMS}/a", {"value": "x" * 1000})
    assert refused.status == 413
    assert await api.snapshot() == before


async def test_many_small_items_are_refused_at_the_one_that_crosses(
    api_factory: AppFactory, store_url: str
) -> None:
    limit = 1000
    api = await api_factory(store_url, max_release_bytes=limit)
    await api.app_with_env()
    draft: dict[str, str] = {}
    for n in range(100):
        key, value = f"k{n:02}", "v" * 50
        answer = await api.call("PUT", f"{ITEMS}/{key}", {"value": value})
        if release_bytes(draft | {key: value}) > limit:
            assert answer.status == 413, (n, answer.text)
            assert answer.body["error"]["code"] == "draft_too_large"
            break
        assert answer.status == 201, (n, answer.text)
        draft[key] = value
    else:
        raise AssertionError("the draft never reached the limit")
    listed = await api.call("GET", ITEMS)
    assert {i["key"]: i["value"] for i in listed.body["items"]} == draft
    assert (await api.publish("shop", "prod")).status == 201


async def test_a_draft_over_a_since_lowered_limit_may_shrink_but_not_grow(
    api_factory: AppFactory, store_url: str
) -> None:
    roomy = await api_factory(store_url)
    await roomy.app_with_env()
    await roomy.set_items("shop", "prod", {"a": "x" * 600, "b": "y" * 600})
    assert (await roomy.publish("shop", "prod")).status == 201
    trim = {"set": {"a": "x"}, "delete": ["b"]}
    assert (await roomy.call("PATCH", ITEMS, trim)).status == 200
    assert (await roomy.publish("shop", "prod")).status == 201
    await roomy.set_items("shop", "prod", {"a": "x" * 600, "c": "z" * 500})
    tight = await api_factory(store_url, max_release_bytes=1000)
    # Growing is refused, by a write and by a rollback to the larger release 1.
    before = await tight.snapshot()
    for method, path, body in [
        ("PUT", f"{ITEMS}/c", {"value": "z" * 501}),
        ("PATCH", ITEMS, {"set": {"d": "1"}}),
        ("POST", f"{ENV}/releases/1/rollback", {}),
    ]:
        refused = await tight.call(method, path, body)
        assert refused.status == 413, (path, refused.text)
        assert refused.body["error"]["code"] == "draft_too_large"
        assert await tight.snapshot() == before
    # Shrinking, or keeping the size, is accepted while still over the limit.
    assert (await tight.call("PUT", f"{ITEMS}/c", {"value": "w" * 500})).status == 200
    assert (await tight.call("PATCH", ITEMS, {"set": {"c": "w" * 400}})).status == 200
    assert (await tight.call("PATCH", ITEMS, {"set": {"e": "1"}, "delete": ["c"]})).status == 200
    assert (await tight.call("DELETE", f"{ITEMS}/a")).status == 204
    assert (await tight.call("PUT", f"{ITEMS}/a", {"value": "x" * 600})).status == 201


async def test_patch_answers_the_draft_revision_and_the_keys_it_changed(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1", "b": "2", "c": "3"})
    revision = (await api.call("GET", f"{ITEMS}/a")).body["revision"]
    done = await api.call("PATCH", ITEMS, {"set": {"a": "1", "b": "20", "d": "4"}, "delete": ["c"]})
    assert done.status == 200
    assert done.body == {"draft_revision": revision + 1, "changed": ["b", "c", "d"]}
    assert (await api.call("GET", f"{ITEMS}/b")).body["revision"] == revision + 1
    same = await api.call("PATCH", ITEMS, {"set": {"a": "1"}})
    assert same.body == {"draft_revision": revision + 1, "changed": []}
