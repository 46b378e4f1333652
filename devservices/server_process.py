"""The configcenter server as a subprocess."""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path
from typing import Any

from devservices.process import (
    DEFAULT_ADMIN_PASSWORD,
    DEV_SECRETS_KEY,
    LOOPBACK,
    REPO_ROOT,
    Process,
    Service,
    free_port,
    http_request,
    wait_until,
)


class ServerProcess(Service):
    """The configcenter server (`python -m server serve`) as a child process on loopback."""

    def __init__(
        self,
        base_dir: Path,
        store_url: str,
        *,
        etcd_endpoints: list[str] | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        admin_password: str = DEFAULT_ADMIN_PASSWORD,
        startup_timeout: float = 20.0,
    ) -> None:
        self.base_dir = base_dir
        self.store_url = store_url
        self.etcd_endpoints = list(etcd_endpoints or [])
        self.port = port if port is not None else free_port()
        self.admin_password = admin_password
        self.startup_timeout = startup_timeout
        self.log_path = base_dir / f"server-{self.port}.log"
        self._env = {
            "PYTHONUNBUFFERED": "1",
            "CONFIGCENTER_SERVER_HOST": LOOPBACK,
            "CONFIGCENTER_SERVER_PORT": str(self.port),
            "CONFIGCENTER_STORE_URL": store_url,
            "CONFIGCENTER_ETCD_ENDPOINTS": ",".join(self.etcd_endpoints),
            "CONFIGCENTER_ADMIN_PASSWORD": admin_password,
            # Every replica of a cluster needs the same secrets key (a standalone server makes
            # its own key file); one fixed key for every test cluster, never a real one.
            **({"CONFIGCENTER_SECRETS_KEY": DEV_SECRETS_KEY} if self.etcd_endpoints else {}),
            **(env or {}),
        }
        self._process: Process | None = None
        self._token: str | None = None

    @property
    def url(self) -> str:
        """Base URL, http://127.0.0.1:PORT."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        """Exit code of the last run once stopped or killed."""
        return None if self._process is None else self._process.returncode

    def start(self) -> None:
        """Launch the server and wait until GET /readyz answers 200; raise with the log tail."""
        if self._process is not None and self._process.running:
            raise RuntimeError("server is already running")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._process = Process(
            f"server :{self.port}",
            [sys.executable, "-m", "server", "serve"],
            self.log_path,
            cwd=REPO_ROOT,
            env=self._env,
            stop_timeout=10.0,
        )
        try:
            self._process.start()
            wait_until("configcenter server", self._ready, [self._process], self.startup_timeout)
        except BaseException:
            self._process.kill()
            raise

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 10 s."""
        if self._process is not None:
            self._process.stop()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._process is not None:
            self._process.kill()

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers."""
        if self._process is not None:
            self._process.pause()

    def resume(self) -> None:
        """SIGCONT after pause()."""
        if self._process is not None:
            self._process.resume()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port."""
        self.stop()
        self._token = None
        self.start()

    def log_text(self) -> str:
        """Everything the server printed, across restarts."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """One HTTP request; returns (status, parsed JSON body or None when not JSON)."""
        body = None if json_body is None else json.dumps(json_body).encode()
        all_headers = {"Content-Type": "application/json"} if body is not None else {}
        all_headers.update(headers or {})
        status, raw = http_request(method, self.port, path, body, all_headers, timeout)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    def admin_token(self) -> str:
        """Log in as admin (POST /api/v1/login) once and return the cached token."""
        if self._token is None:
            status, body = self.request(
                "POST", "/api/v1/login", {"username": "admin", "password": self.admin_password}
            )
            if status != 200 or not isinstance(body, dict) or "token" not in body:
                raise RuntimeError(f"admin login failed: HTTP {status}: {body!r}")
            self._token = str(body["token"])
        return self._token

    def _ready(self) -> bool:
        try:
            status, _ = http_request("GET", self.port, "/readyz", timeout=1.0)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200
