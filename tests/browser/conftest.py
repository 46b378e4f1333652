"""Debian's Chromium driven by Playwright against a real server process on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from devservices import ServerProcess
from tests.browser.helpers import (
    CHROMIUM_ARGS,
    DESKTOP,
    EXPECT_TIMEOUT_MS,
    Problems,
    Server,
    chromium_path,
    sign_in,
    watch_problems,
)

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(autouse=True)
def _fail_on_lingering_tasks() -> None:
    """Replaces the suite's asyncio task check: these tests are synchronous.

    Playwright's sync API keeps its own event loop marked as running in this thread, so no
    pytest-asyncio runner can start here, and the tests start no asyncio tasks of their own.
    """


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server process per module, on SQLite."""
    base = tmp_path_factory.mktemp("browser-server")
    process = ServerProcess(base, f"sqlite:///{base}/store.db")
    process.start()
    try:
        yield Server(process, process.admin_password)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per module."""
    executable = chromium_path()
    manager = sync_playwright()
    playwright: Playwright = manager.start()
    try:
        launched = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture
def problems() -> Problems:
    """Uncaught script errors, CSP violations and JavaScript dialogs seen by the test's pages."""
    return Problems()


@pytest.fixture
def context(browser: Browser, server: Server, problems: Problems) -> Iterator[BrowserContext]:
    """A fresh context (no cookies) per test at 1280x800."""
    ctx = browser.new_context(base_url=server.url, viewport=DESKTOP)
    watch_problems(ctx, problems)
    try:
        yield ctx
    finally:
        ctx.close()
    assert not problems.errors, problems.errors
    assert not problems.dialogs, problems.dialogs


@pytest.fixture
def other_context(browser: Browser, server: Server, problems: Problems) -> Iterator[BrowserContext]:
    """A second fresh context: another user (or the same one) in another browser."""
    ctx = browser.new_context(base_url=server.url, viewport=DESKTOP)
    watch_problems(ctx, problems)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A blank page in the test's context."""
    return context.new_page()


@pytest.fixture
def signed_in(page: Page, server: Server) -> Page:
    """A page signed in as admin, showing the apps list."""
    sign_in(page, server)
    return page
