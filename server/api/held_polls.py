"""Long polls of `GET …/config` answered in the pass that applies the release they wait for.

When a release is applied, each poll of its env that now gets a newer release (the gray one
when its rule takes the reader) is answered at once: the answer's bytes, built once per release
and format with the headers the response hooks give every answer, written straight to the
connection, as the hub writes WebSocket frames. So 10,000 waiting polls are answered in a few
tens of milliseconds, not one handler at a time through the middlewares and aiohttp's response
path, behind the polls that come back meanwhile. Each handler then finishes as usual (its log
count, metrics, the instance registry) and returns `AlreadySent`, which aiohttp finishes
without writing; the connection stays open for the client's next request.

Only HTTP/1.1 keep-alive GETs without If-None-Match are held so; any other poll is answered by
its handler as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractStreamWriter

from server.api.answers import ConfigAnswer, ConfigAnswers, Reader
from server.domain.formats import content_type_of
from server.published import EnvKey, PublishedConfigs
from server.records import Release

_STATUS_LINE = f"HTTP/1.1 200 {HTTPStatus.OK.phrase}\r\n".encode()
# Set per answer or per request, never taken from the hooks' probe.
_OWN_HEADERS = frozenset({"content-type", "content-length", "date", "x-request-id"})


@dataclass(eq=False, slots=True)
class HeldPoll:
    """One waiting poll: what it waits for, and the answer it was sent (None until then)."""

    request: web.Request
    key: EnvKey
    after: int
    reveal: bool
    fmt: str
    reader: Reader
    request_id: bytes
    sent: ConfigAnswer | None = None


class AlreadySent(web.StreamResponse):
    """The answer of a poll that HeldPolls wrote: aiohttp finishes the request without
    writing, and keeps the connection for the next request."""

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None

    @property
    def prepared(self) -> bool:
        return True

    @property
    def keep_alive(self) -> bool:
        return True


@dataclass
class _Clock:
    """The Date header's value, formatted once a second."""

    second: int = -1
    value: bytes = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.value = formatdate(second, usegmt=True).encode()
        return self.value


class HeldPolls:
    """The held polls of every env; answers them from the release listeners."""

    def __init__(self, published: PublishedConfigs, answers: ConfigAnswers) -> None:
        self.answers = answers
        self.sent = 0
        """Polls answered in the applying pass (since start)."""
        self._held: dict[EnvKey, set[HeldPoll]] = {}
        self._hook_headers: dict[str, list[tuple[str, str]]] = {}
        self._clock = _Clock()
        published.add_listener(self._applied)
        published.add_gray_listener(self._applied)

    @staticmethod
    def holdable(request: web.Request) -> bool:
        """True when the poll may be answered with written bytes (see the module's text)."""
        return (
            request.method == "GET"
            and request.version == HttpVersion11
            and request.keep_alive
            and "If-None-Match" not in request.headers
            and request.transport is not None
        )

    async def hold(
        self,
        request: web.Request,
        request_id: str,
        key: EnvKey,
        after: int,
        reveal: bool,
        fmt: str,
        reader: Reader,
    ) -> HeldPoll | None:
        """Hold a poll until release() (None when it cannot be held); request_id goes in the
        X-Request-Id header, as on every answer."""
        if not self.holdable(request):
            return None
        content_type = content_type_of(fmt)
        if content_type not in self._hook_headers:
            self._hook_headers[content_type] = await self._hooks(request, content_type)
        poll = HeldPoll(request, key, after, reveal, fmt, reader, request_id.encode())
        self._held.setdefault(poll.key, set()).add(poll)
        return poll

    def release(self, poll: HeldPoll) -> None:
        """The poll no longer waits (answered, timed out, or its client left)."""
        polls = self._held.get(poll.key)
        if polls is not None:
            polls.discard(poll)
            if not polls:
                del self._held[poll.key]

    @property
    def held(self) -> int:
        """Polls held now."""
        return sum(len(polls) for polls in self._held.values())

    async def _hooks(self, request: web.Request, content_type: str) -> list[tuple[str, str]]:
        # The headers every answer of this content type gets from the app's response hooks
        # (security headers, Server): run once on a probe, as they would run on each answer.
        probe = web.Response(headers={"Content-Type": content_type})
        await request.app.on_response_prepare.send(request, probe)
        return [(k, v) for k, v in probe.headers.items() if k.lower() not in _OWN_HEADERS]

    def _applied(self, release: Release) -> None:
        polls = self._held.get((release.app, release.env))
        if not polls:
            return
        app, env = release.app, release.env
        tail = b"\r\nX-Request-Id: "
        head_of_date = b"Date: " + self._clock.now() + tail
        # Anonymous readers of one env all get the main release: looked up once per pass.
        anonymous: dict[tuple[bool, str], tuple[ConfigAnswer, bytes, bytes] | None] = {}
        for poll in polls:
            transport = poll.request.transport
            if poll.sent is not None or transport is None or transport.is_closing():
                continue
            if poll.reader.instance is None:
                kind = (poll.reveal, poll.fmt)
                if kind not in anonymous:
                    found = self.answers.current(app, env, poll.reveal)
                    anonymous[kind] = (
                        None if found is None else (found, *self._wire_of(found, poll.fmt))
                    )
                wired = anonymous[kind]
            else:
                found = self.answers.current(app, env, poll.reveal, poll.reader)
                wired = None if found is None else (found, *self._wire_of(found, poll.fmt))
            if wired is None or wired[0].release.version <= poll.after:
                continue  # e.g. a gray release whose rule does not take this reader
            answer, head, body = wired
            transport.write(b"".join((head, head_of_date, poll.request_id, b"\r\n\r\n", body)))
            poll.sent = answer
            self.sent += 1

    def _wire_of(self, answer: ConfigAnswer, fmt: str) -> tuple[bytes, bytes]:
        wired = answer.wired.get(fmt)
        if wired is not None:
            return wired
        if fmt == "json":
            body, content_type = answer.json_body, answer.json_headers["Content-Type"]
        else:
            body, content_type = answer.render(fmt)
        lines = [_STATUS_LINE]
        for name, value in answer.headers.items():
            lines.append(f"{name}: {value}\r\n".encode())
        own = {name.lower() for name in answer.headers}
        for name, value in self._hook_headers[content_type_of(fmt)]:
            if name.lower() not in own:
                lines.append(f"{name}: {value}\r\n".encode())
        lines.append(f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n".encode())
        wired = answer.wired[fmt] = (b"".join(lines), body)
        return wired
