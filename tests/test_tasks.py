"""The owner of background tasks: failures are logged and survived; close leaves nothing running."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from server.tasks import BackgroundTasks


async def until(condition: Callable[[], object], within: float = 5.0) -> None:
    """Poll until condition() is true (bounded)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached within {within} s")
        await asyncio.sleep(0.005)


async def wait_forever() -> None:
    """Never returns (until cancelled)."""
    await asyncio.Event().wait()


async def test_a_failing_run_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 2:
            raise RuntimeError("the second run fails")

    tasks.every("flaky", 0.001, flaky)
    await until(lambda: len(runs) >= 4)
    assert tasks.names == ["flaky"]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "flaky" in failures[0].getMessage()
    assert failures[0].exc_info is not None
    assert str(failures[0].exc_info[1]) == "the second run fails"
    await tasks.close()


async def test_a_plain_function_runs_periodically_too() -> None:
    tasks = BackgroundTasks()
    beats: list[None] = []
    tasks.every("beat", 0.001, lambda: beats.append(None))
    await until(lambda: len(beats) >= 3)
    await tasks.close()


async def test_close_cancels_and_awaits_every_task() -> None:
    tasks = BackgroundTasks()
    ended: list[str] = []
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits: close waits for it
            ended.append("forever")

    watched = tasks.spawn("forever", forever())
    periodic = tasks.every("tick", 3600.0, lambda: None)
    await started.wait()
    await tasks.close()
    assert ended == ["forever"]
    assert watched.cancelled()
    assert periodic.cancelled()
    assert tasks.names == []


async def test_a_task_that_ends_with_an_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks()

    async def broken() -> None:
        raise RuntimeError("broken at start")

    task = tasks.spawn("broken", broken())
    await asyncio.wait([task])
    await until(lambda: any("broken" in r.getMessage() for r in caplog.records))
    assert tasks.names == []
    await tasks.close()


async def test_names_are_unique_while_running_and_reusable_after() -> None:
    tasks = BackgroundTasks()
    first = tasks.spawn("job", wait_forever())
    with pytest.raises(ValueError, match="job"):
        tasks.spawn("job", asyncio.sleep(0))
    first.cancel()
    await asyncio.wait([first])
    again = tasks.spawn("job", asyncio.sleep(0))
    assert tasks.task("job") is again
    await tasks.close()
