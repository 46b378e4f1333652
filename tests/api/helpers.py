"""A client of an app served over real HTTP, signed in as admin; and the config it runs on."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any, Protocol

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy

from server.config import Config, LimitsSection, StoreSection, load_config
from server.keys import STORE

ADMIN_PASSWORD = "admin-pass-123"


@dataclasses.dataclass
class Answer:
    """A response read whole."""

    status: int
    body: Any
    headers: CIMultiDictProxy[str]
    text: str


class Api:
    """A client of one running app, signed in as admin unless told otherwise."""

    def __init__(self, client: TestClient[web.Request, web.Application], token: str) -> None:
        self.client = client
        self.token = token
        self.tokens_made = 0

    @property
    def app(self) -> web.Application:
        """The running application."""
        app = self.client.app
        assert app is not None
        return app

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        token: str | None = "",
        headers: dict[str, str] | None = None,
        data: bytes | str | io.BytesIO | None = None,
    ) -> Answer:
        """One request as admin (or with `token`, or none when token=None), read whole."""
        all_headers = dict(headers or {})
        use = self.token if token == "" else token
        if use is not None:
            all_headers["Authorization"] = f"Bearer {use}"
        response: ClientResponse = await self.client.request(
            method, path, json=json, data=data, headers=all_headers
        )
        text = await response.text()
        body: Any = None
        if response.content_type == "application/json" and text:
            body = await response.json()
        return Answer(response.status, body, response.headers, text)

    async def token_for(self, *scopes: str, name: str = "") -> tuple[int, str]:
        """A new API token with scopes (named t1, t2, … unless named): (id, secret)."""
        self.tokens_made += 1
        name = name or f"t{self.tokens_made}"
        answer = await self.call("POST", "/api/v1/tokens", {"name": name, "scopes": list(scopes)})
        assert answer.status == 201, answer.text
        return answer.body["id"], answer.body["token"]

    async def app_with_env(self, app: str = "shop", env: str = "prod") -> None:
        """Create an app with one env."""
        answer = await self.call("POST", "/api/v1/apps", {"name": app, "envs": [env]})
        assert answer.status == 201, answer.text

    async def set_items(self, app: str, env: str, items: dict[str, str]) -> None:
        """Set items in an env's draft."""
        answer = await self.call("PATCH", f"/api/v1/apps/{app}/envs/{env}/items", {"set": items})
        assert answer.status == 200, answer.text

    async def publish(self, app: str, env: str, comment: str = "") -> Answer:
        """Publish an env's draft."""
        return await self.call(
            "POST", f"/api/v1/apps/{app}/envs/{env}/releases", {"comment": comment}
        )

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows: compared before and after a refused request."""
        store = self.app[STORE]
        tables = ("apps", "envs", "items", "releases", "users", "tokens", "audit")
        result = {}
        async with store.reader() as q:
            for table in tables:
                result[table] = await q.conn.fetchall(f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608
        return result


def make_config(
    store_url: str, tmp_path: Path, heartbeat_seconds: float = 20.0, **limits: int
) -> Config:
    """A standalone config on a given store."""
    base = load_config(None, environ={})
    return dataclasses.replace(
        base,
        server=dataclasses.replace(base.server, heartbeat_seconds=heartbeat_seconds),
        store=StoreSection(url=store_url),
        limits=dataclasses.replace(LimitsSection(), **limits),
        base_dir=tmp_path,
    )


class AppFactory(Protocol):
    """The api_factory fixture: start an app on a store URL, signed in as admin."""

    async def __call__(
        self, store_url: str, heartbeat_seconds: float = 20.0, **limits: int
    ) -> Api: ...
