"""Long-polling clients in a process of their own: `python -m bench.longpoll JOB_JSON`.

N pollers of one protocol wait on one env, as that protocol's clients do:
- `config`: GET …/config?after=V&wait=S (configcenter's own long poll);
- `apollo`: GET /notifications/v2 with the notificationId each poller holds;
- `nacos`: POST /nacos/v1/cs/configs/listener with the MD5 each poller holds, and after a
  change the GET of the new content (its MD5 is what the next listen sends), as Nacos
  clients do.

Each poller stamps time.monotonic() (one clock for every process of the machine) when an
answer says "changed", then polls again with what it now holds. Its n-th change is round n:
the publisher waits until every poller has one round before it publishes the next. On
stdout, JSON lines: {"ready": N} once every poller holds its first state and has sent its
first wait; then {"round": n, "stamps": [...]} as soon as every poller has its n-th change.
Ends after `rounds` rounds or `timeout` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

_SEP_FIELD = "\x02"
_SEP_ENTRY = "\x01"


@dataclass(frozen=True)
class LongPollJob:
    """What the process does."""

    protocol: str  # "config", "apollo" or "nacos"
    base_url: str
    token: str
    app: str
    env: str
    count: int
    rounds: int
    timeout: float
    hold_seconds: int = 30
    source_ip: str = "127.0.0.1"

    def to_json(self) -> str:
        """The job as the argument of the child process."""
        return json.dumps(self.__dict__)


class _Rounds:
    def __init__(self, count: int) -> None:
        self.count = count
        self.stamps: dict[int, list[float]] = {}

    def changed(self, round_no: int) -> None:
        stamps = self.stamps.setdefault(round_no, [])
        stamps.append(time.monotonic())
        if len(stamps) == self.count:
            _say({"round": round_no, "stamps": stamps})


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class _Poller:
    def __init__(self, job: LongPollJob, session: aiohttp.ClientSession, rounds: _Rounds) -> None:
        self.job = job
        self.session = session
        self.rounds = rounds
        self.held: str = ""
        self.waiting = asyncio.Event()

    async def run(self) -> None:
        self.held = await self.current()
        changes = 0
        while changes < self.job.rounds:
            if await self.wait_change():
                changes += 1
                self.rounds.changed(changes)
                self.held = await self.current()

    async def current(self) -> str:
        """What this poller holds now: a version, a notificationId or an MD5."""
        job = self.job
        if job.protocol == "config":
            url = f"{job.base_url}/api/v1/apps/{job.app}/envs/{job.env}/config"
            async with self.session.get(url) as response:
                return str((await response.json())["version"])
        if job.protocol == "apollo":
            ids = json.dumps([{"namespaceName": "application", "notificationId": -1}])
            async with self.session.get(self._apollo_url(ids)) as response:
                return str((await response.json())[0]["notificationId"])
        url = f"{job.base_url}/nacos/v1/cs/configs?dataId={job.app}&group={job.env}"
        async with self.session.get(url) as response:
            return hashlib.md5(await response.read(), usedforsecurity=False).hexdigest()

    async def wait_change(self) -> bool:
        """One long poll: True when it says the env changed, False when it ran out."""
        job = self.job
        self.waiting.set()
        if job.protocol == "config":
            url = (
                f"{job.base_url}/api/v1/apps/{job.app}/envs/{job.env}/config"
                f"?after={self.held}&wait={job.hold_seconds}"
            )
            async with self.session.get(url) as response:
                await response.read()
                return response.status == 200
        if job.protocol == "apollo":
            ids = json.dumps([{"namespaceName": "application", "notificationId": int(self.held)}])
            async with self.session.get(self._apollo_url(ids)) as response:
                await response.read()
                return response.status == 200
        entry = _SEP_FIELD.join((job.app, job.env, self.held)) + _SEP_ENTRY
        async with self.session.post(
            f"{job.base_url}/nacos/v1/cs/configs/listener",
            data={"Listening-Configs": entry},
            headers={"Long-Pulling-Timeout": str(job.hold_seconds * 1000)},
        ) as response:
            return bool((await response.read()).strip()) and response.status == 200

    def _apollo_url(self, notifications: str) -> str:
        job = self.job
        return (
            f"{job.base_url}/notifications/v2?appId={job.app}&cluster={job.env}"
            f"&notifications={quote(notifications)}"
        )


async def _main(job: LongPollJob) -> None:
    rounds = _Rounds(job.count)
    connector = aiohttp.TCPConnector(limit=0, local_addr=(job.source_ip, 0))
    async with aiohttp.ClientSession(
        connector=connector,
        headers={"Authorization": f"Bearer {job.token}"},
        timeout=aiohttp.ClientTimeout(total=job.hold_seconds + 30),
    ) as session:
        pollers = [_Poller(job, session, rounds) for _ in range(job.count)]
        tasks = [asyncio.create_task(p.run()) for p in pollers]
        await asyncio.gather(*(p.waiting.wait() for p in pollers))
        _say({"ready": job.count})
        done, pending = await asyncio.wait(tasks, timeout=job.timeout)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                _say({"error": repr(task.exception())})
                break


def main() -> None:
    """Run the job given as the one argument (JSON)."""
    job = LongPollJob(**json.loads(sys.argv[1]))
    asyncio.run(_main(job))


if __name__ == "__main__":
    main()
