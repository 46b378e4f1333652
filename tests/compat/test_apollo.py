"""Apollo's config service protocol: reads, releaseKey, notifications, the access-key
signature, canonical app names, gray releases, instances; bad input refused, nothing changed."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.domain.apollo import signature
from server.domain.secrets import rotate
from server.keys import PUBLISHED, STORE
from server.secretbox import Keyring, new_key, sealed_key_id
from tests.api.helpers import ADMIN_PASSWORD, Api, make_config

ENV = "/api/v1/apps/shop/envs/prod"
HOLD = 0.5


async def start(
    aiohttp_client: AiohttpClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    store_url: str,
    hold: float,
) -> Api:
    """A running app whose Apollo long polls are held `hold` seconds, signed in as admin."""
    monkeypatch.setenv("CONFIGCENTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    config = make_config(store_url, tmp_path)
    config = dataclasses.replace(
        config, compat=dataclasses.replace(config.compat, apollo_hold_seconds=hold)
    )
    client = await aiohttp_client(create_app(config))
    response = await client.post(
        "/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status == 200, await response.text()
    return Api(client, (await response.json())["token"])


@pytest.fixture
async def api(
    aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store_url: str
) -> Api:
    """A running app whose Apollo long polls are held HOLD seconds."""
    return await start(aiohttp_client, monkeypatch, tmp_path, store_url, HOLD)


async def shop(api: Api, items: dict[str, str] | None = None) -> int:
    """App shop, env prod, published with items and a secret; the version."""
    await api.app_with_env()
    await api.set_items("shop", "prod", items or {"db.url": "jdbc:x", "pool": "5"})
    secret = await api.call("PUT", f"{ENV}/items/password", {"value": "hunter2", "secret": True})
    assert secret.status == 201, secret.text
    published = await api.publish("shop", "prod")
    assert published.status == 201, published.text
    version: int = published.body["version"]
    return version


async def new_key_secret(api: Api, app: str = "shop") -> tuple[int, str]:
    made = await api.call("POST", f"/api/v1/apps/{app}/access-keys")
    assert made.status == 201, made.text
    return made.body["id"], made.body["secret"]


async def snapshot(api: Api) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, the access keys' too."""
    rows = await api.snapshot()
    async with api.app[STORE].reader() as q:
        rows["access_keys"] = await q.conn.fetchall("SELECT * FROM access_keys ORDER BY 1")
    return rows


def signed(path: str, secret: str, app: str = "shop", at_ms: int | None = None) -> dict[str, str]:
    """Apollo's headers for path (with its query) signed with secret."""
    stamp = str(at_ms if at_ms is not None else int(time.time() * 1000))
    return {"Authorization": f"Apollo {app}:{signature(secret, stamp, path)}", "Timestamp": stamp}


def test_the_signature_is_apollos_own_test_vector() -> None:
    assert (
        signature(
            "df23df3f59884980844ff3dada30fa97",
            "1576478257344",
            "/configs/100004458/default/application?ip=10.0.0.1",
        )
        == "EoKyziXvKqzHgwx+ijDJwgVTDgE="
    )


async def test_a_read_token_gets_every_namespace_with_its_secrets(api: Api) -> None:
    version = await shop(api)
    _, read = await api.token_for("read:shop")
    answer = await api.call("GET", "/configs/shop/prod/application", token=read)
    assert answer.status == 200, answer.text
    body = answer.body
    assert (body["appId"], body["cluster"], body["namespaceName"]) == (
        "shop",
        "prod",
        "application",
    )
    assert body["configurations"] == {"db.url": "jdbc:x", "pool": "5", "password": "hunter2"}
    assert body["releaseKey"].startswith(f"{version}-")
    props = await api.call("GET", "/configs/shop/prod/application.properties", token=read)
    assert props.body["namespaceName"] == "application"
    assert props.body["configurations"] == body["configurations"]

    as_json = await api.call("GET", "/configs/shop/prod/application.json", token=read)
    assert json.loads(as_json.body["configurations"]["content"]) == body["configurations"]
    as_yaml = await api.call("GET", "/configs/shop/prod/application.yaml", token=read)
    assert 'pool: "5"' in as_yaml.body["configurations"]["content"]
    yml = await api.call("GET", "/configs/shop/prod/application.yml", token=read)
    assert yml.body["configurations"] == as_yaml.body["configurations"]

    flat = await api.call("GET", "/configfiles/json/shop/prod/application", token=read)
    assert flat.body == body["configurations"]
    text = await api.call("GET", "/configfiles/shop/prod/application", token=read)
    assert text.text == "db.url=jdbc\\:x\npassword=hunter2\npool=5\n"
    yaml_file = await api.call("GET", "/configfiles/shop/prod/application.yaml", token=read)
    assert yaml_file.text == as_yaml.body["configurations"]["content"]


async def test_a_current_release_key_is_a_304_and_a_publish_changes_it(api: Api) -> None:
    await shop(api)
    _, read = await api.token_for("read:shop")
    first = await api.call("GET", "/configs/shop/prod/application", token=read)
    key = first.body["releaseKey"]
    same = await api.call(
        "GET", f"/configs/shop/prod/application?releaseKey={quote(key)}", token=read
    )
    assert (same.status, same.text) == (304, "")
    await api.set_items("shop", "prod", {"pool": "6"})
    assert (await api.publish("shop", "prod")).status == 201
    newer = await api.call(
        "GET", f"/configs/shop/prod/application?releaseKey={quote(key)}", token=read
    )
    assert newer.status == 200
    assert newer.body["releaseKey"] != key
    assert newer.body["configurations"]["pool"] == "6"


async def test_missing_apps_clusters_namespaces_and_unpublished_envs_are_404(api: Api) -> None:
    await shop(api)
    assert (await api.call("POST", "/api/v1/apps/shop/envs", {"name": "dev"})).status == 201
    before = await snapshot(api)
    for path in (
        "/configs/nope/prod/application",
        "/configs/shop/nope/application",
        "/configs/shop/prod/other",
        "/configs/shop/prod/application.xml",
        "/configs/shop/dev/application",
        "/configfiles/json/shop/dev/application",
        "/configfiles/shop/nope/application",
    ):
        answer = await api.call("GET", path)
        assert answer.status == 404, (path, answer.text)
        assert "error" not in answer.text
    assert await snapshot(api) == before


async def test_anonymous_read_serves_everything_but_the_secrets(api: Api) -> None:
    await shop(api)
    refused = await api.call("GET", "/configs/shop/prod/application", token=None)
    assert (refused.status, refused.text) == (401, "Unauthorized")
    assert (await api.call("PATCH", "/api/v1/apps/shop", {"anonymous_read": True})).status == 200
    answer = await api.call("GET", "/configs/shop/prod/application", token=None)
    assert answer.status == 200, answer.text
    assert answer.body["configurations"] == {"db.url": "jdbc:x", "pool": "5"}
    text = await api.call("GET", "/configfiles/shop/prod/application", token=None)
    assert "hunter2" not in text.text
    _, read = await api.token_for("read:shop")
    full = await api.call("GET", "/configs/shop/prod/application", token=read)
    # Another rendering, another releaseKey: a client given a token reads the secrets.
    assert full.body["releaseKey"] != answer.body["releaseKey"]
    assert full.body["configurations"]["password"] == "hunter2"


async def test_a_signed_read_is_served_within_the_time_window_only(api: Api) -> None:
    await shop(api)
    _, secret = await new_key_secret(api)
    path = "/configs/shop/prod/application?ip=10.0.0.1"
    now = int(time.time() * 1000)
    ok = await api.call("GET", path, token=None, headers=signed(path, secret))
    assert ok.status == 200, ok.text
    assert ok.body["configurations"]["password"] == "hunter2"
    recent = await api.call(
        "GET", path, token=None, headers=signed(path, secret, at_ms=now - 59_000)
    )
    assert recent.status == 200
    for at in (now - 61_000, now + 61_000):
        old = await api.call("GET", path, token=None, headers=signed(path, secret, at_ms=at))
        assert (old.status, old.text) == (401, "RequestTimeTooSkewed")


async def test_wrong_signatures_and_credentials_are_401(api: Api) -> None:
    await shop(api)
    await api.app_with_env("other", "prod")
    _, secret = await new_key_secret(api)
    _, other_secret = await new_key_secret(api, "other")
    _, other_token = await api.token_for("read:other")
    path = "/configs/shop/prod/application"
    stamp = str(int(time.time() * 1000))
    before = await snapshot(api)
    cases = [
        signed(path, other_secret),  # another app's key
        signed(path, other_secret, app="other"),  # signed for another app
        signed(path, secret, app="SHOP"),  # the app spelled otherwise
        signed(path + "?ip=1.2.3.4", secret),  # another path
        {"Authorization": f"Apollo shop:{signature(secret, stamp, path)}"},  # no Timestamp
        {"Authorization": "Apollo shop", "Timestamp": stamp},
        {"Authorization": f"Apollo shop:{signature(secret, 'x' + stamp, path)}", "Timestamp": "x"},
        {"Authorization": f"Bearer {other_token}"},  # a token for another app
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic dXNlcg=="},  # "user", no password
        {"Authorization": "Digest x"},
    ]
    for headers in cases:
        answer = await api.call("GET", path, token=None, headers=headers)
        assert answer.status == 401, (headers, answer.text)
        assert "hunter2" not in answer.text
    assert await snapshot(api) == before


async def test_a_token_as_the_basic_password_reads(api: Api) -> None:
    await shop(api)
    _, read = await api.token_for("read:shop")
    basic = base64.b64encode(f"apollo:{read}".encode()).decode()
    answer = await api.call(
        "GET",
        "/configs/shop/prod/application",
        token=None,
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status == 200, answer.text


async def test_a_deleted_access_key_signs_nothing(api: Api) -> None:
    await shop(api)
    key_id, secret = await new_key_secret(api)
    path = "/configs/shop/prod/application"
    assert (await api.call("GET", path, token=None, headers=signed(path, secret))).status == 200
    assert (await api.call("DELETE", f"/api/v1/apps/shop/access-keys/{key_id}")).status == 204
    gone = await api.call("GET", path, token=None, headers=signed(path, secret))
    assert gone.status == 401


@pytest.mark.parametrize(
    "app",
    [
        "SHOP",
        "Shop",
        "shop.",
        "shop%20",
        "%20shop",
        "shop%00",
        "..",
        "%2e%2e",
        "shop%2f..",
        "shop%2Fprod",
        "..%2fshop",
        "sh%C3%B6p",
        "%EF%BC%B3hop",
    ],
)
async def test_app_spellings_that_are_not_the_app_read_nothing(api: Api, app: str) -> None:
    await shop(api)
    await api.app_with_env("open", "prod")
    assert (await api.call("PATCH", "/api/v1/apps/open", {"anonymous_read": True})).status == 200
    _, open_secret = await new_key_secret(api, "open")
    before = await snapshot(api)
    paths = [
        f"/configs/{app}/prod/application",
        f"/configfiles/json/{app}/prod/application",
        f"/configfiles/{app}/prod/application",
        f"/notifications/v2?appId={app}&cluster=prod&notifications="
        + quote('[{"namespaceName":"application","notificationId":-1}]'),
        f"/services/config?appId={app}",
    ]
    for path in paths:
        for headers in (
            {},
            signed(path, open_secret, app="open"),
            signed(path, open_secret, app=app),
        ):
            async with api.client.get(path, headers=headers) as response:
                text = await response.text()
            # The meta server names only this server, for any well-formed app name.
            allowed = (200, 400, 404) if path.startswith("/services") else (400, 401, 404)
            assert response.status in allowed, (path, response.status, text)
            assert "jdbc" not in text
            assert "hunter2" not in text
    assert await snapshot(api) == before


async def test_notifications_answer_at_once_when_newer_else_304_after_the_hold(api: Api) -> None:
    version = await shop(api)
    _, read = await api.token_for("read:shop")
    watched = [
        {"namespaceName": "application.properties", "notificationId": -1},
        {"namespaceName": "application.yaml", "notificationId": version},
        {"namespaceName": "unknown", "notificationId": -1},
    ]
    path = "/notifications/v2?appId=shop&cluster=prod&notifications=" + quote(json.dumps(watched))
    answer = await api.call("GET", path, token=read)
    assert answer.status == 200, answer.text
    assert answer.body == [
        {
            "namespaceName": "application.properties",
            "notificationId": version,
            "messages": {"details": {"shop+prod+application": version}},
        }
    ]
    current = [{"namespaceName": "application", "notificationId": version}]
    held = "/notifications/v2?appId=shop&cluster=prod&notifications=" + quote(json.dumps(current))
    nothing = await api.call("GET", held, token=read)
    assert (nothing.status, nothing.text) == (304, "")

    waiting = asyncio.ensure_future(api.call("GET", held, token=read))
    for _ in range(1000):  # until it waits (10 s at most)
        if api.app[PUBLISHED].waiting:
            break
        await asyncio.sleep(0.01)
    await api.set_items("shop", "prod", {"pool": "6"})
    assert (await api.publish("shop", "prod")).status == 201
    woken = await asyncio.wait_for(waiting, 10)
    # Published within the hold: 200 with the new id; or, if the hold ended first, a 304 and
    # the next poll answers at once.
    if woken.status == 304:
        woken = await api.call("GET", held, token=read)
    assert woken.status == 200
    assert woken.body[0]["notificationId"] == version + 1


@pytest.mark.parametrize(
    "notifications",
    [
        None,
        "",
        "not json",
        "{}",
        "[]",
        "[1]",
        '[{"notificationId": 1}]',
        '[{"namespaceName": 5, "notificationId": 1}]',
        '[{"namespaceName": "application", "notificationId": "1"}]',
        '[{"namespaceName": "application", "notificationId": 1.5}]',
        '[{"namespaceName": "application", "notificationId": true}]',
        '[{"namespaceName": "application", "notificationId": -2}]',
        json.dumps([{"namespaceName": f"n{i}", "notificationId": 1} for i in range(101)]),
    ],
)
async def test_malformed_notification_lists_are_400(api: Api, notifications: str | None) -> None:
    await shop(api)
    _, read = await api.token_for("read:shop")
    path = "/notifications/v2?appId=shop&cluster=prod"
    if notifications is not None:
        path += "&notifications=" + quote(notifications)
    before = await snapshot(api)
    answer = await api.call("GET", path, token=read)
    assert answer.status == 400, answer.text
    assert "error" not in answer.text
    assert await snapshot(api) == before


async def test_notifications_of_a_missing_env_are_404_and_need_a_credential(api: Api) -> None:
    await shop(api)
    entries = quote('[{"namespaceName":"application","notificationId":-1}]')
    missing = await api.call(
        "GET", f"/notifications/v2?appId=shop&cluster=nope&notifications={entries}"
    )
    assert missing.status == 404
    refused = await api.call(
        "GET", f"/notifications/v2?appId=shop&cluster=prod&notifications={entries}", token=None
    )
    assert refused.status == 401


async def test_a_gray_release_by_label_reaches_the_apollo_readers_with_that_label(
    api: Api,
) -> None:
    main = await shop(api)
    _, read = await api.token_for("read:shop")
    await api.set_items("shop", "prod", {"pool": "9"})
    for rule in ({"labels": {"apollo.label": "canary"}},):
        started = await api.call("POST", f"{ENV}/gray", {"comment": "canary", "rule": rule})
        assert started.status == 201, started.text
    gray = started.body["version"]

    def configs(query: str) -> str:
        return f"/configs/shop/prod/application?{query}"

    canary = await api.call("GET", configs("ip=pod-1&label=canary"), token=read)
    assert canary.body["configurations"]["pool"] == "9"
    assert canary.body["releaseKey"].startswith(f"{gray}-")
    pairs = await api.call("GET", configs("ip=pod-2&label=apollo.label%3Dcanary"), token=read)
    assert pairs.body["configurations"]["pool"] == "9"
    stable = await api.call("GET", configs("ip=pod-3&label=stable"), token=read)
    assert stable.body["configurations"]["pool"] == "5"
    assert stable.body["releaseKey"].startswith(f"{main}-")
    bad = await api.call("GET", configs("ip=pod%20bad&label=canary"), token=read)
    assert bad.body["configurations"]["pool"] == "5"  # unidentified: the main release

    entries = quote(json.dumps([{"namespaceName": "application", "notificationId": main}]))
    base = f"/notifications/v2?appId=shop&cluster=prod&notifications={entries}"
    told = await api.call("GET", f"{base}&ip=pod-1&label=canary", token=read)
    assert told.status == 200
    assert told.body[0]["notificationId"] == gray
    untold = await api.call("GET", f"{base}&ip=pod-3", token=read)
    assert untold.status == 304
    # Apollo clients send their label on config reads only: the label pod-1 read with counts.
    remembered = await api.call("GET", f"{base}&ip=pod-1", token=read)
    assert remembered.status == 200
    assert remembered.body[0]["notificationId"] == gray

    listed = await api.call("GET", f"{ENV}/instances?transport=apollo")
    by_id = {i["instance"]: i for i in listed.body["instances"]}
    assert by_id["pod-1"]["labels"] == {"apollo.label": "canary"}
    assert by_id["pod-1"]["delivered_version"] == gray
    assert by_id["pod-3"]["delivered_version"] == main
    assert "pod bad" not in by_id


async def test_an_unnamed_reader_is_listed_by_its_address(api: Api) -> None:
    await shop(api)
    _, read = await api.token_for("read:shop")
    assert (await api.call("GET", "/configs/shop/prod/application", token=read)).status == 200
    listed = await api.call("GET", f"{ENV}/instances?transport=apollo")
    assert [i["instance"] for i in listed.body["instances"]] == ["127.0.0.1"]


async def test_the_meta_server_names_this_server(api: Api) -> None:
    answer = await api.call("GET", "/services/config?appId=shop&ip=10.0.0.1", token=None)
    assert answer.status == 200
    [service] = answer.body
    base = str(api.client.make_url("/"))
    assert service["homepageUrl"] == base
    assert service["homepageUrl"].endswith("/")
    assert set(service) == {"appName", "instanceId", "homepageUrl"}


async def test_access_keys_are_listed_without_secrets_limited_and_audited(api: Api) -> None:
    await shop(api)
    made = [await new_key_secret(api) for _ in range(5)]
    assert all(len(secret) == 32 and int(secret, 16) >= 0 for _, secret in made)
    before = await snapshot(api)
    sixth = await api.call("POST", "/api/v1/apps/shop/access-keys")
    assert (sixth.status, sixth.body["error"]["code"]) == (409, "limit_exceeded")
    assert await snapshot(api) == before
    listed = await api.call("GET", "/api/v1/apps/shop/access-keys")
    assert [k["id"] for k in listed.body["access_keys"]] == [key_id for key_id, _ in made]
    assert all(secret not in listed.text for _, secret in made)
    assert set(listed.body["access_keys"][0]) == {"id", "created_at", "created_by"}
    assert (await api.call("DELETE", f"/api/v1/apps/shop/access-keys/{made[0][0]}")).status == 204
    again = await api.call("DELETE", f"/api/v1/apps/shop/access-keys/{made[0][0]}")
    assert again.status == 404
    assert (await api.call("GET", "/api/v1/apps/nope/access-keys")).status == 404
    audit = await api.call("GET", "/api/v1/audit?app=shop&limit=100")
    actions = [e["action"] for e in audit.body["entries"]]
    assert actions.count("access_key.create") == 5
    assert actions.count("access_key.delete") == 1
    assert all(secret not in audit.text for _, secret in made)
    async with api.app[STORE].reader() as q:
        rows = await q.conn.fetchall("SELECT secret_sealed FROM access_keys")
    assert all(secret not in str(rows) for _, secret in made)


async def test_only_an_owner_manages_access_keys(api: Api) -> None:
    await shop(api)
    _, publisher = await api.token_for("write:shop")
    before = await snapshot(api)
    for method in ("GET", "POST"):
        answer = await api.call(method, "/api/v1/apps/shop/access-keys", token=publisher)
        assert answer.status == 403
    assert await snapshot(api) == before


async def test_a_secrets_rotation_reseals_the_access_keys(api: Api) -> None:
    await shop(api)
    _, secret = await new_key_secret(api)
    store, keyring = api.app[STORE], api.app[PUBLISHED].keyring
    new = new_key()
    done = await rotate(store, keyring, new)
    assert done.access_keys == 1
    async with store.reader() as q:
        [key] = await q.access_keys("shop")
    assert sealed_key_id(key.secret_sealed) == done.new_key_id
    rotated = Keyring()
    rotated.install(new)
    assert rotated.open("shop/@access-key", key.secret_sealed) == secret
    again = await rotate(store, rotated, new)
    assert again.access_keys == 0


async def test_the_meta_server_names_the_public_url_when_set(
    aiohttp_client: AiohttpClient, tmp_path: Path, sqlite_url: str
) -> None:
    config = make_config(sqlite_url, tmp_path)
    public = dataclasses.replace(
        config, server=dataclasses.replace(config.server, public_url="https://config.example.com")
    )
    client = await aiohttp_client(create_app(public))
    async with client.get("/services/config?appId=shop") as response:
        body = await response.json()
    assert [s["homepageUrl"] for s in body] == ["https://config.example.com/"]


async def test_a_key_another_replica_made_signs_within_a_second(api: Api) -> None:
    await shop(api)
    path = "/configs/shop/prod/application"
    secret = "0123456789abcdef0123456789abcdef"
    refused = await api.call("GET", path, token=None, headers=signed(path, secret))
    assert refused.status == 401
    # As another replica writes it: into the store only, this replica's held keys untouched.
    sealed = api.app[PUBLISHED].keyring.seal("shop/@access-key", secret)
    async with api.app[STORE].transaction() as q:
        app_id = await q.app_id("shop")
        assert app_id is not None
        await q.insert_access_key(app_id, sealed, "2026-01-01T00:00:00.000000Z", "user:admin")
    for _ in range(100):  # 10 s at most
        answer = await api.call("GET", path, token=None, headers=signed(path, secret))
        if answer.status == 200:
            break
        await asyncio.sleep(0.1)
    assert answer.status == 200


async def test_one_publish_answers_every_waiting_long_poll_at_once(
    aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    api = await start(aiohttp_client, monkeypatch, tmp_path, sqlite_url, hold=60)
    version = await shop(api)
    _, read = await api.token_for("read:shop")
    entries = quote(json.dumps([{"namespaceName": "application", "notificationId": version}]))
    path = f"/notifications/v2?appId=shop&cluster=prod&notifications={entries}"
    polls = [asyncio.ensure_future(api.call("GET", path, token=read)) for _ in range(50)]
    for _ in range(2000):  # until all wait (20 s at most)
        if api.app[PUBLISHED].waiting == len(polls):
            break
        await asyncio.sleep(0.01)
    assert api.app[PUBLISHED].waiting == len(polls)
    await api.set_items("shop", "prod", {"pool": "6"})
    assert (await api.publish("shop", "prod")).status == 201
    answers = await asyncio.wait_for(asyncio.gather(*polls), 30)
    assert {(a.status, a.body[0]["notificationId"]) for a in answers} == {(200, version + 1)}


async def test_the_keys_of_a_deleted_app_sign_nothing_for_one_made_again(api: Api) -> None:
    await shop(api)
    _, secret = await new_key_secret(api)
    path = "/configs/shop/prod/application"
    assert (await api.call("GET", path, token=None, headers=signed(path, secret))).status == 200
    assert (await api.call("DELETE", "/api/v1/apps/shop")).status == 204
    await shop(api)
    again = await api.call("GET", path, token=None, headers=signed(path, secret))
    assert again.status == 401
