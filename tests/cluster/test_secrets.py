"""Secrets across a cluster: the clear value is in no file of MariaDB, etcd or the replicas'
logs, every replica serves it to a read token, and a replica with another key refuses to start."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aetcd
import pytest

from devservices import MariaDBServer, ServerProcess
from server.secretbox import encode_key, new_key
from tests.cluster.helpers import CLUSTER_ENV, KEYS, Cluster, Replica, until


def files_holding(needle: bytes, roots: list[Path]) -> list[Path]:
    """Every file under roots whose bytes contain needle."""
    found = []
    for root in roots:
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if not path.is_file():
                continue
            try:
                data = path.read_bytes()
            except OSError:  # a socket or a file removed while we walk
                continue
            if needle in data:
                found.append(path)
    return found


def _flush_mariadb(mariadb: MariaDBServer) -> None:
    # Committed rows are in the redo log already; this writes the tables' pages out too.
    conn = mariadb.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
            cursor.execute("FLUSH TABLES")
    finally:
        conn.close()


async def test_a_secret_value_is_in_no_file_of_the_store_etcd_or_the_logs(
    cluster: Cluster,
    replicas: list[Replica],
    raw_etcd: aetcd.Client,
    mariadb: MariaDBServer,
    app_name: str,
) -> None:
    a, b, c = replicas
    secret, plain = f"s3cr3t-{uuid.uuid4().hex}", f"plain-{uuid.uuid4().hex}"
    env = f"/api/v1/apps/{app_name}/envs/prod"
    await a.create_app(app_name)
    status, body = await a.call(
        "PUT", f"{env}/items/db.password", {"value": secret, "secret": True}
    )
    assert status == 201, body
    await a.set_items(app_name, {"plain": plain})
    status, body = await a.publish(app_name)
    assert status == 201, body
    status, token = await a.call(
        "POST", "/api/v1/tokens", {"name": f"r-{app_name}"[:60], "scopes": [f"read:{app_name}"]}
    )
    assert status == 201, token
    read = token["token"]
    clear = {"db.password": secret, "plain": plain}

    async def served_by_b() -> bool:
        status, body = await b.call("GET", f"{env}/config", token=read)
        return status == 200 and body["items"] == clear

    await until(served_by_b, what="replica B serves the secret to a read token")
    ws = await c.watch(app_name, token=read)
    try:
        message = await ws.receive_json(timeout=15)
    finally:
        await ws.close()
    assert message["items"] == clear

    record = await raw_etcd.get(KEYS.release(app_name, "prod"))
    assert record is not None
    assert plain.encode() in record.value
    assert secret.encode() not in record.value

    await asyncio.to_thread(_flush_mariadb, mariadb)
    etcd_dirs = [cluster.base_dir / "etcd"]
    logs = [server.log_path for server in cluster.replicas]
    # What is not secret is in those files: the grep below would find a value written there.
    assert files_holding(plain.encode(), etcd_dirs)
    assert files_holding(plain.encode(), [mariadb.data_dir])
    assert files_holding(secret.encode(), [*etcd_dirs, mariadb.data_dir, *logs]) == []


def test_a_replica_with_another_key_refuses_to_start_and_says_why(cluster: Cluster) -> None:
    wrong = ServerProcess(
        cluster.base_dir / "wrong-key",
        cluster.store_url,
        etcd_endpoints=cluster.etcd.client_endpoints,
        env={**CLUSTER_ENV, "CONFIGCENTER_SECRETS_KEY": encode_key(new_key())},
    )
    with pytest.raises(RuntimeError, match="exited with code 2"):
        wrong.start()
    log = wrong.log_path.read_text()
    assert "refusing to start" in log
    assert "configcenter: secrets: this replica's secrets key is" in log
    assert "Traceback" not in log
