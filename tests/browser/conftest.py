"""Debian's Chromium driven by Playwright against a real server process on loopback."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from devservices import REPO_ROOT, ServerProcess

CHROMIUM_CANDIDATES = (Path("/usr/lib/chromium/chromium"), Path("/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
# Generous bounds for a shared 2-core machine; expectations return as soon as they hold.
EXPECT_TIMEOUT_MS = 10_000

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def chromium_path() -> Path:
    """Debian's Chromium; the test fails (never skips) when it is not installed."""
    for candidate in CHROMIUM_CANDIDATES:
        if candidate.exists():
            return candidate
    pytest.fail(
        "Chromium is not installed: the browser tests need Debian's chromium "
        "(apt-get install -y chromium) at /usr/bin/chromium",
        pytrace=False,
    )


@pytest.fixture(autouse=True)
def _fail_on_lingering_tasks() -> None:
    """Replaces the suite's asyncio task check: these tests are synchronous.

    Playwright's sync API keeps its own event loop marked as running in this thread, so no
    pytest-asyncio runner can start here, and the tests start no asyncio tasks of their own.
    """


@dataclass
class Server:
    """The running server and an admin bearer token for arranging state over HTTP."""

    process: ServerProcess
    password: str

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT."""
        return self.process.url

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        """An API call as admin with a bearer token."""
        all_headers = {"Authorization": f"Bearer {self.process.admin_token()}", **headers}
        return self.process.request(method, path, body, headers=all_headers)

    def ok(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        """An API call that must succeed; returns the body."""
        status, answer = self.call(method, path, body, **headers)
        assert 200 <= status < 300, f"{method} {path}: {status} {answer!r}"
        return answer

    def app(self, name: str, envs: list[str], items: dict[str, str] | None = None) -> None:
        """Create an app, and optionally set items in its first env's draft."""
        self.ok("POST", "/api/v1/apps", {"name": name, "envs": envs})
        if items:
            self.ok("PATCH", f"/api/v1/apps/{name}/envs/{envs[0]}/items", {"set": items})

    def publish(self, app: str, env: str, comment: str = "") -> int:
        """Publish a draft; returns the version."""
        body = self.ok("POST", f"/api/v1/apps/{app}/envs/{env}/releases", {"comment": comment})
        return int(body["version"])

    def item(self, app: str, env: str, key: str) -> dict[str, Any]:
        """One draft item."""
        quoted = urllib.parse.quote(key, safe="")
        return dict(self.ok("GET", f"/api/v1/apps/{app}/envs/{env}/items/{quoted}"))


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


@dataclass
class Problems:
    """What a page reported that a finished page must never report."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def problems() -> Problems:
    """Uncaught script errors, CSP violations and JavaScript dialogs seen by the test's pages."""
    return Problems()


@pytest.fixture
def context(browser: Browser, server: Server, problems: Problems) -> Iterator[BrowserContext]:
    """A fresh context (no cookies) per test at 1280x800."""
    ctx = browser.new_context(base_url=server.url, viewport=DESKTOP)

    def watch(page: Page) -> None:
        page.on("pageerror", lambda exc: problems.errors.append(f"uncaught: {exc}"))
        page.on(
            "console",
            lambda msg: (
                problems.errors.append(f"console: {msg.text}")
                if msg.type == "error"
                and re.search(r"Content Security Policy|Refused to", msg.text)
                else None
            ),
        )

        def on_dialog(dialog: Any) -> None:
            problems.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)

    ctx.on("page", watch)
    try:
        yield ctx
    finally:
        ctx.close()
    assert not problems.errors, problems.errors
    assert not problems.dialogs, problems.dialogs


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A blank page in the test's context."""
    return context.new_page()


def sign_in(page: Page, server: Server, user: str = "admin", password: str | None = None) -> None:
    """Sign in through the form and wait for the apps page."""
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password or server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Apps", level=1)).to_be_visible()


@pytest.fixture
def signed_in(page: Page, server: Server) -> Page:
    """A page signed in as admin, showing the apps list."""
    sign_in(page, server)
    return page


def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot to artifacts/screenshots/NAME.png (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def session_cookie(context: BrowserContext) -> dict[str, Any]:
    """The cc_session cookie of a context."""
    cookies = [c for c in context.cookies() if c["name"] == "cc_session"]
    assert len(cookies) == 1, json.dumps(context.cookies())
    return dict(cookies[0])
