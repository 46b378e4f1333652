"""A throwaway MariaDB server on a loopback port."""

from __future__ import annotations

import getpass
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pymysql

from devservices.process import (
    DB_NAME_RE,
    LOOPBACK,
    MARIADB_INSTALL_DB_BIN,
    MARIADBD_BIN,
    Process,
    Service,
    free_port,
    tail,
    wait_until,
)


class MariaDBServer(Service):
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
        self._process: Process | None = None

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
        self._process = Process("mariadbd", command, self.log_path, stop_timeout=30.0)
        try:
            self._process.start()
            wait_until("mariadb", self._accepts_root, [self._process], self.startup_timeout)
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
        if not DB_NAME_RE.match(name):
            raise ValueError(f"database name must match {DB_NAME_RE.pattern}: {name!r}")
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
                f"log {install_log}:\n{tail(install_log)}"
            )
