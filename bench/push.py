"""Push: publish-to-delivery latency to N WebSocket subscribers, and to N etcd watchers.

Subscribers run in child processes (never in the server's); each stamps every message with
time.monotonic() (CLOCK_MONOTONIC, one clock for every process of the machine) and the
publisher stamps the moment it sends the publish, so latency = receive - send.
"""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import hashlib
import logging
import math
import multiprocessing
import multiprocessing.synchronize
import os
import queue
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext
from typing import Any, cast
from urllib.parse import quote, urlsplit

from bench.stats import CpuMeter, raise_nofile_limit, rss_bytes, summary_ms

log = logging.getLogger("bench")

# A fresh 127.x.y.0/24 source range per subscriber run: sockets a run leaves in TIME_WAIT can
# never collide with the next run's (the kernel's ephemeral range is ~28k ports per source IP).
_source_block = iter(range(1, 250))


@dataclass(frozen=True)
class SubscriberJob:
    """What one subscriber process does."""

    # "lean" (a minimal WebSocket client), "ws" (aiohttp's client), "etcd" (aetcd watches)
    # or "go-etcd" (etcd's own Go client: bench/gowatcher, built beforehand)
    kind: str
    count: int
    timeout: float
    # ws: subscriber i connects to urls[i % len(urls)]
    urls: tuple[str, ...] = ()
    token: str = ""
    source_ip: str = "127.0.0.1"
    connect_concurrency: int = 100
    # ws: subscriber i names itself f"{instance_prefix}{i}" (with these labels) when set
    instance_prefix: str = ""
    labels: str = ""
    # lean: each subscriber closes and subscribes again after about this long (0: stays)
    hold_seconds: float = 0.0
    # etcd
    etcd_host: str = ""
    etcd_port: int = 0
    key: bytes = b""
    watchers_per_client: int = 500


@dataclass
class _Shared:
    ready: Any
    failed: Any
    received: Any


def subscriber_process(
    job: SubscriberJob,
    ready: Any,
    failed: Any,
    received: Any,
    stop: multiprocessing.synchronize.Event,
    results: multiprocessing.Queue[dict[str, Any]],
) -> None:
    """Entry point of a subscriber process: connect, record every message, report at stop."""
    # Ctrl-C in a terminal reaches the whole process group: the parent stops this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_nofile_limit()
    shared = _Shared(ready, failed, received)
    if job.hold_seconds and job.kind != "lean":
        raise ValueError("only the lean client churns (hold_seconds)")
    if job.kind == "ws":
        import uvloop

        outcome = uvloop.run(_ws_main(job, shared, stop))
    elif job.kind == "lean":
        import uvloop

        outcome = uvloop.run(_lean_main(job, shared, stop))
    elif job.kind == "go-etcd":
        outcome = _go_etcd_main(job, shared, stop)
    else:
        outcome = asyncio.run(_etcd_main(job, shared, stop))
    results.put(outcome)


async def _wait_stop(stop: multiprocessing.synchronize.Event, deadline: float) -> None:
    # A multiprocessing Event cannot be awaited: poll it.
    while not stop.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def subscriber_url(job: SubscriberJob, index: int) -> str:
    """The URL subscriber `index` of a job opens: its replica's, naming its instance if any."""
    url = job.urls[index % len(job.urls)]
    if job.instance_prefix:
        url += f"&instance={quote(job.instance_prefix)}{index}"
        if job.labels:
            url += f"&labels={quote(job.labels)}"
    return url


def instance_ids(job: SubscriberJob) -> list[str]:
    """The instance ids a job's subscribers name themselves by (none when anonymous)."""
    if not job.instance_prefix:
        return []
    return [f"{job.instance_prefix}{i}" for i in range(job.count)]


def _version_of(frame: str) -> int:
    # Cheaper than parsing the whole frame; the field sits near the start.
    start = frame.find('"version":') + 10
    end = start
    while frame[end].isdigit():
        end += 1
    return int(frame[start:end])


async def _ws_main(
    job: SubscriberJob, shared: _Shared, stop: multiprocessing.synchronize.Event
) -> dict[str, Any]:
    import aiohttp

    versions = array.array("q")
    stamps = array.array("d")
    errors: list[str] = []
    semaphore = asyncio.Semaphore(job.connect_concurrency)
    sockets: list[Any] = []
    connector = aiohttp.TCPConnector(limit=0, local_addr=(job.source_ip, 0), force_close=True)
    session = aiohttp.ClientSession(
        connector=connector, headers={"Authorization": f"Bearer {job.token}"}
    )
    clock = time.monotonic

    async def one(url: str) -> None:
        try:
            async with semaphore:
                ws = await session.ws_connect(
                    url, autoping=True, heartbeat=None, compress=0, max_msg_size=0
                )
        except Exception as exc:
            shared.failed.value += 1
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        sockets.append(ws)
        first = True
        async for msg in ws:
            stamp = clock()
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.data
            if not data.startswith('{"type":"release"'):
                errors.append(data[:200])
                continue
            versions.append(_version_of(data))
            stamps.append(stamp)
            shared.received.value += 1
            if first:
                first = False
                shared.ready.value += 1

    started = time.monotonic()
    tasks = [asyncio.create_task(one(subscriber_url(job, i))) for i in range(job.count)]
    await _wait_stop(stop, started + job.timeout)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(30):
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    await session.close()
    return {"versions": versions.tobytes(), "stamps": stamps.tobytes(), "errors": errors[:20]}


class _LeanSubscriber(asyncio.Protocol):
    """A minimal WebSocket client: handshake, unmasked server frames, pong and close.

    It does per message only what a subscriber must (find the frame, read the version), so
    one client process keeps up with the server and the figure measures the server.
    """

    def __init__(self, request: bytes, key: bytes, record: Callable[[bytes, float], None]) -> None:
        self.request = request
        self.accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())  # noqa: S324
        self.record = record
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        stamp = time.monotonic()
        buffer = self.buffer
        buffer += data
        if not self.upgraded.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101") or self.accept not in head:
                self.upgraded.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                return
            self.upgraded.set_result(None)
        while len(buffer) >= 2:
            opcode, length, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            end = start + length
            if len(buffer) < end:
                return
            payload = bytes(buffer[start:end])
            del buffer[:end]
            if opcode == 0x1:
                self.record(payload, stamp)
            elif opcode == 0x9:
                self.send(0xA, payload)
            elif opcode == 0x8:
                self.send(0x8, payload[:2])
                if self.transport is not None:
                    self.transport.close()

    def send(self, opcode: int, payload: bytes) -> None:
        """A masked client frame (control frames only: payload < 126 bytes)."""
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _lean_main(
    job: SubscriberJob, shared: _Shared, stop: multiprocessing.synchronize.Event
) -> dict[str, Any]:
    versions = array.array("q")
    stamps = array.array("d")
    subscribers = array.array("l")  # which subscriber of the job got each message
    errors: list[str] = []
    semaphore = asyncio.Semaphore(job.connect_concurrency)
    loop = asyncio.get_running_loop()
    protocols: dict[int, _LeanSubscriber] = {}

    def record(index: int, payload: bytes, stamp: float) -> None:
        if not payload.startswith(b'{"type":"release"'):
            errors.append(payload[:200].decode(errors="replace"))
            return
        start = payload.find(b'"version":') + 10
        end = start
        while 48 <= payload[end] <= 57:
            end += 1
        versions.append(int(payload[start:end]))
        stamps.append(stamp)
        subscribers.append(index)
        shared.received.value += 1

    async def connect(index: int, first: bool) -> _LeanSubscriber | None:
        parts = urlsplit(subscriber_url(job, index))
        key = base64.b64encode(os.urandom(16))
        request = (
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\n"
            f"Authorization: Bearer {job.token}\r\n\r\n"
        ).encode()

        def first_then_record(payload: bytes, stamp: float) -> None:
            nonlocal first
            record(index, payload, stamp)
            if first:
                first = False
                shared.ready.value += 1

        try:
            async with semaphore:
                _, protocol = await loop.create_connection(
                    lambda: _LeanSubscriber(request, key, first_then_record),
                    parts.hostname or "127.0.0.1",
                    parts.port or 80,
                    local_addr=(job.source_ip, 0),
                )
                await asyncio.wait_for(protocol.upgraded, 30)
        except Exception as exc:
            shared.failed.value += 1
            errors.append(f"{type(exc).__name__}: {exc}")
            return None
        protocols[index] = protocol
        return protocol

    async def one(index: int) -> None:
        protocol = await connect(index, first=True)
        # Churn: close and subscribe again (the same instance) until told to stop.
        while protocol is not None and job.hold_seconds > 0:
            await asyncio.sleep(job.hold_seconds * random.uniform(0.5, 1.5))
            await _close(protocol)
            protocol = await connect(index, first=False)

    started = time.monotonic()
    connecting = [asyncio.create_task(one(i)) for i in range(job.count)]
    await _wait_stop(stop, started + job.timeout)
    for task in connecting:
        task.cancel()
    await asyncio.gather(*connecting, return_exceptions=True)
    await asyncio.gather(*(_close(p) for p in protocols.values()), return_exceptions=True)
    return {
        "versions": versions.tobytes(),
        "stamps": stamps.tobytes(),
        "subscribers": subscribers.tobytes(),
        "instance_prefix": job.instance_prefix,
        "errors": errors[:20],
    }


async def _close(protocol: _LeanSubscriber) -> None:
    # A close handshake: the server closes the TCP connection first, so the TIME_WAIT
    # sockets are the server's and the client's ephemeral ports stay free.
    protocol.send(0x8, (1000).to_bytes(2, "big"))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(20):
            await protocol.lost
    if protocol.transport is not None:
        protocol.transport.abort()


async def _etcd_main(
    job: SubscriberJob, shared: _Shared, stop: multiprocessing.synchronize.Event
) -> dict[str, Any]:
    import aetcd

    versions = array.array("q")
    stamps = array.array("d")
    errors: list[str] = []
    clock = time.monotonic
    clients_needed = max(1, math.ceil(job.count / job.watchers_per_client))
    clients = [aetcd.Client(job.etcd_host, job.etcd_port) for _ in range(clients_needed)]
    readers: list[asyncio.Task[None]] = []
    watches: list[Any] = []

    async def read(watch: Any) -> None:
        async for event in watch:
            stamp = clock()
            versions.append(int(event.kv.value[:12]))
            stamps.append(stamp)
            shared.received.value += 1

    async def client_watches(client: aetcd.Client, count: int) -> None:
        # aetcd creates a client's watches one at a time on its one gRPC stream.
        for _ in range(count):
            try:
                watch = await client.watch(job.key)
            except Exception as exc:
                shared.failed.value += 1
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            watches.append(watch)
            readers.append(asyncio.create_task(read(watch)))
            shared.ready.value += 1

    shares = [job.count // clients_needed] * clients_needed
    for i in range(job.count % clients_needed):
        shares[i] += 1
    started = time.monotonic()
    creating = asyncio.gather(*(client_watches(c, n) for c, n in zip(clients, shares, strict=True)))
    await _wait_stop(stop, started + job.timeout)
    creating.cancel()
    with contextlib.suppress(BaseException):
        await creating
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for client in clients:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await client.close()
    return {"versions": versions.tobytes(), "stamps": stamps.tobytes(), "errors": errors[:20]}


def _go_etcd_main(
    job: SubscriberJob, shared: _Shared, stop: multiprocessing.synchronize.Event
) -> dict[str, Any]:
    """The Go watcher as a child: it stamps each event itself; this process only relays."""
    from bench.gowatcher import BINARY

    versions = array.array("q")
    stamps = array.array("d")
    errors: list[str] = []
    # A file, not a pipe: nobody reads the child's stderr while it runs.
    stderr = tempfile.TemporaryFile()
    child = subprocess.Popen(
        [
            str(BINARY),
            f"-endpoint={job.etcd_host}:{job.etcd_port}",
            f"-key={job.key.decode()}",
            f"-watchers={job.count}",
            f"-per-client={job.watchers_per_client}",
            f"-timeout={job.timeout:.0f}s",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    assert child.stdout is not None
    assert child.stdin is not None

    def relay() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            first, _, second = line.partition(b" ")
            if first == b"ready":
                shared.ready.value += int(second)
                continue
            versions.append(int(first))
            stamps.append(float(second))
            shared.received.value += 1

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    deadline = time.monotonic() + job.timeout
    while not stop.is_set() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    if child.poll() is not None and child.returncode != 0:
        stderr.seek(0)
        errors.append(stderr.read().decode(errors="replace")[-500:])
        shared.failed.value += job.count - shared.ready.value
    child.stdin.close()  # the watcher ends when its stdin closes
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    reader.join(timeout=10)
    stderr.close()
    return {"versions": versions.tobytes(), "stamps": stamps.tobytes(), "errors": errors[:20]}


@dataclass
class SubscriberFleet:
    """The subscriber processes of one run and their shared counters."""

    jobs: list[SubscriberJob]
    ctx: SpawnContext = field(default_factory=lambda: multiprocessing.get_context("spawn"))
    processes: list[Any] = field(default_factory=list)
    counters: list[_Shared] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stop_event = self.ctx.Event()
        self.results: multiprocessing.Queue[dict[str, Any]] = self.ctx.Queue()

    def start(self) -> None:
        """Spawn every process."""
        for job in self.jobs:
            shared = _Shared(
                self.ctx.RawValue("q", 0), self.ctx.RawValue("q", 0), self.ctx.RawValue("q", 0)
            )
            process = self.ctx.Process(
                target=subscriber_process,
                args=(
                    job,
                    shared.ready,
                    shared.failed,
                    shared.received,
                    self.stop_event,
                    self.results,
                ),
                daemon=True,
            )
            process.start()
            self.processes.append(process)
            self.counters.append(shared)

    @property
    def pids(self) -> list[int]:
        """The processes' pids."""
        return [p.pid for p in self.processes if p.pid is not None]

    def ready(self) -> int:
        """Subscribers connected (ws: and sent their first release)."""
        return sum(c.ready.value for c in self.counters)

    def failed(self) -> int:
        """Subscribers that could not connect."""
        return sum(c.failed.value for c in self.counters)

    def received(self) -> int:
        """Messages received so far by all subscribers."""
        return sum(c.received.value for c in self.counters)

    def alive(self) -> bool:
        """True while every process runs."""
        return all(p.is_alive() for p in self.processes)

    def stop(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Tell the processes to stop; their recordings (an empty list for one that died)."""
        self.stop_event.set()
        outcomes: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(outcomes) < len(self.processes) and time.monotonic() < deadline:
            try:
                outcomes.append(self.results.get(timeout=0.5))
            except queue.Empty:
                if not any(p.is_alive() for p in self.processes):
                    break
        self.kill()
        return outcomes

    def kill(self) -> None:
        """Make sure no process outlives the run."""
        for process in self.processes:
            process.join(timeout=max(0.0, 5.0))
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


def process_count(count: int, per_process: int) -> int:
    """How many processes count subscribers take."""
    return max(1, math.ceil(count / per_process))


def plan_jobs(
    kind: str, count: int, per_process: int, make: Callable[[int, int], SubscriberJob]
) -> list[SubscriberJob]:
    """Split count subscribers over ceil(count / per_process) processes."""
    processes = process_count(count, per_process)
    shares = [count // processes] * processes
    for i in range(count % processes):
        shares[i] += 1
    return [make(i, share) for i, share in enumerate(shares)]


def source_ips(processes: int) -> list[str]:
    """A fresh loopback source address per process for one run."""
    block = next(_source_block)
    return [f"127.{block}.{i // 250}.{i % 250 + 1}" for i in range(processes)]


@dataclass(frozen=True)
class Published:
    """What one round of a push run sent: a version, when, to how many, in which series."""

    version: int
    stamp: float  # time.monotonic() just before the request that makes the version
    receivers: int | None = None  # subscribers that get it; None: every one
    series: str = ""  # rounds of one series are summarised together (besides all rounds)


Publisher = Callable[[int], Awaitable[Published]]


async def connect_fleet(fleet: SubscriberFleet, count: int, connect_timeout: float) -> float:
    """Wait until every subscriber of a started fleet is ready; seconds it took."""
    started = time.monotonic()
    while fleet.ready() + fleet.failed() < count:
        if time.monotonic() - started > connect_timeout or not fleet.alive():
            raise RuntimeError(
                f"{fleet.ready()} of {count} subscribers ready after "
                f"{time.monotonic() - started:.0f} s ({fleet.failed()} failed)"
            )
        await asyncio.sleep(0.1)
    if fleet.failed():
        raise RuntimeError(f"{fleet.failed()} of {count} subscribers could not connect")
    return time.monotonic() - started


async def run_push(
    fleet: SubscriberFleet,
    count: int,
    rounds: int,
    publish: Publisher,
    *,
    initial_messages: int,
    connect_timeout: float,
    delivery_timeout: float,
    server_pids: list[int],
    rss_pid: int | None = None,
    profile: Callable[[], Callable[[], dict[str, Any]]] | None = None,
    receivers_of: dict[int, set[str]] | None = None,
    on_idle: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Connect the fleet, publish `rounds` times waiting for full delivery, measure latency.

    on_idle, when given, runs once every subscriber is connected, before the first publish.

    initial_messages: messages each subscriber gets on connecting (1 for WebSocket: the
    current release; 0 for etcd watches). receivers_of, when given, is filled with the
    instance ids that received each version (subscribers that name themselves).
    """
    rss_before = rss_bytes(rss_pid) if rss_pid is not None else None
    fleet.start()
    try:
        connect_seconds = await connect_fleet(fleet, count, connect_timeout)
        await asyncio.sleep(1.0)  # let the server settle before reading its memory
        rss_idle = rss_bytes(rss_pid) if rss_pid is not None else None
        if on_idle is not None:
            on_idle()

        sent: dict[int, Published] = {}
        expected = count * initial_messages
        stop_profile = profile() if profile is not None else None
        meter = CpuMeter.start({"server": server_pids, "client": fleet.pids})
        undelivered_rounds = 0
        for round_no in range(rounds):
            published = await publish(round_no)
            sent[published.version] = published
            expected += count if published.receivers is None else published.receivers
            deadline = time.monotonic() + delivery_timeout
            # Counters in shared memory, written by other processes: polled.
            while fleet.received() < expected and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            if fleet.received() < expected:
                undelivered_rounds += 1
                expected = fleet.received()
            await asyncio.sleep(0.05)  # an idle gap: every round starts from a quiet server
        cpu_seconds = meter.seconds()
        profiled = stop_profile() if stop_profile is not None else None
        rss_after = rss_bytes(rss_pid) if rss_pid is not None else None
    finally:
        outcomes = fleet.stop()
    by_series: dict[str, list[float]] = {p.series: [] for p in sent.values()}
    errors: list[str] = []
    for outcome in outcomes:
        versions = array.array("q")
        versions.frombytes(outcome["versions"])
        stamps = array.array("d")
        stamps.frombytes(outcome["stamps"])
        errors += outcome["errors"]
        for version, stamp in zip(versions, stamps, strict=True):
            if version in sent:
                by_series[sent[version].series].append(stamp - sent[version].stamp)
        if receivers_of is not None and outcome.get("instance_prefix"):
            indexes = array.array("l")
            indexes.frombytes(outcome["subscribers"])
            prefix = outcome["instance_prefix"]
            for version, index in zip(versions, indexes, strict=True):
                receivers_of.setdefault(version, set()).add(f"{prefix}{index}")
    latencies = [x for series in by_series.values() for x in series]
    expected_of: dict[str, int] = dict.fromkeys(by_series, 0)
    for p in sent.values():
        expected_of[p.series] += count if p.receivers is None else p.receivers
    result: dict[str, Any] = {
        "subscribers": count,
        "processes": len(fleet.jobs),
        "rounds": rounds,
        **summary_ms(latencies),
        "delivered": len(latencies),
        "expected": sum(expected_of.values()),
        "undelivered_rounds": undelivered_rounds,
        "connect_seconds": round(connect_seconds, 2),
        "server_cpu_us_per_delivery": round(
            cpu_seconds["server"] / max(1, len(latencies)) * 1e6, 1
        ),
        "client_cpu_us_per_delivery": round(
            cpu_seconds["client"] / max(1, len(latencies)) * 1e6, 1
        ),
        "errors": errors[:5],
    }
    result["limit"] = (
        "client"
        if result["client_cpu_us_per_delivery"] > result["server_cpu_us_per_delivery"]
        else "server"
    )
    if any(by_series):
        result["series"] = {
            name: {
                **summary_ms(series),
                "delivered": len(series),
                "expected": expected_of[name],
                "rounds": sum(1 for p in sent.values() if p.series == name),
            }
            for name, series in by_series.items()
        }
    if profiled is not None:
        result["profile"] = profiled
    if rss_before is not None and rss_idle is not None and rss_after is not None:
        result["rss_before_mb"] = round(rss_before / 2**20, 1)
        result["rss_idle_mb"] = round(rss_idle / 2**20, 1)
        result["rss_after_pushes_mb"] = round(rss_after / 2**20, 1)
        result["rss_kb_per_subscriber"] = round((rss_idle - rss_before) / count / 1024, 1)
    return result
