"""Throwaway etcd clusters on loopback ports, in plain mode or secured (TLS and users)."""

from __future__ import annotations

import http.client
import json
import secrets
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devservices.process import (
    ETCD_BIN,
    LOOPBACK,
    Process,
    Service,
    free_port,
    http_request,
    wait_until,
)
from devservices.tls import CertFiles, CertificateAuthority, client_ssl_context

ETCDCTL_BIN = "/usr/bin/etcdctl"
# The user a configcenter server connects as (with a role on its prefix only), and the root
# user that `auth enable` requires and tests use behind the servers' backs.
SERVER_USER = "configcenter"
ROOT_USER = "root"


@dataclass(frozen=True)
class EtcdSecurity:
    """What a client of a secured cluster needs: the CA, client certificates, users."""

    ca: CertificateAuthority
    client: CertFiles
    username: str
    password: str
    root_password: str
    # The role of `username` may read and write the keys that start with it.
    prefix: str

    @property
    def ca_file(self) -> Path:
        """The CA that signed every member's certificate and the client certificate."""
        return self.ca.cert_file

    def server_env(self) -> dict[str, str]:
        """The CONFIGCENTER_ETCD_* settings of a server that connects as SERVER_USER."""
        return {
            "CONFIGCENTER_ETCD_CA_FILE": str(self.ca_file),
            "CONFIGCENTER_ETCD_CERT_FILE": str(self.client.cert_file),
            "CONFIGCENTER_ETCD_KEY_FILE": str(self.client.key_file),
            "CONFIGCENTER_ETCD_USERNAME": self.username,
            "CONFIGCENTER_ETCD_PASSWORD": self.password,
        }


class _EtcdMember:
    """Ports, directories and process of one etcd member."""

    def __init__(self, name: str, base_dir: Path, scheme: str) -> None:
        self.name = name
        self.scheme = scheme
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = base_dir / f"{name}.etcd"
        self.log_path = base_dir / f"{name}.log"
        self.process: Process | None = None
        self.certs: CertFiles | None = None

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.peer_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.running and not self.process.paused


class EtcdCluster(Service):
    """An etcd cluster of `size` members (1 for single-node) on loopback, data in base_dir.

    secure=True: client and peer traffic over TLS with client certificates required (a CA
    and every certificate made in base_dir), and auth enabled with a root user and a
    SERVER_USER whose role may read and write the keys starting with `user_prefix` only (see
    `security`); `auth_token_ttl` is etcd's --auth-token-ttl (idle lifetime of a token).
    """

    def __init__(
        self,
        size: int,
        base_dir: Path,
        *,
        startup_timeout: float = 30.0,
        secure: bool = False,
        user_prefix: str = "/configcenter/",
        auth_token_ttl: int | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.base_dir = base_dir
        self.startup_timeout = startup_timeout
        base_dir.mkdir(parents=True, exist_ok=True)
        self._token = f"configcenter-test-{uuid.uuid4().hex[:12]}"
        scheme = "https" if secure else "http"
        members = [_EtcdMember(f"n{i}", base_dir, scheme) for i in range(1, size + 1)]
        self._members = {m.name: m for m in members}
        self._initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self._members.values())
        self.security: EtcdSecurity | None = None
        self._tls: ssl.SSLContext | None = None
        self._auth_token_ttl = auth_token_ttl
        if secure:
            self._secure(user_prefix)

    def _secure(self, prefix: str) -> None:
        ca = CertificateAuthority(self.base_dir / "tls")
        for member in self._members.values():
            # One certificate per member, for its client URL and (as client too) its peers.
            member.certs = ca.issue(member.name, ip_addresses=(LOOPBACK,), server=True, client=True)
        self.security = EtcdSecurity(
            ca=ca,
            client=ca.issue("configcenter-client", client=True),
            username=SERVER_USER,
            password=secrets.token_urlsafe(12),
            root_password=secrets.token_urlsafe(12),
            prefix=prefix,
        )
        # etcd's HTTP gateway (/health, /v3/... here) refuses a client certificate with a CN
        # when client-cert auth is on, lest the CN be taken for a user: probes use one without.
        probe = ca.issue("probe", client=True, common_name=False)
        self._tls = client_ssl_context(ca.cert_file, probe)

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
        """Every member's client address as an http:// (secure: https://) URL."""
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
            if self.security is not None:
                self._enable_auth(self.security)
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
            status, body = http_request(
                "POST",
                member.client_port,
                "/v3/maintenance/status",
                b"{}",
                timeout=1.0,
                tls=self._tls,
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
            status, body = http_request(
                "GET", member.client_port, "/health", timeout=1.0, tls=self._tls
            )
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
        if member.certs is not None and self.security is not None:
            cert, key, ca = member.certs.cert_file, member.certs.key_file, self.security.ca_file
            command += [
                f"--cert-file={cert}",
                f"--key-file={key}",
                f"--trusted-ca-file={ca}",
                "--client-cert-auth",
                f"--peer-cert-file={cert}",
                f"--peer-key-file={key}",
                f"--peer-trusted-ca-file={ca}",
                "--peer-client-cert-auth",
            ]
            if self._auth_token_ttl is not None:
                command.append(f"--auth-token-ttl={self._auth_token_ttl}")
        process = Process(f"etcd {member.name}", command, member.log_path, stop_timeout=10.0)
        member.process = process
        process.start()

    def _wait_healthy(self, members: Iterable[_EtcdMember]) -> None:
        members = list(members)
        wait_until(
            "etcd",
            lambda: all(self.is_member_healthy(m.name) for m in members),
            [m.process for m in members if m.process is not None],
            self.startup_timeout,
        )

    def etcdctl(self, *args: str, user: str | None = None, password: str = "") -> str:
        """Run etcdctl against the live members (secure: with the CA, client cert and user)."""
        command = [ETCDCTL_BIN, f"--endpoints={','.join(self.client_urls)}"]
        if self.security is not None:
            command += [
                f"--cacert={self.security.ca_file}",
                f"--cert={self.security.client.cert_file}",
                f"--key={self.security.client.key_file}",
            ]
        if user is not None:
            command.append(f"--user={user}:{password}")
        done = subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={"ETCDCTL_API": "3"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def _enable_auth(self, security: EtcdSecurity) -> None:
        """Root and SERVER_USER (readwrite on the prefix), then `auth enable`."""
        role = SERVER_USER
        self.etcdctl("user", "add", ROOT_USER, f"--new-user-password={security.root_password}")
        # etcd 3.4 refuses `auth enable` until root has the root role.
        self.etcdctl("role", "add", ROOT_USER)
        self.etcdctl("user", "grant-role", ROOT_USER, ROOT_USER)
        self.etcdctl("role", "add", role)
        self.etcdctl(
            "role", "grant-permission", role, "--prefix=true", "readwrite", security.prefix
        )
        self.etcdctl("user", "add", security.username, f"--new-user-password={security.password}")
        self.etcdctl("user", "grant-role", security.username, role)
        self.etcdctl("auth", "enable")
