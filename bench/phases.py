"""The benchmark phases: read, push (with memory), publish (with scaling), gray, instance
reads and instance churn."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import gowatcher
from bench.api import Api, bounded, make_items, seed_app
from bench.ceiling import ceiling_push, ceiling_read
from bench.etcdload import EtcdPublisher, txn_publishes
from bench.plan import Plan
from bench.profiling import Profiler
from bench.push import (
    Published,
    Publisher,
    SubscriberFleet,
    SubscriberJob,
    connect_fleet,
    instance_ids,
    plan_jobs,
    process_count,
    run_push,
    source_ips,
)
from bench.read import etcd_read_of_size, instance_reads_lua, run_wrk
from bench.stack import Stack, etcd_prefix
from bench.stats import CpuMeter, summary_ms
from devservices import ServerProcess
from server.records import in_percent

log = logging.getLogger("bench")

ENV = "prod"


def ratio(ours: float, theirs: float) -> float:
    """ours / theirs, rounded; nan when either is missing."""
    if not theirs or ours != ours or theirs != theirs:
        return float("nan")
    return round(ours / theirs, 2)


async def read_phase(
    stack: Stack, plan: Plan, profile_dir: Path | None = None
) -> list[dict[str, Any]]:
    """wrk on GET …/config (with and without If-None-Match) and on etcd's gateway range."""
    server = stack.start_server("sqlite")[0]
    assert server.pid is not None
    api = await Api.login(server.url, stack.password)
    apps = [f"read{size}" for size in plan.item_sizes]
    token = await api.create_token("bench-read", [f"read:{app}" for app in apps])
    etcd_host, etcd_port = stack.etcd_endpoint
    etcd_pid = stack.etcd_pid
    rows = []
    try:
        for size, app in zip(plan.item_sizes, apps, strict=True):
            await seed_app(api, app, make_items(size, plan.value_bytes))
            body, etag = await api.config(app, ENV)
            await _check_not_modified(server.url, app, token, etag)
            url = f"{server.url}/api/v1/apps/{app}/envs/{ENV}/config"
            auth = {"Authorization": f"Bearer {token}"}
            wrk: dict[str, Any] = {
                "seconds": plan.read_seconds,
                "connections": plan.read_connections,
            }
            log.info("read: %d items (%d bytes)", size, len(body))
            plain = await asyncio.to_thread(
                run_wrk, url, headers=auth, server_pids=[server.pid], **wrk
            )
            not_modified = await asyncio.to_thread(
                run_wrk,
                url,
                headers={**auth, "If-None-Match": etag},
                server_pids=[server.pid],
                **wrk,
            )
            etcd = await asyncio.to_thread(
                etcd_read_of_size,
                etcd_host,
                etcd_port,
                etcd_pid,
                f"/bench/read/{size}".encode(),
                len(body),
                **wrk,
            )
            ceiling = stack.start_ceiling(f"read-{size}", body)
            bare = await asyncio.to_thread(ceiling_read, ceiling, **wrk)
            ceiling.stop()
            for name, result in (
                ("configcenter", plain),
                ("if_none_match", not_modified),  # 304s count as 3xx: not "bad" for wrk
                ("etcd", etcd),
            ):
                if result["socket_errors"] or result["bad_status"]:
                    raise RuntimeError(f"read {name} at {size} items had errors: {result}")
            profile = None
            if profile_dir is not None and size == plan.item_sizes[0]:
                profiler = Profiler(server.pid, profile_dir / "read.txt")
                await asyncio.to_thread(run_wrk, url, headers=auth, server_pids=[server.pid], **wrk)
                profile = profiler.stop()
            rows.append(
                {
                    "items": size,
                    "body_bytes": len(body),
                    "connections": plan.read_connections,
                    "configcenter": plain,
                    "if_none_match": not_modified,
                    "etcd": etcd,
                    "ceiling": bare,
                    "ratio": ratio(plain["rps"], etcd["rps"]),
                    "ratio_if_none_match": ratio(not_modified["rps"], etcd["rps"]),
                    "ratio_ceiling": ratio(plain["rps"], bare["rps"]),
                }
            )
            if profile is not None:
                rows[-1]["profile"] = profile
            if size == plan.item_sizes[0]:
                etcd_of_first, bare_of_first = etcd, bare
        rows[0]["shared_port"] = await _shared_port_read(stack, plan, etcd_of_first, bare_of_first)
    finally:
        await api.close()
    return rows


async def _shared_port_read(
    stack: Stack, plan: Plan, etcd: dict[str, Any], ceiling: dict[str, Any]
) -> dict[str, Any]:
    """The headline read served by 2 replicas sharing one port (server.reuse_port, MariaDB and
    etcd): what serving reads from several processes on this host gives."""
    import aiohttp

    servers = stack.start_server("etcd_shared", replicas=2, shared_port=True)
    url = servers[0].url
    api = await Api.login(url, stack.password)
    try:
        # The kernel spreads new connections over both listeners: wait until both answer.
        seen: set[str] = set()
        deadline = time.monotonic() + plan.connect_timeout
        while len(seen) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError(f"shared port: only replicas {seen} answered")
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"{url}/api/v1/cluster", headers={"Authorization": f"Bearer {api.token}"}
                ) as answer,
            ):
                seen.add((await answer.json())["replica"])
        app = "read-shared"
        await seed_app(api, app, make_items(plan.item_sizes[0], plan.value_bytes))
        token = await api.create_token("bench-read-shared", [f"read:{app}"])
        config_url = f"{url}/api/v1/apps/{app}/envs/{ENV}/config"
        # Both have the release (the other one through etcd) before the load starts.
        answered = 0
        while answered < 20:
            if time.monotonic() > deadline:
                raise RuntimeError("shared port: a replica does not serve the release")
            async with (
                aiohttp.ClientSession() as session,
                session.get(config_url, headers={"Authorization": f"Bearer {token}"}) as answer,
            ):
                answered = answered + 1 if answer.status == 200 else 0
        result = await asyncio.to_thread(
            run_wrk,
            config_url,
            headers={"Authorization": f"Bearer {token}"},
            server_pids=[s.pid for s in servers if s.pid is not None],
            seconds=plan.read_seconds,
            connections=plan.read_connections,
        )
    finally:
        await api.close()
    stack.stop_server("etcd_shared")
    if result["socket_errors"] or result["bad_status"]:
        raise RuntimeError(f"shared-port read had errors: {result}")
    return {
        "replicas": len(servers),
        **result,
        "ratio": ratio(result["rps"], etcd["rps"]),
        "ratio_ceiling": ratio(result["rps"], ceiling["rps"]),
    }


async def _check_not_modified(base_url: str, app: str, token: str, etag: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{base_url}/api/v1/apps/{app}/envs/{ENV}/config",
            headers={"Authorization": f"Bearer {token}", "If-None-Match": etag},
        ) as response:
            if response.status != 304:
                raise RuntimeError(f"If-None-Match answered {response.status}, not 304")


async def push_phase(
    stack: Stack, plan: Plan, cluster_targets: list[str], profile_dir: Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Publish-to-delivery for each subscriber count, WebSocket then etcd watch; memory."""
    # A server of its own, started fresh, so the memory figure is not flattered by memory
    # freed by earlier phases; the largest count runs first for the same reason.
    server = stack.start_server("sqlite-push")[0]
    assert server.pid is not None
    rows: list[dict[str, Any]] = []
    memory: dict[str, Any] = {}
    etcd_host, etcd_port = stack.etcd_endpoint
    etcd_pid = stack.etcd_pid
    etcd_by_count: dict[int, dict[str, Any]] = {}
    go_missing = gowatcher.unavailable()
    if go_missing is None:
        await asyncio.to_thread(gowatcher.build)
    for count in sorted(plan.push_counts, reverse=True):
        profile = None
        if profile_dir is not None and count == max(plan.push_counts):
            profile = profile_dir / "push.txt"
        ours = await _push_ws(
            stack, plan, "sqlite-push", [server], count, rss=True, profile=profile
        )
        if count == max(plan.push_counts):
            memory = {
                "subscribers": count,
                "rss_before_mb": ours["rss_before_mb"],
                "rss_idle_mb": ours["rss_idle_mb"],
                "rss_after_pushes_mb": ours["rss_after_pushes_mb"],
                "kb_per_subscriber": ours["rss_kb_per_subscriber"],
            }
        body = ours.pop("body")
        theirs = await _push_etcd(
            plan, etcd_host, etcd_port, etcd_pid, count, ours.pop("frame_bytes")
        )
        etcd_by_count[count] = theirs
        row = _push_row("sqlite", count, ours, theirs)
        ceiling = stack.start_ceiling(f"push-{count}", body)
        log.info("push: %d WebSocket subscribers on the bare aiohttp ceiling", count)
        try:
            bare = await ceiling_push(
                ceiling,
                count,
                rounds=plan.push_rounds,
                per_process=plan.subscribers_per_process,
                connect_timeout=plan.connect_timeout,
                delivery_timeout=plan.delivery_timeout,
            )
        finally:
            ceiling.stop()
        row["ceiling"] = bare
        if count == max(plan.push_counts):
            # The bare server's RSS per idle socket, beside ours: how far from aiohttp's own cost.
            memory["ceiling_rss_before_mb"] = bare["rss_before_mb"]
            memory["ceiling_rss_idle_mb"] = bare["rss_idle_mb"]
            memory["ceiling_kb_per_subscriber"] = bare["rss_kb_per_subscriber"]
            memory["ratio_ceiling"] = ratio(
                memory["kb_per_subscriber"], bare["rss_kb_per_subscriber"]
            )
        row["ceiling_ratio_p50"] = ratio(ours["p50_ms"], bare["p50_ms"])
        row["ceiling_ratio_p99"] = ratio(ours["p99_ms"], bare["p99_ms"])
        if go_missing is None:
            go = await _push_etcd(
                plan, etcd_host, etcd_port, etcd_pid, count, len(body) + 17, kind="go-etcd"
            )
            row["etcd_go"] = go
            row["ratio_p99_go"] = ratio(ours["p99_ms"], go["p99_ms"])
        else:
            row["etcd_go_unavailable"] = go_missing
        rows.append(row)

    async def etcd_for(count: int, frame_bytes: int) -> dict[str, Any]:
        # The etcd side does not depend on the configcenter target: measured once per count.
        if count not in etcd_by_count:
            etcd_by_count[count] = await _push_etcd(
                plan, etcd_host, etcd_port, etcd_pid, count, frame_bytes
            )
        return etcd_by_count[count]

    # The same server measured with aiohttp's own client as subscriber: a heavier client,
    # to show how much of a figure is the client's.
    count = plan.cluster_push_count
    ours = await _push_ws(stack, plan, "sqlite-push", [server], count, rss=False, client="ws")
    ours.pop("body")
    theirs = await etcd_for(count, ours.pop("frame_bytes"))
    rows.append(_push_row("sqlite, aiohttp client", count, ours, theirs))
    for target in cluster_targets:
        replicas = 3 if target == "cluster" else 1
        servers = stack.start_server(target, replicas)
        ours = await _push_ws(stack, plan, target, servers, count, rss=False)
        ours.pop("body")
        theirs = await etcd_for(count, ours.pop("frame_bytes"))
        rows.append(_push_row(target, count, ours, theirs))
    return rows, memory


def _push_row(
    target: str, count: int, ours: dict[str, Any], theirs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "target": target,
        "subscribers": count,
        "configcenter": ours,
        "etcd": theirs,
        "ratio_p50": ratio(ours["p50_ms"], theirs["p50_ms"]),
        "ratio_p99": ratio(ours["p99_ms"], theirs["p99_ms"]),
    }


async def _push_ws(
    stack: Stack,
    plan: Plan,
    target: str,
    servers: list[ServerProcess],
    count: int,
    rss: bool,
    profile: Path | None = None,
    client: str = "lean",
    *,
    app: str | None = None,
    rounds: int | None = None,
    named: bool = False,
    make_publish: Callable[[Api, str, list[SubscriberJob]], Publisher] | None = None,
    receivers_of: dict[int, set[str]] | None = None,
) -> dict[str, Any]:
    """One WebSocket push run; named: subscribers name themselves (an instance id each).

    make_publish(api, app, jobs) makes the rounds' publisher (default: a plain publish).
    """
    api = await Api.login(servers[0].url, stack.password)
    app = app or f"push{count}-{client}"
    rounds = rounds or plan.push_rounds
    try:
        await seed_app(api, app, make_items(10, plan.value_bytes))
        token = await api.create_token(f"bench-push-{count}", [f"read:{app}"])
        body, _ = await api.config(app, ENV)
        urls = tuple(f"{s.url}/api/v1/watch?app={app}&env={ENV}" for s in servers)
        ips = source_ips(process_count(count, plan.subscribers_per_process))
        jobs = plan_jobs(
            "ws",
            count,
            plan.subscribers_per_process,
            lambda i, n: SubscriberJob(
                kind=client,
                count=n,
                timeout=plan.connect_timeout + rounds * (plan.delivery_timeout + 1),
                urls=urls[i % len(urls) :] + urls[: i % len(urls)],
                token=token,
                source_ip=ips[i],
                instance_prefix=f"bench-{app}-{i}-" if named else "",
                labels="bench:push" if named else "",
            ),
        )
        publish = (make_publish or plain_publisher)(api, app, jobs)
        log.info("push: %d WebSocket subscribers (%s client) on %s", count, client, target)
        pids = [s.pid for s in servers if s.pid is not None]
        result = await run_push(
            SubscriberFleet(jobs),
            count,
            rounds,
            publish,
            initial_messages=1,
            connect_timeout=plan.connect_timeout,
            delivery_timeout=plan.delivery_timeout,
            server_pids=pids,
            rss_pid=pids[0] if rss else None,
            profile=(lambda: Profiler(pids[0], profile).stop) if profile is not None else None,
            receivers_of=receivers_of,
        )
    finally:
        await api.close()
    # the frame a subscriber gets: {"type":"release", …} is the body plus 17 bytes
    result["frame_bytes"] = len(body) + len('"type":"release",')
    result["body"] = body
    return result


def plain_publisher(
    api: Api, app: str, _jobs: list[SubscriberJob] | None = None, series: str = ""
) -> Publisher:
    """Each round: edit one item (untimed), then publish the draft to every subscriber."""

    async def publish(round_no: int) -> Published:
        await api.put_item(app, ENV, "item.00000", f"round {round_no} at {time.time()}")
        stamp = time.monotonic()
        return Published(await api.publish(app, ENV), stamp, series=series)

    return publish


async def _push_etcd(
    plan: Plan,
    host: str,
    port: int,
    etcd_pid: int | None,
    count: int,
    frame_bytes: int,
    kind: str = "etcd",
) -> dict[str, Any]:
    """etcd watch fan-out; kind "etcd" watches with aetcd, "go-etcd" with etcd's Go client."""
    key = f"/bench/push/{count}/{time.monotonic_ns()}".encode()
    jobs = plan_jobs(
        "etcd",
        count,
        plan.watchers_per_process,
        lambda i, n: SubscriberJob(
            kind=kind,
            count=n,
            timeout=plan.connect_timeout + plan.push_rounds * (plan.delivery_timeout + 1),
            etcd_host=host,
            etcd_port=port,
            key=key,
            watchers_per_client=plan.watchers_per_client,
        ),
    )
    publisher = EtcdPublisher(host, port, key, frame_bytes)
    log.info("push: %d etcd watchers (%s)", count, kind)
    try:
        result = await run_push(
            SubscriberFleet(jobs),
            count,
            plan.push_rounds,
            publisher.publish,
            initial_messages=0,
            connect_timeout=plan.connect_timeout,
            delivery_timeout=plan.delivery_timeout,
            server_pids=[etcd_pid] if etcd_pid else [],
            rss_pid=etcd_pid,
        )
    finally:
        await publisher.close()
    clients = sum(max(1, -(-job.count // plan.watchers_per_client)) for job in jobs)
    result["clients"] = clients
    result["watchers_per_client"] = -(-count // clients)
    return result


async def publish_phase(
    stack: Stack, plan: Plan, targets: list[str], profile_dir: Path | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Publish latency and throughput across plan.publish_apps apps per target; scaling."""
    etcd_host, etcd_port = stack.etcd_endpoint
    etcd_pid = stack.etcd_pid
    headline: list[dict[str, Any]] = []
    scaling: list[dict[str, Any]] = []
    base_size = plan.item_sizes[0]
    for target in targets:
        servers = stack.start_server(target, 3 if target == "cluster" else 1)
        apis = [await Api.login(s.url, stack.password) for s in servers]
        try:
            apps = [f"pub{i:03d}" for i in range(plan.publish_apps)]
            log.info("publish: %d apps on %s", len(apps), target)
            profile = None
            if profile_dir is not None and target == "mariadb":
                profile = profile_dir / "publish-mariadb.txt"
            ours = await _publishes(
                apis,
                servers,
                apps,
                plan.value_bytes,
                base_size,
                plan.publish_sequential,
                plan.publish_rounds,
                profile,
            )
            headline.append(
                {"target": target, "items": base_size, "apps": len(apps), "configcenter": ours}
            )
            if target in ("sqlite", "mariadb"):
                for size in plan.item_sizes:
                    envs = [f"scale{size}x{j}" for j in range(plan.scaling_envs)]
                    log.info("publish scaling: %d items x %d envs on %s", size, len(envs), target)
                    result = await _publishes(
                        apis,
                        servers,
                        envs,
                        plan.value_bytes,
                        size,
                        plan.scaling_sequential,
                        plan.scaling_rounds,
                        profile_dir / f"publish-{target}-{size}.txt"
                        if profile_dir is not None and size == max(plan.item_sizes)
                        else None,
                    )
                    scaling.append(
                        {"target": target, "items": size, "envs": len(envs), "configcenter": result}
                    )
        finally:
            for api in apis:
                await api.close()
    release_bytes = {}
    for size in plan.item_sizes:
        release_bytes[size] = len(_canonical(make_items(size, plan.value_bytes)))
    log.info("publish: etcd txn across %d keys", plan.publish_apps)
    etcd_headline = await txn_publishes(
        etcd_host,
        etcd_port,
        keys=plan.publish_apps,
        size=release_bytes[base_size],
        sequential=plan.publish_sequential,
        rounds=plan.publish_rounds,
        etcd_pid=etcd_pid,
        prefix="/bench/publish",
    )
    for row in headline:
        _compare_publish(row, etcd_headline)
    etcd_scaling = {}
    for size in plan.item_sizes:
        etcd_scaling[size] = await txn_publishes(
            etcd_host,
            etcd_port,
            keys=plan.scaling_envs,
            size=release_bytes[size],
            sequential=plan.scaling_sequential,
            rounds=plan.scaling_rounds,
            etcd_pid=etcd_pid,
            prefix=f"/bench/scale/{size}",
        )
    for row in scaling:
        _compare_publish(row, etcd_scaling[row["items"]])
    return headline, scaling


def _compare_publish(row: dict[str, Any], etcd: dict[str, Any]) -> None:
    ours = row["configcenter"]
    row["etcd"] = etcd
    row["ratio_p50"] = ratio(ours["sequential"]["p50_ms"], etcd["sequential"]["p50_ms"])
    row["ratio_per_second"] = ratio(ours["per_second"], etcd["per_second"])


def _canonical(items: dict[str, str]) -> bytes:
    import json

    return json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def _publishes(
    apis: list[Api],
    servers: list[ServerProcess],
    apps: list[str],
    value_bytes: int,
    size: int,
    sequential: int,
    rounds: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Seed apps, then `sequential` lone publishes, then `rounds` of all apps at once.

    Each publish is preceded by an (untimed) edit of one item, as a publish needs a change.
    Replicas, when several, take turns.
    """
    items = make_items(size, value_bytes)
    await bounded((seed_app(apis[0], app, items) for app in apps), 4)
    edits = 0

    async def edit(api: Api, app: str) -> None:
        nonlocal edits
        edits += 1
        await api.put_item(app, ENV, "item.00000", f"edit {edits}")

    async def timed_publish(api: Api, app: str) -> float:
        started = time.monotonic()
        await api.publish(app, ENV)
        return time.monotonic() - started

    lone: list[float] = []
    profiler = Profiler(servers[0].pid, profile) if profile and servers[0].pid else None
    for i in range(sequential):
        api, app = apis[i % len(apis)], apps[i % len(apps)]
        await edit(api, app)
        lone.append(await timed_publish(api, app))
    profiled = profiler.stop() if profiler is not None else None
    together: list[float] = []
    wall = 0.0
    meter = CpuMeter.start({"server": [s.pid for s in servers], "client": [os.getpid()]})
    for _ in range(rounds):
        await asyncio.gather(*(edit(apis[i % len(apis)], a) for i, a in enumerate(apps)))
        started = time.monotonic()
        together += await asyncio.gather(
            *(timed_publish(apis[i % len(apis)], a) for i, a in enumerate(apps))
        )
        wall += time.monotonic() - started
    cpu = meter.stop()
    return {
        **({"profile": profiled} if profiled else {}),
        "sequential": summary_ms(lone),
        "concurrent": summary_ms(together),
        "in_flight": len(apps),
        "per_second": round(len(together) / wall, 1) if wall else float("nan"),
        "server_cpu_pct": cpu["server"],
        "client_cpu_pct": cpu["client"],
    }


class GrayRounds:
    """Rounds in cycles of three: a plain publish to everyone, a gray release to the rule's
    subscribers, its abandon (a release to everyone); every round waited for in full."""

    def __init__(self, api: Api, app: str, percent: int, matching: int) -> None:
        self.api = api
        self.app = app
        self.rule = {"percent": percent}
        self.matching = matching
        self.gray_versions: list[int] = []
        self.plain = plain_publisher(api, app, series="full")

    async def publish(self, round_no: int) -> Published:
        """The round's step: plain publish, gray release or abandon."""
        step = round_no % 3
        if step == 0:
            return await self.plain(round_no)
        if step == 1:
            await self.api.put_item(self.app, ENV, "item.00000", f"gray {round_no}")
            stamp = time.monotonic()
            version = await self.api.start_gray(self.app, ENV, self.rule)
            self.gray_versions.append(version)
            return Published(version, stamp, receivers=self.matching, series="gray")
        stamp = time.monotonic()
        return Published(await self.api.abandon_gray(self.app, ENV), stamp, series="abandon")


async def gray_phase(stack: Stack, plan: Plan) -> dict[str, Any]:
    """Gray delivery to the rule's share of named subscribers beside a plain publish to all
    of them, on one fleet; and whether anyone outside the rule got a gray version."""
    target = "sqlite-gray"
    server = stack.start_server(target)[0]
    count = plan.gray_subscribers
    app = f"gray{count}"
    matched: set[str] = set()
    rounds: list[GrayRounds] = []

    def make_publish(api: Api, app: str, jobs: list[SubscriberJob]) -> Publisher:
        ids = [instance for job in jobs for instance in instance_ids(job)]
        matched.update(i for i in ids if in_percent(app, ENV, i, plan.gray_percent))
        if not matched:
            raise RuntimeError(f"a {plan.gray_percent}% rule takes none of {count} subscribers")
        rounds.append(GrayRounds(api, app, plan.gray_percent, len(matched)))
        return rounds[0].publish

    receivers_of: dict[int, set[str]] = {}
    result = await _push_ws(
        stack,
        plan,
        target,
        [server],
        count,
        rss=False,
        app=app,
        rounds=3 * plan.gray_cycles,
        named=True,
        make_publish=make_publish,
        receivers_of=receivers_of,
    )
    result.pop("frame_bytes")
    result.pop("body")
    gray_versions = rounds[0].gray_versions
    got_gray = set().union(*(receivers_of.get(v, set()) for v in gray_versions))
    missed = sum(len(matched - receivers_of.get(v, set())) for v in gray_versions)
    series = result["series"]
    return {
        "target": "sqlite",
        "subscribers": count,
        "percent": plan.gray_percent,
        "matched": len(matched),
        "cycles": plan.gray_cycles,
        "gray": series["gray"],
        "full": series["full"],
        "abandon": series["abandon"],
        # subscribers outside the rule that received a gray version (must be 0)
        "outside_got_gray": len(got_gray - matched),
        "outside": count - len(matched),
        # (gray version, matching subscriber) pairs that were not delivered
        "matched_missed": missed,
        "ratio_p50": ratio(series["gray"]["p50_ms"], series["full"]["p50_ms"]),
        "ratio_p99": ratio(series["gray"]["p99_ms"], series["full"]["p99_ms"]),
        "push": result,
    }


async def instance_read_phase(stack: Stack, plan: Plan, targets: list[str]) -> list[dict[str, Any]]:
    """wrk on GET …/config with reads that name themselves (rotating instance ids and labels)
    beside anonymous ones, alternating, with one wrk script for both."""
    rows = []
    for target in targets:
        server = stack.start_server(target)[0]
        assert server.pid is not None
        api = await Api.login(server.url, stack.password)
        app = "tracked"
        try:
            await seed_app(api, app, make_items(plan.item_sizes[0], plan.value_bytes))
            token = await api.create_token("bench-tracked", [f"read:{app}"])
            url = f"{server.url}/api/v1/apps/{app}/envs/{ENV}/config"
            runs: dict[str, list[dict[str, Any]]] = {"anonymous": [], "named": []}
            for _ in range(plan.instance_read_repeats):
                for side, ids in (("anonymous", 0), ("named", plan.instance_read_ids)):
                    log.info("instance reads: %s on %s", side, target)
                    result = await asyncio.to_thread(
                        run_wrk,
                        url,
                        seconds=plan.read_seconds,
                        connections=plan.read_connections,
                        headers={"Authorization": f"Bearer {token}"},
                        lua=instance_reads_lua(ids),
                        server_pids=[server.pid],
                    )
                    if result["socket_errors"] or result["bad_status"]:
                        raise RuntimeError(f"instance reads ({side}) had errors: {result}")
                    runs[side].append(result)
            listing = await api.call("GET", f"/api/v1/apps/{app}/envs/{ENV}/instances")
        finally:
            await api.close()
        sides = {side: _mean_run(results) for side, results in runs.items()}
        rows.append(
            {
                "target": target,
                "connections": plan.read_connections,
                "instance_ids": plan.instance_read_ids,
                "runs_per_side": plan.instance_read_repeats,
                **sides,
                "listed": listing["summary"]["total"],
                "ratio": ratio(sides["named"]["rps"], sides["anonymous"]["rps"]),
                "runs": runs,
            }
        )
    return rows


def _mean_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(name: str) -> float:
        return round(float(sum(r[name] for r in results)) / len(results), 1)

    return {
        name: mean(name)
        for name in ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_request", "server_cpu_pct")
    }


async def instance_churn_phase(stack: Stack, plan: Plan) -> dict[str, Any]:
    """etcd writes of the instance summary while named subscribers connect and disconnect,
    counted by a watch on the summaries' prefix (and by the server's own counter)."""
    import aetcd
    from aetcd.rtypes import EventKind

    target = "etcd"
    server = stack.start_server(target)[0]
    api = await Api.login(server.url, stack.password)
    count = plan.churn_subscribers
    app = "churn"
    etcd_host, etcd_port = stack.etcd_endpoint
    client = aetcd.Client(etcd_host, etcd_port)
    puts: list[float] = []
    fleet: SubscriberFleet | None = None
    try:
        await seed_app(api, app, make_items(10, plan.value_bytes))
        token = await api.create_token("bench-churn", [f"read:{app}"])
        watch = await client.watch_prefix(f"{etcd_prefix(target)}/instances/".encode())

        async def count_puts() -> None:
            async for event in watch:
                if event.kind == EventKind.PUT:
                    puts.append(time.monotonic())

        counting = asyncio.create_task(count_puts())
        ips = source_ips(process_count(count, plan.subscribers_per_process))
        jobs = plan_jobs(
            "ws",
            count,
            plan.subscribers_per_process,
            lambda i, n: SubscriberJob(
                kind="lean",
                count=n,
                timeout=plan.connect_timeout + plan.churn_seconds + 30,
                urls=(f"{server.url}/api/v1/watch?app={app}&env={ENV}",),
                token=token,
                source_ip=ips[i],
                instance_prefix=f"bench-churn-{i}-",
                labels="bench:churn",
                hold_seconds=plan.churn_hold_seconds,
            ),
        )
        log.info("instance churn: %d subscribers for %g s on %s", count, plan.churn_seconds, target)
        fleet = SubscriberFleet(jobs)
        fleet.start()
        await connect_fleet(fleet, count, plan.connect_timeout)
        writes_before = await _summary_writes(api)
        connects_before = fleet.received()  # one release per connect
        meter = CpuMeter.start({"server": [server.pid]})
        started = time.monotonic()
        await asyncio.sleep(plan.churn_seconds)
        ended = time.monotonic()
        cpu = meter.stop()
        connects = fleet.received() - connects_before
        writes = await _summary_writes(api) - writes_before
        if fleet.failed():
            raise RuntimeError(f"{fleet.failed()} subscriber connects failed while churning")
        counting.cancel()
        await asyncio.gather(counting, return_exceptions=True)
        await watch.cancel()
    finally:
        if fleet is not None:
            fleet.stop()
        await client.close()
        await api.close()
    seconds = ended - started
    in_window = sum(1 for t in puts if started <= t <= ended)
    return {
        "target": target,
        "subscribers": count,
        "seconds": round(seconds, 1),
        "hold_seconds": plan.churn_hold_seconds,
        "connects_per_second": round(connects / seconds, 1),
        "etcd_puts": in_window,
        "puts_per_second": round(in_window / seconds, 2),
        "server_summary_writes": writes,
        "server_cpu_pct": cpu["server"],
    }


async def _summary_writes(api: Api) -> int:
    cluster = await api.call("GET", "/api/v1/cluster")
    return int(cluster["instances"]["summary_writes"])
