"""Long polls answered in the pass that applies their release (server/api/held_polls.py):
the same answer as the handler's, written to the connection, which stays usable."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from server.api.held_polls import HeldPolls
from server.keys import HELD_POLLS, PUBLISHED
from tests.api.helpers import Api, AppFactory
from tests.client.helpers import wait_until

CONFIG = "/api/v1/apps/shop/envs/prod/config"


class RawHttp:
    """One HTTP connection to the test server, spoken by hand: requests as written here,
    answers read by Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, api: Api) -> RawHttp:
        server = api.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        return cls(reader, writer)

    def send(self, target: str, token: str, *lines: str, version: str = "1.1") -> None:
        head = [f"GET {target} HTTP/{version}", "Host: test", f"Authorization: Bearer {token}"]
        self.writer.write("\r\n".join([*head, *lines, "", ""]).encode())

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode().split("\r\n")[:-2]
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"header {name} twice"
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 10)
        return int(status_line.split()[1]), headers, body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def published(api: Api, items: dict[str, str]) -> None:
    await api.set_items("shop", "prod", items)
    assert (await api.publish("shop", "prod")).status == 201


@dataclass
class Polling:
    """An app whose shop/prod has version 1, its held polls, and a read token."""

    api: Api
    polls: HeldPolls
    token: str


@pytest.fixture
async def polling(api_factory: AppFactory, sqlite_url: str) -> Polling:
    api = await api_factory(sqlite_url)
    await api.app_with_env()
    await published(api, {"a": "1"})
    _, token = await api.token_for("read:shop")
    return Polling(api, api.app[HELD_POLLS], token)


async def test_a_held_poll_gets_the_handlers_answer_and_keeps_its_connection(
    polling: Polling,
) -> None:
    api, polls, token = polling.api, polling.polls, polling.token
    for fmt in ("", "&format=properties"):
        version = int((await api.call("GET", CONFIG)).headers["X-Config-Version"])
        held = await RawHttp.open(api)
        held.send(f"{CONFIG}?after={version}&wait=10{fmt}", token, "X-Request-Id: poll-1")
        await wait_until(lambda: polls.held == 1, "the poll is held", 5)
        sent_before = polls.sent
        await published(api, {"a": str(version + 1)})
        status, headers, body = await held.answer()
        assert status == 200
        assert polls.sent == sent_before + 1
        assert headers["x-request-id"] == "poll-1"
        assert headers["x-config-version"] == str(version + 1)

        # The handler's own answer to the same poll (If-None-Match is never held).
        direct = await RawHttp.open(api)
        direct.send(f"{CONFIG}?after={version}&wait=10{fmt}", token, 'If-None-Match: "other"')
        direct_status, direct_headers, direct_body = await direct.answer()
        await direct.close()
        assert (direct_status, direct_body) == (status, body)
        per_request = {"date", "x-request-id"}
        assert {k: v for k, v in headers.items() if k not in per_request} == {
            k: v for k, v in direct_headers.items() if k not in per_request
        }
        assert set(direct_headers) == set(headers)

        # The same connection serves the next request.
        held.send(CONFIG, token)
        status, headers, _ = await held.answer()
        assert (status, headers["x-config-version"]) == (200, str(version + 1))
        await held.close()
    assert polls.held == 0


async def test_polls_that_cannot_be_held_are_answered_by_their_handler(polling: Polling) -> None:
    api, polls, token = polling.api, polling.polls, polling.token
    closing = await RawHttp.open(api)
    closing.send(f"{CONFIG}?after=1&wait=10", token, "Connection: close")
    old = await RawHttp.open(api)
    old.send(f"{CONFIG}?after=1&wait=10", token, version="1.0")
    await wait_until(lambda: api.app[PUBLISHED].waiting == 2, "both polls wait", 5)
    assert polls.held == 0
    await published(api, {"a": "2"})
    for connection in (closing, old):
        status, headers, _ = await connection.answer()
        assert (status, headers["x-config-version"]) == (200, "2")
        assert await connection.reader.read() == b""  # closed after the answer, as asked
        await connection.close()
    assert polls.sent == 0


async def test_a_held_poll_that_times_out_or_whose_client_left_is_let_go(polling: Polling) -> None:
    api, polls, token = polling.api, polling.polls, polling.token
    timing_out = await RawHttp.open(api)
    timing_out.send(f"{CONFIG}?after=1&wait=1", token)
    leaving = await RawHttp.open(api)
    leaving.send(f"{CONFIG}?after=1&wait=30", token)
    await wait_until(lambda: polls.held == 2, "both polls are held", 5)
    await leaving.close()
    status, _, body = await timing_out.answer()
    assert (status, body) == (304, b"")
    await wait_until(lambda: polls.held == 0, "both polls are let go", 5)
    await published(api, {"a": "2"})
    assert polls.sent == 0
    await timing_out.close()
