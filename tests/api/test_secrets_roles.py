"""Secrets with the rest of main, over HTTP on both stores: signed-in users with roles, release
requests, export and import, backup."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path
from typing import Any

import orjson

from server.domain import backup
from server.keys import STORE
from tests.api.helpers import Api

ENV = "/api/v1/apps/shop/envs/prod"
APP = "/api/v1/apps/shop"
REQUESTS = f"{ENV}/release-requests"
SECRET_KEY = "db.password"
PASSWORD = "correct-horse-battery"


def secret_value() -> str:
    return f"s3cr3t-{uuid.uuid4().hex}"


async def signed_in(api: Api, name: str, role: str) -> str:
    """A new user with role on shop, signed in: its session token."""
    body = {"name": name, "password": PASSWORD, "roles": {"shop": role}}
    created = await api.call("POST", "/api/v1/users", body)
    assert created.status == 201, created.text
    login = await api.call(
        "POST", "/api/v1/login", {"username": name, "password": PASSWORD}, token=None
    )
    assert login.status == 200, login.text
    token: str = login.body["token"]
    return token


async def put(api: Api, key: str, body: dict[str, Any], token: str = "") -> None:
    answer = await api.call("PUT", f"{ENV}/items/{key}", body, token=token)
    assert answer.status in (200, 201), answer.text


async def get(api: Api, path: str, token: str) -> dict[str, Any]:
    answer = await api.call("GET", path, token=token)
    assert answer.status == 200, answer.text
    body: dict[str, Any] = answer.body
    return body


async def stored(api: Api, sql: str) -> list[tuple[Any, ...]]:
    async with api.app[STORE].reader() as q:
        return [tuple(row) for row in await q.conn.fetchall(sql)]


async def test_viewer_and_editor_users_get_null_and_a_publisher_the_clear_value(
    api: Api,
) -> None:
    secret, changed = secret_value(), secret_value()
    await api.app_with_env()
    await put(api, SECRET_KEY, {"value": secret, "secret": True})
    await put(api, "plain", {"value": "p"})
    assert (await api.publish("shop", "prod")).status == 201
    await put(api, SECRET_KEY, {"value": changed})
    viewer = await signed_in(api, "vera", "viewer")
    editor = await signed_in(api, "ed", "editor")
    publisher = await signed_in(api, "pat", "publisher")

    for token in (viewer, editor):
        items = (await get(api, f"{ENV}/items", token))["items"]
        assert {i["key"]: (i["value"], i["secret"]) for i in items} == {
            SECRET_KEY: (None, True),
            "plain": ("p", False),
        }
        one = await get(api, f"{ENV}/items/{SECRET_KEY}", token)
        assert (one["value"], one["secret"]) == (None, True)
        diff = await get(api, f"{ENV}/diff", token)
        assert diff["changed"] == {SECRET_KEY: {"old": None, "new": None}}
        release = await get(api, f"{ENV}/releases/1", token)
        assert release["items"] == {SECRET_KEY: None, "plain": "p"}
        config = await get(api, f"{ENV}/config", token)
        assert config["items"] == {SECRET_KEY: None, "plain": "p"}
        for path in (f"{ENV}/items", f"{ENV}/diff", f"{ENV}/releases/1", f"{ENV}/config"):
            text = (await api.call("GET", path, token=token)).text
            assert secret not in text
            assert changed not in text

    items = (await get(api, f"{ENV}/items", publisher))["items"]
    assert {i["key"]: i["value"] for i in items} == {SECRET_KEY: changed, "plain": "p"}
    diff = await get(api, f"{ENV}/diff", publisher)
    assert diff["changed"] == {SECRET_KEY: {"old": secret, "new": changed}}
    release = await get(api, f"{ENV}/releases/1", publisher)
    assert release["items"] == {SECRET_KEY: secret, "plain": "p"}
    config = await get(api, f"{ENV}/config", publisher)
    assert config["items"] == {SECRET_KEY: secret, "plain": "p"}


async def test_a_release_request_freezes_a_secret_sealed_and_its_approval_publishes_it(
    api: Api,
) -> None:
    first, frozen, later, kept = secret_value(), secret_value(), secret_value(), secret_value()
    await api.app_with_env()
    await put(api, SECRET_KEY, {"value": first, "secret": True})
    await put(api, "plain", {"value": "p"})
    # Unchanged: in no diff, though its sealed form differs in the request and the release.
    await put(api, "kept.secret", {"value": kept, "secret": True})
    assert (await api.publish("shop", "prod")).status == 201
    answer = await api.call("PATCH", ENV, {"approval_required": True})
    assert answer.status == 200, answer.text
    editor = await signed_in(api, "ed", "editor")
    publisher = await signed_in(api, "pat", "publisher")
    viewer = await signed_in(api, "vera", "viewer")
    await put(api, SECRET_KEY, {"value": frozen}, token=editor)
    await put(api, "new.secret", {"value": frozen, "secret": True}, token=editor)

    made = await api.call("POST", REQUESTS, {"comment": "rotate"}, token=editor)
    assert made.status == 201, made.text
    masked_diff = {
        "added": {"new.secret": None},
        "changed": {SECRET_KEY: {"old": None, "new": None}},
        "removed": {},
        "secret_keys": [SECRET_KEY, "new.secret"],
    }
    assert made.body["diff"] == masked_diff
    assert frozen not in made.text
    request_id = made.body["id"]
    rows = await stored(api, "SELECT items_json, secret_keys_json FROM release_requests")
    assert len(rows) == 1
    assert frozen not in rows[0][0]
    assert orjson.loads(rows[0][1]) == ["db.password", "kept.secret", "new.secret"]

    for token in (viewer, editor):
        shown = await get(api, f"{REQUESTS}/{request_id}", token)
        assert shown["diff"] == masked_diff
        listed = await get(api, REQUESTS, token)
        assert listed["requests"][0]["diff"] == masked_diff
    clear = await get(api, f"{REQUESTS}/{request_id}", publisher)
    assert clear["diff"] == {
        "added": {"new.secret": frozen},
        "changed": {SECRET_KEY: {"old": first, "new": frozen}},
        "removed": {},
        "secret_keys": [SECRET_KEY, "new.secret"],
    }

    # The draft moves on; the approval publishes what the request froze, flags included.
    await put(api, SECRET_KEY, {"value": later, "secret": False}, token=editor)
    approved = await api.call("POST", f"{REQUESTS}/{request_id}/approve", {}, token=publisher)
    assert approved.status == 201, approved.text
    published = {SECRET_KEY: frozen, "plain": "p", "new.secret": frozen, "kept.secret": kept}
    assert approved.body["items"] == published
    releases = await stored(
        api, "SELECT items_json, secret_keys_json FROM releases ORDER BY version"
    )
    assert frozen not in releases[-1][0]
    assert orjson.loads(releases[-1][1]) == ["db.password", "kept.secret", "new.secret"]
    assert (await get(api, f"{ENV}/config", viewer))["items"] == {
        SECRET_KEY: None,
        "plain": "p",
        "new.secret": None,
        "kept.secret": None,
    }
    assert (await get(api, f"{ENV}/config", publisher))["items"] == published


async def test_a_rollback_request_keeps_the_secret_flags_of_the_release_it_copies(
    api: Api,
) -> None:
    secret = secret_value()
    await api.app_with_env()
    await put(api, SECRET_KEY, {"value": secret, "secret": True})
    assert (await api.publish("shop", "prod")).status == 201
    await put(api, SECRET_KEY, {"value": "plain now", "secret": False})
    assert (await api.publish("shop", "prod")).status == 201
    assert (await api.call("PATCH", ENV, {"approval_required": True})).status == 200
    editor = await signed_in(api, "ed", "editor")
    made = await api.call("POST", REQUESTS, {"comment": "back", "rollback_to": 1}, token=editor)
    assert made.status == 201, made.text
    assert made.body["diff"]["changed"] == {SECRET_KEY: {"old": None, "new": None}}
    approved = await api.call("POST", f"{REQUESTS}/{made.body['id']}/approve", {})
    assert approved.status == 201, approved.text
    assert approved.body["items"] == {SECRET_KEY: secret}
    items = (await get(api, f"{ENV}/items", editor))["items"]
    assert [(i["value"], i["secret"]) for i in items] == [(None, True)]


async def test_export_masks_secrets_unless_included_and_import_keeps_them_sealed(
    api: Api,
) -> None:
    secret = secret_value()
    await api.app_with_env()
    await put(api, SECRET_KEY, {"value": secret, "secret": True, "comment": "main db"})
    await put(api, "plain", {"value": "p"})
    owner = await signed_in(api, "olga", "owner")
    masked = await get(api, f"{APP}/export", owner)
    assert masked["envs"]["prod"]["items"][0] == {
        "key": SECRET_KEY,
        "value": None,
        "comment": "main db",
        "secret": True,
    }
    refused = await api.call("GET", f"{APP}/export?secrets=include", token=owner)
    assert refused.status == 403, refused.text
    full = await get(api, f"{APP}/export?secrets=include", api.token)
    assert full["envs"]["prod"]["items"][0]["value"] == secret

    # A copy with the value: a sealed secret in the new app.
    copy = await api.call("POST", "/api/v1/apps/import?mode=create", {**full, "app": "copy"})
    assert copy.status == 201, copy.text
    rows = await stored(
        api,
        "SELECT i.value, i.secret FROM items i JOIN envs e ON e.id = i.env_id "
        "JOIN apps a ON a.id = e.app_id WHERE a.name = 'copy' AND i.key_name = 'db.password'",
    )
    assert len(rows) == 1
    assert secret not in rows[0][0]
    assert int(rows[0][1]) == 1
    again = await get(api, "/api/v1/apps/copy/export?secrets=include", api.token)
    assert again["envs"] == full["envs"]

    # Without the value: refused for a new app, kept over an existing secret.
    bad = await api.call("POST", "/api/v1/apps/import?mode=create", {**masked, "app": "copy2"})
    assert (bad.status, bad.body["error"]["code"]) == (400, "invalid_import"), bad.text
    assert (await api.call("GET", "/api/v1/apps/copy2")).status == 404
    masked["envs"]["prod"]["items"][0]["comment"] = "the main db"
    merged = await api.call("POST", "/api/v1/apps/import?mode=merge", masked)
    assert merged.status == 200, merged.text
    assert merged.body["envs"]["prod"]["changed"] == [SECRET_KEY]
    after = await get(api, f"{APP}/export?secrets=include", api.token)
    assert after["envs"]["prod"]["items"][0] == {
        "key": SECRET_KEY,
        "value": secret,
        "comment": "the main db",
        "secret": True,
    }
    # Over an item that is not a secret: refused, nothing changed.
    plain_masked = {
        **masked,
        "envs": {"prod": {"items": [{"key": "plain", "value": None, "secret": True}]}},
    }
    before = await api.snapshot()
    refused_merge = await api.call("POST", "/api/v1/apps/import?mode=merge", plain_masked)
    assert (refused_merge.status, refused_merge.body["error"]["code"]) == (
        400,
        "invalid_import",
    )
    assert await api.snapshot() == before


async def test_an_env_import_keeps_an_items_secret_flag(api: Api) -> None:
    secret, changed = secret_value(), secret_value()
    await api.app_with_env()
    await put(api, SECRET_KEY, {"value": secret, "secret": True})
    data = f"{SECRET_KEY}={changed}\nadded=a\n".encode()
    answer = await api.call("POST", f"{ENV}/import?format=properties", data=data)
    assert answer.status == 200, answer.text
    items = (await api.call("GET", f"{ENV}/items")).body["items"]
    assert {i["key"]: (i["value"], i["secret"]) for i in items} == {
        SECRET_KEY: (changed, True),
        "added": ("a", False),
    }
    rows = await stored(api, "SELECT value FROM items WHERE key_name = 'db.password'")
    assert changed not in rows[0][0]


async def test_a_backup_holds_secrets_sealed_and_the_key_check_value(
    api: Api, tmp_path: Path
) -> None:
    secret = secret_value()
    await api.app_with_env()
    await put(api, SECRET_KEY, {"value": secret, "secret": True})
    assert (await api.publish("shop", "prod")).status == 201
    path = tmp_path / "store.backup"
    await backup.backup(api.app[STORE], path)
    raw = gzip.decompress(path.read_bytes())
    assert secret.encode() not in raw
    tables = orjson.loads(raw)["tables"]
    assert len(tables["secret_key_check"]["rows"]) == 1
