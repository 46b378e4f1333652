"""The request log: a line per request, except the common quick reads, counted instead.

A successful GET answered within a second (the config reads services make all day) is not a
line of its own: such requests are counted per (method, path, status, client) and written as
one line per key each second (`… 200 x7532 in 1.0 s, mean 0.4ms, max 3.1ms from …`), so a
busy replica writes a few lines a second instead of thousands, and no request is missing
from the counts. Long polls answered with a 2xx/3xx are counted the same way whatever they
waited (`… 304 x9120 long polls in 1.0 s, mean 29012.4ms, …`): 10,000 clients polling
again after a publish would otherwise be 10,000 lines at once. Everything else (writes,
errors, slow requests, WebSocket sessions) keeps a line of its own with its request id, as
the error envelope's message refers to it.
"""

from __future__ import annotations

import logging
import time

FLUSH_SECONDS = 1.0
"""How often the counted reads are written (the owner of background tasks runs flush())."""
SLOW_MS = 1000.0
"""A read slower than this has a line of its own."""

log = logging.getLogger("server.http")

_Key = tuple[str, str, int, str, bool]


class AccessLog:
    """One replica's request log."""

    def __init__(self) -> None:
        self._counted: dict[_Key, list[float]] = {}  # [count, total ms, max ms]
        self._since = time.monotonic()

    def request(
        self,
        request_id: str,
        method: str,
        path: str,
        status: int,
        ms: float,
        remote: str,
        *,
        held: bool = False,
    ) -> None:
        """Log one request (path already made loggable); held: a long poll."""
        if not log.isEnabledFor(logging.INFO):
            return
        if 200 <= status < 400 and (held or (method in ("GET", "HEAD") and ms < SLOW_MS)):
            key = (method, path, status, remote, held)
            counted = self._counted.get(key)
            if counted is None:
                self._counted[key] = [1.0, ms, ms]
            else:
                counted[0] += 1
                counted[1] += ms
                if ms > counted[2]:
                    counted[2] = ms
            return
        log.info("rid=%s %s %s %d %.1fms from %s", request_id, method, path, status, ms, remote)

    def flush(self) -> None:
        """Write a line per key counted since the last flush."""
        counted, self._counted = self._counted, {}
        now = time.monotonic()
        seconds, self._since = now - self._since, now
        for (method, path, status, remote, held), (count, total, peak) in counted.items():
            log.info(
                "%s %s %d x%d%s in %.1f s, mean %.1fms, max %.1fms from %s",
                method,
                path,
                status,
                count,
                " long polls" if held else "",
                seconds,
                total / count,
                peak,
                remote,
            )
