"""Three replicas as processes on one MariaDB and a 3-member etcd cluster, per module.

The etcd cluster is secured (TLS with client certificates, peers too, and auth on: the
replicas connect as a user whose role covers their prefix only), so that the whole suite
proves cluster mode over TLS with users; tests/coord runs on plain etcd.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import AsyncIterator, Iterator

import aetcd
import aiohttp
import pytest

from devservices import EtcdCluster, MariaDBServer, ServerProcess
from server.coord.etcd_conn import LeaderClient
from tests.cluster.helpers import PREFIX, Cluster, Replica
from tests.helpers import etcd_access


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDBServer) -> Iterator[Cluster]:
    """3 etcd members, one database and 3 replicas, all on loopback; stopped afterwards."""
    base = tmp_path_factory.mktemp("cluster")
    database = f"cluster_{uuid.uuid4().hex[:12]}"
    with EtcdCluster(3, base / "etcd", secure=True, user_prefix=f"{PREFIX}/") as etcd:
        url = mariadb.create_database(database)
        cluster = Cluster(etcd, url, base)
        try:
            cluster.replicas = [
                ServerProcess(
                    base / f"replica{n}",
                    url,
                    etcd_endpoints=etcd.client_endpoints,
                    env=cluster.env(),
                )
                for n in (1, 2, 3)
            ]
            # The first creates the schema and the admin; the other two start together.
            cluster.replicas[0].start()
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                for started in [pool.submit(r.start) for r in cluster.replicas[1:]]:
                    started.result()
            yield cluster
        finally:
            for server in [*cluster.extras, *cluster.replicas]:
                server.stop()
            mariadb.drop_database(database)


@pytest.fixture
async def replicas(cluster: Cluster) -> AsyncIterator[list[Replica]]:
    """Clients of the three replicas (A, B, C)."""
    token = await asyncio.to_thread(cluster.replicas[0].admin_token)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield [Replica(server, session, token) for server in cluster.replicas]


@pytest.fixture
async def raw_etcd(cluster: Cluster) -> AsyncIterator[aetcd.Client]:
    """An etcd client as root on the first member (tests keep that member up while they use it)."""
    assert cluster.etcd.security is not None
    host, port = cluster.etcd.client_endpoints[0].rsplit(":", 1)
    access = etcd_access(cluster.etcd.security, as_root=True)
    async with LeaderClient(host, int(port), timeout=5, access=access) as client:
        yield client


@pytest.fixture
def app_name(request: pytest.FixtureRequest) -> str:
    """An app name of this test only."""
    return f"{request.node.name.split('[')[0][5:28].replace('_', '-')}-{uuid.uuid4().hex[:6]}"
