"""The one owner of background tasks: creates and names them, logs failures, cancels, awaits."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Named tasks kept until close(), which cancels and awaits every one of them."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def names(self) -> list[str]:
        """The names of the tasks still running."""
        return [name for name, task in self._tasks.items() if not task.done()]

    def task(self, name: str) -> asyncio.Task[None]:
        """The task of that name (KeyError when there is none)."""
        return self._tasks[name]

    def spawn(self, name: str, job: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a long-lived coroutine under a unique name; if it ever fails, that is logged.

        A name whose task has ended may be used again (a restart).
        """
        previous = self._tasks.get(name)
        if previous is not None and not previous.done():
            job.close()
            raise ValueError(f"a task named {name!r} is running")
        task = asyncio.create_task(job, name=name)
        task.add_done_callback(_log_failure)
        self._tasks[name] = task
        return task

    def every(self, name: str, interval: float, job: Callable[[], object]) -> asyncio.Task[None]:
        """Call job (a function or a coroutine function) every interval seconds until closed.

        A failing call is logged and the next one runs as usual.
        """
        return self.spawn(name, _repeat(name, interval, job))

    async def close(self) -> None:
        """Cancel every task and wait until each has ended."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _repeat(name: str, interval: float, job: Callable[[], object]) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            result = job()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("background task %s failed; it runs again in %.1f s", name, interval)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s ended", task.get_name(), exc_info=task.exception())
