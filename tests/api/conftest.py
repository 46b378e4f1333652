"""An app served over real HTTP on loopback, on SQLite and on a throwaway MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from tests.api.helpers import ADMIN_PASSWORD, Api, AppFactory, make_config


@pytest.fixture
def api_factory(
    aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AppFactory:
    """Start an app on a store URL and sign in as the bootstrap admin."""
    monkeypatch.setenv("CONFIGCENTER_ADMIN_PASSWORD", ADMIN_PASSWORD)

    async def start(store_url: str, heartbeat_seconds: float = 20.0, **limits: int) -> Api:
        config = make_config(store_url, tmp_path, heartbeat_seconds, **limits)
        client = await aiohttp_client(create_app(config))
        response = await client.post(
            "/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert response.status == 200, await response.text()
        return Api(client, (await response.json())["token"])

    return start


@pytest.fixture
async def api(api_factory: AppFactory, store_url: str) -> Api:
    """A running app on SQLite or MariaDB (the store_url parametrization)."""
    return await api_factory(store_url)
