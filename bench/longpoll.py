"""Long-polling clients in a process of their own: `python -m bench.longpoll JOB_JSON`.

N pollers of one protocol wait on one env, as that protocol's clients do:
- `config`: GET …/config?after=V&wait=S (configcenter's own long poll);
- `apollo`: GET /notifications/v2 with the notificationId each poller holds;
- `nacos`: POST /nacos/v1/cs/configs/listener with the MD5 each poller holds, and after a
  change the GET of the new content (its MD5 is what the next listen sends), as Nacos
  clients do.

Each poller stamps time.monotonic() (one clock for every process of the machine) when an
answer says "changed", acts on it as that protocol's clients do, then polls again with what
it now holds. Its n-th change is round n:
the publisher waits until every poller has one round before it publishes the next. On
stdout, JSON lines: {"ready": N} once every poller holds its first state and has sent its
first wait; then {"round": n, "stamps": [...]} as soon as every poller has its n-th change.
Ends after `rounds` rounds or `timeout` seconds.

The HTTP client is a minimal one (an asyncio protocol per connection, keep-alive, requests
written as prebuilt bytes, answers by Content-Length; under uvloop): a few µs per answer, so
that the figure measures the server, as the push phase's lean WebSocket client does. aiohttp's
client cost ~200 µs per answer and poll, and 10,000 of them bound the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlencode, urlsplit

import uvloop

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


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding: *chunked", re.IGNORECASE)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a request at a time, its answer by
    Content-Length (the server answers every route used here so)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answer = self.answer
        if answer is None or answer.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        if _CHUNKED.search(head):
            answer.set_exception(RuntimeError(f"chunked answer: {head[:200]!r}"))
            return
        length = _CONTENT_LENGTH.search(head)
        total = end + 4 + (int(length.group(1)) if length else 0)
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        answer.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one prebuilt request; (status, body) of its answer."""
        assert self.transport is not None
        if self.transport.is_closing():
            raise ConnectionError("the server closed the connection")
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.answer


class _Poller:
    def __init__(self, job: LongPollJob, rounds: _Rounds) -> None:
        self.job = job
        self.connection = _Connection()
        self.rounds = rounds
        self.held: str = ""
        self.waiting = asyncio.Event()
        split = urlsplit(job.base_url)
        self._head = f"Host: {split.netloc}\r\nAuthorization: Bearer {job.token}\r\n"

    def _get(self, target: str) -> bytes:
        return f"GET {target} HTTP/1.1\r\n{self._head}\r\n".encode()

    def _post_form(self, target: str, form: dict[str, str], headers: str) -> bytes:
        body = urlencode(form).encode()
        return (
            f"POST {target} HTTP/1.1\r\n{self._head}{headers}"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def _call(self, raw: bytes) -> tuple[int, bytes]:
        status, body = await self.connection.request(raw)
        if status not in (200, 304):
            raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
        return status, body

    async def run(self, connect_limit: asyncio.Semaphore) -> None:
        # Connected just before its first request: the server closes a connection that
        # sends none for a while.
        split = urlsplit(self.job.base_url)
        assert split.hostname is not None
        assert split.port is not None
        async with connect_limit:
            _, self.connection = await asyncio.get_running_loop().create_connection(
                _Connection, split.hostname, split.port, local_addr=(self.job.source_ip, 0)
            )
            self.held = await self.current()
        changes = 0
        while changes < self.job.rounds:
            held = await self.wait_change()
            if held is not None:
                changes += 1
                self.rounds.changed(changes)
                self.held = await self.after_change(held)

    async def current(self) -> str:
        """What this poller holds now: a version, a notificationId or an MD5."""
        job = self.job
        if job.protocol == "config":
            _, body = await self._call(self._get(f"/api/v1/apps/{job.app}/envs/{job.env}/config"))
            return str(json.loads(body)["version"])
        if job.protocol == "apollo":
            ids = json.dumps([{"namespaceName": "application", "notificationId": -1}])
            _, body = await self._call(self._get(self._apollo_target(ids)))
            return str(json.loads(body)[0]["notificationId"])
        _, body = await self._call(
            self._get(f"/nacos/v1/cs/configs?dataId={job.app}&group={job.env}")
        )
        return hashlib.md5(body, usedforsecurity=False).hexdigest()

    async def after_change(self, held: str) -> str:
        """What the poller holds once it acted on a change, as that protocol's clients do:
        configcenter's answer is the new release itself; an Apollo client fetches the
        namespace (`/configs`) and keeps the notificationId it was told; a Nacos client
        fetches the content, whose MD5 is what it listens with next."""
        job = self.job
        if job.protocol == "config":
            return held
        if job.protocol == "apollo":
            await self._call(self._get(f"/configs/{job.app}/{job.env}/application"))
            return held
        return await self.current()

    async def wait_change(self) -> str | None:
        """One long poll: what the poller holds after the change it says, or None when it
        ran out."""
        job = self.job
        self.waiting.set()
        if job.protocol == "config":
            target = (
                f"/api/v1/apps/{job.app}/envs/{job.env}/config"
                f"?after={self.held}&wait={job.hold_seconds}"
            )
            status, body = await self._call(self._get(target))
            return str(json.loads(body)["version"]) if status == 200 else None
        if job.protocol == "apollo":
            ids = json.dumps([{"namespaceName": "application", "notificationId": int(self.held)}])
            status, body = await self._call(self._get(self._apollo_target(ids)))
            return str(json.loads(body)[0]["notificationId"]) if status == 200 else None
        entry = _SEP_FIELD.join((job.app, job.env, self.held)) + _SEP_ENTRY
        status, body = await self._call(
            self._post_form(
                "/nacos/v1/cs/configs/listener",
                {"Listening-Configs": entry},
                f"Long-Pulling-Timeout: {job.hold_seconds * 1000}\r\n",
            )
        )
        return self.held if status == 200 and body.strip() else None

    def _apollo_target(self, notifications: str) -> str:
        job = self.job
        return (
            f"/notifications/v2?appId={job.app}&cluster={job.env}"
            f"&notifications={quote(notifications)}"
        )


async def _main(job: LongPollJob) -> None:
    rounds = _Rounds(job.count)
    connect_limit = asyncio.Semaphore(100)
    pollers = [_Poller(job, rounds) for _ in range(job.count)]
    try:
        tasks = [asyncio.create_task(p.run(connect_limit)) for p in pollers]
        ready: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(p.waiting.wait() for p in pollers))
        )
        watched: list[asyncio.Future[Any]] = [ready, *tasks]
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            _say({"ready": job.count})
            await asyncio.wait(tasks, timeout=job.timeout)
        ready.cancel()
        for task in tasks:
            if task.done() and task.exception() is not None:
                _say({"error": repr(task.exception())})
                break
            task.cancel()
        # Alive until told (stdin closes): the publisher reads this process's CPU time.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        for poller in pollers:
            if poller.connection.transport is not None:
                poller.connection.transport.close()


def main() -> None:
    """Run the job given as the one argument (JSON)."""
    job = LongPollJob(**json.loads(sys.argv[1]))
    uvloop.run(_main(job))


if __name__ == "__main__":
    main()
