"""One real server process shared by the client tests, and its admin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devservices import ServerProcess
from tests.client.helpers import Admin, sqlite_url


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the client tests that only publish to their own apps."""
    base = tmp_path_factory.mktemp("shared")
    with ServerProcess(base, sqlite_url(base / "cc.db")) as server:
        yield server


@pytest.fixture
def admin(shared_server: ServerProcess) -> Admin:
    """Admin of the shared server."""
    return Admin(shared_server)
