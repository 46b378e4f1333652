"""Process plumbing shared by the services: ports, waiting, starting and killing."""

from __future__ import annotations

import atexit
import functools
import http.client
import logging
import os
import re
import signal
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import port_for
from mirakuru import SimpleExecutor
from mirakuru.base import ENV_UUID
from mirakuru.base_env import processes_with_env
from mirakuru.exceptions import ProcessFinishedWithError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
ETCD_BIN = "/usr/bin/etcd"
MARIADBD_BIN = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB_BIN = "/usr/bin/mariadb-install-db"
# The bootstrap admin password of test servers: throwaway, loopback only.
DEFAULT_ADMIN_PASSWORD = "admin-pass-123"  # noqa: S105
# base64 of 32 bytes: the secrets key of test clusters (devservices only, never a real key).
DEV_SECRETS_KEY = "ZGV2c2VydmljZXMtdGVzdC1rZXktMzItYnl0ZXMhISE="

DB_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_port_lock = threading.Lock()
_ports_handed_out: set[int] = set()


@functools.cache
def _good_ports() -> frozenset[int]:
    ports = frozenset(port_for.available_good_ports())
    # Under pytest-xdist each worker takes only its share of the ports: a port another worker
    # left free for a moment (a server restarting on its own port) is never handed out here,
    # where a new server would take it and answer the restarting one's readiness check.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or "1")
    if worker.startswith("gw") and worker[2:].isdigit() and workers > 1:
        share = int(worker[2:]) % workers
        ports = frozenset(p for p in ports if p % workers == share)
    return ports


def free_port() -> int:
    """Return a free loopback TCP port that this process has not handed out before."""
    # port-for picks outside the kernel's ephemeral range, so an outgoing connection cannot
    # grab the port between this check and the service binding it; ports are never handed
    # out twice so a stopped member can get its port back on restart.
    with _port_lock:
        port = port_for.select_random(set(_good_ports() - _ports_handed_out))
        _ports_handed_out.add(port)
        return int(port)


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def http_request(
    method: str,
    port: int,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,
    *,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """One HTTP (HTTPS with `tls`) request to a loopback port; returns (status, body)."""
    conn = (
        http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
        if tls is None
        else http.client.HTTPSConnection(LOOPBACK, port, timeout=timeout, context=tls)
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _letters(text: str) -> str:
    return text.translate(_NO_DIGITS)


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def _mark_prefix(pid: int) -> str:
    return f"configcenter-{_letters(str(pid))}-"


class _MarkedExecutor(SimpleExecutor):
    """mirakuru's executor, marking its child with a mark that holds no digits."""

    # mirakuru marks children with "<our pid>:<uuid>" and, at any process's exit, kills those
    # whose mark merely contains that process's pid: a concurrent test run whose pid is a
    # prefix of ours would kill our services. A mark spelled without digits cannot match;
    # kill_leftovers() below replaces the at-exit cleanup this gives up, and the mark still
    # names our pid (spelled in letters) so children_of() finds the children of a process.
    @property
    def envvars(self) -> dict[str, str]:
        env: dict[str, str] = super().envvars
        env[ENV_UUID] = _mark_prefix(os.getpid()) + _letters(uuid.uuid4().hex)
        return env

    @property
    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = super()._popen_kwargs
        # mirakuru's preexec_fn=os.setsid runs Python in the forked child before exec; with
        # gRPC threads running in this process (an etcd client in a test) that child can die
        # at once (SIGSEGV/SIGABRT, nothing logged). start_new_session is the same setsid,
        # done by the C fork code without running Python in the child.
        if kwargs.pop("preexec_fn", None) is not None:
            kwargs["start_new_session"] = True
        return kwargs


def children_of(pid: int) -> set[int]:
    """Pids of the live services that process `pid` started through this module."""
    return set(processes_with_env(ENV_UUID, _mark_prefix(pid)))


class Process:
    """One child in its own process group (mirakuru), output appended to a log file."""

    def __init__(
        self,
        name: str,
        command: list[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.returncode: int | None = None
        self.paused = False
        self._log_file: IO[str] | None = log_path.open("a", encoding="utf-8")
        self._executor = _MarkedExecutor(
            command,
            cwd=str(cwd) if cwd else None,
            timeout=stop_timeout,
            envvars=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> None:
        """Start the process once; a Process is not reused after stop or kill."""
        assert self._log_file is not None, "a Process cannot be restarted"
        self._log_file.write(f"=== {time.strftime('%H:%M:%S')} starting {self.name}\n")
        self._log_file.flush()
        with _live_lock:
            _live.add(self)
        try:
            self._executor.start()
        except BaseException:
            self._forget()
            raise

    @property
    def pid(self) -> int | None:
        """The pid while it runs."""
        process = self._executor.process
        return None if process is None else int(process.pid)

    def poll(self) -> int | None:
        """Exit code if the process has ended, else None."""
        process = self._executor.process
        return None if process is None else process.poll()

    @property
    def running(self) -> bool:
        """True while the process has not ended."""
        return self._executor.running()

    def signal(self, sig: int) -> None:
        """Send `sig` to the process group."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        """SIGSTOP the process group."""
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT the process group."""
        self.signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the stop timeout; a non-zero exit is only recorded."""
        if self.paused:
            self.resume()
        process = self._executor.process
        try:
            self._executor.stop()
            if process is not None:
                self.returncode = process.returncode
        except ProcessFinishedWithError as exc:
            self.returncode = exc.exit_code
            log.warning("%s exited with code %s on stop", self.name, exc.exit_code)
        finally:
            self._forget()

    def kill(self) -> None:
        """SIGKILL the process group and reap it."""
        process = self._executor.process
        try:
            self._executor.kill()
            if process is not None:
                self.returncode = process.returncode
        finally:
            self.paused = False
            self._forget()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of its log."""
        return tail(self.log_path, lines)

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


_live: set[Process] = set()
_live_lock = threading.Lock()


@atexit.register
def kill_leftovers() -> None:
    """At interpreter exit, SIGKILL every child a caller forgot to stop."""
    with _live_lock:
        leftovers = list(_live)
    for proc in leftovers:
        proc.signal(signal.SIGKILL)


def wait_until(
    what: str,
    ready: Callable[[], bool],
    processes: Iterable[Process],
    timeout: float,
) -> None:
    """Poll ready() until true; raise RuntimeError with log tails on early exit or timeout."""
    processes = list(processes)
    deadline = time.monotonic() + timeout
    while True:
        for proc in processes:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"{what}: {proc.name} exited with code {code} while starting; "
                    f"log {proc.log_path}:\n{proc.log_tail()}"
                )
        if ready():
            return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ({p.log_path}):\n{p.log_tail()}" for p in processes)
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s\n{tails}")
        time.sleep(0.05)


class Service:
    """Something started and stopped; `with` starts it and always stops it."""

    def start(self) -> None:
        """Start it; raise when it cannot start."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop it."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
