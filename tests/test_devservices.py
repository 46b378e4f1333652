"""The process tooling starts real etcd and MariaDB that answer, and stops them."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import aetcd
import pytest

from devservices import EtcdCluster, MariaDBServer, ServerProcess, children_of, free_port
from devservices.process import Process, _good_ports, wait_until
from tests.types import ServerProcessFactory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie counts as gone: it is only waiting to be reaped.
    return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()


def test_free_port_is_bindable_and_never_repeated() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


@pytest.mark.etcd
async def test_single_etcd_put_get(etcd_single: EtcdCluster) -> None:
    assert etcd_single.is_healthy()
    host, port = etcd_single.client_endpoints[0].rsplit(":", 1)
    async with aetcd.Client(host, int(port)) as client:
        await client.put(b"/devservices/k", b"v1")
        got = await client.get(b"/devservices/k")
    assert got is not None
    assert got.value == b"v1"


@pytest.mark.etcd
@pytest.mark.cluster
def test_cluster_elects_a_new_leader_after_the_leader_is_killed(
    etcd_cluster: EtcdCluster,
) -> None:
    assert etcd_cluster.member_names == ["n1", "n2", "n3"]
    assert etcd_cluster.is_healthy()
    leader = etcd_cluster.leader_name()

    etcd_cluster.kill_member(leader)
    assert not etcd_cluster.is_healthy()
    new_leader = etcd_cluster.wait_for_leader(timeout=10, other_than=leader)
    assert new_leader != leader

    etcd_cluster.start_member(leader)
    assert etcd_cluster.is_healthy()


@pytest.mark.etcd
def test_stopped_cluster_leaves_no_process(tmp_path: Path) -> None:
    cluster = EtcdCluster(3, tmp_path)
    with cluster:
        pids = [cluster.member_pid(name) for name in cluster.member_names]
        assert all(pid is not None for pid in pids)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids if pid is not None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids if pid is not None)


@pytest.mark.mariadb
def test_mariadb_database_accepts_queries(mariadb: MariaDBServer, mysql_url: str) -> None:
    database = mysql_url.rsplit("/", 1)[1]
    assert mysql_url == f"mysql://root@127.0.0.1:{mariadb.port}/{database}"
    conn = mariadb.connect(database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")
            cursor.execute("INSERT INTO t VALUES (%s, %s)", (1, "é"))
            cursor.execute("SELECT v, DATABASE() FROM t WHERE id = %s", (1,))
            assert cursor.fetchone() == ("é", database)
    finally:
        conn.close()


@pytest.mark.mariadb
def test_mariadb_that_cannot_start_raises_with_its_log(tmp_path: Path) -> None:
    server = MariaDBServer(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.port))
        squatter.listen()
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start()


def test_store_url_runs_on_both_databases(store_url: str) -> None:
    assert store_url.startswith(("sqlite:///", "mysql://root@127.0.0.1:"))


def test_server_process_lifecycle(
    server_process: ServerProcessFactory, sqlite_url: str, tmp_path: Path
) -> None:
    server = server_process(sqlite_url)
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.request("GET", "/readyz")[0] == 200
    token = server.admin_token()
    assert token
    assert server.admin_token() == token

    server.pause()
    with pytest.raises(TimeoutError):
        server.request("GET", "/readyz", timeout=0.5)
    server.resume()
    assert server.request("GET", "/readyz")[0] == 200

    server.kill()
    assert server.returncode == -9
    server.restart()
    assert server.request("GET", "/readyz")[0] == 200
    assert server.admin_token()
    server.stop()
    assert server.returncode == 0
    assert "starting server" in server.log_text()


def test_server_that_cannot_start_raises_with_its_log(sqlite_url: str, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "nosuchdb://x", startup_timeout=20)
    with pytest.raises(RuntimeError, match=r"exited with code \d+ while starting"):
        server.start()
    assert server.pid is None


def test_children_of_finds_what_this_process_started_and_its_mark_has_no_digits(
    tmp_path: Path,
) -> None:
    process = Process("sleep", ["/bin/sleep", "60"], tmp_path / "sleep.log")
    process.start()
    try:
        pid = process.pid
        assert pid is not None
        # Polled: psutil lists a process it has just seen start on its next pass; a child that
        # died meanwhile fails here with its exit code instead.
        wait_until("the child listed", lambda: pid in children_of(os.getpid()), [process], 5.0)
        # Another process's at-exit cleanup looks for its pid in the marks: ours hold none.
        mark = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        (value,) = [e.split(b"=", 1)[1] for e in mark if e.startswith(b"mirakuru_uuid=")]
        assert not any(c.isdigit() for c in value.decode())
    finally:
        process.kill()
    assert pid not in children_of(os.getpid())


def test_each_xdist_worker_takes_only_its_share_of_the_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two workers never pick the same port: one restarting a server on its own port cannot
    # have another worker's new server take it meanwhile.
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    _good_ports.cache_clear()
    try:
        ports = _good_ports()
        assert len(ports) > 1000
        assert all(port % 2 == 1 for port in ports)
    finally:
        _good_ports.cache_clear()
