"""Secret items over HTTP and in the domain, on SQLite and MariaDB: sealed in the store, clear
for those who may see secrets, null for everyone else, never in the audit or an error."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config, SecretsSection
from server.domain.canonical import checksum
from server.domain.scopes import Principal, Role
from server.domain.secrets import may_see, rotate
from server.keys import ANSWERS, HUB, PUBLISHED, SERVICES, STORE
from server.secretbox import Keyring, SecretKeyError, encode_key, new_key, sealed_key_id
from tests.api.helpers import Api, AppFactory, make_config

ENV = "/api/v1/apps/shop/envs/prod"
SECRET_KEY = "db.password"


def secret_value() -> str:
    return f"s3cr3t-{uuid.uuid4().hex}"


def user(name: str, role: Role) -> Principal:
    return Principal(name=name, kind="session", user=name, roles={"shop": role})


async def put(api: Api, key: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    answer = await api.call("PUT", f"{ENV}/items/{key}", body)
    assert answer.status == status, answer.text
    result: dict[str, Any] = answer.body
    return result


async def refused_start(config: Config) -> None:
    """Starting an app on config fails: its key is not the store's."""
    runner = web.AppRunner(create_app(config))
    try:
        with pytest.raises(SecretKeyError, match="store's secrets are under key"):
            await runner.setup()
    finally:
        await runner.cleanup()


async def stored_rows(api: Api) -> tuple[dict[str, tuple[str, int]], list[tuple[str, str]]]:
    """Items as stored {key: (value, secret)} and releases [(items_json, secret_keys_json)]."""
    async with api.app[STORE].reader() as q:
        items = await q.conn.fetchall("SELECT key_name, value, secret FROM items")
        releases = await q.conn.fetchall(
            "SELECT items_json, secret_keys_json FROM releases ORDER BY version"
        )
    return {r[0]: (r[1], int(r[2])) for r in items}, [(r[0], r[1]) for r in releases]


async def test_a_secret_is_stored_sealed_and_served_in_clear_to_admins_and_tokens(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = secret_value()
    await api.app_with_env()
    body = await put(api, SECRET_KEY, {"value": secret, "secret": True})
    assert (body["value"], body["secret"]) == (secret, True)
    await put(api, "db.host", {"value": "db1"})
    items, _ = await stored_rows(api)
    assert items["db.host"] == ("db1", 0)
    assert items[SECRET_KEY][1] == 1
    assert secret not in items[SECRET_KEY][0]
    assert sealed_key_id(items[SECRET_KEY][0]) == api.app[PUBLISHED].keyring.current_id

    listed = await api.call("GET", f"{ENV}/items")
    assert {i["key"]: i["value"] for i in listed.body["items"]}[SECRET_KEY] == secret
    one = await api.call("GET", f"{ENV}/items/{SECRET_KEY}")
    assert one.body["value"] == secret
    assert one.headers["ETag"] == f'"{one.body["revision"]}"'

    published = await api.publish("shop", "prod")
    assert published.status == 201, published.text
    clear = {SECRET_KEY: secret, "db.host": "db1"}
    assert published.body["items"] == clear
    assert published.body["checksum"] == checksum(clear)
    _, releases = await stored_rows(api)
    assert secret not in releases[0][0]
    assert orjson.loads(releases[0][1]) == [SECRET_KEY]

    _, read = await api.token_for("read:shop", name="reader")
    config = await api.call("GET", f"{ENV}/config", token=read)
    assert config.body["items"] == clear
    assert config.body["checksum"] == checksum(clear)
    rendered = await api.call("GET", f"{ENV}/config?format=properties", token=read)
    assert f"{SECRET_KEY}={secret}" in rendered.text
    release = await api.call("GET", f"{ENV}/releases/1")
    assert release.body["items"] == clear

    audit = await api.call("GET", "/api/v1/audit?limit=500")
    assert audit.status == 200
    assert secret not in audit.text
    assert all(secret not in r.getMessage() for r in caplog.records)


async def test_viewers_and_editors_get_null_for_secret_values_everywhere(api: Api) -> None:
    secret, changed = secret_value(), secret_value()
    await api.app_with_env()
    await put(api, SECRET_KEY, {"value": secret, "secret": True})
    await put(api, "plain", {"value": "p"})
    assert (await api.publish("shop", "prod")).status == 201
    await put(api, SECRET_KEY, {"value": changed}, status=200)
    services = api.app[SERVICES]
    viewer, editor = user("vera", Role.VIEWER), user("ed", Role.EDITOR)
    assert not may_see(viewer, "shop")
    assert not may_see(editor, "shop")
    assert may_see(user("pub", Role.PUBLISHER), "shop")

    for who in (viewer, editor):
        _, listed = await services.drafts.list_items(who, "shop", "prod")
        shown = [i.to_json(reveal=False) for i in listed]
        assert {i["key"]: i["value"] for i in shown} == {SECRET_KEY: None, "plain": "p"}
        assert {i["key"]: i["secret"] for i in shown} == {SECRET_KEY: True, "plain": False}
        item = await services.drafts.get_item(who, "shop", "prod", SECRET_KEY)
        assert secret not in repr(item)
        assert changed not in repr(item)
        diff = (await services.drafts.diff(who, "shop", "prod")).to_json()
        assert diff["changed"] == {SECRET_KEY: {"old": None, "new": None}}
        release = await services.releases.get_release(who, "shop", "prod", 1)
        assert release.to_json(reveal=False)["items"] == {SECRET_KEY: None, "plain": "p"}
        assert secret not in repr(release)
    admin_diff = await api.call("GET", f"{ENV}/diff")
    assert admin_diff.body["changed"] == {SECRET_KEY: {"old": secret, "new": changed}}

    # Published config for a reader without SEE_SECRETS: null in JSON, left out of text formats.
    masked = api.app[ANSWERS].current("shop", "prod", False)
    clear = api.app[ANSWERS].current("shop", "prod", True)
    assert masked is not None
    assert clear is not None
    assert orjson.loads(masked.json_body)["items"] == {SECRET_KEY: None, "plain": "p"}
    assert orjson.loads(clear.json_body)["items"] == {SECRET_KEY: secret, "plain": "p"}
    assert masked.etag == clear.etag
    for fmt in ("properties", "yaml", "dotenv", "json"):
        assert secret.encode() not in masked.render(fmt)[0]
        assert secret.encode() in clear.render(fmt)[0]
    latest = api.app[PUBLISHED].get("shop", "prod")
    assert latest is not None
    messages = api.app[HUB].messages.of(latest)
    assert orjson.loads(messages.get(False).text)["items"] == {SECRET_KEY: None, "plain": "p"}
    assert orjson.loads(messages.get(True).text)["items"][SECRET_KEY] == secret


async def test_an_editor_writes_a_secret_without_reading_it_back(api: Api) -> None:
    secret = secret_value()
    await api.app_with_env()
    drafts = api.app[SERVICES].drafts
    editor = user("ed", Role.EDITOR)
    item, created = await drafts.put_item(editor, "shop", "prod", "k", secret, None, secret=True)
    assert created
    assert item.to_json(reveal=False)["value"] is None
    assert secret not in repr(item)
    # The same value again is written again: an unchanged revision would confirm a guess.
    again, _ = await drafts.put_item(editor, "shop", "prod", "k", secret, None)
    assert again.revision > item.revision
    revision, changed = await drafts.patch_items(editor, "shop", "prod", {"k": secret}, [])
    assert (revision, changed) == (again.revision + 1, ["k"])
    admin = await api.call("GET", f"{ENV}/items/k")
    assert (admin.body["value"], admin.body["secret"]) == (secret, True)


async def test_the_secret_flag_is_kept_when_omitted_and_set_by_a_batch(api: Api) -> None:
    first, second = secret_value(), secret_value()
    await api.app_with_env()
    await put(api, "k", {"value": first, "secret": True})
    body = await put(api, "k", {"value": second}, status=200)
    assert body["secret"] is True
    patched = await api.call(
        "PATCH",
        f"{ENV}/items",
        {"set": {"k2": {"value": first, "secret": True, "comment": "c"}, "k": "plain-string"}},
    )
    assert patched.status == 200, patched.text
    items, _ = await stored_rows(api)
    assert items["k"][1] == 1
    assert "plain-string" not in items["k"][0]
    assert items["k2"][1] == 1
    assert first not in items["k2"][0]
    listed = {i["key"]: i for i in (await api.call("GET", f"{ENV}/items")).body["items"]}
    assert (listed["k"]["value"], listed["k2"]["value"], listed["k2"]["comment"]) == (
        "plain-string",
        first,
        "c",
    )
    assert (await api.publish("shop", "prod")).status == 201
    # Only the flag changes: a new release, whose value is now stored in clear.
    unflag = await api.call("PATCH", f"{ENV}/items", {"set": {"k": {"value": "plain-string"}}})
    assert unflag.body["changed"] == []
    unflag = await api.call(
        "PATCH", f"{ENV}/items", {"set": {"k": {"value": "plain-string", "secret": False}}}
    )
    assert unflag.body["changed"] == ["k"]
    items, _ = await stored_rows(api)
    assert items["k"] == ("plain-string", 0)
    second_release = await api.publish("shop", "prod")
    assert second_release.status == 201, second_release.text
    _, releases = await stored_rows(api)
    assert orjson.loads(releases[1][1]) == ["k2"]


async def test_a_rollback_restores_secret_values_and_flags(api: Api) -> None:
    first, second = secret_value(), secret_value()
    await api.app_with_env()
    await put(api, "k", {"value": first, "secret": True})
    v1 = await api.publish("shop", "prod")
    await put(api, "k", {"value": second, "secret": False}, status=200)
    assert (await api.publish("shop", "prod")).status == 201
    rolled = await api.call("POST", f"{ENV}/releases/1/rollback", {})
    assert rolled.status == 201, rolled.text
    assert rolled.body["items"] == {"k": first}
    assert rolled.body["checksum"] == v1.body["checksum"]
    items, releases = await stored_rows(api)
    assert items["k"][1] == 1
    assert first not in items["k"][0]
    assert orjson.loads(releases[2][1]) == ["k"]
    assert first not in releases[2][0]
    draft = await api.call("GET", f"{ENV}/items/k")
    assert (draft.body["value"], draft.body["secret"]) == (first, True)


async def test_errors_about_a_secret_value_never_quote_it(api: Api) -> None:
    await api.app_with_env()
    huge = "s3cr3t-" + "x" * (64 * 1024)
    answer = await api.call("PUT", f"{ENV}/items/k", {"value": huge, "secret": True})
    assert answer.status == 413
    assert answer.body["error"]["code"] == "value_too_large"
    assert "s3cr3t" not in answer.text


async def test_a_restart_with_the_same_key_serves_secrets_and_another_key_refuses_to_start(
    api_factory: AppFactory, store_url: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    secret = secret_value()
    first = await api_factory(store_url)
    await first.app_with_env()
    await put(first, "k", {"value": secret, "secret": True})
    assert (await first.publish("shop", "prod")).status == 201
    _, read = await first.token_for("read:shop", name="reader")

    again = await api_factory(store_url)
    config = await again.call("GET", f"{ENV}/config", token=read)
    assert config.body["items"] == {"k": secret}

    base = make_config(store_url, tmp_path)
    wrong = dataclasses.replace(base, secrets=SecretsSection(key=encode_key(new_key())))
    await refused_start(wrong)


async def test_rotation_reseals_everything_in_one_go_and_refuses_a_wrong_key(
    api_factory: AppFactory, store_url: str, tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    secret = secret_value()
    api = await api_factory(store_url)
    await api.app_with_env()
    await put(api, "k", {"value": secret, "secret": True})
    assert (await api.publish("shop", "prod")).status == 201
    await put(api, "k", {"value": secret + "-2"}, status=200)
    _, read = await api.token_for("read:shop", name="reader")
    store, old = api.app[STORE], api.app[PUBLISHED].keyring
    new = new_key()

    stranger = Keyring()
    stranger.install(new_key())
    before = await api.snapshot()
    with pytest.raises(SecretKeyError, match="not loaded here"):
        await rotate(store, stranger, new)
    assert await api.snapshot() == before

    done = await rotate(store, old, new)
    assert (done.items, done.releases, done.old_key_id) == (1, 1, old.current_id)
    items, releases = await stored_rows(api)
    assert sealed_key_id(items["k"][0]) == done.new_key_id
    assert sealed_key_id(orjson.loads(releases[0][0])["k"]) == done.new_key_id
    both = Keyring()  # a replica's keys during the rotation: the new one, the old one
    both.install(new, old.keys())
    again = await rotate(store, both, new)  # nothing is left under the old key
    assert (again.items, again.releases) == (0, 0)
    audit = await api.call("GET", "/api/v1/audit?limit=500")
    rotations = [e for e in audit.body["entries"] if e["action"] == "secrets.rotate"]
    assert len(rotations) == 2
    assert secret not in audit.text

    base = make_config(store_url, tmp_path)
    rotated = dataclasses.replace(base, secrets=SecretsSection(key=encode_key(new)))
    client = await aiohttp_client(create_app(rotated))
    config = await client.get(f"{ENV}/config", headers={"Authorization": f"Bearer {read}"})
    assert (await config.json())["items"] == {"k": secret}
    await refused_start(base)  # the old key file alone is refused now


async def test_a_secret_value_is_in_no_byte_of_the_sqlite_files_nor_the_log(
    api_factory: AppFactory, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret, plain = secret_value(), f"plain-{uuid.uuid4().hex}"
    api = await api_factory(sqlite_url)
    await api.app_with_env()
    await put(api, SECRET_KEY, {"value": secret, "secret": True})
    await put(api, "plain", {"value": plain})
    assert (await api.publish("shop", "prod")).status == 201
    _, read = await api.token_for("read:shop", name="reader")
    config = await api.call("GET", f"{ENV}/config", token=read)
    assert config.body["items"] == {SECRET_KEY: secret, "plain": plain}
    names, stored = sqlite_files(tmp_path)
    assert names >= {"store.db", "store.db-wal"}
    assert plain.encode() in stored  # what is not secret is there: the grep would see it
    assert secret.encode() not in stored
    # DEBUG included: aiosqlite logs every statement with its parameters, sealed ones here.
    assert [r.getMessage() for r in caplog.records if secret in r.getMessage()] == []


def sqlite_files(directory: Path) -> tuple[set[str], bytes]:
    """The names and the bytes of the SQLite file and its -wal and -shm beside it."""
    files = sorted(directory.glob("store.db*"))
    return {f.name for f in files}, b"".join(f.read_bytes() for f in files)
