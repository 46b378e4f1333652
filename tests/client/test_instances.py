"""The bundled client names its instance and acks each release once its callbacks have run."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from typing import Any

import pytest

from devservices import ServerProcess
from server.client import Change, ConfigClient, default_instance
from tests.client.helpers import FAST, Admin, wait_until


async def listed(admin: Admin, app: str) -> dict[str, dict[str, Any]]:
    body = await asyncio.to_thread(admin.call, "GET", f"/api/v1/apps/{app}/envs/prod/instances")
    return {i["instance"]: i for i in body["instances"]}


async def until_listed(admin: Admin, app: str, instance: str, **fields: Any) -> dict[str, Any]:
    """The instance's record once it has every one of fields (bounded)."""
    seen: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal seen
        seen = (await listed(admin, app)).get(instance, {})
        return all(seen.get(k) == v for k, v in fields.items())

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"{instance} not listed with {fields} within 10 s: {seen}")
        await asyncio.sleep(0.05)
    return seen


async def test_the_client_is_listed_and_acks_after_its_callbacks_ran(
    admin: Admin, shared_server: ServerProcess
) -> None:
    app = admin.new_app()
    first = admin.publish(app, {"a": "1"})
    token = admin.token(f"read:{app}")[1]
    release_callback = asyncio.Event()
    seen: list[int] = []

    async def slow(change: Change) -> None:
        seen.append(change.version)
        if change.version > first:
            await release_callback.wait()

    client = ConfigClient(
        shared_server.url,
        token,
        app,
        "prod",
        instance="svc-1",
        labels={"zone": "eu-1", "tier": "web"},
        **FAST,
    )
    client.on_change(slow)
    async with client:
        record = await until_listed(admin, app, "svc-1", applied_version=first)
        assert record["transport"] == "websocket"
        assert record["labels"] == {"zone": "eu-1", "tier": "web"}
        second = await admin.apublish(app, {"a": "2"})
        await wait_until(lambda: second in seen, "the callback on the second release")
        # Delivered, applied in memory, but its callback still runs: not acked yet.
        record = await until_listed(admin, app, "svc-1", delivered_version=second)
        assert record["applied_version"] == first
        assert client.version == second
        release_callback.set()
        await until_listed(admin, app, "svc-1", applied_version=second)
    await wait_until(lambda: not client.connected, "closed")
    record = await until_listed(admin, app, "svc-1", transport="http")
    # The subscription is gone; what stays is its read at start (an HTTP reader, for the ttl).
    assert record["delivered_version"] == first


async def test_the_default_instance_is_hostname_and_pid(
    admin: Admin, shared_server: ServerProcess
) -> None:
    app = admin.new_app()
    version = admin.publish(app, {"a": "1"})
    token = admin.token(f"read:{app}")[1]
    name = default_instance()
    assert name.endswith(f":{os.getpid()}")
    if re.fullmatch(r"[A-Za-z0-9_.:@/-]{1,100}", socket.gethostname()):
        assert name == f"{socket.gethostname()}:{os.getpid()}"
    async with ConfigClient(shared_server.url, token, app, "prod", **FAST) as client:
        assert client.instance == name
        await until_listed(admin, app, name, applied_version=version, transport="websocket")


@pytest.mark.parametrize(
    ("instance", "labels", "says"),
    [
        ("has space", {}, "instance"),
        ("x" * 129, {}, "instance"),
        ("ok", {"Zone": "eu"}, "label keys"),
        ("ok", {"zone": ""}, "printable"),
        ("ok", {"zone": "a\tb"}, "printable"),
        ("ok", {"zone": "eu,us"}, "comma"),
        ("ok", {f"k{n}": "v" for n in range(17)}, "at most 16"),
    ],
)
def test_an_identity_the_server_would_refuse_is_refused_at_once(
    instance: str, labels: dict[str, str], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        ConfigClient("http://127.0.0.1:1", "t", "shop", "prod", instance=instance, labels=labels)
