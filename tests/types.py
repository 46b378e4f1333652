"""Types shared by the tests and their fixtures."""

from __future__ import annotations

from typing import Any, Protocol

from devservices import ServerProcess


class ServerProcessFactory(Protocol):
    """The server_process fixture: server_process(store_url, **ServerProcess kwargs)."""

    def __call__(self, store_url: str, **kwargs: Any) -> ServerProcess: ...
