"""Sign-in throttling and the argon2 worker pool, over real HTTP on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from server.app import create_app
from server.config import AuthSection
from tests.api.helpers import ADMIN_PASSWORD, Api, make_config

LOGIN = "/api/v1/login"


async def _start(
    aiohttp_client: Any, store_url: str, tmp_path: Path, **auth: int
) -> TestClient[Any, Any]:
    config = make_config(store_url, tmp_path)
    config = dataclasses.replace(config, auth=dataclasses.replace(AuthSection(), **auth))
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config))
    return client


async def _sign_in(client: TestClient[Any, Any], username: str, password: str) -> tuple[int, Any]:
    response = await client.post(LOGIN, json={"username": username, "password": password})
    return response.status, response


async def _audit_actions(api: Api) -> list[str]:
    answer = await api.call("GET", "/api/v1/audit?limit=100")
    assert answer.status == 200, answer.text
    return [entry["action"] for entry in answer.body["entries"]]


async def test_five_wrong_passwords_lock_the_name_even_for_the_right_one(api: Api) -> None:
    for _ in range(5):
        answer = await api.call(
            "POST", LOGIN, {"username": "admin", "password": "nope-nope"}, token=None
        )
        assert answer.status == 401, answer.text

    locked = await api.call(
        "POST", LOGIN, {"username": "admin", "password": ADMIN_PASSWORD}, token=None
    )

    assert locked.status == 429, locked.text
    assert locked.body["error"]["code"] == "too_many_attempts"
    assert 1 <= int(locked.headers["Retry-After"]) <= 30
    actions = await _audit_actions(api)
    assert actions.count("login.failed") == 5
    assert actions.count("login.locked") == 1
    # The session of the signed-in admin still works: a lock refuses sign-ins, nothing else.
    assert (await api.call("GET", "/api/v1/apps")).status == 200


async def test_a_successful_sign_in_starts_the_count_again(api: Api) -> None:
    wrong = {"username": "admin", "password": "nope-nope"}
    for _ in range(4):
        assert (await api.call("POST", LOGIN, wrong, token=None)).status == 401
    right = {"username": "admin", "password": ADMIN_PASSWORD}
    assert (await api.call("POST", LOGIN, right, token=None)).status == 200
    for _ in range(4):
        assert (await api.call("POST", LOGIN, wrong, token=None)).status == 401
    assert (await api.call("POST", LOGIN, right, token=None)).status == 200
    assert "login.ok" in await _audit_actions(api)


async def test_a_lock_made_on_one_replica_holds_on_another(
    aiohttp_client: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIGCENTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    first = await _start(aiohttp_client, store_url, tmp_path)
    second = await _start(aiohttp_client, store_url, tmp_path)
    for _ in range(5):
        status, _ = await _sign_in(first, "admin", "nope-nope")
        assert status == 401

    status, response = await _sign_in(second, "admin", ADMIN_PASSWORD)

    assert status == 429
    assert (await response.json())["error"]["code"] == "too_many_attempts"


async def test_one_address_gets_at_most_its_failures_a_minute_whatever_the_names(
    aiohttp_client: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIGCENTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    client = await _start(aiohttp_client, store_url, tmp_path, failures_per_address=3)
    for name in ("ann", "bob", "cy"):
        status, _ = await _sign_in(client, name, "nope-nope")
        assert status == 401

    status, response = await _sign_in(client, "admin", ADMIN_PASSWORD)

    assert status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_oversized_and_chunked_sign_in_bodies_are_refused_unread(api: Api) -> None:
    before = await api.snapshot()
    padded = '{"username":"admin","password":"' + "x" * 5000 + '"}'
    big = await api.call("POST", LOGIN, data=padded, token=None)
    assert big.status == 413, big.text
    assert big.body["error"]["code"] == "too_large"

    async def chunks() -> Any:
        yield b'{"username":"admin",'
        yield b'"password":"nope-nope"}'

    chunked = await api.client.post(LOGIN, data=chunks())
    assert chunked.status == 413
    assert await api.snapshot() == before


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_flood_of_bad_sign_ins_leaves_config_reads_fast(
    aiohttp_client: Any, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIGCENTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    client = await _start(aiohttp_client, store_url, tmp_path, failures_per_address=10**6)
    status, response = await _sign_in(client, "admin", ADMIN_PASSWORD)
    assert status == 200
    headers = {"Authorization": f"Bearer {(await response.json())['token']}"}
    env = "/api/v1/apps/shop/envs/prod"
    created = await client.post(
        "/api/v1/apps", json={"name": "shop", "envs": ["prod"]}, headers=headers
    )
    assert created.status == 201
    await client.put(f"{env}/items/k", json={"value": "v"}, headers=headers)
    assert (await client.post(f"{env}/releases", json={}, headers=headers)).status == 201

    outcomes: list[int] = []
    stop = time.monotonic() + 5.0

    async def attacker() -> None:
        while time.monotonic() < stop:
            status, _ = await _sign_in(client, secrets.token_hex(6), "wrong-password")
            outcomes.append(status)

    async def reader() -> list[float]:
        latencies = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            answer = await client.get(f"{env}/config", headers=headers)
            await answer.read()
            latencies.append(time.perf_counter() - started)
            assert answer.status == 200
            await asyncio.sleep(0.005)  # pacing: a steady reader alongside the flood
        return latencies

    attackers = [asyncio.create_task(attacker()) for _ in range(20)]
    latencies = await reader()
    await asyncio.gather(*attackers)

    assert outcomes.count(401) >= 10, "the password checks ran"
    assert set(outcomes) <= {401, 503}
    # On the event loop, each read would wait behind at least one argon2 check (100+ ms
    # each, 20 attackers); off it, a read is a millisecond or two. Measured against one
    # check's own time on this machine now, not a fixed bound: a loaded machine slows both.
    hasher = PasswordHasher()  # the server's parameters (server/domain/passwords.py)
    stored = hasher.hash("the-password")
    started = time.perf_counter()
    with pytest.raises(VerifyMismatchError):
        hasher.verify(stored, "wrong-password")
    one_check = time.perf_counter() - started
    median = statistics.median(latencies)
    assert median < one_check / 4, (
        f"config read median {median * 1000:.1f} ms during the flood, one argon2 check "
        f"{one_check * 1000:.1f} ms"
    )
