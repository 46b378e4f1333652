"""A soak under faults: does the cluster keep every release while replicas, etcd and MariaDB fail?

3 replicas on one MariaDB and a 3-member etcd cluster, WebSocket subscribers and long-pollers
spread over the replicas, publishes on random replicas across many envs, and at a fixed
interval a fault: a replica killed and restarted, a replica paused past the lock TTL, an etcd
member killed, MariaDB restarted, etcd stopped entirely. After a settle period it checks the
store and every client against the invariants and prints a report; the exit code is 1 when
an invariant broke. Everything runs on loopback, bounded in time, and stops by itself.

    .venv/bin/python -m bench.soak --seconds 600          # the long run (bench/RESULTS.md)
    .venv/bin/python -m bench.soak --seconds 60 --subscribers 300 --pollers 30   # the test's
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from devservices import EtcdCluster, MariaDBServer, ServerProcess

log = logging.getLogger("bench.soak")

APP = "soak"
LOCK_TTL = 2
# Short lock and repair periods, as the cluster tests use: a lost lease expires in 2 s.
REPLICA_ENV = {
    "CONFIGCENTER_ETCD_LOCK_TTL": str(LOCK_TTL),
    "CONFIGCENTER_ETCD_REFRESH_INTERVAL": "1.0",
}
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=2)
LONG_POLL_WAIT = 5


@dataclasses.dataclass
class Tally:
    """What the clients saw."""

    accepted: dict[str, list[int]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )
    refused: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    server_errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    out_of_order: int = 0
    deliveries: int = 0
    faults: list[str] = dataclasses.field(default_factory=list)

    def saw_status(self, status: int, what: str) -> None:
        """Count a 5xx other than 503 (a 503 is an honest 'not now')."""
        if status >= 500 and status != 503:
            self.server_errors[f"{what} {status}"] += 1


@dataclasses.dataclass
class Watcher:
    """One client (a subscriber or a long-poller) of one env: the versions it received."""

    env: str
    last: int = 0

    def receive(self, version: int, tally: Tally) -> None:
        """Versions of one env only go up for one client."""
        tally.deliveries += 1
        if version <= self.last:
            tally.out_of_order += 1
        self.last = max(self.last, version)


class Soak:
    """Owns the processes, the clients and the fault schedule of one run."""

    def __init__(self, base: Path, args: argparse.Namespace) -> None:
        self.base = base
        self.args = args
        self.envs = [f"e{n:02d}" for n in range(args.envs)]
        self.tally = Tally()
        self.rng = random.Random(args.seed)
        # Faults run on a thread: they draw from their own generator.
        self.fault_rng = random.Random(args.seed + 1)
        self.in_flight: set[asyncio.Task[int | None]] = set()
        self.stopping = asyncio.Event()
        self.publishing = True
        self.etcd = EtcdCluster(3, base / "etcd")
        self.mariadb = MariaDBServer(base / "mariadb")
        self.replicas: list[ServerProcess] = []
        self.token = ""
        self.watchers: list[Watcher] = []

    # processes

    def start_processes(self) -> None:
        """etcd, MariaDB, then the first replica (schema, admin) and the other two."""
        self.etcd.start()
        self.mariadb.start()
        url = self.mariadb.create_database(f"soak_{uuid.uuid4().hex[:8]}")
        self.replicas = [
            ServerProcess(
                self.base / f"replica{n}",
                url,
                etcd_endpoints=self.etcd.client_endpoints,
                env=REPLICA_ENV,
                startup_timeout=60.0,
            )
            for n in (1, 2, 3)
        ]
        for replica in self.replicas:
            replica.start()
        self.token = self.replicas[0].admin_token()

    def stop_processes(self) -> None:
        """Everything started, newest first; safe to call after a partial start."""
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                replica.resume()
            with contextlib.suppress(Exception):
                replica.stop()
        for service in (self.mariadb, self.etcd):
            with contextlib.suppress(Exception):
                service.stop()

    # clients

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _replica_url(self, index: int) -> str:
        return self.replicas[index % len(self.replicas)].url

    async def setup_envs(self, session: aiohttp.ClientSession) -> None:
        """One app with every env, each published once so that every client has a version."""
        url = self._replica_url(0) + "/api/v1/apps"
        body = {"name": APP, "envs": self.envs}
        async with session.post(url, json=body, headers=self._headers()) as answer:
            assert answer.status == 201, await answer.text()
        for env in self.envs:
            version = await self._publish_once(session, 0, env)
            assert version is not None, f"the first publish of {env} failed"

    async def _publish_once(
        self, session: aiohttp.ClientSession, index: int, env: str
    ) -> int | None:
        """Set one item and publish on one replica; the version, or None (counted) if refused."""
        base = f"{self._replica_url(index)}/api/v1/apps/{APP}/envs/{env}"
        try:
            edit = {"set": {"n": uuid.uuid4().hex}}
            async with session.patch(f"{base}/items", json=edit, headers=self._headers()) as r:
                self.tally.saw_status(r.status, "PATCH items")
                if r.status != 200:
                    self.tally.refused[f"edit {r.status} {await _code(r)}"] += 1
                    return None
            async with session.post(f"{base}/releases", json={}, headers=self._headers()) as r:
                self.tally.saw_status(r.status, "POST releases")
                if r.status != 201:
                    self.tally.refused[f"publish {r.status} {await _code(r)}"] += 1
                    return None
                version = int((await r.json())["version"])
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.tally.refused[f"no answer ({type(exc).__name__})"] += 1
            return None
        self.tally.accepted[env].append(version)
        return version

    async def publisher(self, session: aiohttp.ClientSession) -> None:
        """A publish every interval on a random replica and env, while publishing is on."""
        while not self.stopping.is_set():
            if self.publishing:
                index = self.rng.randrange(len(self.replicas))
                env = self.rng.choice(self.envs)
                task = asyncio.create_task(self._publish_once(session, index, env))
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
            await _sleep_or_stop(self.stopping, self.args.publish_every)

    async def subscriber(self, session: aiohttp.ClientSession, n: int) -> None:
        """A WebSocket subscriber that resubscribes with after=last on another replica."""
        watcher = Watcher(self.envs[n % len(self.envs)])
        self.watchers.append(watcher)
        index = n
        while not self.stopping.is_set():
            url = self._replica_url(index).replace("http://", "ws://") + "/api/v1/watch"
            try:
                async with session.ws_connect(
                    url,
                    headers=self._headers(),
                    heartbeat=2.0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2),
                ) as ws:
                    await ws.send_json(
                        {"op": "subscribe", "app": APP, "env": watcher.env, "after": watcher.last}
                    )
                    async for message in ws:
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        data = json.loads(message.data)
                        if data.get("type") == "release":
                            watcher.receive(int(data["version"]), self.tally)
                        elif data.get("type") == "error":
                            log.info("subscriber %d: error %s", n, data)
                            break
            except aiohttp.WSServerHandshakeError as exc:
                self.tally.saw_status(exc.status, "WebSocket handshake")
            except (aiohttp.ClientError, TimeoutError, ConnectionError):
                pass
            index += 1
            await _sleep_or_stop(self.stopping, 0.2 + self.rng.random() * 0.3)

    async def long_poller(self, session: aiohttp.ClientSession, n: int) -> None:
        """GET …/config?after=last&wait=5 in a loop, moving on to another replica on failure."""
        watcher = Watcher(self.envs[n % len(self.envs)])
        self.watchers.append(watcher)
        index = n
        timeout = aiohttp.ClientTimeout(total=LONG_POLL_WAIT + 5, sock_connect=2)
        while not self.stopping.is_set():
            url = f"{self._replica_url(index)}/api/v1/apps/{APP}/envs/{watcher.env}/config"
            query = {"after": str(watcher.last), "wait": str(LONG_POLL_WAIT)}
            try:
                async with session.get(
                    url, params=query, headers=self._headers(), timeout=timeout
                ) as r:
                    self.tally.saw_status(r.status, "GET config")
                    if r.status == 200:
                        watcher.receive(int((await r.json())["version"]), self.tally)
                        continue
                    if r.status == 304:
                        continue
            except (aiohttp.ClientError, TimeoutError):
                pass
            index += 1
            await _sleep_or_stop(self.stopping, 0.3)

    # faults

    def faults(self) -> list[tuple[str, Callable[[], None]]]:
        """The faults in the order they come round."""
        return [
            ("SIGKILL a replica and restart it", self._kill_replica),
            (f"SIGSTOP a replica for {LOCK_TTL + 2} s (past the lock TTL)", self._pause_replica),
            ("SIGKILL an etcd member, restart it 5 s later", self._kill_etcd_member),
            ("restart MariaDB", self._restart_mariadb),
            ("stop every etcd member for 10 s", self._drop_etcd),
        ]

    def _kill_replica(self) -> None:
        replica = self.fault_rng.choice(self.replicas)
        replica.kill()
        time.sleep(1.0)
        replica.start()

    def _pause_replica(self) -> None:
        replica = self.fault_rng.choice(self.replicas)
        replica.pause()
        time.sleep(LOCK_TTL + 2)
        replica.resume()

    def _kill_etcd_member(self) -> None:
        name = self.fault_rng.choice(self.etcd.member_names)
        self.etcd.kill_member(name)
        time.sleep(5.0)
        self.etcd.start_member(name)

    def _restart_mariadb(self) -> None:
        self.mariadb.stop()
        self.mariadb.start()

    def _drop_etcd(self) -> None:
        for name in self.etcd.member_names:
            self.etcd.kill_member(name)
        time.sleep(10.0)
        for name in self.etcd.member_names:
            self.etcd.start_member(name, wait=False)
        self.etcd.wait_for_leader(timeout=30.0)

    async def fault_loop(self, started: float, until: float) -> None:
        """Fault n starts fault_every * n seconds in (or at once if the one before overran)."""
        schedule = self.faults()
        for turn in range(1, 10**6):
            due = started + self.args.fault_every * turn
            if due >= until:
                return
            await _sleep_or_stop(self.stopping, max(0.0, due - time.monotonic()))
            if self.stopping.is_set():
                return
            what, fault = schedule[(turn - 1) % len(schedule)]
            began = time.monotonic()
            log.info("fault %d: %s", turn, what)
            await asyncio.to_thread(fault)
            self.tally.faults.append(f"{what} ({time.monotonic() - began:.1f} s)")

    # the run

    async def run(self) -> dict[str, Any]:
        """Start, load and fault for the run's length, settle, then judge."""
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT, connector=connector) as session:
            await self.setup_envs(session)
            clients = [
                *(self.subscriber(session, n) for n in range(self.args.subscribers)),
                *(self.long_poller(session, n) for n in range(self.args.pollers)),
            ]
            tasks = [asyncio.create_task(c) for c in clients]
            publisher = asyncio.create_task(self.publisher(session))
            started = time.monotonic()
            until = started + self.args.seconds
            await self.fault_loop(started, until)
            remaining = until - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining)
            self.publishing = False
            # Every publish answered (each is bounded by the client timeout), then a settle
            # for the clients to catch up.
            await asyncio.gather(*self.in_flight)
            await asyncio.sleep(self.args.settle)
            self.stopping.set()
            await publisher
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.judge()

    def judge(self) -> dict[str, Any]:
        """The report: counts and the invariants (each must be 0)."""
        stored = _stored_versions(self.mariadb)
        gaps = sum(
            len(set(range(1, max(versions) + 1)) - set(versions))
            for versions in stored.values()
            if versions
        )
        duplicates = sum(
            len(versions) - len(set(versions)) for versions in self.tally.accepted.values()
        )
        latest = {env: max(versions, default=0) for env, versions in stored.items()}
        stale = sum(1 for w in self.watchers if w.last != latest.get(w.env, 0))
        lost = sum(
            1
            for env, versions in self.tally.accepted.items()
            for v in versions
            if v not in set(stored.get(env, ()))
        )
        return {
            "seconds": self.args.seconds,
            "subscribers": self.args.subscribers,
            "long_pollers": self.args.pollers,
            "envs": len(self.envs),
            "faults": self.tally.faults,
            "publishes_accepted": sum(len(v) for v in self.tally.accepted.values()),
            "publishes_refused": dict(sorted(self.tally.refused.items())),
            "releases_in_store": sum(len(v) for v in stored.values()),
            "deliveries": self.tally.deliveries,
            "invariants": {
                "accepted_but_lost": lost,
                "version_gaps": gaps,
                "duplicate_versions": duplicates,
                "clients_behind_the_store_after_settle": stale,
                "out_of_order_deliveries": self.tally.out_of_order,
                "server_errors_other_than_503": sum(self.tally.server_errors.values()),
            },
            "server_errors": dict(self.tally.server_errors),
        }


async def _code(response: aiohttp.ClientResponse) -> str:
    with contextlib.suppress(Exception):
        return str((await response.json())["error"]["code"])
    return "?"


async def _sleep_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


def _stored_versions(mariadb: MariaDBServer) -> dict[str, list[int]]:
    """Every release version per env of the soak app, read straight from MariaDB."""
    result: dict[str, list[int]] = collections.defaultdict(list)
    for database in _databases(mariadb):
        connection = mariadb.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT e.name, r.version FROM releases r JOIN envs e ON e.id = r.env_id "
                    "JOIN apps a ON a.id = e.app_id WHERE a.name = %s",
                    (APP,),
                )
                for env, version in cursor.fetchall():
                    result[str(env)].append(int(version))
        finally:
            connection.close()
    return result


def _databases(mariadb: MariaDBServer) -> list[str]:
    connection = mariadb.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW DATABASES LIKE 'soak\\_%'")
            return [str(row[0]) for row in cursor.fetchall()]
    finally:
        connection.close()


def print_report(report: dict[str, Any]) -> None:
    """The report as a few aligned lines."""
    print(
        f"soak: {report['seconds']} s, {report['subscribers']} subscribers, "
        f"{report['long_pollers']} long-pollers, {report['envs']} envs"
    )
    for fault in report["faults"]:
        print(f"  fault: {fault}")
    print(f"publishes accepted: {report['publishes_accepted']}")
    for reason, count in report["publishes_refused"].items():
        print(f"publishes refused:  {count:6d}  {reason}")
    print(f"releases in store:  {report['releases_in_store']}")
    print(f"deliveries:         {report['deliveries']}")
    for name, count in report["invariants"].items():
        print(f"{name:40s} {count}  {'ok' if count == 0 else 'BROKEN'}")


def main(argv: list[str] | None = None) -> int:
    """Run one soak; exit 1 when an invariant broke."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the faulted run")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--pollers", type=int, default=100)
    parser.add_argument("--envs", type=int, default=20)
    parser.add_argument("--publish-every", type=float, default=0.05)
    parser.add_argument("--fault-every", type=float, default=15.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory(prefix="cc-soak-") as tmp:
        soak = Soak(Path(tmp), args)
        try:
            soak.start_processes()
            report = asyncio.run(soak.run())
        finally:
            soak.stop_processes()
    print_report(report)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if any(report["invariants"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
