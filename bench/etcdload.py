"""etcd's side of the comparison, driven with aetcd from the orchestrator process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aetcd

from bench.push import Published
from bench.stats import CpuMeter, summary_ms


def padded(version: int, size: int) -> bytes:
    """A value of `size` bytes that starts with the version (12 digits)."""
    head = f"{version:012d}".encode()
    return head + b"x" * max(0, size - len(head))


class EtcdPublisher:
    """Puts a value of a given size; the value carries a version for the watchers."""

    def __init__(self, host: str, port: int, key: bytes, size: int) -> None:
        self.client = aetcd.Client(host, port)
        self.key = key
        self.size = size
        self.version = 0

    async def publish(self, _round: int) -> Published:
        """One put: its version and the moment it was sent."""
        self.version += 1
        value = padded(self.version, self.size)
        stamp = time.monotonic()
        await self.client.put(self.key, value)
        return Published(self.version, stamp)

    async def close(self) -> None:
        """Close the connection."""
        await self.client.close()


async def txn_publishes(
    host: str,
    port: int,
    *,
    keys: int,
    size: int,
    sequential: int,
    rounds: int,
    etcd_pid: int | None,
    prefix: str,
) -> dict[str, Any]:
    """etcd's match for a publish: a compare-and-put txn (version = what was read) of `size`.

    `sequential` txns one after another over `keys` keys, then `rounds` rounds of `keys`
    txns in flight at once (one per key), as the publish benchmark does with apps.
    """
    client = aetcd.Client(host, port)
    try:
        names = [f"{prefix}/{i:04d}".encode() for i in range(keys)]
        versions = dict.fromkeys(names, 0)

        async def txn(key: bytes) -> float:
            expected = versions[key]
            value = padded(expected + 1, size)
            started = time.monotonic()
            ok, _ = await client.transaction(
                compare=[client.transactions.version(key) == expected],
                success=[client.transactions.put(key, value)],
                failure=[],
            )
            elapsed = time.monotonic() - started
            if not ok:
                raise RuntimeError(f"etcd txn on {key!r} lost its compare")
            versions[key] = expected + 1
            return elapsed

        for key in names:  # warm up: every key exists once
            await txn(key)
        sequential_latencies = [await txn(names[i % keys]) for i in range(sequential)]
        concurrent_latencies: list[float] = []
        wall = 0.0
        meter = CpuMeter.start({"server": [etcd_pid], "client": [_self_pid()]})
        for _ in range(rounds):
            started = time.monotonic()
            concurrent_latencies += await asyncio.gather(*(txn(k) for k in names))
            wall += time.monotonic() - started
        cpu = meter.stop()
    finally:
        await client.close()
    return {
        "sequential": summary_ms(sequential_latencies),
        "concurrent": summary_ms(concurrent_latencies),
        "per_second": round(len(concurrent_latencies) / wall, 1) if wall else float("nan"),
        "server_cpu_pct": cpu["server"],
        "client_cpu_pct": cpu["client"],
    }


def _self_pid() -> int:
    import os

    return os.getpid()
