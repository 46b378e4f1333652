"""Cluster mode on a secured etcd: TLS with client certificates, and an etcd user.

One 3-member cluster for the module (TLS on client and peer URLs, client certificates required,
auth enabled; the user's role covers keys starting with /cc-test- only), coordinators and
servers connecting to it with the right and with wrong certificates and passwords.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aetcd.exceptions
import pytest

from devservices import REPO_ROOT, EtcdCluster
from devservices.etcd import EtcdSecurity
from devservices.tls import CertificateAuthority
from server.config import EtcdSection, load_config
from server.coord.etcd_conn import (
    EtcdAccess,
    EtcdConnection,
    LeaderClient,
    parse_endpoint,
)
from server.errors import AppError, ErrorCode
from tests.coord.helpers import Node, NodeFactory, StoreReleases, make_release
from tests.helpers import etcd_access
from tests.types import ServerProcessFactory

pytestmark = [pytest.mark.etcd]

USER_PREFIX = "/cc-test-"
# etcd forgets a token unused for this long (--auth-token-ttl): short, to see one expire.
TOKEN_TTL = 2
# A refused start gives up after START_WITHIN (2 s) of retries; the rest is slack for a
# loaded machine. What matters: it ends, with the reason, instead of hanging.
REFUSED_WITHIN = 15.0


@pytest.fixture(scope="module")
def secure_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """A secured 3-member etcd shared by the module's tests (each uses its own prefix)."""
    with EtcdCluster(
        3,
        tmp_path_factory.mktemp("coord-tls"),
        secure=True,
        user_prefix=USER_PREFIX,
        auth_token_ttl=TOKEN_TTL,
    ) as cluster:
        yield cluster


@pytest.fixture
def security(secure_etcd: EtcdCluster) -> EtcdSecurity:
    """The CA, client certificate and users of the secured cluster."""
    assert secure_etcd.security is not None
    return secure_etcd.security


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A CA etcd does not trust (its certificates are refused) and we must not trust."""
    return CertificateAuthority(tmp_path_factory.mktemp("stranger"), "stranger CA")


def settings_of(security: EtcdSecurity, **overrides: str) -> dict[str, Any]:
    """The [etcd] TLS and user settings of a replica that does everything right, amended."""
    settings = {
        "ca_file": str(security.ca_file),
        "cert_file": str(security.client.cert_file),
        "key_file": str(security.client.key_file),
        "username": security.username,
        "password": security.password,
    }
    return {**settings, **overrides}


async def secure_node(
    node_factory: NodeFactory, cluster: EtcdCluster, security: EtcdSecurity, **overrides: str
) -> Node:
    return await node_factory(
        "etcd", cluster.client_endpoints, **settings_of(security, **overrides)
    )


async def until(condition: Any, within: float = 15.0, what: str = "condition") -> None:
    """Poll a zero-argument callable until it is true (bounded)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {within} s")
        await asyncio.sleep(0.02)


def _at_version(node: Node, version: int) -> bool:
    return node.published.version("shop", "prod") == version


async def test_replicas_over_tls_as_a_user_publish_and_deliver(
    node_factory: NodeFactory,
    store: StoreReleases,
    secure_etcd: EtcdCluster,
    security: EtcdSecurity,
) -> None:
    a = await secure_node(node_factory, secure_etcd, security)
    b = await secure_node(node_factory, secure_etcd, security)
    for version in (1, 2):
        async with a.coordinator.publish_lock("shop", "prod") as fence:
            release = await store.commit(make_release("shop", "prod", version))
            await a.coordinator.distribute(release, fence)
        await until(functools.partial(_at_version, b, version), what=f"version {version} on B")
    await b.coordinator.check()
    members = (await b.etcd.describe())["etcd_members"]
    assert [m["healthy"] for m in members] == [True, True, True], members
    assert all(url.startswith("https://") for m in members for url in m["client_urls"])


@pytest.mark.parametrize(
    ("case", "overrides", "reason"),
    [
        pytest.param(
            "wrong password",
            {"password": "not-the-password"},
            "authentication failed",
            id="wrong-password",
        ),
        pytest.param(
            "unknown user", {"username": "nobody"}, "authentication failed", id="unknown-user"
        ),
        pytest.param("no client certificate", {"cert_file": "", "key_file": ""}, "", id="no-cert"),
        pytest.param(
            "a prefix the role does not cover",
            {"prefix": "/elsewhere"},
            "permission denied",
            id="forbidden-prefix",
        ),
    ],
)
async def test_a_refused_replica_fails_its_start_with_the_reason(
    node_factory: NodeFactory,
    secure_etcd: EtcdCluster,
    security: EtcdSecurity,
    case: str,
    overrides: dict[str, str],
    reason: str,
) -> None:
    started = time.monotonic()
    with pytest.raises(AppError) as refused:
        await asyncio.wait_for(
            secure_node(node_factory, secure_etcd, security, **overrides), REFUSED_WITHIN
        )
    assert refused.value.error is ErrorCode.COORDINATOR_UNAVAILABLE
    assert "etcd refused" in refused.value.message, refused.value.message
    assert reason in refused.value.message, refused.value.message
    assert security.password not in refused.value.message
    print(f"\n{case}: refused after {time.monotonic() - started:.2f} s: {refused.value.message}")


async def test_a_certificate_of_another_ca_is_refused_both_ways(
    node_factory: NodeFactory,
    secure_etcd: EtcdCluster,
    security: EtcdSecurity,
    stranger: CertificateAuthority,
) -> None:
    foreign = stranger.issue("intruder", client=True)
    # etcd refuses our certificate; then we refuse etcd's (signed by a CA we do not trust).
    for overrides in (
        {"cert_file": str(foreign.cert_file), "key_file": str(foreign.key_file)},
        {"ca_file": str(stranger.cert_file)},
    ):
        with pytest.raises(AppError) as refused:
            await asyncio.wait_for(
                secure_node(node_factory, secure_etcd, security, **overrides), REFUSED_WITHIN
            )
        assert "etcd refused" in refused.value.message, refused.value.message


async def test_a_plaintext_client_of_a_tls_etcd_starts_unready(
    node_factory: NodeFactory, secure_etcd: EtcdCluster
) -> None:
    # etcd just closes a plaintext connection: that reads as an outage, not a refusal, so the
    # replica starts (serving the store's releases) and its readiness check fails, bounded.
    node = await asyncio.wait_for(
        node_factory("etcd", secure_etcd.client_endpoints), REFUSED_WITHIN
    )
    with pytest.raises(AppError) as unready:
        await asyncio.wait_for(node.coordinator.check(), REFUSED_WITHIN)
    assert unready.value.error is ErrorCode.COORDINATOR_UNAVAILABLE


async def test_an_expired_token_is_replaced_and_a_watch_on_it_fails_instead_of_stalling(
    secure_etcd: EtcdCluster, security: EtcdSecurity
) -> None:
    key = f"{USER_PREFIX}token/k".encode()
    access = etcd_access(security)
    conn = EtcdConnection(secure_etcd.client_endpoints, access)
    # A second client, signed in too, that will try to watch with its forgotten token.
    stale = LeaderClient(*parse_endpoint(secure_etcd.client_endpoints[0]), 2, access)
    try:
        await conn.call(lambda c: c.put(key, b"v1"), within=5)
        await stale.connect()
        old_token = dict(conn.client().metadata)["token"]
        # Only time makes etcd forget a token (unused for TOKEN_TTL, checked every second);
        # any call in between would keep it alive.
        await asyncio.sleep(TOKEN_TTL + 2)
        got = await conn.call(lambda c: c.get(key), within=5)
        assert got is not None
        assert got.value == b"v1"
        assert conn.failovers == 1, "the call went through on a new client, a new token"
        assert dict(conn.client().metadata)["token"] != old_token
        # etcd refuses to create a watch on a stream whose token it forgot; aetcd alone would
        # take the refusal for a created watch and wait for its events for ever.
        with pytest.raises(aetcd.exceptions.UnauthenticatedError, match="invalid auth token"):
            await asyncio.wait_for(stale.watch_prefix(key), 5)
    finally:
        await stale.close()
        await conn.close()


async def test_a_killed_member_fails_over_with_tls(
    node_factory: NodeFactory,
    store: StoreReleases,
    secure_etcd: EtcdCluster,
    security: EtcdSecurity,
) -> None:
    a = await secure_node(node_factory, secure_etcd, security)
    b = await secure_node(node_factory, secure_etcd, security)
    async with a.coordinator.publish_lock("shop", "prod") as fence:
        await a.coordinator.distribute(await store.commit(make_release("shop", "prod", 1)), fence)
    await until(functools.partial(_at_version, b, 1), what="version 1 on B")
    # The member B watches on: its watch must move to another member, over TLS, as its user.
    victim = next(
        name
        for name in secure_etcd.member_names
        if secure_etcd.endpoint(name) == b.etcd.conn.endpoint
    )
    secure_etcd.kill_member(victim)
    try:
        await asyncio.to_thread(secure_etcd.wait_for_leader, 15.0, other_than=victim)
        async with a.coordinator.publish_lock("shop", "prod") as fence:
            await a.coordinator.distribute(
                await store.commit(make_release("shop", "prod", 2)), fence
            )
        await until(functools.partial(_at_version, b, 2), what="version 2 on B after the kill")
        assert b.etcd.conn.endpoint != secure_etcd.endpoint(victim)
        assert b.etcd.conn.failovers >= 1
    finally:
        await asyncio.to_thread(secure_etcd.start_member, victim)


async def test_the_documented_config_runs_against_a_secured_etcd(
    node_factory: NodeFactory,
    store: StoreReleases,
    secure_etcd: EtcdCluster,
    security: EtcdSecurity,
    tmp_path: Path,
) -> None:
    doc = (REPO_ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")
    section = doc[doc.index("### The replicas' config") :]
    example = section[section.index("```toml\n") + len("```toml\n") : section.index("```\n")]
    (tmp_path / "tls").mkdir()
    for name, source in (
        ("etcd-ca.pem", security.ca_file),
        ("configcenter.pem", security.client.cert_file),
        ("configcenter-key.pem", security.client.key_file),
    ):
        (tmp_path / "tls" / name).write_bytes(source.read_bytes())
    path = tmp_path / "config.toml"
    path.write_text(example, encoding="utf-8")
    environ = {
        "CONFIGCENTER_ETCD_ENDPOINTS": ",".join(secure_etcd.client_urls),
        "CONFIGCENTER_ETCD_PASSWORD": security.password,
        "CONFIGCENTER_ETCD_PREFIX": f"{USER_PREFIX}docs",
    }
    etcd = load_config(path, environ=environ).etcd
    assert etcd.ca_file == str(tmp_path / "tls" / "etcd-ca.pem")
    settings = {
        key: getattr(etcd, key)
        for key in ("prefix", "ca_file", "cert_file", "key_file", "username", "password")
    }
    a = await node_factory("etcd", list(etcd.endpoints), **settings)
    b = await node_factory("etcd", list(etcd.endpoints), **settings)
    async with a.coordinator.publish_lock("shop", "prod") as fence:
        await a.coordinator.distribute(await store.commit(make_release("shop", "prod", 1)), fence)
    await until(functools.partial(_at_version, b, 1), what="version 1 on B")


def test_the_section_reads_the_files_and_keeps_the_password_out_of_sight(
    security: EtcdSecurity,
) -> None:
    config = EtcdSection(endpoints=("127.0.0.1:1",), **settings_of(security))
    access = EtcdAccess.from_config(config)
    assert access.tls
    assert access.ca == security.ca_file.read_bytes()
    assert (access.username, access.password) == (security.username, security.password)
    for shown in (repr(config), repr(access), repr(access.anonymous())):
        assert security.password not in shown
        assert "PRIVATE KEY" not in shown
    assert access.anonymous().username is None


# servers


def _server_env(security: EtcdSecurity, **overrides: str) -> dict[str, str]:
    env = security.server_env()
    env.update({f"CONFIGCENTER_ETCD_{key.upper()}": value for key, value in overrides.items()})
    return env


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"password": "not-the-password"}, id="wrong-password"),
        pytest.param({"cert_file": "", "key_file": ""}, id="no-cert"),
    ],
)
def test_a_server_refused_by_etcd_exits_at_start_with_one_clear_line(
    server_process: ServerProcessFactory,
    sqlite_url: str,
    secure_etcd: EtcdCluster,
    security: EtcdSecurity,
    tmp_path: Path,
    overrides: dict[str, str],
) -> None:
    with pytest.raises(RuntimeError, match="exited with code 1 while starting") as failed:
        server_process(
            sqlite_url,
            etcd_endpoints=secure_etcd.client_endpoints,
            env=_server_env(security, **overrides),
            startup_timeout=60,
        )
    log = (tmp_path / "server1").glob("server-*.log")
    text = "".join(path.read_text() for path in log)
    assert "configcenter: coordinator_unavailable: etcd refused" in text, str(failed.value)
    assert security.password not in text
    assert "Traceback" not in text


def test_a_server_refused_at_run_time_answers_readyz_503_then_recovers(
    server_process: ServerProcessFactory,
    sqlite_url: str,
    secure_etcd: EtcdCluster,
    security: EtcdSecurity,
) -> None:
    server = server_process(
        sqlite_url,
        etcd_endpoints=secure_etcd.client_endpoints,
        env={**_server_env(security), "CONFIGCENTER_ETCD_PREFIX": "/cc-test-server"},
    )
    assert server.request("GET", "/readyz")[0] == 200
    revoke = ("role", "revoke-permission", "configcenter", "--prefix=true", USER_PREFIX)
    grant = ("role", "grant-permission", "configcenter", "--prefix=true", "readwrite", USER_PREFIX)
    secure_etcd.etcdctl(*revoke, user="root", password=security.root_password)
    try:
        _poll(lambda: server.request("GET", "/readyz")[0] == 503, "readyz 503 once refused")
    finally:
        secure_etcd.etcdctl(*grant, user="root", password=security.root_password)
    # The role changed twice: etcd calls the server's token stale; it signs in again.
    _poll(lambda: server.request("GET", "/readyz")[0] == 200, "readyz 200 once allowed again")
    log = server.log_text()
    assert "permission denied" in log
    assert security.password not in log


def _poll(condition: Any, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within} s")
        time.sleep(0.1)
