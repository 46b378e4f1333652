"""The compatible APIs and long polls: read req/s of Apollo's /configs, Spring's /spring/…
and Nacos's /nacos/v1/cs/configs beside /api/v1's read and etcd's gateway; notify latency of
waiting long polls (/config?after=, Apollo /notifications/v2, the Nacos listener) after a
publish, with the server's memory per waiting client."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.api import Api, make_items, seed_app
from bench.ceiling import CeilingServer
from bench.longpoll import LongPollJob
from bench.plan import Plan
from bench.profiling import Profiler
from bench.push import source_ips
from bench.read import etcd_read_of_size, run_wrk
from bench.stack import Stack
from bench.stats import CpuMeter, rss_bytes, summary_ms

log = logging.getLogger("bench")

APP = "legacy"
ENV = "prod"

# What each protocol's client reads: one env of 10 items, as the headline /config read.
READ_PATHS: dict[str, str] = {
    "api": f"/api/v1/apps/{APP}/envs/{ENV}/config",
    "apollo": f"/configs/{APP}/{ENV}/application",
    "spring": f"/spring/{APP}/{ENV}",
    "nacos": f"/nacos/v1/cs/configs?dataId={APP}&group={ENV}",
}


def _ratio(ours: float, theirs: float) -> float:
    if not theirs or ours != ours or theirs != theirs:
        return float("nan")
    return round(ours / theirs, 2)


async def compat_read_phase(stack: Stack, plan: Plan) -> list[dict[str, Any]]:
    """wrk on each protocol's read of the same env, and on etcd's gateway (same bytes)."""
    server = stack.start_server("sqlite")[0]
    assert server.pid is not None
    api = await Api.login(server.url, stack.password)
    try:
        await seed_app(api, APP, make_items(plan.item_sizes[0], plan.value_bytes))
        token = await api.create_token("bench-compat", [f"read:{APP}"])
    finally:
        await api.close()
    etcd_host, etcd_port = stack.etcd_endpoint
    etcd_pid = stack.etcd_pid
    wrk: dict[str, Any] = {"seconds": plan.read_seconds, "connections": plan.read_connections}
    rows = []
    for protocol, path in READ_PATHS.items():
        body = await _read_once(server.url + path, token)
        log.info("compat read: %s (%d bytes)", protocol, len(body))
        ours = await asyncio.to_thread(
            run_wrk,
            server.url + path,
            headers={"Authorization": f"Bearer {token}"},
            server_pids=[server.pid],
            **wrk,
        )
        etcd = await asyncio.to_thread(
            etcd_read_of_size,
            etcd_host,
            etcd_port,
            etcd_pid,
            f"/bench/compat/{protocol}".encode(),
            len(body),
            **wrk,
        )
        for name, result in (("configcenter", ours), ("etcd", etcd)):
            if result["socket_errors"] or result["bad_status"]:
                raise RuntimeError(f"compat read {protocol} ({name}) had errors: {result}")
        rows.append(
            {
                "protocol": protocol,
                "path": path,
                "body_bytes": len(body),
                "connections": plan.read_connections,
                "configcenter": ours,
                "etcd": etcd,
                "ratio": _ratio(ours["rps"], etcd["rps"]),
            }
        )
    return rows


async def _read_once(url: str, token: str) -> bytes:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {url}: HTTP {response.status} {body[:200]!r}")
            return body


async def longpoll_phase(
    stack: Stack, plan: Plan, profile_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Per protocol: N clients wait; each publish's notify latency at every one of them. Each
    protocol on a server of its own, started fresh, so that its memory figure is its own;
    each beside the bare-aiohttp long-poll ceiling holding as many polls, same clients."""
    rows = []
    for protocol, count in plan.longpoll_counts:
        target = f"sqlite-poll-{protocol}"
        server = stack.start_server(target)[0]
        assert server.pid is not None
        api = await Api.login(server.url, stack.password)
        try:
            app = f"poll-{protocol}"
            items = make_items(plan.item_sizes[0], plan.value_bytes)
            await seed_app(api, app, items)
            token = await api.create_token(f"bench-poll-{protocol}", [f"read:{app}"])

            async def publish(round_no: int, app: str = app, api: Api = api) -> float:
                await api.put_item(app, ENV, "round", str(round_no))
                sent = time.monotonic()
                await api.publish(app, ENV)
                return sent

            profile = None
            if profile_dir is not None and protocol == "config":
                profile = profile_dir / "longpoll.txt"
            row = await _longpoll_run(
                server.pid, server.url, token, app, protocol, count, plan, publish, profile
            )
            # Each protocol's row beside bare aiohttp holding as many polls (configcenter's
            # poll shape: the bare server speaks no protocol of its own).
            body = await _read_once(f"{server.url}/api/v1/apps/{app}/envs/{ENV}/config", token)
            row["ceiling"] = await _ceiling_longpoll(stack, f"{app}-ceiling", body, count, plan)
            rows.append(row)
        finally:
            await api.close()
        stack.stop_server(target)
    return rows


async def _ceiling_longpoll(
    stack: Stack, app: str, body: bytes, count: int, plan: Plan
) -> dict[str, Any]:
    """The same long polls against bare aiohttp answering prebuilt bytes (bench/ceiling.py)."""
    import aiohttp

    ceiling = CeilingServer(stack.base_dir / f"ceiling-{app}", body).start()
    try:
        async with aiohttp.ClientSession(ceiling.url) as session:

            async def publish(round_no: int) -> float:
                sent = time.monotonic()
                async with session.post("/publish") as response:
                    if response.status != 201:
                        raise RuntimeError(f"ceiling publish: HTTP {response.status}")
                return sent

            return await _longpoll_run(
                ceiling.pid, ceiling.url, "ceiling", app, "config", count, plan, publish
            )
    finally:
        ceiling.stop()


class _Fleet:
    """The long-poll client processes of one run and what they report."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self.processes = processes
        self.lines: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
        self.readers = [asyncio.create_task(self._read(i, p)) for i, p in enumerate(processes)]

    async def _read(self, index: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            await self.lines.put((index, json.loads(raw)))
        # A client process ends only when it is stopped: before that, it failed.
        await self.lines.put((index, {"error": f"exited with {await process.wait()}"}))

    async def until(self, key: str, value: int | None, within: float) -> list[dict[str, Any]]:
        """One message with `key` (equal to value, when given) from every process."""
        got: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + within
        while len(got) < len(self.processes):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"long polls: {len(got)} of {len(self.processes)} processes said {key}"
                )
            index, message = await asyncio.wait_for(self.lines.get(), left)
            if "error" in message:
                raise RuntimeError(f"long-poll client failed: {message['error']}")
            if key in message and (value is None or message[key] == value):
                got[index] = message
        return list(got.values())

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.kill()
            await process.wait()
        for reader in self.readers:
            reader.cancel()


async def _longpoll_run(
    server_pid: int,
    url: str,
    token: str,
    app: str,
    protocol: str,
    count: int,
    plan: Plan,
    publish: Callable[[int], Awaitable[float]],
    profile: Path | None = None,
) -> dict[str, Any]:
    """`count` pollers of `protocol` wait; `publish(round)` (returning when it was sent)
    changes the env each round. Latencies, server and client CPU per delivery, RSS."""
    per_process = plan.longpolls_per_process
    processes = max(1, -(-count // per_process))
    ips = source_ips(processes)
    rss_before = rss_bytes(server_pid)
    children = []
    timeout = plan.connect_timeout + plan.longpoll_rounds * (plan.delivery_timeout + 2)
    for i in range(processes):
        job = LongPollJob(
            protocol=protocol,
            base_url=url,
            token=token,
            app=app,
            env=ENV,
            count=min(per_process, count - i * per_process),
            rounds=plan.longpoll_rounds,
            timeout=timeout,
            source_ip=ips[i],
        )
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.longpoll",
                job.to_json(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    fleet = _Fleet(children)
    latencies: list[float] = []
    busy = {"server": 0.0, "client": 0.0}
    try:
        await fleet.until("ready", None, plan.connect_timeout)
        log.info("long polls: %d %s clients waiting on %s", count, protocol, url)
        # The last waits to leave the client reach the server and park.
        await asyncio.sleep(plan.longpoll_settle_seconds)
        rss_waiting = rss_bytes(server_pid)
        profiler = Profiler(server_pid, profile) if profile is not None else None
        for round_no in range(1, plan.longpoll_rounds + 1):
            # CPU from the publish until every poller has it: answering them, and the new
            # polls that come in meanwhile.
            meter = CpuMeter.start({"server": [server_pid], "client": [c.pid for c in children]})
            sent = await publish(round_no)
            reports = await fleet.until("round", round_no, plan.delivery_timeout)
            for side, used in meter.seconds().items():
                busy[side] += used
            latencies += [stamp - sent for report in reports for stamp in report["stamps"]]
            # Everyone polls again with what it now holds before the next publish.
            await asyncio.sleep(plan.longpoll_settle_seconds)
        profiled = profiler.stop() if profiler is not None else None
    finally:
        await fleet.close()
    delivered = max(1, len(latencies))
    row: dict[str, Any] = {
        "protocol": protocol,
        "waiting": count,
        "rounds": plan.longpoll_rounds,
        "notify": summary_ms(latencies),
        "delivered": len(latencies),
        "expected": count * plan.longpoll_rounds,
        "server_rss_bytes_per_waiting": round((rss_waiting - rss_before) / count),
        "server_cpu_us_per_delivery": round(busy["server"] / delivered * 1e6, 1),
        "client_cpu_us_per_delivery": round(busy["client"] / delivered * 1e6, 1),
    }
    row["limit"] = (
        "client"
        if row["client_cpu_us_per_delivery"] > row["server_cpu_us_per_delivery"]
        else "server"
    )
    if profiled is not None:
        row["profile"] = profiled
    return row


# --- the printed rows and the targets ----------------------------------------------------

COMPAT_READ_TARGET = 1.5  # each compatible read: at least this many times etcd's gateway
LONGPOLL_P99_TARGET = 2.0  # /config long polls: p99 at most this times the WebSocket p99
LONGPOLL_KB_TARGET = 10.0  # server RSS per waiting client


def _n(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else str(value)


def _etcd_go_p99(results: dict[str, Any], count: int) -> float | None:
    for row in results.get("push") or []:
        if row["target"] == "sqlite" and row["subscribers"] == count and "etcd_go" in row:
            return float(row["etcd_go"]["p99_ms"])
    return None


def _websocket_p99(results: dict[str, Any], count: int) -> float | None:
    for row in results.get("push") or []:
        if row["target"] == "sqlite" and row["subscribers"] == count:
            return float(row["configcenter"]["p99_ms"])
    return None


def compat_sections(results: dict[str, Any], table: Any) -> list[str]:
    """COMPAT READ and LONG POLL sections (`table` is report._table)."""
    out: list[str] = []
    reads = results.get("compat_read") or []
    first_read = (results.get("read") or [{}])[0]
    ceiling = first_read.get("ceiling", {}).get("rps")
    if reads:
        out += [
            "",
            f"COMPAT READ: each protocol's read of one env ({reads[0]['body_bytes']} bytes on "
            f"/api/v1), {reads[0]['connections']} connections, a read token; etcd: gateway range "
            "of a value of the same size",
            *table(
                [
                    "protocol",
                    "path",
                    "bytes",
                    "req/s",
                    "etcd req/s",
                    "ratio",
                    "/ceiling",
                    "p99 ms",
                    "bound by",
                ],
                [
                    [
                        r["protocol"],
                        r["path"],
                        _n(r["body_bytes"]),
                        _n(r["configcenter"]["rps"]),
                        _n(r["etcd"]["rps"]),
                        f"{_n(r['ratio'], 2)}x",
                        f"{_n(r['configcenter']['rps'] / ceiling if ceiling else None, 2)}x",
                        _n(r["configcenter"].get("p99_ms"), 2),
                        f"{r['configcenter']['limit']} (server "
                        f"{r['configcenter']['server_cpu_pct']}%, wrk "
                        f"{r['configcenter']['client_cpu_pct']}%)",
                    ]
                    for r in reads
                ],
            ),
        ]
    polls = results.get("longpoll") or []
    if polls:
        rows = []
        for r in polls:
            ws = _websocket_p99(results, r["waiting"])
            go = _etcd_go_p99(results, r["waiting"])
            p99 = r["notify"]["p99_ms"]
            bare = r.get("ceiling")
            rows.append(
                [
                    r["protocol"],
                    _n(r["waiting"]),
                    f"{r['delivered']:,}/{r['expected']:,}",
                    " / ".join(_n(r["notify"][k], 1) for k in ("p50_ms", "p99_ms", "max_ms")),
                    _n(ws, 1),
                    f"{_n(p99 / ws, 2)}x" if ws else "n/a",
                    " / ".join(_n(bare["notify"][k], 1) for k in ("p50_ms", "p99_ms"))
                    if bare
                    else "",
                    f"{_n(p99 / bare['notify']['p99_ms'], 2)}x" if bare else "",
                    _n(go, 1),
                    f"{_n(p99 / go, 2)}x" if go else "n/a",
                    f"{_n(r['server_rss_bytes_per_waiting'] / 1024, 1)} KB",
                    f"{_n(bare['server_rss_bytes_per_waiting'] / 1024, 1)} KB" if bare else "",
                    f"{r['limit']} ({r['server_cpu_us_per_delivery']} / "
                    f"{r['client_cpu_us_per_delivery']})"
                    + (
                        f"; ceiling {bare['limit']} ({bare['server_cpu_us_per_delivery']} / "
                        f"{bare['client_cpu_us_per_delivery']})"
                        if bare
                        else ""
                    ),
                ]
            )
        out += [
            "",
            "LONG POLL: clients waiting on one env, notify latency after each publish "
            "(publish request sent -> answer at the client), SQLite, a minimal HTTP client; "
            "ws: WebSocket push at that count; ceiling: bare aiohttp (uvloop) answering as "
            "many polls (of /config's shape) with prebuilt bytes, same clients; etcd Go: "
            "etcd's fan-out to that many Go watchers; bound by: server or client (CPU µs per "
            "answer, server / client)",
            *table(
                [
                    "protocol",
                    "waiting",
                    "delivered",
                    "p50/p99/max ms",
                    "ws p99 ms",
                    "p99/ws",
                    "ceiling p50/p99",
                    "p99/ceiling",
                    "etcd Go p99",
                    "p99/etcd Go",
                    "RSS/waiting",
                    "ceiling RSS",
                    "bound by",
                ],
                rows,
            ),
        ]
    return out


def compat_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The compatible reads' and long polls' targets (None: not measured)."""
    found: list[dict[str, Any]] = []
    reads = {r["protocol"]: r for r in results.get("compat_read") or []}
    for protocol in ("apollo", "spring", "nacos"):
        row = reads.get(protocol)
        value = row["ratio"] if row else None
        found.append(
            {
                "name": f"{protocol} read >= {COMPAT_READ_TARGET:g}x etcd gateway",
                "value": value,
                "unit": "x",
                "met": value >= COMPAT_READ_TARGET if value is not None else None,
            }
        )
    polls = {r["protocol"]: r for r in results.get("longpoll") or []}
    for protocol, row in polls.items():
        everyone = row["delivered"] == row["expected"]
        ws = _websocket_p99(results, row["waiting"])
        if protocol == "config":
            value = row["notify"]["p99_ms"] / ws if ws else None
            found.append(
                {
                    "name": f"/config long polls at {row['waiting']:,}: p99 <= "
                    f"{LONGPOLL_P99_TARGET:g}x WebSocket p99, all delivered",
                    "value": value,
                    "unit": "x",
                    "met": everyone and value <= LONGPOLL_P99_TARGET if value is not None else None,
                }
            )
            kb = row["server_rss_bytes_per_waiting"] / 1024
            found.append(
                {
                    "name": f"<= {LONGPOLL_KB_TARGET:g} KB RSS per waiting long poll",
                    "value": kb,
                    "unit": "KB",
                    "met": kb <= LONGPOLL_KB_TARGET,
                }
            )
        else:
            found.append(
                {
                    "name": f"{protocol} long polls at {row['waiting']:,}: every publish notified",
                    "value": row["notify"]["p99_ms"],
                    "unit": "ms p99",
                    "met": everyone,
                }
            )
    return found
