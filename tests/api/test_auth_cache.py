"""The bearer cache: read again after AUTH_FRESH_SECONDS, kept while the store is down."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from server.domain import auth as auth_module
from server.keys import STORE
from server.records import Token
from server.store.queries import Queries
from tests.api.helpers import Api, AppFactory
from tests.api.test_events import revoke_behind_the_cache
from tests.api.test_watch import connect

APP = "/api/v1/apps/shop"


async def cached_token(api_factory: AppFactory, sqlite_url: str) -> tuple[Api, int, str]:
    """An app with shop/prod and a read token whose principal one read has cached:
    (api, token id, secret)."""
    api = await api_factory(sqlite_url)
    await api.app_with_env()
    token_id, secret = await api.token_for("read:shop")
    assert (await api.call("GET", APP, token=secret)).status == 200
    return api, token_id, secret


async def past_freshness() -> None:
    """Wait until every cached principal needs a store read again."""
    await asyncio.sleep(auth_module.AUTH_FRESH_SECONDS + 0.1)


async def test_a_token_revoked_behind_the_cache_is_refused_after_the_fresh_window(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api, token_id, secret = await cached_token(api_factory, sqlite_url)
    # No event: as if the replica that revoked it died before announcing it.
    await revoke_behind_the_cache(api, token_id)

    await past_freshness()

    assert (await api.call("GET", APP, token=secret)).status == 401
    assert (await api.call("GET", APP)).status == 200  # the admin's session was revalidated


async def test_the_sockets_of_a_token_revoked_behind_the_cache_are_closed(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url)
    await api.app_with_env()
    token_id, secret = await api.token_for("read:shop", name="doomed")
    _, kept = await api.token_for("read:shop", name="kept")
    doomed_ws = await connect(api, "?app=shop&env=prod", token=secret)
    kept_ws = await connect(api, "?app=shop&env=prod", token=kept)
    await revoke_behind_the_cache(api, token_id)

    # The hub's periodic token check (WS_TOKEN_CHECK_SECONDS) finds it without any event.
    closing = await doomed_ws.receive(timeout=auth_module.WS_TOKEN_CHECK_SECONDS + 3)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert doomed_ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert not kept_ws.closed
    await kept_ws.close()


async def test_concurrent_requests_with_one_token_share_one_store_read(
    api_factory: AppFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _, secret = await cached_token(api_factory, sqlite_url)
    await past_freshness()
    reads: list[str] = []
    original = Queries.token_by_hash

    async def counted(self: Queries, token_hash: str) -> Token | None:
        reads.append(token_hash)
        await asyncio.sleep(0.05)  # long enough for the others to arrive meanwhile
        return await original(self, token_hash)

    monkeypatch.setattr(Queries, "token_by_hash", counted)
    answers = await asyncio.gather(*(api.call("GET", APP, token=secret) for _ in range(8)))

    assert [a.status for a in answers] == [200] * 8
    assert len(reads) == 1


async def test_while_a_token_is_read_again_the_principal_it_had_stands(
    api_factory: AppFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A burst with one token (10,000 long polls answered at once, polling again) does not
    # queue behind the one store read that checks it again: until that read answers, the
    # principal confirmed a second ago stands; the read's answer counts from then on.
    api, token_id, secret = await cached_token(api_factory, sqlite_url)
    await revoke_behind_the_cache(api, token_id)
    await past_freshness()
    reading = asyncio.Event()
    answer_read = asyncio.Event()
    original = Queries.token_by_hash

    async def held(self: Queries, token_hash: str) -> Token | None:
        reading.set()
        await answer_read.wait()
        return await original(self, token_hash)

    monkeypatch.setattr(Queries, "token_by_hash", held)
    checking = asyncio.create_task(api.call("GET", APP, token=secret))
    await asyncio.wait_for(reading.wait(), 5)
    during = await asyncio.wait_for(api.call("GET", APP, token=secret), 5)
    assert during.status == 200
    assert not checking.done()
    answer_read.set()
    assert (await checking).status == 401
    assert (await api.call("GET", APP, token=secret)).status == 401


async def test_a_cached_token_outlives_a_store_outage_up_to_the_stale_bound(
    api_factory: AppFactory,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = await api_factory(sqlite_url)
    await api.app_with_env()
    _, secret = await api.token_for("read:shop", name="known")
    _, unseen = await api.token_for("read:shop", name="unseen")
    await api.set_items("shop", "prod", {"a": "1"})
    assert (await api.publish("shop", "prod")).status == 201
    assert (await api.call("GET", APP, token=secret)).status == 200
    await past_freshness()
    await api.app[STORE].close()

    with caplog.at_level(logging.WARNING, logger=auth_module.__name__):
        # The config read is served from memory; the token check could not read the store.
        config = "/api/v1/apps/shop/envs/prod/config"
        assert (await api.call("GET", config, token=secret)).status == 200
        await past_freshness()
        assert (await api.call("GET", config, token=secret)).status == 200
    warnings = [r for r in caplog.records if "store unavailable" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per token, not per request
    refused = await api.call("GET", config, token=unseen)
    assert (refused.status, refused.body["error"]["code"]) == (503, "store_unavailable")

    # Past the stale bound the cached principal is dropped: the store must answer again.
    monkeypatch.setattr(auth_module, "AUTH_STALE_SECONDS", 0.0)
    await past_freshness()
    refused = await api.call("GET", config, token=secret)
    assert (refused.status, refused.body["error"]["code"]) == (503, "store_unavailable")
