"""Cluster events reach their owners in a running app; the app's periodic tasks run.

Each event is announced on the app's own (standalone) coordinator, as one arriving from another
replica would be delivered: the owners act on it, not on the request that caused it.
"""

from __future__ import annotations

import aiohttp

from server.events import AppDeleted, TokenRevoked, UserChanged
from server.keys import COORDINATOR, SERVICES, STORE, TASKS
from server.records import utc_now
from tests.api.helpers import Api, AppFactory
from tests.api.test_watch import connect, publish, receive


async def revoke_behind_the_cache(api: Api, token_id: int) -> None:
    """Revoke a token in the store only, as another replica's request would."""
    async with api.app[STORE].transaction() as q:
        assert await q.revoke_token(token_id, utc_now())


async def test_token_revoked_forgets_the_token_and_closes_its_sockets(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url)
    await api.app_with_env()
    token_id, secret = await api.token_for("read:shop", name="doomed")
    ws = await connect(api, "?app=shop&env=prod", token=secret)
    assert (await api.call("GET", "/api/v1/apps/shop", token=secret)).status == 200
    await revoke_behind_the_cache(api, token_id)
    # Cached: this replica has not heard of the revocation yet.
    assert (await api.call("GET", "/api/v1/apps/shop", token=secret)).status == 200

    await api.app[COORDINATOR].announce(TokenRevoked(token_id))

    closing = await ws.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert (await api.call("GET", "/api/v1/apps/shop", token=secret)).status == 401


async def test_user_changed_forgets_every_cached_principal(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url)
    await api.app_with_env()
    token_id, secret = await api.token_for("read:shop")
    assert (await api.call("GET", "/api/v1/apps/shop", token=secret)).status == 200
    await revoke_behind_the_cache(api, token_id)
    assert (await api.call("GET", "/api/v1/apps/shop", token=secret)).status == 200

    await api.app[COORDINATOR].announce(UserChanged("someone"))

    assert (await api.call("GET", "/api/v1/apps/shop", token=secret)).status == 401
    assert (await api.call("GET", "/api/v1/apps")).status == 200  # read again from the store


async def test_app_deleted_drops_the_published_config_and_tells_subscribers(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url)
    await api.app_with_env()
    await publish(api, {"a": "1"})
    ws = await connect(api, "?app=shop&env=prod")
    assert (await receive(ws))["type"] == "release"

    await api.app[COORDINATOR].announce(AppDeleted("shop"))

    message = await receive(ws)
    assert (message["type"], message["code"]) == ("error", "app_deleted")
    # The store still has the app (only the event was sent): the cache no longer serves it.
    answer = await api.call("GET", "/api/v1/apps/shop/envs/prod/config")
    assert (answer.status, answer.body["error"]["code"]) == (404, "not_published")
    await ws.close()


async def test_the_app_runs_its_periodic_tasks(api: Api) -> None:
    assert sorted(api.app[TASKS].names) == [
        "access-log",
        "instances-sweep",
        "session-sweep",
        "token-last-used",
        "ws-heartbeat",
        "ws-token-check",
    ]


async def test_the_session_sweep_removes_expired_sessions_only(api: Api) -> None:
    async with api.app[STORE].transaction() as q:
        await q.insert_token(
            "session:admin",
            "session",
            "0" * 64,
            ("admin",),
            "admin",
            "2000-01-01T00:00:00.000000Z",
            "2000-01-01T12:00:00.000000Z",
        )
    assert await api.app[SERVICES].auth.sweep_expired_sessions() == 1
    assert await api.app[SERVICES].auth.sweep_expired_sessions() == 0
    assert (await api.call("GET", "/api/v1/apps")).status == 200  # the live session stays
