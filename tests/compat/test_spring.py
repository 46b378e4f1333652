"""Spring Cloud Config under /spring, on SQLite and MariaDB: Environment documents, the v2
media type, comma lists, labels, flat files, credentials, anonymous read, gray releases,
instances; every bad input answered as Spring would, nothing changed, never a 500.
What the real clients do is tests/compat/test_spring_clients.py."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from devservices import MariaDBServer
from tests.api.helpers import Api, AppFactory

SPRING_V2 = "application/vnd.spring-cloud.config-server.v2+json"
WITHIN = 5.0


def basic(secret: str, user: str = "any-user") -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def raw_get(api: Api, path: str, headers: dict[str, str] | None = None) -> Any:
    """GET exactly this request target (no client normalising it): (status, headers, body)."""
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    async with asyncio.timeout(WITHIN):
        raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


async def get(
    api: Api, path: str, secret: str | None = "", headers: dict[str, str] | None = None
) -> Any:
    """GET a Spring path with the admin's token as Basic password (or secret, or none)."""
    all_headers = dict(headers or {})
    use = api.token if secret == "" else secret
    if use is not None:
        all_headers.update(basic(use))
    return await api.call("GET", path, token=None, headers=all_headers)


async def publish(api: Api, app: str, env: str, items: dict[str, str]) -> int:
    await api.set_items(app, env, items)
    answer = await api.publish(app, env)
    assert answer.status == 201, answer.text
    return int(answer.body["version"])


async def shop(api: Api) -> None:
    answer = await api.call("POST", "/api/v1/apps", {"name": "shop", "envs": ["dev", "prod"]})
    assert answer.status == 201, answer.text


async def put_secret(api: Api, app: str, env: str, key: str, value: str) -> None:
    answer = await api.call(
        "PUT", f"/api/v1/apps/{app}/envs/{env}/items/{key}", {"value": value, "secret": True}
    )
    assert answer.status in (200, 201), answer.text


def sources(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(s["name"], s["source"]) for s in body["propertySources"]]


# the Environment document


async def test_an_env_reads_as_an_environment_with_one_property_source(api: Api) -> None:
    await shop(api)
    version = await publish(api, "shop", "prod", {"db.host": "db1", "pool.size": "5"})
    answer = await get(api, "/spring/shop/prod")
    assert answer.status == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.body == {
        "name": "shop",
        "profiles": ["prod"],
        "label": None,
        "version": str(version),
        "state": None,
        "propertySources": [
            {
                "name": f"configcenter:shop/prod@v{version}",
                "source": {"db.host": "db1", "pool.size": "5"},
            }
        ],
    }
    for label in ("main", "master"):
        labelled = await get(api, f"/spring/shop/prod/{label}")
        assert labelled.status == 200, labelled.text
        assert labelled.body["label"] == label
        assert labelled.body["propertySources"] == answer.body["propertySources"]


async def test_the_v2_media_type_gives_each_value_its_origin(api: Api) -> None:
    await shop(api)
    version = await publish(api, "shop", "prod", {"a": "1"})
    answer = await get(api, "/spring/shop/prod", headers={"Accept": SPRING_V2})
    assert answer.status == 200, answer.text
    assert answer.headers["Content-Type"].startswith(SPRING_V2)
    body = orjson.loads(answer.text)
    name = f"configcenter:shop/prod@v{version}"
    assert sources(body) == [(name, {"a": {"value": "1", "origin": name}})]
    plain = await get(api, "/spring/shop/prod", headers={"Accept": "application/json"})
    assert sources(plain.body) == [(name, {"a": "1"})]


async def test_comma_lists_read_every_pair_later_profile_and_later_application_first(
    api: Api,
) -> None:
    await shop(api)
    assert (await api.call("POST", "/api/v1/apps", {"name": "web", "envs": ["prod"]})).status == 201
    dev = await publish(api, "shop", "dev", {"k": "shop-dev", "only.dev": "1"})
    prod = await publish(api, "shop", "prod", {"k": "shop-prod"})
    web = await publish(api, "web", "prod", {"k": "web-prod"})
    answer = await get(api, "/spring/shop,web/dev,prod")
    assert answer.status == 200, answer.text
    assert answer.body["profiles"] == ["dev", "prod"]
    assert [name for name, _ in sources(answer.body)] == [
        f"configcenter:web/prod@v{web}",
        f"configcenter:shop/prod@v{prod}",
        f"configcenter:shop/dev@v{dev}",
    ]  # web/dev does not exist: it contributes nothing, as in Spring
    assert answer.body["version"] == f"{web},{prod},{dev}"
    flat = await get(api, "/spring/shop-dev,prod.json")
    assert flat.body == {"k": "shop-prod", "only.dev": "1"}


async def test_what_does_not_exist_is_an_empty_environment_as_in_spring(api: Api) -> None:
    await shop(api)  # shop/prod never published, shop/qa never created
    for path in ("/spring/shop/prod", "/spring/shop/qa", "/spring/shop/prod,qa"):
        answer = await get(api, path)
        assert answer.status == 200, answer.text
        assert (answer.body["propertySources"], answer.body["version"]) == ([], None)


async def test_the_version_changes_with_every_release(api: Api) -> None:
    await shop(api)
    seen = set()
    for value in ("1", "2", "1"):
        await publish(api, "shop", "prod", {"k": value})
        answer = await get(api, "/spring/shop/prod")
        seen.add(answer.body["version"])
    await publish(api, "shop", "dev", {"k": "d"})
    seen.add((await get(api, "/spring/shop/dev,prod")).body["version"])
    rollback = await api.call("POST", "/api/v1/apps/shop/envs/prod/releases/2/rollback", {})
    assert rollback.status == 201, rollback.text
    seen.add((await get(api, "/spring/shop/dev,prod")).body["version"])
    assert len(seen) == 5


# labels


async def test_a_version_label_reads_that_old_release(api: Api) -> None:
    await shop(api)
    first = await publish(api, "shop", "prod", {"k": "old"})
    second = await publish(api, "shop", "prod", {"k": "new"})
    for _ in range(2):  # the second read is from memory: the same answer
        old = await get(api, f"/spring/shop/prod/{first}")
        assert old.status == 200, old.text
        assert (old.body["label"], old.body["version"]) == (str(first), str(first))
        assert sources(old.body) == [(f"configcenter:shop/prod@v{first}", {"k": "old"})]
    current = await get(api, f"/spring/shop/prod/{second}")
    assert sources(current.body) == [(f"configcenter:shop/prod@v{second}", {"k": "new"})]
    flat = await get(api, f"/spring/{first}/shop-prod.properties")
    assert (flat.status, flat.text) == (200, "k=old\n")


async def test_an_old_label_of_a_deleted_env_is_gone_with_it(api: Api) -> None:
    await shop(api)
    first = await publish(api, "shop", "dev", {"k": "before"})
    await publish(api, "shop", "dev", {"k": "before-2"})
    assert sources((await get(api, f"/spring/shop/dev/{first}")).body)[0][1] == {"k": "before"}
    assert (await api.call("DELETE", "/api/v1/apps/shop/envs/dev")).status == 204
    assert (await get(api, f"/spring/shop/dev/{first}")).status == 404
    created = await api.call("POST", "/api/v1/apps/shop/envs", {"name": "dev"})
    assert created.status == 201, created.text
    again = await publish(api, "shop", "dev", {"k": "after"})
    await publish(api, "shop", "dev", {"k": "after-2"})
    assert (await get(api, f"/spring/shop/dev/{first}")).status == 404
    assert sources((await get(api, f"/spring/shop/dev/{again}")).body)[0][1] == {"k": "after"}


@pytest.mark.parametrize(
    "label", ["9", "0", "abc", "main(_)x", "(_)1", "1(_)..(_)2", "v1", "-1", "1" * 19, "\uff11"]
)
async def test_a_label_that_names_no_release_is_a_404(api: Api, label: str) -> None:
    await shop(api)
    await publish(api, "shop", "prod", {"k": "v"})
    before = await api.snapshot()
    answer = await get(api, f"/spring/shop/prod/{label}")
    assert answer.status == 404, answer.text
    assert (answer.body["status"], answer.body["error"]) == (404, "Not Found")
    assert "propertySources" not in answer.body
    assert (await get(api, f"/spring/{label}/shop-prod.yml")).status == 404
    assert await api.snapshot() == before


# traversal and names out of pattern


@pytest.mark.parametrize(
    "path",
    [
        "/spring/..%2F..%2Fetc%2Fpasswd/prod",
        "/spring/x/../shop/prod",
        "/spring/./shop/prod",
        "/spring/shop/./prod",
        "/spring/shop//prod",
        "/spring/shop/prod/..",
        "/spring/shop/dev/../prod",
        "/spring/x/../shop-prod.yml",
        "/spring/%2e%2e/prod",
        "/spring/%2E%2E%2Fshop/prod",
        "/spring/..%252Fshop/prod",
        "/spring/shop/..%2Fprod",
        "/spring/shop/prod%2F..%2Fdev",
        "/spring/shop/%2e%2e",
        "/spring/shop%5C..%5Cweb/prod",
        "/spring/shop\\..\\web/prod",
        "/spring/shop%00/prod",
        "/spring/shop/prod%00",
        "/spring/shop/prod/..%2F1",
        "/spring/shop/prod/%2e%2e%2F%2e%2e%2Fetc%2Fpasswd",
        "/spring/shop/prod/..%5C1",
        "/spring/shop/prod/1%00",
        "/spring/..%2Fshop-prod.yml",
        "/spring/%2e%2e/shop-prod.properties",
        "/spring/..%2F1/shop-prod.json",
        "/spring/shop-..%2Fprod.properties",
        "/spring/shop-prod%00.yml",
        "/spring/Shop/prod",
        "/spring/shop/PROD",
        "/spring/shop,/prod",
        "/spring/shop/prod,",
        "/spring/shop/,",
        "/spring/shop%2Cweb%2F..%2F/prod",
        "/spring/" + "a" * 65 + "/prod",
        "/spring/" + ",".join(f"a{i}" for i in range(17)) + "/prod",
        "/spring/shop/%C3%A9",
        "/spring/shop/%FF",
    ],
)
async def test_traversal_and_names_out_of_pattern_are_refused_and_read_nothing(
    api: Api, path: str
) -> None:
    await shop(api)
    await publish(api, "shop", "prod", {"k": "v"})
    await publish(api, "shop", "dev", {"k": "v"})
    before = await api.snapshot()
    status, _, body = await raw_get(api, path, basic(api.token))
    assert status in (400, 404), body
    assert b'"k"' not in body
    assert b"Traceback" not in body
    assert await api.snapshot() == before


async def test_an_app_name_with_dashes_reads_as_a_flat_file_split_at_the_last_dash(
    api: Api,
) -> None:
    answer = await api.call("POST", "/api/v1/apps", {"name": "my-shop", "envs": ["prod"]})
    assert answer.status == 201, answer.text
    await publish(api, "my-shop", "prod", {"k": "v"})
    assert (await get(api, "/spring/my-shop-prod.properties")).text == "k=v\n"
    assert (await get(api, "/spring/my-shop/prod")).body["name"] == "my-shop"


# flat files


async def test_flat_files_in_every_format_leave_secrets_out_for_anonymous_readers(
    api: Api,
) -> None:
    await shop(api)
    await api.set_items("shop", "prod", {"db.host": "db1", "a:b": "x=y"})
    await put_secret(api, "shop", "prod", "db.password", "s3cret")
    assert (await api.publish("shop", "prod")).status == 201
    props = await get(api, "/spring/shop-prod.properties")
    assert props.status == 200, props.text
    assert props.headers["Content-Type"].startswith("text/plain")
    assert props.text == "a\\:b=x\\=y\ndb.host=db1\ndb.password=s3cret\n"
    for ext in ("yml", "yaml"):
        yaml = await get(api, f"/spring/shop-prod.{ext}")
        assert yaml.text == '"a:b": "x=y"\ndb.host: "db1"\ndb.password: "s3cret"\n'
    flat = await get(api, "/spring/shop-prod.json")
    assert flat.body == {"a:b": "x=y", "db.host": "db1", "db.password": "s3cret"}
    assert (await api.call("PATCH", "/api/v1/apps/shop", {"anonymous_read": True})).status == 200
    anonymous = await get(api, "/spring/shop-prod.properties", secret=None)
    assert anonymous.text == "a\\:b=x\\=y\ndb.host=db1\n"
    assert "db.password" not in (await get(api, "/spring/shop-prod.json", secret=None)).body
    assert "s3cret" not in (await get(api, "/spring/main/shop-prod.yml", secret=None)).text


# credentials


async def test_a_read_token_reads_by_basic_with_any_user_or_by_bearer(api: Api) -> None:
    await shop(api)
    await publish(api, "shop", "prod", {"k": "v"})
    _, token = await api.token_for("read:shop")
    for headers in (basic(token, "x"), basic(token, ""), {"Authorization": f"Bearer {token}"}):
        answer = await api.call("GET", "/spring/shop/prod", token=None, headers=headers)
        assert answer.status == 200, answer.text


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"user:cc_wrong").decode(),
        "Basic " + base64.b64encode(b"user:").decode(),
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"user:\xff\xfe").decode(),
        "Basic",
        "Bearer",
        "Bearer cc_wrong",
        "Digest username=x",
        "Apollo shop:abc",
    ],
)
async def test_a_missing_or_wrong_credential_is_a_401_asking_for_basic(
    api: Api, authorization: str | None
) -> None:
    await shop(api)
    await publish(api, "shop", "prod", {"k": "v"})
    before = await api.snapshot()
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/spring/shop/prod", "/spring/shop/prod/1", "/spring/shop-prod.yml"):
        answer = await api.call("GET", path, token=None, headers=headers)
        assert answer.status == 401, answer.text
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="configcenter"'
        assert answer.body["status"] == 401
        assert answer.body["path"] == path
        assert set(answer.body) == {"timestamp", "status", "error", "message", "path"}
    assert await api.snapshot() == before


async def test_a_token_without_read_rights_on_every_application_is_a_403(api: Api) -> None:
    await shop(api)
    assert (await api.call("POST", "/api/v1/apps", {"name": "web", "envs": ["prod"]})).status == 201
    await publish(api, "shop", "prod", {"k": "v"})
    _, token = await api.token_for("read:web")
    before = await api.snapshot()
    for path in ("/spring/shop/prod", "/spring/web,shop/prod", "/spring/shop-prod.json"):
        answer = await get(api, path, secret=token)
        assert answer.status == 403, answer.text
        assert answer.body["error"] == "Forbidden"
    assert (await get(api, "/spring/web/prod", secret=token)).status == 200
    assert await api.snapshot() == before


async def test_anonymous_read_serves_without_a_credential_and_never_a_secret(api: Api) -> None:
    await shop(api)
    await api.set_items("shop", "prod", {"plain": "p"})
    await put_secret(api, "shop", "prod", "password", "s3cret")
    assert (await api.publish("shop", "prod")).status == 201
    assert (await get(api, "/spring/shop/prod", secret=None)).status == 401
    assert (await api.call("PATCH", "/api/v1/apps/shop", {"anonymous_read": True})).status == 200
    for path in ("/spring/shop/prod", "/spring/shop/prod/1"):
        anonymous = await get(api, path, secret=None)
        assert anonymous.status == 200, anonymous.text
        assert sources(anonymous.body)[0][1] == {"plain": "p"}
    _, token = await api.token_for("read:shop")
    clear = await get(api, "/spring/shop/prod", secret=token)
    assert sources(clear.body)[0][1] == {"password": "s3cret", "plain": "p"}
    assert sources((await get(api, "/spring/shop/prod/1", secret=token)).body)[0][1] == {
        "password": "s3cret",
        "plain": "p",
    }
    # A wrong credential is still wrong, anonymous read or not.
    assert (await get(api, "/spring/shop/prod", secret="cc_wrong")).status == 401


# gray releases and instances


async def start_gray(api: Api, items: dict[str, str], rule: dict[str, Any]) -> int:
    await api.set_items("shop", "prod", items)
    env = await api.call("GET", "/api/v1/apps/shop/envs/prod")
    started = await api.call(
        "POST",
        "/api/v1/apps/shop/envs/prod/gray",
        {"comment": "try", "rule": rule, "draft_revision": env.body["draft_revision"]},
    )
    assert started.status == 201, started.text
    return int(started.body["version"])


async def test_an_identified_reader_the_gray_rule_takes_gets_the_gray_release(
    api: Api,
) -> None:
    await shop(api)
    main = await publish(api, "shop", "prod", {"k": "blue"})
    gray = await start_gray(api, {"k": "green"}, {"labels": {"track": "canary"}})
    canary = {"X-Config-Instance": "pod-1", "X-Config-Labels": "track=canary"}
    stable = {"X-Config-Instance": "pod-2", "X-Config-Labels": "track=stable"}
    got = await get(api, "/spring/shop/prod", headers=canary)
    assert sources(got.body) == [(f"configcenter:shop/prod@v{gray}", {"k": "green"})]
    for headers in (stable, {}):
        other = await get(api, "/spring/shop/prod", headers=headers)
        assert sources(other.body) == [(f"configcenter:shop/prod@v{main}", {"k": "blue"})]
    # The gray version as a label: only for the readers the rule takes.
    assert (await get(api, f"/spring/shop/prod/{gray}", headers=canary)).status == 200
    assert (await get(api, f"/spring/shop/prod/{gray}", headers=stable)).status == 404
    assert (await get(api, f"/spring/{gray}/shop-prod.yml")).status == 404
    assert (await get(api, "/spring/shop-prod.json", headers=canary)).body == {"k": "green"}


async def test_every_spring_read_is_an_instance_by_its_headers_or_its_address(
    api: Api,
) -> None:
    await shop(api)
    version = await publish(api, "shop", "prod", {"k": "v"})
    await get(api, "/spring/shop/prod")
    await get(api, "/spring/shop/prod", headers={"X-Config-Instance": "pod-7"})
    await get(api, "/spring/shop-prod.yml", headers={"X-Config-Instance": "bad id!"})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while True:
        listing = await api.call("GET", "/api/v1/apps/shop/envs/prod/instances")
        found = {i["instance"]: i for i in listing.body["instances"]}
        if {"127.0.0.1", "pod-7"} <= found.keys() or loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert set(found) == {"127.0.0.1", "pod-7"}, found
    for record in found.values():
        assert (record["transport"], record["delivered_version"]) == ("spring", version)
        assert record["address"] == "127.0.0.1"


@pytest.mark.parametrize(
    "path", ["/spring/", "/spring/shop", "/spring/shop/prod/main/extra", "/spring/a/b/c/d.yml"]
)
async def test_any_other_path_under_spring_is_springs_404(api: Api, path: str) -> None:
    answer = await get(api, path)
    assert answer.status == 404, answer.text
    assert (answer.body["status"], answer.body["path"]) == (404, path)


@pytest.fixture
def own_mariadb(tmp_path: Path) -> Iterator[MariaDBServer]:
    """A MariaDB of this test's own, to stop and start (the shared one serves other tests)."""
    with MariaDBServer(tmp_path / "own-mariadb") as server:
        yield server


@pytest.mark.mariadb
async def test_while_the_store_is_away_the_latest_and_held_labels_are_served_from_memory(
    own_mariadb: MariaDBServer, api_factory: AppFactory
) -> None:
    api = await api_factory(own_mariadb.create_database("outage"))
    await shop(api)
    first = await publish(api, "shop", "prod", {"k": "1"})
    second = await publish(api, "shop", "prod", {"k": "2"})
    third = await publish(api, "shop", "prod", {"k": "3"})
    _, token = await api.token_for("read:shop")
    _, unseen = await api.token_for("read:shop")
    assert (await get(api, f"/spring/shop/prod/{first}", secret=token)).status == 200
    await asyncio.to_thread(own_mariadb.stop)

    latest = await get(api, "/spring/shop/prod", secret=token)
    assert (latest.status, latest.body["version"]) == (200, str(third))
    held = await get(api, f"/spring/shop/prod/{first}", secret=token)
    assert sources(held.body)[0][1] == {"k": "1"}
    for path, secret in ((f"/spring/shop/prod/{second}", token), ("/spring/shop/prod", unseen)):
        refused = await get(api, path, secret=secret)
        assert refused.status == 503, refused.text
        assert (refused.body["status"], refused.body["path"]) == (503, path)

    await asyncio.to_thread(own_mariadb.start)
    back = await get(api, f"/spring/shop/prod/{second}", secret=unseen)
    assert sources(back.body)[0][1] == {"k": "2"}
