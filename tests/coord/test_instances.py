"""Instance summaries through a real etcd: coalesced writes, read by the other replica's watch,
gone with the writer's lease."""

from __future__ import annotations

import asyncio
import time

import pytest

from server.coord.etcd_instances import FLUSH_SECONDS
from server.instances import InstanceRegistry
from tests.coord.helpers import Node, NodeFactory

pytestmark = pytest.mark.etcd

WITHIN = 2.0  # the contract: every replica lists a change within 2 s


async def listed_within(registry: InstanceRegistry, expected: set[str], what: str) -> float:
    """Seconds until registry lists exactly expected for shop/prod (fails after WITHIN)."""
    started = time.monotonic()
    while {r.instance for r in registry.instances("shop", "prod")} != expected:
        if time.monotonic() - started > WITHIN:
            got = sorted(r.instance for r in registry.instances("shop", "prod"))
            pytest.fail(f"{what}: not within {WITHIN} s (listed {len(got)}: {got[:5]}…)")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def summary_writes(node: Node) -> int:
    return int((await node.coordinator.describe())["instances"]["summary_writes"])


async def test_churn_is_written_coalesced_and_read_by_the_other_replica(
    node_factory: NodeFactory,
) -> None:
    here = InstanceRegistry("a", 600)
    there = InstanceRegistry("b", 600)
    a = await node_factory("etcd", instances=here)
    await node_factory("etcd", instances=there)
    await listed_within(there, set(), "the empty summary")
    writes_before = await summary_writes(a)
    started = time.monotonic()
    live: set[str] = set()
    # 1,000 subscribers come and go as fast as the loop allows, for about a second.
    for n in range(1000):
        record = here.subscribed("shop", "prod", f"pod-{n}", {"n": str(n % 7)}, "10.0.0.1", None)
        if n % 3:
            here.unsubscribed(record)
        else:
            live.add(f"pod-{n}")
            here.delivered(record, 1)
        if n % 50 == 0:
            await asyncio.sleep(0.05)
    took = await listed_within(there, live, "the churn's outcome on the other replica")
    elapsed = time.monotonic() - started
    writes = await summary_writes(a) - writes_before
    print(
        f"\n1,000 subscribers churned in {elapsed:.2f} s: {writes} summary writes; "
        f"listed on the other replica {took:.2f} s after"
    )
    # One writer that sleeps FLUSH_SECONDS after each write: never more than this.
    assert writes <= elapsed / FLUSH_SECONDS + 2
    [one] = [r for r in there.instances("shop", "prod") if r.instance == "pod-0"]
    assert (one.replica, one.labels, one.delivered_version) == (a.etcd.replica_id, {"n": "0"}, 1)


async def test_a_replica_that_stops_takes_its_instances_along(node_factory: NodeFactory) -> None:
    here = InstanceRegistry("a", 600)
    there = InstanceRegistry("b", 600)
    a = await node_factory("etcd", instances=here)
    await node_factory("etcd", instances=there)
    here.subscribed("shop", "prod", "pod-1", {}, None, None)
    await listed_within(there, {"pod-1"}, "pod-1 on the other replica")
    await a.coordinator.close()  # revokes its lease: the summary key goes with it
    await listed_within(there, set(), "pod-1 gone with its replica")


async def test_a_standalone_coordinator_shares_nothing_and_needs_no_etcd(
    node_factory: NodeFactory,
) -> None:
    registry = InstanceRegistry("", 600)
    node = await node_factory("local", instances=registry)
    assert registry.replica == node.coordinator.replica_id
    registry.subscribed("shop", "prod", "pod-1", {}, None, None)
    assert [r.instance for r in registry.instances("shop", "prod")] == ["pod-1"]
    assert registry.peers == []
    assert "instances" not in await node.coordinator.describe()
