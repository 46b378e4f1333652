"""A real server behind Debian's nginx (TLS with a self-made CA), on SQLite and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devservices import NginxProxy, ServerProcess
from tests.proxy.helpers import FAILURES_PER_ADDRESS, TRUSTED_PROXY, Proxied


def start_proxied(base: Path, store_url: str, **env: str) -> Iterator[Proxied]:
    """The server, trusting nginx's address, and nginx in front of it; both stopped after."""
    server = ServerProcess(
        base / "server",
        store_url,
        env={
            "CONFIGCENTER_SERVER_TRUSTED_PROXIES": TRUSTED_PROXY,
            "CONFIGCENTER_AUTH_FAILURES_PER_ADDRESS": str(FAILURES_PER_ADDRESS),
            **env,
        },
    )
    with server, NginxProxy(base / "nginx", server.port) as proxy:
        yield Proxied(server, proxy)


@pytest.fixture
def proxied(tmp_path: Path, store_url: str) -> Iterator[Proxied]:
    """A server behind nginx, on SQLite and on MariaDB."""
    yield from start_proxied(tmp_path, store_url)
