"""The admin page for teams, as two people in two browser contexts: users and roles, the own
account, draft edits that appear live, a session that ends elsewhere."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.browser.helpers import PHONE, Problems, Server, shot, sign_in, watch_problems

pytestmark = pytest.mark.browser

# Where the screenshots the task asks to look at are also written.
REVIEW_SHOTS = Path("/tmp/h8-shots")
LIVE_TIMEOUT_MS = 10_000


def review_shot(page: Page, name: str) -> None:
    """A screenshot in artifacts/screenshots and a copy in /tmp/h8-shots for review."""
    path = shot(page, name)
    REVIEW_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, REVIEW_SHOTS / path.name)


def row(page: Page, key: str) -> Locator:
    """The draft table row of an item."""
    return page.locator(f'tr[data-key="{key}"]')


def user_row(page: Page, name: str) -> Locator:
    """The users table row of a user."""
    return page.locator(f'tr[data-user="{name}"]')


def assert_no_horizontal_scroll(page: Page) -> None:
    """The layout fits the viewport width."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
          .filter((el) =>
            el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
          .slice(0, 5)
          .map((el) => el.outerHTML.slice(0, 120))"""
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the viewport: {wide}"


def add_user(server: Server, name: str, password: str, roles: dict[str, str]) -> None:
    """Create a user over the API."""
    server.ok("POST", "/api/v1/users", {"name": name, "password": password, "roles": roles})


def test_admin_creates_a_user_whose_page_shows_only_what_the_role_allows(
    context: BrowserContext, other_context: BrowserContext, server: Server
) -> None:
    server.app("shop", ["prod"], {"db.url": "postgres://db/shop"})
    server.publish("shop", "prod", "first")
    server.ok("PATCH", "/api/v1/apps/shop/envs/prod/items", {"set": {"db.url": "changed"}})
    server.publish("shop", "prod", "second")
    server.app("other", ["dev"])

    admin = context.new_page()
    sign_in(admin, server)
    admin.get_by_role("link", name="Users").click()
    expect(admin.get_by_role("heading", name="Users", level=1)).to_be_visible()
    expect(user_row(admin, "admin")).to_contain_text("admin: everything")

    admin.get_by_role("button", name="New user").click()
    form = admin.get_by_role("form", name="New user")
    form.get_by_label("User name").fill("vera")
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Add role").click()
    form.get_by_label("App", exact=True).select_option("shop")
    form.get_by_label("Role", exact=True).select_option("viewer")
    form.get_by_role("button", name="Create user").click()
    # The API's own message, next to the field it is about.
    expect(form.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Password")).to_have_accessible_description(
        re.compile("10 to 1024 characters|at least 10", re.IGNORECASE)
    )
    review_shot(admin, "h8-users-new-user-error")
    form.get_by_label("Password").fill("vera-password-1")
    form.get_by_role("button", name="Create user").click()
    expect(user_row(admin, "vera")).to_contain_text("shop: viewer")
    expect(admin.get_by_role("status")).to_contain_text("User vera created.")
    assert server.ok("GET", "/api/v1/users/vera")["roles"] == {"shop": "viewer"}
    review_shot(admin, "h8-users")

    vera = other_context.new_page()
    sign_in(vera, server, "vera", "vera-password-1")
    expect(vera.get_by_role("link", name="shop", exact=True)).to_be_visible()
    expect(vera.get_by_role("button", name="New app")).to_have_count(0)
    nav = vera.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Apps"])
    vera.goto("/#/apps/shop/prod")
    expect(row(vera, "db.url")).to_be_visible()
    expect(vera.get_by_text("You may view this draft.")).to_be_visible()
    expect(vera.get_by_role("button", name="Publish")).to_have_count(0)
    expect(vera.get_by_role("button", name="Add item")).to_have_count(0)
    expect(row(vera, "db.url").get_by_role("button")).to_have_count(0)
    vera.goto("/#/apps/shop/prod/history")
    expect(vera.locator("tbody tr")).to_have_count(2)
    expect(vera.get_by_role("button", name=re.compile("Roll back"))).to_have_count(0)
    vera.goto("/#/users")
    expect(vera.get_by_text("Admins only")).to_be_visible()

    # The admin makes vera an editor: after a reload she edits, and still does not publish.
    user_row(admin, "vera").get_by_role("button", name="Roles of vera").click()
    roles = admin.get_by_role("dialog")
    roles.get_by_label("Role", exact=True).select_option("editor")
    roles.get_by_role("button", name="Save roles").click()
    expect(user_row(admin, "vera")).to_contain_text("shop: editor")
    vera.goto("/#/apps/shop/prod")
    vera.reload()
    expect(row(vera, "db.url").get_by_role("button", name="Edit db.url")).to_be_visible()
    expect(vera.get_by_role("button", name="Add item")).to_be_visible()
    expect(vera.get_by_role("button", name="Publish")).to_have_count(0)
    expect(vera.get_by_text("A publisher of this app publishes the draft.")).to_be_visible()

    # Disabled: her session ends and the page says so; enabled again, she signs in.
    user_row(admin, "vera").get_by_role("button", name="Disable vera").click()
    admin.get_by_role("dialog").get_by_role("button", name="Disable").click()
    expect(user_row(admin, "vera")).to_contain_text("disabled")
    expect(vera.get_by_text("Your session ended — sign in again.")).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    user_row(admin, "vera").get_by_role("button", name="Enable vera").click()
    admin.get_by_role("dialog").get_by_role("button", name="Enable").click()
    expect(user_row(admin, "vera")).not_to_contain_text("disabled")

    # Reset password, then delete, each confirmed.
    user_row(admin, "vera").get_by_role("button", name="Reset the password of vera").click()
    reset = admin.get_by_role("dialog")
    reset.get_by_label("New password").fill("vera-password-2")
    reset.get_by_role("button", name="Reset password").click()
    expect(admin.get_by_role("status")).to_contain_text("Password of vera reset.")
    sign_in(other_context.new_page(), server, "vera", "vera-password-2")

    # The last admin cannot be disabled: the API's message shows.
    user_row(admin, "admin").get_by_role("button", name="Disable admin").click()
    admin.get_by_role("dialog").get_by_role("button", name="Disable").click()
    expect(admin.get_by_role("dialog").get_by_role("alert")).to_contain_text(
        re.compile("admin", re.IGNORECASE)
    )
    admin.get_by_role("dialog").get_by_role("button", name="Cancel").click()

    user_row(admin, "vera").get_by_role("button", name="Delete vera").click()
    confirm = admin.get_by_role("dialog")
    confirm.get_by_label("Type vera to confirm").fill("vera")
    confirm.get_by_role("button", name="Delete").click()
    expect(user_row(admin, "vera")).to_have_count(0)
    assert server.call("GET", "/api/v1/users/vera")[0] == 404


def test_an_edit_by_one_user_appears_live_on_the_other_users_page(
    context: BrowserContext, other_context: BrowserContext, server: Server
) -> None:
    server.app("live", ["prod"], {"color": "blue", "size": "m"})
    server.publish("live", "prod", "first")
    add_user(server, "eddie", "eddie-password-1", {"live": "editor"})

    admin = context.new_page()
    sign_in(admin, server)
    admin.goto("/#/apps/live/prod")
    expect(admin.get_by_text("Matches v1")).to_be_visible()
    publish = admin.get_by_role("button", name="Publish")
    expect(publish).to_be_disabled()

    eddie = other_context.new_page()
    sign_in(eddie, server, "eddie", "eddie-password-1")
    eddie.goto("/#/apps/live/prod")
    color = row(eddie, "color")
    color.get_by_role("button", name="Edit color").click()
    color.get_by_label("Value of color").fill("green")
    color.get_by_role("button", name="Save").click()
    expect(color.locator("pre.value")).to_have_text("green")

    # The admin's page follows without a reload: the value, the badge, the Publish button.
    expect(row(admin, "color").locator("pre.value")).to_have_text("green", timeout=LIVE_TIMEOUT_MS)
    expect(row(admin, "color")).to_contain_text("eddie")
    expect(admin.get_by_text("Unpublished changes")).to_be_visible()
    expect(admin.get_by_text("1 changed since v1")).to_be_visible()
    expect(publish).to_be_enabled()

    # A row the admin is editing keeps what they typed while others' edits arrive.
    size = row(admin, "size")
    size.get_by_role("button", name="Edit size").click()
    size.get_by_label("Value of size").fill("typed by admin")
    server.ok("PUT", "/api/v1/apps/live/envs/prod/items/shape", {"value": "round"})
    expect(row(admin, "shape")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(row(eddie, "shape")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(size.get_by_label("Value of size")).to_have_value("typed by admin")

    # The editor's deletion disappears from the admin's page too.
    row(eddie, "shape").get_by_role("button", name="Delete shape").click()
    eddie.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(row(admin, "shape")).to_have_count(0, timeout=LIVE_TIMEOUT_MS)

    # The admin publishes; the editor's page shows the release and "Matches v2".
    size.get_by_role("button", name="Cancel").click()
    publish.click()
    admin.get_by_role("dialog").get_by_role("button", name="Publish").click()
    expect(admin.get_by_text("Matches v2")).to_be_visible()
    expect(eddie.get_by_text("Matches v2")).to_be_visible(timeout=LIVE_TIMEOUT_MS)


def test_a_password_change_ends_the_other_session_which_keeps_what_was_typed(
    context: BrowserContext, other_context: BrowserContext, server: Server
) -> None:
    server.app("keep", ["prod"], {"a": "1"})
    add_user(server, "pat", "pat-password-1", {"keep": "publisher"})

    laptop = other_context.new_page()
    sign_in(laptop, server, "pat", "pat-password-1")
    laptop.goto("/#/apps/keep/prod")
    laptop.get_by_role("button", name="Add item").first.click()
    laptop.get_by_label("Key", exact=True).fill("typed.key")
    laptop.get_by_label("Value", exact=True).fill("typed on the laptop")

    desk = context.new_page()
    sign_in(desk, server, "pat", "pat-password-1")
    desk.get_by_role("link", name="pat", exact=True).click()
    expect(desk.get_by_role("heading", name="Your account", level=1)).to_be_visible()
    sessions = desk.locator("tbody tr")
    expect(sessions).to_have_count(2)
    expect(desk.get_by_text("this session")).to_have_count(1)
    expect(sessions.first).to_contain_text("127.0.0.1")

    desk.get_by_label("Current password").fill("wrong-password")
    desk.get_by_label("New password", exact=True).fill("pat-password-2")
    desk.get_by_label("New password again").fill("pat-password-2")
    desk.get_by_role("button", name="Change password").click()
    expect(desk.get_by_label("Current password")).to_have_attribute("aria-invalid", "true")
    desk.get_by_label("Current password").fill("pat-password-1")
    desk.get_by_role("button", name="Change password").click()
    expect(desk.get_by_role("status")).to_contain_text("Password changed.")
    expect(sessions).to_have_count(1)
    review_shot(desk, "h8-account")

    # The laptop's session ended: a banner says so, and the form keeps what was typed.
    banner = laptop.get_by_text("Your session ended — sign in again.")
    expect(banner).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(laptop.get_by_label("Key", exact=True)).to_have_value("typed.key")
    expect(laptop.get_by_label("Value", exact=True)).to_have_value("typed on the laptop")
    expect(laptop.get_by_role("link", name="Sign in again")).to_have_attribute("target", "_blank")
    review_shot(laptop, "h8-session-ended")

    # Signed in again in another tab, the page carries on and saves what was typed.
    sign_in(other_context.new_page(), server, "pat", "pat-password-2")
    laptop.bring_to_front()
    expect(banner).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
    laptop.get_by_role("button", name="Save").click()
    expect(row(laptop, "typed.key")).to_be_visible()
    assert server.item("keep", "prod", "typed.key")["value"] == "typed on the laptop"

    # Sign out everywhere ends both sessions.
    desk.reload()
    expect(sessions).to_have_count(2)
    desk.get_by_role("button", name="Sign out everywhere").click()
    desk.get_by_role("dialog").get_by_role("button", name="Sign out everywhere").click()
    expect(desk).to_have_url(re.compile(r"/login$"))
    expect(laptop.get_by_text("Your session ended — sign in again.")).to_be_visible(
        timeout=LIVE_TIMEOUT_MS
    )
    assert server.ok("GET", "/api/v1/sessions?user=pat")["sessions"] == []


def test_the_cluster_page_says_which_replica_and_shows_times(
    context: BrowserContext, server: Server
) -> None:
    page = context.new_page()
    sign_in(page, server)
    page.get_by_role("link", name="Cluster").click()
    expect(page.get_by_text("You are on replica")).to_be_visible()
    started = page.locator("time.cluster-time").first
    expect(started).to_have_text(re.compile(r"\d{1,2}:\d{2}:\d{2}"))
    expect(page.locator("code.cluster-id").first).to_be_visible()
    review_shot(page, "h8-cluster")


def test_the_users_and_account_pages_fit_a_phone(
    browser: Browser, server: Server, problems: Problems
) -> None:
    add_user(server, "phone-user", "phone-password-1", {"*": "viewer", "shop": "owner"})
    context = browser.new_context(base_url=server.url, viewport=PHONE, is_mobile=True)
    watch_problems(context, problems)
    try:
        page = context.new_page()
        sign_in(page, server)
        page.goto("/#/users")
        expect(user_row(page, "phone-user")).to_contain_text("every app: viewer")
        page.get_by_role("button", name="New user").click()
        page.get_by_role("button", name="Add role").click()
        assert_no_horizontal_scroll(page)
        review_shot(page, "h8-phone-users")
        page.goto("/#/account")
        expect(page.get_by_text("this session")).to_have_count(1)
        assert_no_horizontal_scroll(page)
        review_shot(page, "h8-phone-account")
    finally:
        context.close()
