"""Concurrent etcd transactions joined into one call, each caller getting its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aetcd
import pytest

from devservices import EtcdCluster
from server.coord.etcd_batch import TxnBatch, TxnResult
from server.coord.etcd_conn import EtcdConnection, EtcdUnavailable
from server.coord.etcd_lock import TXN
from tests.coord.helpers import dead_endpoint

pytestmark = pytest.mark.etcd


@pytest.fixture
async def batch(etcd_module: EtcdCluster) -> AsyncIterator[TxnBatch]:
    conn = EtcdConnection(etcd_module.client_endpoints)
    batch = TxnBatch(conn, within=4.0)
    yield batch
    await batch.close()
    await conn.close()


def put_if_absent(batch: TxnBatch, key: bytes, value: bytes) -> asyncio.Task[TxnResult]:
    return asyncio.create_task(
        batch.run(
            compare=[TXN.create(key) == 0],
            success=[TXN.put(key, value), TXN.get(key)],
            failure=[TXN.get(key)],
            keys=frozenset({key}),
            size=len(value),
        )
    )


async def test_concurrent_transactions_share_calls_and_get_their_own_answers(
    batch: TxnBatch, raw_etcd: aetcd.Client, prefix: str
) -> None:
    keys = [f"{prefix}/k{i}".encode() for i in range(10)]
    results = await asyncio.gather(*(put_if_absent(batch, k, k + b"=v") for k in keys))
    assert batch.calls < batch.transactions == 10
    for key, (ok, responses) in zip(keys, results, strict=True):
        assert ok
        ((value, _),) = responses[-1]
        assert value == key + b"=v"
        record = await raw_etcd.get(key)
        assert record is not None
        assert record.value == key + b"=v"


async def test_a_failed_compare_is_that_transactions_answer_only(
    batch: TxnBatch, raw_etcd: aetcd.Client, prefix: str
) -> None:
    taken = f"{prefix}/taken".encode()
    await raw_etcd.put(taken, b"before")
    keys = [f"{prefix}/k{i}".encode() for i in range(5)]
    tasks = [put_if_absent(batch, k, b"new") for k in [*keys[:2], taken, *keys[2:]]]
    results = await asyncio.gather(*tasks)
    refused = results[2]
    assert refused[0] is False
    ((value, _),) = refused[1][-1]
    assert value == b"before"
    assert all(ok for ok, _ in results[:2] + results[3:])
    for key in keys:
        record = await raw_etcd.get(key)
        assert record is not None
        assert record.value == b"new"


async def test_transactions_on_one_key_are_not_joined(
    batch: TxnBatch, raw_etcd: aetcd.Client, prefix: str
) -> None:
    key = f"{prefix}/same".encode()
    first = put_if_absent(batch, key, b"first")
    second = put_if_absent(batch, key, b"second")
    (ok1, _), (ok2, responses) = await asyncio.gather(first, second)
    # Sent one after the other (etcd refuses a key twice in one transaction): the first
    # writes, the second finds it there.
    assert (ok1, ok2) == (True, False)
    ((value, _),) = responses[-1]
    assert value == b"first"


async def test_close_answers_every_caller(prefix: str) -> None:
    conn = EtcdConnection([dead_endpoint()])
    batch = TxnBatch(conn, within=30.0)
    tasks = [put_if_absent(batch, f"{prefix}/k{i}".encode(), b"v") for i in range(3)]
    await asyncio.sleep(0.1)  # the first is in flight (retrying), the others queued
    assert not any(task.done() for task in tasks)
    await batch.close()
    for task in tasks:
        with pytest.raises(EtcdUnavailable):
            await asyncio.wait_for(task, 5)
    await conn.close()
