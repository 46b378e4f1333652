"""The read path: ETags, formats, long polls, never-published envs."""

from __future__ import annotations

import asyncio
from typing import Any

import yaml

from server.keys import ANSWERS, PUBLISHED
from tests.api.helpers import Api
from tests.client.helpers import wait_until

CONFIG = "/api/v1/apps/shop/envs/prod/config"


async def published(api: Api, items: dict[str, str]) -> dict[str, Any]:
    await api.set_items("shop", "prod", items)
    answer = await api.publish("shop", "prod")
    assert answer.status == 201, answer.text
    release: dict[str, Any] = answer.body
    return release


async def test_config_json_and_etag(api: Api) -> None:
    await api.app_with_env()
    release = await published(api, {"db.url": "x", "n": "1"})
    answer = await api.call("GET", CONFIG)
    assert answer.status == 200
    assert answer.body == {
        "app": "shop",
        "env": "prod",
        "version": 1,
        "checksum": release["checksum"],
        "items": {"db.url": "x", "n": "1"},
        "gray": False,
    }
    etag = answer.headers["ETag"]
    assert etag == f'"{release["checksum"]}"'
    cached = await api.call("GET", CONFIG, headers={"If-None-Match": etag})
    assert cached.status == 304
    assert cached.text == ""
    await published(api, {"db.url": "y"})
    fresh = await api.call("GET", CONFIG, headers={"If-None-Match": etag})
    assert fresh.status == 200
    assert fresh.body["version"] == 2


async def test_formats(api: Api) -> None:
    await api.app_with_env()
    items = {"db.url": "jdbc:x=1", "multi": "a\nb", "quote": 'say "hi"'}
    await published(api, items)
    props = await api.call("GET", f"{CONFIG}?format=properties")
    assert props.headers["Content-Type"].startswith("text/plain")
    assert props.text.splitlines()[0] == "db.url=jdbc\\:x\\=1"
    assert "multi=a\\nb" in props.text
    yml = await api.call("GET", f"{CONFIG}?format=yaml")
    assert yml.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(yml.text) == items
    dotenv = await api.call("GET", f"{CONFIG}?format=dotenv")
    # Single quotes, which POSIX sh and python-dotenv read literally (a newline included).
    assert dotenv.text == "DB_URL='jdbc:x=1'\nMULTI='a\nb'\nQUOTE='say \"hi\"'\n"
    as_json = await api.call("GET", f"{CONFIG}?format=json")
    assert as_json.body["items"] == items
    bad = await api.call("GET", f"{CONFIG}?format=xml")
    assert bad.status == 400
    assert bad.body["error"]["code"] == "invalid_format"


async def test_dotenv_conflict(api: Api) -> None:
    await api.app_with_env()
    await published(api, {"db.url": "a", "db_url": "b"})
    answer = await api.call("GET", f"{CONFIG}?format=dotenv")
    assert answer.status == 409
    assert answer.body["error"]["code"] == "format_conflict"


async def test_never_published_and_unknown(api: Api) -> None:
    await api.app_with_env()
    never = await api.call("GET", CONFIG)
    assert never.status == 404
    assert never.body["error"]["code"] == "not_published"
    unknown = await api.call("GET", "/api/v1/apps/shop/envs/nope/config")
    assert unknown.status == 404
    assert unknown.body["error"]["code"] == "not_found"


async def test_long_poll_answers_on_publish(api: Api) -> None:
    await api.app_with_env()
    await published(api, {"a": "1"})
    now = await api.call("GET", f"{CONFIG}?after=0&wait=5")
    assert now.status == 200
    assert now.body["version"] == 1
    poll = asyncio.create_task(api.call("GET", f"{CONFIG}?after=1&wait=30"))
    await wait_until(lambda: api.app[PUBLISHED].waiting == 1, "the long poll to wait")
    assert not poll.done()
    await published(api, {"a": "2"})
    answer = await asyncio.wait_for(poll, 10)
    assert answer.status == 200
    assert answer.body["version"] == 2
    assert answer.body["items"] == {"a": "2"}


async def test_long_poll_times_out_with_304(api: Api) -> None:
    await api.app_with_env()
    await published(api, {"a": "1"})
    answer = await api.call("GET", f"{CONFIG}?after=1&wait=1")
    assert answer.status == 304


async def test_long_poll_on_a_never_published_env(api: Api) -> None:
    await api.app_with_env()
    poll = asyncio.create_task(api.call("GET", f"{CONFIG}?after=0&wait=30"))
    await wait_until(lambda: api.app[PUBLISHED].waiting == 1, "the long poll to wait")
    await published(api, {"first": "yes"})
    answer = await asyncio.wait_for(poll, 10)
    assert answer.status == 200
    assert answer.body["version"] == 1


async def test_long_poll_validation(api: Api) -> None:
    await api.app_with_env()
    for query in ("after=-1", "after=x", "after=1&wait=61", "wait=5"):
        answer = await api.call("GET", f"{CONFIG}?{query}")
        assert answer.status == 400, query


async def test_read_scope_reads_config_but_not_the_draft(api: Api) -> None:
    await api.app_with_env()
    await published(api, {"a": "1"})
    _, reader = await api.token_for("read:shop")
    assert (await api.call("GET", CONFIG, token=reader)).status == 200
    draft = await api.call("GET", "/api/v1/apps/shop/envs/prod/items", token=reader)
    assert draft.status == 403
    _, other = await api.token_for("read:blog")
    assert (await api.call("GET", CONFIG, token=other)).status == 403


async def test_a_long_poll_that_times_out_carries_the_current_tag_and_version(api: Api) -> None:
    await api.app_with_env()
    release = await published(api, {"a": "1"})
    answer = await api.call("GET", f"{CONFIG}?after=1&wait=1")
    assert answer.status == 304
    assert answer.headers["ETag"] == f'"{release["checksum"]}"'
    assert answer.headers["X-Config-Version"] == "1"


async def test_answers_are_built_once_per_release_and_dropped_with_it(api: Api) -> None:
    await api.app_with_env()
    await published(api, {"a": "1"})
    answers = api.app[ANSWERS]
    first = await api.call("GET", f"{CONFIG}?format=yaml")
    built = answers.current("shop", "prod", True)
    assert built is not None
    assert built.rendered["yaml"][0] == first.text.encode()
    await api.call("GET", CONFIG)
    assert answers.current("shop", "prod", True) is built
    await published(api, {"a": "2"})
    fresh = answers.current("shop", "prod", True)
    assert fresh is not None
    assert fresh is not built
    assert fresh.release.version == 2
    assert fresh.rendered == {}
    assert (await api.call("DELETE", "/api/v1/apps/shop")).status == 204
    assert answers.current("shop", "prod", True) is None
