"""A small async client of the configcenter API for setting up data and publishing."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")


class ApiError(RuntimeError):
    """An answer other than the one expected."""


class Api:
    """One server's API, signed in with a bearer token."""

    def __init__(self, base_url: str, token: str, connections: int = 100) -> None:
        self.base_url = base_url
        self.token = token
        self._session = aiohttp.ClientSession(
            base_url,
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=120),
            headers={"Authorization": f"Bearer {token}"},
        )

    @classmethod
    async def login(cls, base_url: str, password: str, connections: int = 100) -> Api:
        """Sign in as admin."""
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{base_url}/api/v1/login", json={"username": "admin", "password": password}
            ) as response:
                body = await response.json()
                if response.status != 200:
                    raise ApiError(f"login: HTTP {response.status} {body}")
        return cls(base_url, body["token"], connections)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._session.close()

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """One request; raises ApiError unless the status is `expect`."""
        async with self._session.request(method, path, json=body) as response:
            data = await response.read()
            if response.status != expect:
                raise ApiError(f"{method} {path}: HTTP {response.status} {data[:300]!r}")
            return await response.json() if data else None

    async def create_app(self, app: str, env: str = "prod") -> None:
        """A new app with one env."""
        await self.call("POST", "/api/v1/apps", {"name": app, "envs": [env]}, expect=201)

    async def set_items(self, app: str, env: str, items: dict[str, str]) -> None:
        """Set many draft items at once."""
        await self.call("PATCH", f"/api/v1/apps/{app}/envs/{env}/items", {"set": items})

    async def put_item(self, app: str, env: str, key: str, value: str) -> None:
        """Create or replace one draft item."""
        async with self._session.put(
            f"/api/v1/apps/{app}/envs/{env}/items/{key}", json={"value": value}
        ) as response:
            if response.status not in (200, 201):
                raise ApiError(f"PUT item: HTTP {response.status} {await response.text()}")
            await response.read()

    async def publish(self, app: str, env: str) -> int:
        """Publish the draft; returns the new version."""
        body = await self.call(
            "POST", f"/api/v1/apps/{app}/envs/{env}/releases", {"comment": "bench"}, expect=201
        )
        return int(body["version"])

    async def start_gray(self, app: str, env: str, rule: dict[str, Any]) -> int:
        """Publish the draft as a gray release to the instances rule takes; its version."""
        body = await self.call(
            "POST",
            f"/api/v1/apps/{app}/envs/{env}/gray",
            {"comment": "bench", "rule": rule},
            expect=201,
        )
        return int(body["version"])

    async def abandon_gray(self, app: str, env: str) -> int:
        """End the active gray release; the version that gives everyone the main release."""
        body = await self.call(
            "POST", f"/api/v1/apps/{app}/envs/{env}/gray/abandon", {"comment": "bench"}, expect=201
        )
        return int(body["version"])

    async def create_token(self, name: str, scopes: list[str]) -> str:
        """A new API token's secret; a suffix keeps its name unique among live tokens."""
        unique = f"{name[:56]}-{secrets.token_hex(3)}"
        body = await self.call(
            "POST", "/api/v1/tokens", {"name": unique, "scopes": scopes}, expect=201
        )
        return str(body["token"])

    async def config(self, app: str, env: str) -> tuple[bytes, str]:
        """The published config body and its ETag."""
        async with self._session.get(f"/api/v1/apps/{app}/envs/{env}/config") as response:
            if response.status != 200:
                raise ApiError(f"GET config: HTTP {response.status}")
            return await response.read(), response.headers["ETag"]


def make_items(count: int, value_bytes: int, tag: str = "") -> dict[str, str]:
    """count items item.00000… with values of value_bytes characters."""
    items = {}
    for i in range(count):
        prefix = f"{tag}{i}:"
        items[f"item.{i:05d}"] = (prefix + "v" * value_bytes)[:value_bytes]
    return items


async def bounded(jobs: Iterable[Awaitable[T]], limit: int) -> list[T]:
    """Await jobs with at most `limit` in flight; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Awaitable[T]) -> T:
        async with semaphore:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def seed_app(api: Api, app: str, items: dict[str, str], env: str = "prod") -> None:
    """Create an app whose env has items and one release."""
    await api.create_app(app, env)
    await api.set_items(app, env, items)
    await api.publish(app, env)
