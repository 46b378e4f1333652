"""The publish lock on a real etcd: what a publisher is told when acquiring fails.

etcd not answering is 503 coordinator_unavailable (test_coordinator.py); our own lease gone
is 409 lock_lost; waiting too long behind another holder is 503 lock_timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aetcd
import pytest

from server.coord.etcd_keys import decode_json
from server.coord.etcd_lock import Hold
from server.errors import AppError, ErrorCode
from tests.coord.helpers import Node, NodeFactory

pytestmark = pytest.mark.etcd

APP, ENV = "shop", "prod"


class Holder:
    """A task holding the lock of APP/ENV on one node until released."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.held = asyncio.Event()
        self.done = asyncio.Event()
        self.task = asyncio.create_task(self._hold())

    async def _hold(self) -> None:
        async with self.node.coordinator.publish_lock(APP, ENV):
            self.held.set()
            await self.done.wait()

    async def release(self) -> None:
        """Let go of the lock and wait until it is released."""
        self.done.set()
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def holder(node_factory: NodeFactory) -> AsyncIterator[Holder]:
    """A node holding the lock of APP/ENV (released afterwards)."""
    holder = Holder(await node_factory("etcd"))
    await asyncio.wait_for(holder.held.wait(), 10)
    yield holder
    await holder.release()


async def acquire(node: Node) -> None:
    """Take and give back the lock of APP/ENV."""
    async with node.coordinator.publish_lock(APP, ENV):
        pass


async def claims(raw_etcd: aetcd.Client, node: Node, count: int) -> list[aetcd.KeyValue]:
    """The claims on APP/ENV, oldest first, once there are `count` of them (bounded)."""
    directory = node.etcd.keys.lock_dir(APP, ENV)
    deadline = time.monotonic() + 10
    while True:
        found = list(
            await raw_etcd.get_prefix(directory, sort_order="ascend", sort_target="create")
        )
        if len(found) == count:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{count} claims not seen within 10 s; there are {len(found)}")
        await asyncio.sleep(0.02)


async def test_a_waiter_whose_lease_is_revoked_is_told_lock_lost(
    node_factory: NodeFactory, holder: Holder, raw_etcd: aetcd.Client
) -> None:
    waiter = await node_factory("etcd")
    waiting = asyncio.create_task(acquire(waiter))
    first, second = await claims(raw_etcd, waiter, 2)
    assert decode_json(first.value)["replica"] == holder.node.etcd.replica_id
    assert decode_json(second.value)["replica"] == waiter.etcd.replica_id
    # What a waiter paused past its TTL looks like from etcd's side: its lease is gone.
    await raw_etcd.revoke_lease(second.lease)
    with pytest.raises(AppError) as lost:
        await asyncio.wait_for(waiting, 15)
    assert (lost.value.error, lost.value.status) == (ErrorCode.LOCK_LOST, 409)
    assert "while waiting" in lost.value.message
    # The holder is untouched and the waiter is not left queued.
    (left,) = await claims(raw_etcd, waiter, 1)
    assert left.key == first.key
    assert holder.task.done() is False
    await holder.release()
    await asyncio.wait_for(acquire(waiter), 10)


async def test_a_claim_on_a_lease_that_is_gone_is_lock_lost(
    node_factory: NodeFactory, raw_etcd: aetcd.Client
) -> None:
    node = await node_factory("etcd")
    locks = node.etcd.locks
    # A replica paused between granting its lease and claiming: the lease expired meanwhile.
    lease = await raw_etcd.lease(5)
    await lease.revoke()
    hold = Hold(APP, ENV, node.etcd.keys.lock(APP, ENV, lease.id), lease.id, 5.0)
    with pytest.raises(AppError) as lost:
        await locks._claim(hold)
    assert (lost.value.error, lost.value.status) == (ErrorCode.LOCK_LOST, 409)
    assert await raw_etcd.get(hold.key) is None


async def test_waiting_too_long_behind_a_holder_is_lock_timeout(
    node_factory: NodeFactory, holder: Holder, raw_etcd: aetcd.Client
) -> None:
    waiter = await node_factory("etcd")
    waiter.etcd.locks.wait_limit = 1.0
    with pytest.raises(AppError) as late:
        await asyncio.wait_for(acquire(waiter), 15)
    assert (late.value.error, late.value.status) == (ErrorCode.LOCK_TIMEOUT, 503)
    # The waiter's claim is withdrawn; the holder still holds.
    (left,) = await claims(raw_etcd, waiter, 1)
    assert decode_json(left.value)["replica"] == holder.node.etcd.replica_id


async def test_publishes_share_one_session_lease_and_a_lost_one_is_replaced(
    node_factory: NodeFactory, raw_etcd: aetcd.Client
) -> None:
    node = await node_factory("etcd")
    locks = node.etcd.locks
    async with node.coordinator.publish_lock(APP, ENV):
        held = locks.held(APP, ENV)
        assert held is not None
        session = held.lease_id
    async with node.coordinator.publish_lock(APP, "other"):
        other = locks.held(APP, "other")
        assert other is not None
        assert other.lease_id == session  # no lease granted per publish
    # Each release deletes its claim; the session's lease lives on.
    assert list(await raw_etcd.get_prefix(node.etcd.keys.lock_dir(APP, ENV))) == []
    assert (await raw_etcd.get_lease_info(session)).TTL > 0
    # A session lost while idle (here revoked) is replaced by the next publish, not reused.
    await raw_etcd.revoke_lease(session)
    async with node.coordinator.publish_lock(APP, ENV):
        again = locks.held(APP, ENV)
        assert again is not None
        assert again.lease_id != session
        assert again.token > 0
