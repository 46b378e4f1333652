"""The Nacos v1 config API over real HTTP, on SQLite and MariaDB: reads, the listener long
poll, sign-in and credentials, and every bad input answered as Nacos does, nothing changed."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import unquote_plus

import orjson
import pytest

from devservices import MariaDBServer
from server.domain.canonical import checksum
from server.published import PublishedConfigs
from server.records import Release, utc_now
from tests.api.helpers import ADMIN_PASSWORD, Answer, Api, AppFactory
from tests.api.test_instances import until_listed
from tests.api.test_users import PASSWORD, add_user

CONFIGS = "/nacos/v1/cs/configs"
LISTENER = f"{CONFIGS}/listener"
LOGIN = "/nacos/v1/auth/login"
ENV = "/api/v1/apps/shop/envs/prod"
W, L = "\x02", "\x01"
NOT_FOUND = (404, "config data not exist")
WITHIN = 5.0


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


async def nacos(
    api: Api,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One Nacos call carrying no credential but what it is given."""
    response = await api.client.request(
        method, path, params=params, data=form, headers=headers or {}
    )
    return Answer(response.status, None, response.headers, await response.text())


async def get(
    api: Api,
    data_id: str = "shop",
    group: str = "prod",
    headers: dict[str, str] | None = None,
    **params: str,
) -> Answer:
    query = {"dataId": data_id, "group": group, **params}
    return await nacos(api, "GET", CONFIGS, params=query, headers=headers)


async def listen(
    api: Api,
    entries: str,
    timeout_ms: int | None = None,
    headers: dict[str, str] | None = None,
    **params: str,
) -> Answer:
    sent = dict(headers or {})
    if timeout_ms is not None:
        sent["Long-Pulling-Timeout"] = str(timeout_ms)
    form = {"Listening-Configs": entries}
    return await nacos(api, "POST", LISTENER, params=params, form=form, headers=sent)


def entry(data_id: str, group: str, held: str, tenant: str | None = None) -> str:
    fields = [data_id, group, held] + ([tenant] if tenant is not None else [])
    return W.join(fields) + L


def changed(answer: Answer) -> list[list[str]]:
    """The entries a listener answer names, decoded as the Python client does."""
    assert answer.status == 200, answer.text
    lines = unquote_plus(answer.text.strip()).split(L)
    return [line.split(W) for line in lines if line]


async def shop(api: Api, items: dict[str, str] | None = None) -> int:
    """App shop, env prod, published with items; the version."""
    await api.app_with_env()
    return await publish(api, items or {"a": "1", "b": "two"})


async def publish(api: Api, items: dict[str, str]) -> int:
    await api.set_items("shop", "prod", items)
    answer = await api.publish("shop", "prod")
    assert answer.status == 201, answer.text
    return int(answer.body["version"])


async def read_token(api: Api) -> str:
    return (await api.token_for("read:shop"))[1]


# reads


async def test_each_data_id_reads_the_env_in_its_format_with_its_md5(api: Api) -> None:
    await shop(api)
    token = await read_token(api)
    cases = {
        "shop": ("a=1\nb=two\n", "properties"),
        "shop.properties": ("a=1\nb=two\n", "properties"),
        "shop.yaml": ('a: "1"\nb: "two"\n', "yaml"),
        "shop.yml": ('a: "1"\nb: "two"\n', "yaml"),
        "shop.json": ('{"a":"1","b":"two"}', "json"),
        "shop.env": ("A='1'\nB='two'\n", "text"),
    }
    for data_id, (body, config_type) in cases.items():
        answer = await get(api, data_id, accessToken=token)
        assert (answer.status, answer.text) == (200, body), data_id
        assert answer.headers["Content-MD5"] == md5(body)
        assert answer.headers["Config-Type"] == config_type


async def test_default_group_is_env_default_and_public_is_the_only_tenant(api: Api) -> None:
    await api.app_with_env("shop", "default")
    await api.set_items("shop", "default", {"k": "v"})
    assert (await api.publish("shop", "default")).status == 201
    token = await read_token(api)
    for tenant in ("", "public"):
        answer = await get(api, "shop", "DEFAULT_GROUP", tenant=tenant, accessToken=token)
        assert (answer.status, answer.text) == (200, "k=v\n")
    assert (await get(api, "shop", "", accessToken=token)).text == "k=v\n"
    before = await api.snapshot()
    for data_id, group, tenant in [
        ("shop", "DEFAULT_GROUP", "dev-team"),
        ("shop", "prod", ""),
        ("Shop", "default", ""),
        ("shop", "Default", ""),
        ("shop.xml", "default", ""),
        ("shop/../x", "default", ""),
        ("shop\x00", "default", ""),
    ]:
        answer = await get(api, data_id, group, tenant=tenant, accessToken=api.token)
        assert (answer.status, answer.text) == NOT_FOUND, data_id
    assert (await get(api, "", accessToken=token)).status == 400
    assert await api.snapshot() == before


async def test_an_app_named_like_a_file_is_read_as_its_properties(api: Api) -> None:
    await api.app_with_env("shop.json", "prod")
    await api.set_items("shop.json", "prod", {"k": "v"})
    assert (await api.publish("shop.json", "prod")).status == 201
    bearer = {"Authorization": f"Bearer {api.token}"}
    assert (await get(api, "shop.json.properties", headers=bearer)).text == "k=v\n"
    assert (await get(api, "shop.json", headers=bearer)).status == 404  # app shop, as json


# credentials


async def test_a_read_token_reads_as_access_token_bearer_or_token_password(api: Api) -> None:
    await shop(api)
    token = await read_token(api)
    ways: list[tuple[dict[str, str], dict[str, str]]] = [
        ({"accessToken": token}, {}),
        ({}, {"Authorization": f"Bearer {token}"}),
        ({}, {"accessToken": token}),
        ({"username": "token", "password": token}, {}),
    ]
    for params, headers in ways:
        answer = await get(api, headers=headers, **params)
        assert (answer.status, answer.text) == (200, "a=1\nb=two\n"), (params, headers)


async def test_a_wrong_or_missing_credential_is_a_403_in_plain_text(api: Api) -> None:
    await shop(api)
    other = (await api.token_for("read:other"))[1]
    before = await api.snapshot()
    for params, headers in [
        ({}, {}),
        ({"accessToken": "cc_nope"}, {}),
        ({"accessToken": other}, {}),
        ({}, {"Authorization": f"Basic {other}"}),
        ({}, {"Authorization": "Bearer \udcff"[:7]}),
        ({"username": "token", "password": "cc_nope"}, {}),
    ]:
        answer = await get(api, headers=headers, **params)
        assert answer.status == 403, (params, answer.text)
        assert answer.headers["Content-Type"].startswith("text/plain")
        assert "error" not in answer.text
        assert "Traceback" not in answer.text
    assert await api.snapshot() == before


async def test_a_user_signs_in_with_nacos_and_reads_until_the_session_ends(api: Api) -> None:
    await shop(api, {"a": "1", "secret.k": "s"})
    await add_user(api, "alice", {"shop": "viewer"})
    for path in (LOGIN, "/nacos/v1/auth/users/login"):
        answer = await nacos(api, "POST", path, params={"username": "alice", "password": PASSWORD})
        assert answer.status == 200, answer.text
    signed_in = await api.client.post(LOGIN, data={"username": "alice", "password": PASSWORD})
    body = await signed_in.json()
    assert set(body) == {"accessToken", "tokenTtl", "globalAdmin", "username"}
    assert (body["tokenTtl"], body["globalAdmin"], body["username"]) == (12 * 3600, False, "alice")
    session = body["accessToken"]
    assert (await get(api, accessToken=session)).status == 200
    assert (await get(api, username="alice", password=PASSWORD)).status == 200
    form = await nacos(
        api,
        "POST",
        LISTENER,
        form={
            "Listening-Configs": entry("shop", "prod", ""),
            "username": "alice",
            "password": PASSWORD,
        },
    )
    assert changed(form) == [["shop", "prod"]]

    ended = await api.call("POST", "/api/v1/logout", token=session)
    assert ended.status == 204, ended.text
    assert (await get(api, accessToken=session)).status == 403


async def test_a_token_signs_in_as_itself_and_a_wrong_sign_in_is_a_403(api: Api) -> None:
    await shop(api)
    token = await read_token(api)
    answer = await nacos(api, "POST", LOGIN, params={"username": "token", "password": token})
    assert answer.status == 200, answer.text
    assert orjson.loads(answer.text)["accessToken"] == token
    before = await api.snapshot()
    for params in ({"username": "token", "password": "cc_wrong"}, {"username": "token"}, {}):
        refused = await nacos(api, "POST", LOGIN, params=params)
        assert refused.status in (400, 403), refused.text
        assert refused.headers["Content-Type"].startswith("text/plain")
    big = await nacos(api, "POST", LOGIN, form={"username": "x" * 5000, "password": "y"})
    assert big.status == 413
    for name, password in (("x" * 65, "y"), ("admin", "y" * 1025)):
        long = await nacos(api, "POST", LOGIN, params={"username": name, "password": password})
        assert long.status == 400, long.text
        assert (await get(api, username=name, password=password)).status == 400
    assert await api.snapshot() == before
    wrong = await nacos(api, "POST", LOGIN, params={"username": "admin", "password": "nope"})
    assert (wrong.status, wrong.text) == (403, "wrong user name or password")


async def test_sign_ins_and_password_calls_are_throttled_like_the_api_login(api: Api) -> None:
    await shop(api)
    await add_user(api, "alice", {"shop": "viewer"})
    wrong = {"username": "alice", "password": "nope-nope"}
    for _ in range(3):
        assert (await nacos(api, "POST", LOGIN, params=wrong)).status == 403
    for _ in range(2):
        assert (await get(api, username="alice", password="nope-nope")).status == 403
    locked = await get(api, username="alice", password=PASSWORD)
    assert locked.status == 403
    assert "too many failed sign-ins" in locked.text
    assert 1 <= int(locked.headers["Retry-After"]) <= 30
    again = await nacos(api, "POST", LOGIN, params={"username": "alice", "password": PASSWORD})
    assert again.status == 403
    audit = await api.call("GET", "/api/v1/audit?limit=100")
    actions = [e["action"] for e in audit.body["entries"]]
    assert (actions.count("login.failed"), actions.count("login.locked")) == (5, 1)


async def test_a_success_on_a_call_starts_the_count_again(api: Api) -> None:
    await shop(api)
    await add_user(api, "alice", {"shop": "viewer"})
    for _ in range(2):
        for _ in range(4):
            assert (await get(api, username="alice", password="nope-nope")).status == 403
        assert (await get(api, username="alice", password=PASSWORD)).status == 200


async def test_anonymous_read_gives_everything_but_the_secrets(api: Api) -> None:
    await api.app_with_env()
    secret = await api.call("PUT", f"{ENV}/items/db.password", {"value": "hunter2", "secret": True})
    assert secret.status in (200, 201), secret.text
    await publish(api, {"db.host": "db1"})
    assert (await get(api)).status == 403
    assert (await api.call("PATCH", "/api/v1/apps/shop", {"anonymous_read": True})).status == 200
    anonymous = await get(api, "shop.json")
    assert (anonymous.status, anonymous.text) == (200, '{"db.host":"db1"}')
    assert anonymous.headers["Content-MD5"] == md5('{"db.host":"db1"}')
    token = await read_token(api)
    clear = await get(api, "shop.json", accessToken=token)
    assert clear.text == '{"db.host":"db1","db.password":"hunter2"}'
    # A listener holding the anonymous file is told nothing changed; one holding the clear
    # file, reading anonymously, is told to read again.
    held = entry("shop.json", "prod", md5(anonymous.text))
    assert (
        changed(await listen(api, held, headers={"Long-Pulling-Timeout-No-Hangup": "true"})) == []
    )
    stale = entry("shop.json", "prod", md5(clear.text))
    assert changed(await listen(api, stale, 30000)) == [["shop.json", "prod"]]


async def test_publishing_or_deleting_through_nacos_is_refused(api: Api) -> None:
    await shop(api)
    before = await api.snapshot()
    form = {"dataId": "shop", "group": "prod", "content": "a=9"}
    for method in ("POST", "DELETE"):
        answer = await nacos(api, method, CONFIGS, params={"accessToken": api.token}, form=form)
        assert answer.status == 403
        assert "not supported" in answer.text
    assert await api.snapshot() == before
    assert (await get(api, accessToken=api.token)).text == "a=1\nb=two\n"


# the listener


async def test_a_listener_is_answered_at_once_when_it_holds_something_else(api: Api) -> None:
    await shop(api)
    token = await read_token(api)
    body = "a=1\nb=two\n"
    entries = (
        entry("shop", "prod", "")
        + entry("shop.yaml", "prod", "0" * 32, "public")
        + entry("shop.properties", "prod", md5(body))
        + entry("nosuch", "prod", "")
        + entry("gone", "prod", md5("x"))
        + entry("shop", "DEFAULT_GROUP", "")
    )
    answer = await listen(api, entries, 30000, accessToken=api.token)
    assert changed(answer) == [["shop", "prod"], ["shop.yaml", "prod", "public"], ["gone", "prod"]]
    assert answer.text.endswith("\n")
    assert answer.text.count("\n") == 1
    assert "%02" in answer.text
    assert "%01" in answer.text
    by_token = await listen(api, entry("shop", "prod", ""), 30000, accessToken=token)
    assert changed(by_token) == [["shop", "prod"]]


async def test_a_held_listener_wakes_on_a_publish_and_names_what_changed(api: Api) -> None:
    await shop(api)
    token = await read_token(api)
    held = (await get(api, "shop.yaml", accessToken=token)).text
    unchanged = entry("shop.yaml", "prod", md5(held))
    waiting = asyncio.create_task(listen(api, unchanged, 30000, accessToken=token))
    await until_listed(api, lambda b: bool(b["instances"]), "the listener")
    assert not waiting.done()
    await publish(api, {"a": "2"})
    answer = await asyncio.wait_for(waiting, WITHIN)
    assert changed(answer) == [["shop.yaml", "prod"]]
    assert (await get(api, "shop.yaml", accessToken=token)).text == 'a: "2"\nb: "two"\n'


async def test_no_hangup_or_no_timeout_answers_at_once_with_nothing(api: Api) -> None:
    await shop(api)
    held = entry("shop", "prod", md5("a=1\nb=two\n"))
    no_hangup = {"Long-Pulling-Timeout-No-Hangup": "true"}
    for answer in (
        await listen(api, held, 30000, no_hangup, accessToken=api.token),
        await listen(api, held, None, accessToken=api.token),
    ):
        assert (answer.status, answer.text) == (200, "")


async def test_a_listener_with_nothing_new_is_answered_empty_when_its_time_is_up(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url)
    await shop(api)
    # Nacos holds no listener under 10 s: 10.5 s less 500 ms.
    answer = await listen(
        api, entry("shop", "prod", md5("a=1\nb=two\n")), 10500, accessToken=api.token
    )
    assert (answer.status, answer.text) == (200, "")


async def test_ten_thousand_entries_are_listened_to_and_one_more_is_refused(api: Api) -> None:
    await shop(api)
    many = "".join(entry(f"app{i}", "prod", "") for i in range(9_999)) + entry("shop", "prod", "")
    answer = await listen(api, many, 30000, accessToken=api.token)
    assert changed(answer) == [["shop", "prod"]]
    before = await api.snapshot()
    too_many = many + entry("one-more", "prod", "")
    refused = await listen(api, too_many, 30000, accessToken=api.token)
    assert (refused.status, refused.text) == (
        400,
        "at most 10000 configs can be listened to at once",
    )
    assert await api.snapshot() == before


@pytest.mark.parametrize(
    "entries",
    [
        "",
        "shop\x02prod\x02",
        "shop\x02prod\x01",
        "shop\x01",
        "\x02prod\x02\x01",
        "shop\x02\x02\x01",
        "shop\x02prod\x02m\x02public\x02x\x01",
        "shop\x02prod\x02\x01junk",
    ],
)
async def test_a_malformed_listener_list_is_a_400_that_changes_nothing(
    api: Api, entries: str
) -> None:
    await shop(api)
    before = await api.snapshot()
    answer = await listen(api, entries, 30000, accessToken=api.token)
    assert answer.status == 400, answer.text
    assert "Listening-Configs" in answer.text
    assert await api.snapshot() == before


async def test_bad_listener_requests_are_refused_in_plain_text(api: Api) -> None:
    await shop(api)
    other = (await api.token_for("read:other"))[1]
    before = await api.snapshot()
    held = entry("shop", "prod", "")
    for timeout in ("soon", "-1", "1e4", "9" * 20):
        answer = await nacos(
            api,
            "POST",
            LISTENER,
            params={"accessToken": api.token},
            form={"Listening-Configs": held},
            headers={"Long-Pulling-Timeout": timeout},
        )
        assert (answer.status, answer.text) == (
            400,
            "Long-Pulling-Timeout must be a number of milliseconds",
        )
    response = await api.client.post(
        LISTENER,
        data=b"Listening-Configs=x",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=nope"},
    )
    assert response.status == 400
    forbidden = await listen(api, held, 30000, accessToken=other)
    assert forbidden.status == 403
    assert await api.snapshot() == before


async def test_a_deleted_env_wakes_its_listeners(api: Api) -> None:
    await api.call("POST", "/api/v1/apps", {"name": "shop", "envs": ["prod", "dev"]})
    await publish(api, {"a": "1"})
    waiting = asyncio.create_task(
        listen(api, entry("shop", "prod", md5("a=1\n")), 30000, accessToken=api.token)
    )
    await until_listed(api, lambda b: bool(b["instances"]), "the listener")
    assert (await api.call("DELETE", ENV)).status == 204
    assert changed(await asyncio.wait_for(waiting, WITHIN)) == [["shop", "prod"]]


# instances and gray releases


async def test_every_nacos_reader_is_an_instance_by_address_or_its_own_id(api: Api) -> None:
    await shop(api)
    token = await read_token(api)
    await get(api, accessToken=token)
    body = await until_listed(api, lambda b: bool(b["instances"]), "the reader")
    [one] = body["instances"]
    assert (one["instance"], one["transport"], one["address"]) == (
        "127.0.0.1",
        "nacos",
        "127.0.0.1",
    )
    await get(
        api, headers={"X-Config-Instance": "pod-1", "Vipserver-Tag": "canary"}, accessToken=token
    )
    body = await until_listed(api, lambda b: len(b["instances"]) == 2, "pod-1")
    pod = next(i for i in body["instances"] if i["instance"] == "pod-1")
    assert pod["labels"] == {"nacos.tag": "canary"}
    for headers in (
        {"X-Config-Instance": "bad id!"},
        {"X-Config-Instance": "p2", "Vipserver-Tag": "a,b=c"},
    ):
        assert (await get(api, headers=headers, accessToken=token)).status == 200
    await asyncio.sleep(0.05)
    assert len((await api.call("GET", f"{ENV}/instances")).body["instances"]) == 2


async def test_a_gray_release_reaches_the_readers_its_tag_matches(api: Api) -> None:
    await shop(api, {"k": "blue"})
    token = await read_token(api)
    canary = {"X-Config-Instance": "pod-1", "Vipserver-Tag": "canary"}
    stable = {"X-Config-Instance": "pod-2", "Vipserver-Tag": "stable"}
    blue = md5("k=blue\n")
    waiting = asyncio.create_task(
        listen(api, entry("shop", "prod", blue), 30000, canary, accessToken=token)
    )
    await until_listed(api, lambda b: bool(b["instances"]), "the canary listener")
    await api.set_items("shop", "prod", {"k": "green"})
    draft = (await api.call("GET", ENV)).body["draft_revision"]
    started = await api.call(
        "POST",
        f"{ENV}/gray",
        {"rule": {"labels": {"nacos.tag": "canary"}}, "draft_revision": draft},
    )
    assert started.status == 201, started.text
    assert changed(await asyncio.wait_for(waiting, WITHIN)) == [["shop", "prod"]]
    assert (await get(api, headers=canary, accessToken=token)).text == "k=green\n"
    assert (await get(api, headers=stable, accessToken=token)).text == "k=blue\n"
    assert (await get(api, accessToken=token)).text == "k=blue\n"  # its address: no tag
    no_hangup = {"Long-Pulling-Timeout-No-Hangup": "true"}
    assert (
        changed(
            await listen(
                api, entry("shop", "prod", blue), 30000, {**stable, **no_hangup}, accessToken=token
            )
        )
        == []
    )
    green = entry("shop", "prod", md5("k=green\n"))
    assert (
        changed(await listen(api, green, 30000, {**canary, **no_hangup}, accessToken=token)) == []
    )


# the wait on many envs, in memory


async def test_a_wait_on_many_envs_wakes_on_any_and_leaves_nothing_behind() -> None:
    published = PublishedConfigs()
    made_up = [(f"app{i}", "prod") for i in range(1_000)]
    assert not await published.wait_change(made_up, 0.01)
    waiting = asyncio.create_task(published.wait_change([*made_up, ("shop", "prod")], 5.0))
    for _ in range(100):  # the task registers its wait on its first turn
        if published.waiting:
            break
        await asyncio.sleep(0)
    assert published.waiting == 1
    values = {"k": "v"}
    published.apply(Release("shop", "prod", 1, checksum(values), "t", "", utc_now(), values))
    assert await asyncio.wait_for(waiting, WITHIN)
    assert published.waiting == 0
    assert published._changed == {}  # what the waits left behind: nothing


async def test_an_oversized_listener_body_is_a_413_in_plain_text(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url, max_body_bytes=64 * 1024)
    await shop(api)
    big = "".join(entry(f"app{i}", "prod", "") for i in range(10_000))
    answer = await listen(api, big, 30000, accessToken=api.token)
    assert (answer.status, answer.text) == (413, "the request body is too large")


@pytest.mark.mariadb
async def test_a_store_outage_is_a_503_in_plain_text_and_reads_go_on_from_memory(
    own_mariadb: MariaDBServer, api_factory: AppFactory
) -> None:
    api = await api_factory(own_mariadb.create_database("outage"))
    await shop(api)
    unseen = await read_token(api)
    assert (await get(api, accessToken=api.token)).status == 200
    await asyncio.to_thread(own_mariadb.stop)

    served = await get(api, accessToken=api.token)
    assert (served.status, served.text) == (200, "a=1\nb=two\n")
    held = entry("shop", "prod", md5(served.text))
    no_hangup = {"Long-Pulling-Timeout-No-Hangup": "true"}
    assert changed(await listen(api, held, 30000, no_hangup, accessToken=api.token)) == []
    login = {"username": "admin", "password": ADMIN_PASSWORD}
    for answer in (
        await get(api, accessToken=unseen),
        await get(api, username="admin", password=ADMIN_PASSWORD),
        await nacos(api, "POST", LOGIN, params=login),
    ):
        assert answer.status == 503, answer.text
        assert answer.headers["Content-Type"].startswith("text/plain")
    await asyncio.to_thread(own_mariadb.start)
    assert (await get(api, accessToken=unseen)).status == 200
