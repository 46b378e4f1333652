"""Everything survives a restart, on both stores."""

from __future__ import annotations

from tests.api.helpers import ADMIN_PASSWORD, AppFactory


async def test_everything_survives_a_restart(api_factory: AppFactory, store_url: str) -> None:
    first = await api_factory(store_url)
    await first.app_with_env()
    await first.set_items("shop", "prod", {"a": "1", "b": "2"})
    assert (await first.publish("shop", "prod", "v1")).status == 201
    await first.call("PUT", "/api/v1/apps/shop/envs/prod/items/a", {"value": "draft-only"})
    token_id, secret = await first.token_for("read:shop", name="survivor")
    revoked_id, revoked = await first.token_for("read:shop", name="revoked")
    await first.call("DELETE", f"/api/v1/tokens/{revoked_id}")
    audit_before = (await first.call("GET", "/api/v1/audit?limit=500")).body["entries"]
    await first.client.close()

    second = await api_factory(store_url)
    # The bootstrap password still works and was not reset.
    assert second.token != first.token
    assert (await second.call("GET", "/api/v1/apps/shop")).body["envs"] == ["prod"]
    draft = await second.call("GET", "/api/v1/apps/shop/envs/prod/items")
    assert {i["key"]: i["value"] for i in draft.body["items"]} == {"a": "draft-only", "b": "2"}
    config = await second.call("GET", "/api/v1/apps/shop/envs/prod/config", token=secret)
    assert config.status == 200
    assert config.body["items"] == {"a": "1", "b": "2"}
    assert config.body["version"] == 1
    assert (await second.call("GET", "/api/v1/apps", token=revoked)).status == 401
    tokens = (await second.call("GET", "/api/v1/tokens")).body["tokens"]
    assert {t["id"] for t in tokens} >= {token_id, revoked_id}
    audit_after = (await second.call("GET", "/api/v1/audit?limit=500")).body["entries"]
    # The second start signs in again: one login.ok entry more, the rest unchanged.
    assert audit_after[1:] == audit_before
    assert audit_after[0]["action"] == "login.ok"
    login = await second.call(
        "POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD}, token=None
    )
    assert login.status == 200
    # A new publish continues the version sequence.
    await second.call("PUT", "/api/v1/apps/shop/envs/prod/items/c", {"value": "3"})
    assert (await second.publish("shop", "prod")).body["version"] == 2
