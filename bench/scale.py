"""The scales users outgrow a small install at: 30,000 WebSocket subscribers over 3 replicas,
and 10,000 envs (500 apps x 20 envs) on MariaDB with etcd: a replica's start-up, memory and
the cost of its scheduled refresh."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from bench.api import Api, bounded, make_items
from bench.plan import Plan
from bench.push import SubscriberFleet, SubscriberJob, plan_jobs, run_push, source_ips
from bench.stack import Stack
from bench.stats import CpuMeter, rss_bytes
from devservices.process import http_request

log = logging.getLogger("bench")

ENV = "prod"
_SENT_BYTES = re.compile(
    rb"^etcd_network_client_grpc_sent_bytes_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.MULTILINE
)


async def scale_phase(stack: Stack, plan: Plan) -> dict[str, Any]:
    """plan.scale_subscribers lean subscribers spread over 3 replicas; plain publishes."""
    servers = stack.start_server("cluster", 3)
    pids = [s.pid for s in servers if s.pid is not None]
    api = await Api.login(servers[0].url, stack.password)
    count = plan.scale_subscribers
    app = f"scale{count}"
    try:
        await api.create_app(app, ENV)
        await api.set_items(app, ENV, make_items(10, plan.value_bytes))
        await api.publish(app, ENV)
        token = await api.create_token("bench-scale", [f"read:{app}"])
        urls = tuple(f"{s.url}/api/v1/watch?app={app}&env={ENV}" for s in servers)
        processes = max(1, -(-count // plan.subscribers_per_process))
        ips = source_ips(processes)
        rounds = plan.scale_rounds
        jobs = plan_jobs(
            "ws",
            count,
            plan.subscribers_per_process,
            lambda i, n: SubscriberJob(
                kind="lean",
                count=n,
                timeout=plan.connect_timeout + rounds * (plan.delivery_timeout + 1),
                urls=urls[i % len(urls) :] + urls[: i % len(urls)],
                token=token,
                source_ip=ips[i],
            ),
        )
        rss_before = sum(rss_bytes(pid) for pid in pids)

        async def publish(round_no: int) -> Any:
            from bench.push import Published

            await api.put_item(app, ENV, "item.00000", f"round {round_no} at {time.time()}")
            stamp = time.monotonic()
            return Published(await api.publish(app, ENV), stamp)

        idle: dict[str, int] = {}

        def note_idle() -> None:
            idle["rss"] = sum(rss_bytes(pid) for pid in pids)

        log.info("scale: %d subscribers over %d replicas", count, len(servers))
        result = await run_push(
            SubscriberFleet(jobs),
            count,
            rounds,
            publish,
            initial_messages=1,
            connect_timeout=plan.connect_timeout,
            delivery_timeout=plan.delivery_timeout,
            server_pids=pids,
            on_idle=note_idle,
        )
    finally:
        await api.close()
    result["replicas"] = len(servers)
    result["rss_before_mb"] = round(rss_before / 2**20, 1)
    result["rss_idle_mb"] = round(idle["rss"] / 2**20, 1)
    result["kb_per_subscriber"] = round((idle["rss"] - rss_before) / count / 1024, 1)
    return result


def _etcd_sent_bytes(port: int) -> float:
    status, body = http_request("GET", port, "/metrics", timeout=10)
    if status != 200:
        raise RuntimeError(f"etcd /metrics: HTTP {status}")
    return sum(float(m.group(1)) for m in _SENT_BYTES.finditer(body))


async def many_envs_phase(stack: Stack, plan: Plan) -> dict[str, Any]:
    """plan.many_apps x plan.many_envs envs of plan.many_items items, each published, on
    MariaDB with etcd: then one replica's start-up until ready, its memory, and what its
    scheduled refresh costs (server CPU and bytes etcd sends) per interval while idle."""
    interval = plan.many_refresh_interval
    server = stack.start_server(
        "etcdmany", env={"CONFIGCENTER_ETCD_REFRESH_INTERVAL": str(interval)}
    )[0]
    api = await Api.login(server.url, stack.password, connections=plan.many_concurrency)
    envs = [f"e{j:02d}" for j in range(plan.many_envs)]
    apps = [f"many{i:04d}" for i in range(plan.many_apps)]
    items = make_items(plan.many_items, plan.value_bytes)
    started = time.monotonic()
    try:

        async def seed_app(app: str) -> None:
            await api.call("POST", "/api/v1/apps", {"name": app, "envs": envs}, expect=201)
            for env in envs:
                await api.set_items(app, env, items)
                await api.publish(app, env)

        await bounded((seed_app(app) for app in apps), plan.many_concurrency)
    finally:
        await api.close()
    seed_seconds = time.monotonic() - started
    log.info("many envs: %d envs seeded in %.0f s", len(apps) * len(envs), seed_seconds)
    # Start-up from a cold process: everything loaded from the store and etcd until ready.
    server.stop()
    started = time.monotonic()
    server.start()
    startup_seconds = time.monotonic() - started
    assert server.pid is not None
    await asyncio.sleep(plan.many_settle_seconds)
    rss = rss_bytes(server.pid)
    _, etcd_port = stack.etcd_endpoint
    sent_before = await asyncio.to_thread(_etcd_sent_bytes, etcd_port)
    meter = CpuMeter.start({"server": [server.pid]})
    await asyncio.sleep(interval * plan.many_refresh_intervals)
    cpu_seconds = meter.seconds()["server"]
    wall = meter.elapsed()
    sent_after = await asyncio.to_thread(_etcd_sent_bytes, etcd_port)
    intervals = wall / interval
    return {
        "apps": len(apps),
        "envs_per_app": len(envs),
        "envs": len(apps) * len(envs),
        "items_per_env": plan.many_items,
        "seed_seconds": round(seed_seconds, 1),
        "startup_seconds": round(startup_seconds, 2),
        "rss_mb": round(rss / 2**20, 1),
        "refresh_interval_seconds": interval,
        "idle_seconds": round(wall, 1),
        "server_cpu_ms_per_interval": round(cpu_seconds * 1000 / intervals, 1),
        "server_cpu_pct_of_core": round(100 * cpu_seconds / wall, 2),
        "etcd_bytes_sent_per_interval": round((sent_after - sent_before) / intervals),
    }


# --- the printed rows and the targets ----------------------------------------------------

SCALE_P99_TARGET_MS = 1000.0
SCALE_KB_TARGET = 15.0
STARTUP_TARGET_SECONDS = 10.0
REFRESH_CPU_TARGET_PCT = 5.0  # of one core, at the default interval
LOCK_P50_TARGET_MS = 4.0
LOCK_RATE_TARGET = 1000.0  # publishes/s of 100 apps at once, MariaDB with etcd
IDENTIFIED_ETCD_TARGET = 2.0
IDENTIFIED_CEILING_TARGET = 0.6


def _n(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else str(value)


def scale_sections(results: dict[str, Any]) -> list[str]:
    """SCALE and MANY ENVS sections."""
    out: list[str] = []
    row = results.get("scale")
    if row:
        out += [
            "",
            f"SCALE: {row['subscribers']:,} WebSocket subscribers over {row['replicas']} replicas "
            f"(MariaDB, etcd), {row['rounds']} publishes: p50/p99/max "
            f"{_n(row['p50_ms'], 1)} / {_n(row['p99_ms'], 1)} / {_n(row['max_ms'], 1)} ms, "
            f"delivered {row['delivered']:,}/{row['expected']:,}; server RSS "
            f"{row['rss_before_mb']} -> {row['rss_idle_mb']} MB = {row['kb_per_subscriber']} KB "
            f"per idle subscriber; bound by {row['limit']}",
        ]
        per_replica = row["subscribers"] // row["replicas"]
        push = {
            r["subscribers"]: r
            for r in results.get("push") or []
            if r["target"] == "sqlite" and "ceiling" in r
        }.get(per_replica)
        if push is not None:
            bare, go = push["ceiling"]["p99_ms"], push.get("etcd_go", {}).get("p99_ms")
            ceiling_kb = (results.get("memory") or {}).get("ceiling_kb_per_subscriber")
            versus = [
                f"p99 {_n(row['p99_ms'] / bare, 2)}x the bare broadcast's at {per_replica:,} "
                f"({_n(bare, 1)} ms)"
            ]
            if go:
                versus.append(
                    f"{_n(row['p99_ms'] / go, 2)}x etcd's fan-out to {per_replica:,} Go "
                    f"watchers ({_n(go, 1)} ms)"
                )
            if ceiling_kb:
                versus.append(
                    f"RSS per subscriber {_n(row['kb_per_subscriber'] / ceiling_kb, 2)}x the "
                    f"bare aiohttp socket's ({ceiling_kb} KB)"
                )
            out.append(f"  each replica holds {per_replica:,}: " + "; ".join(versus))
    many = results.get("many_envs")
    if many:
        out += [
            "",
            f"MANY ENVS: {many['envs']:,} envs ({many['apps']} apps x {many['envs_per_app']}, "
            f"{many['items_per_env']} items each) on MariaDB with etcd: start-up until ready "
            f"{many['startup_seconds']} s, RSS {many['rss_mb']} MB; the scheduled refresh "
            f"(every {many['refresh_interval_seconds']:g} s) costs "
            f"{many['server_cpu_ms_per_interval']} ms of server CPU "
            f"({many['server_cpu_pct_of_core']}% of a core) and "
            f"{_n(many['etcd_bytes_sent_per_interval'])} bytes from etcd per interval",
        ]
    return out


def _target(name: str, value: float | None, unit: str, met: bool | None) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "met": met}


def scale_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Scale, many envs, the publish lock and identified reads (None: not measured)."""
    found = []
    row = results.get("scale")
    found.append(
        _target(
            f"{SCALE_P99_TARGET_MS:g} ms p99 and every release delivered at "
            f"{row['subscribers'] if row else 30_000:,} subscribers over 3 replicas",
            row["p99_ms"] if row else None,
            "ms",
            (row["p99_ms"] <= SCALE_P99_TARGET_MS and row["delivered"] == row["expected"])
            if row
            else None,
        )
    )
    found.append(
        _target(
            f"<= {SCALE_KB_TARGET:g} KB RSS per idle subscriber over 3 replicas",
            row["kb_per_subscriber"] if row else None,
            "KB",
            row["kb_per_subscriber"] <= SCALE_KB_TARGET if row else None,
        )
    )
    many = results.get("many_envs")
    found.append(
        _target(
            f"start-up <= {STARTUP_TARGET_SECONDS:g} s at "
            f"{many['envs'] if many else 10_000:,} envs",
            many["startup_seconds"] if many else None,
            "s",
            many["startup_seconds"] <= STARTUP_TARGET_SECONDS if many else None,
        )
    )
    found.append(
        _target(
            f"scheduled refresh <= {REFRESH_CPU_TARGET_PCT:g}% of a core",
            many["server_cpu_pct_of_core"] if many else None,
            "%",
            many["server_cpu_pct_of_core"] <= REFRESH_CPU_TARGET_PCT if many else None,
        )
    )
    publish = {r["target"]: r for r in results.get("publish") or []}
    locked = publish.get("etcd")
    p50 = locked["configcenter"]["sequential"]["p50_ms"] if locked else None
    found.append(
        _target(
            f"publish with the etcd lock: lone p50 <= {LOCK_P50_TARGET_MS:g} ms (MariaDB)",
            p50,
            "ms",
            p50 <= LOCK_P50_TARGET_MS if p50 is not None else None,
        )
    )
    rate = locked["configcenter"]["per_second"] if locked else None
    found.append(
        _target(
            f"publish with the etcd lock: {locked['apps'] if locked else 100} apps at once "
            f">= {LOCK_RATE_TARGET:g}/s (MariaDB)",
            rate,
            "/s",
            rate >= LOCK_RATE_TARGET if rate is not None else None,
        )
    )
    read = (results.get("read") or [None])[0]
    for row in results.get("instance_read") or []:
        if row["target"] != "sqlite" or read is None:
            continue
        versus_etcd = round(row["named"]["rps"] / read["etcd"]["rps"], 2)
        found.append(
            _target(
                f"identified reads >= {IDENTIFIED_ETCD_TARGET:g}x etcd gateway",
                versus_etcd,
                "x",
                versus_etcd >= IDENTIFIED_ETCD_TARGET,
            )
        )
        if "ceiling" in read:
            versus_ceiling = round(row["named"]["rps"] / read["ceiling"]["rps"], 2)
            found.append(
                _target(
                    f"identified reads >= {IDENTIFIED_CEILING_TARGET:g}x the bare ceiling",
                    versus_ceiling,
                    "x",
                    versus_ceiling >= IDENTIFIED_CEILING_TARGET,
                )
            )
    return found
