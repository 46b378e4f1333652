"""What a run needs on loopback: etcd, MariaDB and configcenter servers; all stopped at exit."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from pathlib import Path

from bench.ceiling import CeilingServer
from devservices import (
    DEFAULT_ADMIN_PASSWORD,
    EtcdCluster,
    MariaDBServer,
    ServerProcess,
    free_port,
)

log = logging.getLogger("bench")


def cluster_mode_available() -> str | None:
    """None when server/coord/etcd.py exists, else why cluster mode cannot be measured."""
    if importlib.util.find_spec("server.coord.etcd") is None:
        return "cluster mode not available (server/coord/etcd.py is missing)"
    return None


class Stack:
    """Owns every process of a run; `close()` stops them in reverse order of start."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.password = DEFAULT_ADMIN_PASSWORD
        self._stack = contextlib.ExitStack()
        self._etcd: EtcdCluster | None = None
        self._mariadb: MariaDBServer | None = None
        self.servers: dict[str, list[ServerProcess]] = {}

    def close(self) -> None:
        """Stop everything started, newest first."""
        self._stack.close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def etcd(self) -> EtcdCluster:
        """A single etcd member, started on first use."""
        if self._etcd is None:
            cluster = EtcdCluster(1, self.base_dir / "etcd")
            cluster.start()
            self._stack.callback(cluster.stop)
            self._etcd = cluster
        return self._etcd

    @property
    def etcd_pid(self) -> int | None:
        """The etcd member's pid."""
        return pid_of_etcd(self.base_dir / "etcd") if self.etcd else None

    @property
    def etcd_endpoint(self) -> tuple[str, int]:
        """host, port of the etcd member."""
        host, port = self.etcd.client_endpoints[0].rsplit(":", 1)
        return host, int(port)

    @property
    def mariadb(self) -> MariaDBServer:
        """A throwaway MariaDB, started on first use."""
        if self._mariadb is None:
            server = MariaDBServer(self.base_dir / "mariadb")
            server.start()
            self._stack.callback(server.stop)
            self._mariadb = server
        return self._mariadb

    def start_server(
        self,
        name: str,
        replicas: int = 1,
        env: dict[str, str] | None = None,
        shared_port: bool = False,
    ) -> list[ServerProcess]:
        """Start a named target: sqlite, mariadb, etcd (MariaDB + etcd) or cluster (3 of them);
        shared_port: the replicas listen on one port (server.reuse_port)."""
        if name in self.servers:
            return self.servers[name]
        base = self.base_dir / name
        etcd_endpoints: list[str] = []
        if name.startswith("sqlite"):
            store_url = f"sqlite:///{base / 'configcenter.db'}"
        else:
            store_url = self.mariadb.create_database(f"bench_{name}")
        if name.startswith(("etcd", "cluster")):
            etcd_endpoints = list(self.etcd.client_endpoints)
        processes = []
        port = free_port() if shared_port else None
        for i in range(replicas):
            process = ServerProcess(
                base / f"replica{i}",
                store_url,
                etcd_endpoints=etcd_endpoints,
                port=port,
                # Targets share the one etcd: each deployment gets a prefix of its own.
                # 10,000 subscribers plus the load generators' own connections: above the
                # default cap of 10,000 open connections.
                env={
                    "CONFIGCENTER_ETCD_PREFIX": etcd_prefix(name),
                    "CONFIGCENTER_SERVER_MAX_CONNECTIONS": "19000",
                    **({"CONFIGCENTER_SERVER_REUSE_PORT": "true"} if shared_port else {}),
                    **(env or {}),
                },
                admin_password=self.password,
                startup_timeout=60.0,
            )
            process.start()
            self._stack.callback(process.stop)
            processes.append(process)
        self.servers[name] = processes
        log.info("started %s: %s", name, ", ".join(p.url for p in processes))
        return processes

    def start_ceiling(self, name: str, body: bytes) -> CeilingServer:
        """A bare aiohttp server serving `body` (the read and push ceilings), stopped at close."""
        ceiling = CeilingServer(self.base_dir / f"ceiling-{name}", body).start()
        self._stack.callback(ceiling.stop)
        return ceiling

    def stop_server(self, name: str) -> None:
        """Stop a target early (its stop callback is then a no-op)."""
        for process in self.servers.pop(name, []):
            process.stop()


def etcd_prefix(target: str) -> str:
    """The etcd prefix of a target's deployment (targets share the one etcd)."""
    return f"/configcenter-{target}"


def pid_of_etcd(base_dir: Path) -> int | None:
    """The pid of the etcd member whose data dir is under base_dir (for CPU and memory)."""
    import psutil

    marker = str(base_dir)
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if cmdline and cmdline[0].endswith("etcd") and any(marker in arg for arg in cmdline):
            return int(process.pid)
    return None
