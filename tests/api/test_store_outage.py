"""The store going away under a running server, and coming back (docs/failures.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from devservices import MariaDBServer
from tests.api.helpers import ADMIN_PASSWORD, AppFactory

ENV = "/api/v1/apps/shop/envs/prod"


@pytest.fixture
def own_mariadb(tmp_path: Path) -> Iterator[MariaDBServer]:
    """A MariaDB of this test's own, to stop and start (the shared one serves other tests)."""
    with MariaDBServer(tmp_path / "own-mariadb") as server:
        yield server


@pytest.mark.mariadb
async def test_reads_go_on_from_memory_while_the_store_is_away(
    own_mariadb: MariaDBServer, api_factory: AppFactory
) -> None:
    api = await api_factory(own_mariadb.create_database("outage"))
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1"})
    assert (await api.publish("shop", "prod")).status == 201
    _, unseen = await api.token_for("read:shop")
    await asyncio.to_thread(own_mariadb.stop)

    config = await api.call("GET", f"{ENV}/config")
    assert (config.status, config.body["items"]) == (200, {"a": "1"})
    poll = await api.call("GET", f"{ENV}/config?after=0&wait=1")
    assert (poll.status, poll.body["version"]) == (200, 1)
    assert (await api.call("GET", "/healthz")).status == 200
    ready = await api.call("GET", "/readyz")
    assert ready.status == 503
    assert ready.body["checks"]["coordinator"] == "ok"
    assert ready.body["checks"]["store"] != "ok"
    login = {"username": "admin", "password": ADMIN_PASSWORD}
    for method, path, body, token in [
        ("GET", f"{ENV}/config", None, unseen),  # a token not in the cache needs the store
        ("POST", "/api/v1/login", login, None),
        ("PUT", f"{ENV}/items/a", {"value": "2"}, ""),
        ("POST", f"{ENV}/releases", {"comment": "during the outage"}, ""),
    ]:
        refused = await api.call(method, path, body, token=token)
        assert refused.status == 503, (method, path, refused.text)
        assert refused.body["error"]["code"] == "store_unavailable"

    await asyncio.to_thread(own_mariadb.start)
    # The connections the outage broke are dropped; the next request opens a new one.
    assert (await api.call("PUT", f"{ENV}/items/a", {"value": "2"})).status == 200
    assert (await api.publish("shop", "prod", "after the outage")).status == 201
    assert (await api.call("GET", f"{ENV}/config", token=unseen)).body["version"] == 2
    assert (await api.call("GET", "/readyz")).status == 200
