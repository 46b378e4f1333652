"""The admin page in real Chromium through the real nginx: sign in, publish, live, sign out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.helpers import (
    CHROMIUM_ARGS,
    DESKTOP,
    EXPECT_TIMEOUT_MS,
    Server,
    chromium_path,
    sign_in,
)
from tests.proxy.conftest import start_proxied
from tests.proxy.helpers import Proxied

pytestmark = pytest.mark.browser
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(autouse=True)
def _fail_on_lingering_tasks() -> None:
    """Replaces the suite's asyncio task check: Playwright's sync API owns this thread's loop."""


@pytest.fixture
def proxied_sqlite(tmp_path: Path, sqlite_url: str) -> Iterator[Proxied]:
    """A server on SQLite behind nginx."""
    yield from start_proxied(tmp_path, sqlite_url)


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Debian Chromium."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_path()), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def test_the_admin_page_works_through_the_tls_proxy(
    browser: Browser, proxied_sqlite: Proxied
) -> None:
    proxied = proxied_sqlite
    proxied.admin_call("POST", "/api/v1/apps", {"name": "shop", "envs": ["prod"]})
    proxied.admin_call("PATCH", "/api/v1/apps/shop/envs/prod/items", {"set": {"a": "1"}})
    proxied.admin_call("POST", "/api/v1/apps/shop/envs/prod/releases", {"comment": "first"})
    proxied.admin_call("PATCH", "/api/v1/apps/shop/envs/prod/items", {"set": {"b": "2"}})
    context = browser.new_context(
        base_url=proxied.proxy.url, viewport=DESKTOP, ignore_https_errors=True
    )
    errors: list[str] = []
    try:
        page: Page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, Server(proxied.server, proxied.server.admin_password))
        expect(page).to_have_url(re.compile(r"^https://"))

        cookies = {c["name"]: c for c in context.cookies()}
        assert set(cookies) == {"__Host-cc_session"}, cookies
        session = cookies["__Host-cc_session"]
        assert session["secure"]
        assert session["httpOnly"]
        assert session["sameSite"] == "Strict"
        assert session["path"] == "/"
        assert session["domain"] == "127.0.0.1"  # host-only: no Domain attribute

        page.goto("/#/apps/shop/prod")
        # The page's WebSocket, with the session cookie, through nginx's upgrade.
        expect(page.locator(".live")).to_have_text("Live")
        expect(page.get_by_text("Unpublished changes")).to_be_visible()
        page.get_by_role("button", name="Publish").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Release comment").fill("through nginx")
        dialog.get_by_role("button", name="Publish").click()
        expect(page.get_by_role("status")).to_contain_text("Published shop/prod v2")
        release = proxied.admin_call("GET", "/api/v1/apps/shop/envs/prod/releases/2")
        assert (release["author"], release["comment"]) == ("admin", "through nginx")

        proxied.admin_call("PATCH", "/api/v1/apps/shop/envs/prod/items", {"set": {"c": "3"}})
        proxied.admin_call("POST", "/api/v1/apps/shop/envs/prod/releases", {"comment": "by api"})
        expect(page.get_by_role("status")).to_contain_text("New release v3")
        expect(page.locator('tr[data-key="c"]')).to_contain_text("3")

        # Signing out clears the __Host- cookie (a deletion without Secure would be ignored).
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert "__Host-cc_session" not in {c["name"] for c in context.cookies()}
        status = proxied.direct(
            "GET", "/api/v1/me", headers={"Authorization": f"Bearer {session['value']}"}
        ).status
        assert status == 401
    finally:
        context.close()
    assert not errors, errors
