"""Throwaway etcd, MariaDB and configcenter processes on loopback for tests, scripts, benches."""

from __future__ import annotations

import atexit
import functools
import getpass
import http.client
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import port_for
import pymysql
from mirakuru import SimpleExecutor
from mirakuru.exceptions import ProcessFinishedWithError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
ETCD_BIN = "/usr/bin/etcd"
MARIADBD_BIN = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB_BIN = "/usr/bin/mariadb-install-db"
# The bootstrap admin password of test servers: throwaway, loopback only.
DEFAULT_ADMIN_PASSWORD = "admin-pass-123"  # noqa: S105

_DB_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_port_lock = threading.Lock()
_ports_handed_out: set[int] = set()


@functools.cache
def _good_ports() -> frozenset[int]:
    return frozenset(port_for.available_good_ports())


def free_port() -> int:
    """Return a free loopback TCP port that this process has not handed out before."""
    # port-for picks outside the kernel's ephemeral range, so an outgoing connection cannot
    # grab the port between this check and the service binding it; ports are never handed
    # out twice so a stopped member can get its port back on restart.
    with _port_lock:
        port = port_for.select_random(set(_good_ports() - _ports_handed_out))
        _ports_handed_out.add(port)
        return int(port)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _http(
    method: str,
    port: int,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 2.0,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class _Process:
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
        self._executor = SimpleExecutor(
            command,
            cwd=str(cwd) if cwd else None,
            timeout=stop_timeout,
            envvars=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        # mirakuru marks children with "<our pid>:<uuid>" and, at any process's exit, kills
        # those whose mark merely contains that process's pid: a concurrent test run whose pid
        # is a prefix of ours would kill our services. A mark without digits cannot match;
        # _kill_leftovers below replaces the at-exit cleanup this gives up.
        self._executor._uuid = "configcenter-" + uuid.uuid4().hex.translate(_NO_DIGITS)

    def start(self) -> None:
        """Start the process once; a _Process is not reused after stop or kill."""
        assert self._log_file is not None, "a _Process cannot be restarted"
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
        process = self._executor.process
        return None if process is None else int(process.pid)

    def poll(self) -> int | None:
        """Exit code if the process has ended, else None."""
        process = self._executor.process
        return None if process is None else process.poll()

    @property
    def running(self) -> bool:
        return self._executor.running()

    def signal(self, sig: int) -> None:
        pid = self.pid
        if pid is None:
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
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
        return _tail(self.log_path, lines)

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")
_live: set[_Process] = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    """At interpreter exit, SIGKILL every child a caller forgot to stop."""
    with _live_lock:
        leftovers = list(_live)
    for proc in leftovers:
        proc.signal(signal.SIGKILL)


def _wait_until(
    what: str,
    ready: Callable[[], bool],
    processes: Iterable[_Process],
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


class _Service:
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


class _EtcdMember:
    """Ports, directories and process of one etcd member."""

    def __init__(self, name: str, base_dir: Path) -> None:
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = base_dir / f"{name}.etcd"
        self.log_path = base_dir / f"{name}.log"
        self.process: _Process | None = None

    @property
    def client_url(self) -> str:
        return f"http://{LOOPBACK}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{LOOPBACK}:{self.peer_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.running and not self.process.paused


class EtcdCluster(_Service):
    """An etcd cluster of `size` members (1 for single-node) on loopback, data in base_dir."""

    def __init__(self, size: int, base_dir: Path, *, startup_timeout: float = 30.0) -> None:
        if size < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.base_dir = base_dir
        self.startup_timeout = startup_timeout
        base_dir.mkdir(parents=True, exist_ok=True)
        self._token = f"configcenter-test-{uuid.uuid4().hex[:12]}"
        members = [_EtcdMember(f"n{i}", base_dir) for i in range(1, size + 1)]
        self._members = {m.name: m for m in members}
        self._initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self._members.values())

    @property
    def member_names(self) -> list[str]:
        """Member names, n1..nN."""
        return list(self._members)

    @property
    def client_endpoints(self) -> list[str]:
        """Every member's client address as host:port."""
        return [f"{LOOPBACK}:{m.client_port}" for m in self._members.values()]

    @property
    def client_urls(self) -> list[str]:
        """Every member's client address as an http:// URL."""
        return [m.client_url for m in self._members.values()]

    def endpoint(self, name: str) -> str:
        """One member's client address as host:port."""
        return f"{LOOPBACK}:{self._member(name).client_port}"

    def member_pid(self, name: str) -> int | None:
        """The member's pid while it runs."""
        process = self._member(name).process
        return None if process is None else process.pid

    def start(self) -> None:
        """Start every member and wait until all are healthy; kill them all on failure."""
        if any(m.process is not None for m in self._members.values()):
            raise RuntimeError("etcd cluster is already started")
        try:
            for member in self._members.values():
                self._spawn(member, "new")
            self._wait_healthy(self._members.values())
        except BaseException:
            for name in self._members:
                self.kill_member(name)
            raise

    def stop(self) -> None:
        """Stop every running member, one after the other (SIGTERM, SIGKILL after 10 s)."""
        # One at a time: members sent SIGTERM together take ~7 s to stop, in turn ~0.1 s each.
        for name in self._members:
            self.stop_member(name)

    def kill_member(self, name: str) -> None:
        """SIGKILL one member, as a crash would."""
        member = self._member(name)
        if member.process is not None:
            member.process.kill()
            member.process = None

    def stop_member(self, name: str) -> None:
        """Stop one member gracefully."""
        member = self._member(name)
        if member.process is not None:
            member.process.stop()
            member.process = None

    def start_member(self, name: str, *, wait: bool = True) -> None:
        """Restart a stopped or killed member with its data dir; wait until it is healthy."""
        member = self._member(name)
        if member.process is not None:
            raise RuntimeError(f"etcd member {name} is already running")
        try:
            self._spawn(member, "existing")
            if wait:
                self._wait_healthy([member])
        except BaseException:
            self.kill_member(name)
            raise

    def pause_member(self, name: str) -> None:
        """SIGSTOP one member: it stays connected but answers nothing."""
        process = self._member(name).process
        if process is None:
            raise RuntimeError(f"etcd member {name} is not running")
        process.pause()

    def resume_member(self, name: str) -> None:
        """SIGCONT a paused member."""
        process = self._member(name).process
        if process is None:
            raise RuntimeError(f"etcd member {name} is not running")
        process.resume()

    def member_status(self, name: str) -> dict[str, Any] | None:
        """The member's /v3/maintenance/status JSON, or None when it does not answer."""
        member = self._member(name)
        if not member.alive:
            return None
        try:
            status, body = _http(
                "POST", member.client_port, "/v3/maintenance/status", b"{}", timeout=1.0
            )
        except (OSError, http.client.HTTPException):
            return None
        if status != 200:
            return None
        result: dict[str, Any] = json.loads(body)
        return result

    def leader_name(self) -> str:
        """Name of the current leader; RuntimeError when no live member claims to be leader."""
        claims: list[tuple[int, str]] = []
        for name in self._members:
            status = self.member_status(name)
            if status is None:
                continue
            header = status.get("header", {})
            if header.get("member_id") is not None and header.get("member_id") == status.get(
                "leader"
            ):
                claims.append((int(header.get("raft_term", 0)), name))
        if not claims:
            raise RuntimeError("etcd cluster has no leader")
        # A resumed old leader may still believe it leads; the highest term wins.
        return max(claims)[1]

    def wait_for_leader(self, timeout: float = 10.0, *, other_than: str | None = None) -> str:
        """Poll until a leader (other than `other_than`) exists; return its name."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                name = self.leader_name()
                if name != other_than:
                    return name
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd cluster: no new leader within {timeout:.0f} s")
            time.sleep(0.1)

    def is_member_healthy(self, name: str) -> bool:
        """True when the member answers /health with health=true (it sees a leader)."""
        member = self._member(name)
        if not member.alive:
            return False
        try:
            status, body = _http("GET", member.client_port, "/health", timeout=1.0)
        except (OSError, http.client.HTTPException):
            return False
        if status != 200:
            return False
        try:
            return bool(json.loads(body).get("health") == "true")
        except ValueError:
            return False

    def is_healthy(self) -> bool:
        """True when every member is running and healthy."""
        return all(self.is_member_healthy(name) for name in self._members)

    def _member(self, name: str) -> _EtcdMember:
        try:
            return self._members[name]
        except KeyError:
            raise KeyError(f"no etcd member {name!r}; members: {self.member_names}") from None

    def _spawn(self, member: _EtcdMember, state: str) -> None:
        command = [
            ETCD_BIN,
            "--logger=zap",
            "--name",
            member.name,
            "--data-dir",
            str(member.data_dir),
            "--listen-client-urls",
            member.client_url,
            "--advertise-client-urls",
            member.client_url,
            "--listen-peer-urls",
            member.peer_url,
            "--initial-advertise-peer-urls",
            member.peer_url,
            "--initial-cluster",
            self._initial_cluster,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            self._token,
        ]
        process = _Process(f"etcd {member.name}", command, member.log_path, stop_timeout=10.0)
        member.process = process
        process.start()

    def _wait_healthy(self, members: Iterable[_EtcdMember]) -> None:
        members = list(members)
        _wait_until(
            "etcd",
            lambda: all(self.is_member_healthy(m.name) for m in members),
            [m.process for m in members if m.process is not None],
            self.startup_timeout,
        )


class MariaDBServer(_Service):
    """A throwaway MariaDB on a free loopback port, files in base_dir; root has no password."""

    def __init__(self, base_dir: Path, *, startup_timeout: float = 60.0) -> None:
        self.base_dir = base_dir
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.host = LOOPBACK
        self.data_dir = base_dir / "data"
        self.socket_path = base_dir / "mariadb.sock"
        if len(str(self.socket_path)) > 100:  # AF_UNIX paths are limited to 107 bytes
            self.socket_path = (
                Path(tempfile.gettempdir()) / f"configcenter-mariadb-{self.port}.sock"
            )
        self.log_path = base_dir / "mariadb.log"
        self._process: _Process | None = None

    def start(self) -> None:
        """Initialise the data dir if needed, start mariadbd and wait until it accepts root."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        user = getpass.getuser()
        if not (self.data_dir / "mysql").is_dir():
            self._install_db(user)
        (self.base_dir / "tmp").mkdir(exist_ok=True)
        command = [
            MARIADBD_BIN,
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--port={self.port}",
            f"--bind-address={LOOPBACK}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.base_dir / 'mariadbd.pid'}",
            f"--tmpdir={self.base_dir / 'tmp'}",
            f"--user={user}",
            "--skip-name-resolve",
            "--skip-log-bin",
            # Debian's packaged defaults, which --no-defaults would otherwise drop (latin1).
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            # Throwaway data: trade durability for speed and memory.
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=32M",
        ]
        self._process = _Process("mariadbd", command, self.log_path, stop_timeout=30.0)
        try:
            self._process.start()
            _wait_until("mariadb", self._accepts_root, [self._process], self.startup_timeout)
        except BaseException:
            self._process.kill()
            self._process = None
            raise

    def stop(self) -> None:
        """SIGTERM mariadbd, SIGKILL after 30 s."""
        if self._process is not None:
            self._process.stop()
            self._process = None

    def connect(self, database: str | None = None) -> Any:
        """A new autocommit pymysql connection as root, optionally to `database`."""
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user="root",
            password="",
            database=database,
            autocommit=True,
            connect_timeout=5,
        )

    def url(self, database: str) -> str:
        """The store URL for `database`: mysql://root@127.0.0.1:PORT/NAME."""
        return f"mysql://root@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its store URL."""
        self._execute(f"CREATE DATABASE `{self._checked(name)}`")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists."""
        self._execute(f"DROP DATABASE IF EXISTS `{self._checked(name)}`")

    def _execute(self, sql: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
        finally:
            conn.close()

    @staticmethod
    def _checked(name: str) -> str:
        # Identifiers cannot be bound parameters, so only plain names are accepted.
        if not _DB_NAME_RE.match(name):
            raise ValueError(f"database name must match {_DB_NAME_RE.pattern}: {name!r}")
        return name

    def _accepts_root(self) -> bool:
        try:
            conn = pymysql.connect(
                host=self.host,
                port=self.port,
                user="root",
                password="",
                connect_timeout=1,
                read_timeout=1,
                write_timeout=1,
            )
        except (pymysql.err.MySQLError, OSError):
            return False
        conn.close()
        return True

    def _install_db(self, user: str) -> None:
        install_log = self.base_dir / "mariadb-install-db.log"
        command = [
            MARIADB_INSTALL_DB_BIN,
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        with install_log.open("w", encoding="utf-8") as out:
            try:
                result = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=120,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RuntimeError(f"mariadb-install-db failed: {exc}") from exc
        if result.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db exited with code {result.returncode}; "
                f"log {install_log}:\n{_tail(install_log)}"
            )


class ServerProcess(_Service):
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
            **(env or {}),
        }
        self._process: _Process | None = None
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
        self._process = _Process(
            f"server :{self.port}",
            [sys.executable, "-m", "server", "serve"],
            self.log_path,
            cwd=REPO_ROOT,
            env=self._env,
            stop_timeout=10.0,
        )
        try:
            self._process.start()
            _wait_until("configcenter server", self._ready, [self._process], self.startup_timeout)
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
        status, raw = _http(method, self.port, path, body, all_headers, timeout)
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
            status, _ = _http("GET", self.port, "/readyz", timeout=1.0)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200
