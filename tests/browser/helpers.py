"""Browser test helpers: the server under test, what pages report, sign-in, screenshots."""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, ViewportSize, expect

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


@dataclass
class Problems:
    """What a page reported that a finished page must never report."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def watch_problems(ctx: BrowserContext, problems: Problems) -> None:
    """Record in problems the uncaught errors, CSP violations and JavaScript dialogs of ctx."""

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

        def on_dialog(dialog: Dialog) -> None:
            problems.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)

    ctx.on("page", watch)


def sign_in(page: Page, server: Server, user: str = "admin", password: str | None = None) -> None:
    """Sign in through the form and wait for the apps page."""
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password or server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Apps", level=1)).to_be_visible()


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
