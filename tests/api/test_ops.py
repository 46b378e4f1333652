"""Health, readiness, metrics, OpenAPI coverage, audit and request logging."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from server.keys import ACCESS_LOG, PUBLISHED, STORE
from server.middleware import POLICIES, PROTOCOL
from tests.api.helpers import ADMIN_PASSWORD, Api
from tests.client.helpers import wait_until


async def test_health_and_ready(api: Api) -> None:
    assert (await api.call("GET", "/healthz", token=None)).body == {"status": "ok"}
    ready = await api.call("GET", "/readyz", token=None)
    assert ready.status == 200
    assert ready.body["checks"] == {"store": "ok", "coordinator": "ok"}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_readyz_names_the_part_that_failed_and_logs_why(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    store = api.app[STORE]
    await store.close()
    try:
        with caplog.at_level(logging.WARNING, logger="server.api.ops"):
            ready = await api.call("GET", "/readyz", token=None)
    finally:
        await store.open()
    assert ready.status == 503
    assert ready.body == {
        "status": "unavailable",
        "checks": {"store": "unavailable", "coordinator": "ok"},
    }
    assert any("store is not ready" in r.getMessage() for r in caplog.records)


async def test_metrics_count_requests(api: Api) -> None:
    await api.call("GET", "/api/v1/apps")
    metrics = await api.call("GET", "/metrics", token=None)
    assert metrics.status == 200
    assert re.search(
        r'configcenter_http_requests_total\{method="GET",route="/api/v1/apps",status="200"\} 1\.0',
        metrics.text,
    )
    assert "configcenter_ws_connections" in metrics.text


async def test_metrics_count_the_long_polls_waiting(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1"})
    assert (await api.publish("shop", "prod")).status == 201
    gauge = re.compile(r"^configcenter_long_polls_waiting (\S+)$", re.MULTILINE)
    idle = await api.call("GET", "/metrics", token=None)
    assert gauge.findall(idle.text) == ["0.0"]
    poll = asyncio.create_task(
        api.call("GET", "/api/v1/apps/shop/envs/prod/config?after=1&wait=30")
    )
    await wait_until(lambda: api.app[PUBLISHED].waiting == 1, "the long poll to wait")
    held = await api.call("GET", "/metrics", token=None)
    assert gauge.findall(held.text) == ["1.0"]
    await api.set_items("shop", "prod", {"a": "2"})
    assert (await api.publish("shop", "prod")).status == 201
    assert (await asyncio.wait_for(poll, 20)).status == 200
    answered = await api.call("GET", "/metrics", token=None)
    assert gauge.findall(answered.text) == ["0.0"]


async def test_openapi_describes_every_registered_route(api: Api) -> None:
    document = (await api.call("GET", "/api/openapi.json", token=None)).body
    assert document["openapi"].startswith("3.1")
    missing = []
    policies = api.app[POLICIES]
    for route in api.app.router.routes():
        # The compatible APIs answer in their protocols' terms, not this document's: they are
        # described in docs/api.md (tests/test_docs_links.py).
        if policies.get(route) == PROTOCOL:
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        method = route.method.lower()
        if method == "head":
            continue
        if info.get("prefix"):  # static files: one entry for the prefix
            if not any(p.startswith(info["prefix"]) for p in document["paths"]):
                missing.append(f"static {info['prefix']}")
            continue
        if path not in document["paths"] or method not in document["paths"][path]:
            missing.append(f"{method.upper()} {path}")
    assert missing == []
    publish = document["paths"]["/api/v1/apps/{app}/envs/{env}/releases"]["post"]
    assert "requestBody" in publish
    assert "nothing_to_publish" in publish["responses"]["409"]["description"]


async def test_audit_records_every_write(api: Api) -> None:
    await api.app_with_env()
    await api.call("PUT", "/api/v1/apps/shop/envs/prod/items/k", {"value": "1"})
    await api.call("PATCH", "/api/v1/apps/shop/envs/prod/items", {"set": {"j": "2"}})
    await api.publish("shop", "prod", "go")
    await api.call("DELETE", "/api/v1/apps/shop/envs/prod/items/j")
    await api.publish("shop", "prod")
    await api.call("POST", "/api/v1/apps/shop/envs/prod/releases/1/rollback", {})
    await api.call("POST", "/api/v1/apps/shop/envs", {"name": "dev"})
    token_id, _ = await api.token_for("read:shop")
    await api.call("DELETE", f"/api/v1/tokens/{token_id}")
    entries = (await api.call("GET", "/api/v1/audit?limit=100")).body["entries"]
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "user.create",
        "login.ok",  # the fixture's sign-in
        "app.create",
        "item.create",
        "items.patch",
        "release.publish",
        "item.delete",
        "release.publish",
        "release.rollback",
        "env.create",
        "token.create",
        "token.revoke",
    ]
    publish = next(e for e in entries if e["action"] == "release.publish")
    assert publish["actor"] == "user:admin"
    assert publish["app"] == "shop"
    assert publish["env"] == "prod"
    assert publish["at"].endswith("Z")
    only_shop = (await api.call("GET", "/api/v1/audit?app=shop&limit=2")).body["entries"]
    assert len(only_shop) == 2
    assert all(e["app"] == "shop" for e in only_shop)


async def test_errors_are_enveloped_with_a_request_id(api: Api) -> None:
    missing = await api.call("GET", "/api/v1/nothing-here")
    assert missing.status == 404
    assert missing.body["error"]["code"] == "not_found"
    wrong_method = await api.call("PUT", "/api/v1/apps")
    assert wrong_method.status == 405
    assert wrong_method.body["error"]["code"] == "method_not_allowed"
    assert re.fullmatch(r"[0-9a-f]{16}", wrong_method.headers["X-Request-Id"])
    given = await api.call("GET", "/healthz", headers={"X-Request-Id": "abc-123"})
    assert given.headers["X-Request-Id"] == "abc-123"


async def test_logs_one_line_per_request_without_secrets(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    await api.call("POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD})
    ws = await api.client.ws_connect(f"/api/v1/watch?token={api.token}")
    await ws.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "server.http"]
    assert any(re.match(r"rid=\w+ POST /api/v1/login 200 ", line) for line in lines)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert api.token not in text
    assert ADMIN_PASSWORD not in text


async def test_a_websocket_session_is_observed_as_a_request_though_its_handler_does_it(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    refused = await api.client.get(
        "/api/v1/watch",
        headers={"Connection": "Upgrade", "Upgrade": "websocket", "X-Request-Id": "ws-refused"},
    )
    assert refused.status == 401
    assert (await refused.json())["error"]["code"] == "unauthorized"
    assert refused.headers["X-Request-Id"] == "ws-refused"
    ws = await api.client.ws_connect(
        f"/api/v1/watch?token={api.token}", headers={"X-Request-Id": "ws-session"}
    )
    await ws.close()

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "server.http"]

    # A session keeps a line of its own, written once its handler returns.
    await wait_until(
        lambda: any(line.startswith("rid=ws-session GET /api/v1/watch 101 ") for line in lines()),
        "the WebSocket session's access line",
    )
    assert any(line.startswith("rid=ws-refused GET /api/v1/watch 401 ") for line in lines())


async def test_quick_successful_reads_are_counted_into_one_line_a_second(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    for _ in range(5):
        assert (await api.call("GET", "/api/v1/apps")).status == 200
    missing = await api.call("GET", "/api/v1/apps/nope")
    assert missing.status == 404
    api.app[ACCESS_LOG].flush()
    lines = [r.getMessage() for r in caplog.records if r.name == "server.http"]
    # The reads: one line with their count; the failed read: a line of its own, with its id.
    (counted,) = [line for line in lines if line.startswith("GET /api/v1/apps 200 ")]
    assert re.match(
        r"GET /api/v1/apps 200 x5 in [\d.]+ s, mean [\d.]+ms, max [\d.]+ms from ", counted
    )
    rid = missing.headers["X-Request-Id"]
    assert any(line.startswith(f"rid={rid} GET /api/v1/apps/nope 404 ") for line in lines)
    assert not any(line.startswith("rid=") and " GET /api/v1/apps 200 " in line for line in lines)
    # Nothing counted since: a flush writes nothing.
    before = len(caplog.records)
    api.app[ACCESS_LOG].flush()
    assert len(caplog.records) == before


async def test_long_polls_are_counted_whatever_they_waited(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long poll's time is its wait: past the slow threshold it is still counted, not a
    # line of its own (10,000 pollers answered at once would be 10,000 lines).
    monkeypatch.setattr("server.access_log.SLOW_MS", 50.0)
    caplog.set_level(logging.INFO, logger="server")
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1"})
    assert (await api.publish("shop", "prod")).status == 201
    config = "/api/v1/apps/shop/envs/prod/config"
    polls = [api.call("GET", f"{config}?after=1&wait=1") for _ in range(3)]
    assert [a.status for a in await asyncio.gather(*polls)] == [304, 304, 304]
    api.app[ACCESS_LOG].flush()
    lines = [r.getMessage() for r in caplog.records if r.name == "server.http"]
    (counted,) = [line for line in lines if line.startswith(f"GET {config} 304 ")]
    assert re.match(rf"GET {config} 304 x3 long polls in [\d.]+ s, mean (\d+)\.\dms", counted)
    mean = float(re.search(r"mean ([\d.]+)ms", counted).group(1))  # type: ignore[union-attr]
    assert mean >= 900
    assert not any(line.startswith("rid=") and f"{config} 304" in line for line in lines)
