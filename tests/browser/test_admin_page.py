"""The admin page in a real Chromium: every flow an operator uses, and its security."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from devservices import REPO_ROOT, free_port
from server.pages import CONTENT_SECURITY_POLICY
from tests.browser.helpers import (
    PHONE,
    Problems,
    Server,
    session_cookie,
    shot,
    sign_in,
)

pytestmark = pytest.mark.browser

SCRIPT_VALUE = "<script>alert(1)</script>"

# Run in the page: every form control without a <label>, and every button without visible text.
_UNLABELLED = """() => {
  const controls = [...document.querySelectorAll('input:not([type=hidden]), textarea, select')];
  const unlabelled = controls.filter((el) => !el.labels || el.labels.length === 0);
  const buttons = [...document.querySelectorAll('button')].filter(
    (b) => b.offsetParent !== null && b.textContent.trim() === '');
  // Chromium's autofill leaves empty style="" on inputs; only real inline styles count.
  const styled = [...document.querySelectorAll('[style]')].filter(
    (el) => el.getAttribute('style').trim() !== '');
  return [...unlabelled, ...buttons, ...styled].map((el) => el.outerHTML.slice(0, 200));
}"""


def assert_accessible(page: Page) -> None:
    """Every control has a label, every visible button has text, no inline style attributes."""
    offenders = page.evaluate(_UNLABELLED)
    assert offenders == [], offenders


def assert_no_horizontal_scroll(page: Page) -> None:
    """The layout fits the viewport width."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the viewport"


def row(page: Page, key: str) -> Locator:
    """The draft table row of an item."""
    return page.locator(f'tr[data-key="{key}"]')


def dialog(page: Page) -> Locator:
    """The open modal dialog."""
    return page.get_by_role("dialog")


def env_url(app: str, env: str, rest: str = "") -> str:
    """The page address of an env."""
    return f"/#/apps/{app}/{env}{rest}"


def curl(*args: str) -> tuple[int, str]:
    """Run curl (a real HTTP client outside the browser); returns (HTTP status, body)."""
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


# ------------------------------------------------------------------ sign in


def test_sign_in_needs_the_right_password_and_sets_a_strict_cookie(
    page: Page, context: BrowserContext, server: Server
) -> None:
    response = page.goto("/")
    assert response is not None
    expect(page).to_have_url(re.compile(r"/login$"))
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert_accessible(page)
    shot(page, "01-sign-in")

    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    expect(page.get_by_label("User name")).to_have_value("admin")
    assert not [c for c in context.cookies() if c["name"] == "cc_session"]
    shot(page, "01-sign-in-wrong-password")

    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Apps", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    cookie = session_cookie(context)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["expires"] > 0  # Max-Age from the session TTL, not a browser-session cookie
    assert "cc_session" not in page.evaluate("document.cookie")

    # The shell: one external module script, no inline script or style, a CSRF meta tag.
    html = page.request.get("/").text()
    assert re.search(r'<script type="module" src="/static/js/main\.js\?v=\w+"></script>', html)
    assert len(re.findall(r"<script", html)) == 1
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r'<meta name="csrf-token" content="\w{40}">', html)
    static = page.request.get("/static/app.css")
    assert static.status == 200
    assert static.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    shot(page, "01-apps-after-sign-in")


# ------------------------------------------------------------------ apps


def test_create_an_app_filter_add_an_env_and_delete_it(signed_in: Page, server: Server) -> None:
    page = signed_in
    page.get_by_role("button", name="New app").first.click()
    name = page.get_by_label("App name")
    name.fill("Bad Name")
    page.get_by_label("Envs").fill("dev, prod")
    page.get_by_role("button", name="Create app").click()
    # The API's own message, next to the field it is about.
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description(re.compile(r"app name 'Bad Name' is invalid"))
    assert_accessible(page)
    shot(page, "02-new-app-invalid-name")

    name.fill("web-shop")
    page.get_by_label("Description").fill("The storefront")
    page.get_by_role("button", name="Create app").click()
    expect(page.get_by_role("heading", name="web-shop / dev", level=1)).to_be_visible()
    expect(page.get_by_text("This draft has no items yet")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("App web-shop created with 2 envs")
    shot(page, "02-new-app-empty-draft")
    assert server.ok("GET", "/api/v1/apps/web-shop")["envs"] == ["dev", "prod"]

    server.app("billing", ["prod"])
    page.get_by_role("link", name="Apps", exact=True).first.click()
    expect(page.get_by_role("link", name="web-shop", exact=True)).to_be_visible()
    page.get_by_label("Filter apps").fill("store")
    expect(page.get_by_role("link", name="web-shop", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="billing", exact=True)).to_be_hidden()
    page.get_by_label("Filter apps").fill("nothing-like-this")
    expect(page.get_by_text("No app matches “nothing-like-this”")).to_be_visible()
    shot(page, "02-apps-filter-empty")
    page.get_by_role("button", name="Clear filter").click()
    expect(page.get_by_role("link", name="billing", exact=True)).to_be_visible()
    assert_accessible(page)
    shot(page, "02-apps-list")

    page.get_by_role("link", name="Settings of web-shop").click()
    env_name = page.get_by_label("New env name")
    env_name.fill("Staging!")
    page.get_by_role("button", name="Add env").click()
    expect(env_name).to_have_accessible_description(re.compile(r"env name 'Staging!' is invalid"))
    env_name.fill("staging")
    page.get_by_role("button", name="Add env").click()
    expect(page.get_by_role("link", name="staging", exact=True)).to_be_visible()
    assert server.ok("GET", "/api/v1/apps/web-shop")["envs"] == ["dev", "prod", "staging"]
    assert_accessible(page)
    shot(page, "02-app-settings")

    page.get_by_role("button", name="Delete app").click()
    confirm = dialog(page)
    expect(confirm).to_contain_text("cannot be undone")
    delete = confirm.get_by_role("button", name="Delete")
    expect(delete).to_be_disabled()
    confirm.get_by_label("Type web-shop to confirm").fill("web-sho")
    expect(delete).to_be_disabled()
    assert_accessible(page)
    shot(page, "02-delete-app-typed-confirmation", full_page=False)
    confirm.get_by_label("Type web-shop to confirm").fill("web-shop")
    delete.click()
    expect(page.get_by_role("heading", name="Apps", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="web-shop", exact=True)).to_have_count(0)
    assert server.call("GET", "/api/v1/apps/web-shop")[0] == 404


def test_an_owner_turns_anonymous_read_on_with_a_warning_and_off(
    signed_in: Page, server: Server
) -> None:
    page = signed_in
    server.app("legacy", ["prod"])
    page.goto("/#/apps/legacy")
    expect(page.get_by_test_id("anonymous-read-state")).to_have_text("credential required")
    expect(page.get_by_test_id("anonymous-read-warning")).to_have_count(0)
    page.get_by_role("button", name="Allow anonymous read…").click()
    confirm = dialog(page)
    expect(confirm).to_contain_text("secret items are never sent")
    confirm.get_by_role("button", name="Turn on anonymous read").click()
    expect(page.get_by_test_id("anonymous-read-warning")).to_contain_text("without a credential")
    expect(page.get_by_test_id("anonymous-read-state")).to_have_text("anonymous read on")
    assert server.ok("GET", "/api/v1/apps/legacy")["anonymous_read"] is True
    assert_accessible(page)
    shot(page, "02-app-anonymous-read-on")
    page.get_by_role("link", name="Apps", exact=True).first.click()
    expect(page.get_by_text("anonymous read", exact=True)).to_be_visible()

    page.goto("/#/apps/legacy")
    page.get_by_role("button", name="Require a credential").click()
    dialog(page).get_by_role("button", name="Require a credential").click()
    expect(page.get_by_test_id("anonymous-read-state")).to_have_text("credential required")
    expect(page.get_by_test_id("anonymous-read-warning")).to_have_count(0)
    assert server.ok("GET", "/api/v1/apps/legacy")["anonymous_read"] is False


# ------------------------------------------------------------------ draft


def test_add_edit_and_delete_items_with_validation_next_to_the_field(
    signed_in: Page, server: Server
) -> None:
    page = signed_in
    server.app("items", ["prod"])
    page.goto(env_url("items", "prod"))
    expect(page.get_by_text("This draft has no items yet")).to_be_visible()
    page.get_by_role("button", name="Add item").first.click()

    key = page.get_by_label("Key", exact=True)
    key.fill("bad key")
    page.get_by_label("Value", exact=True).fill("x")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(key).to_have_accessible_description(re.compile(r"key 'bad key' is invalid"))
    assert_accessible(page)
    shot(page, "03-add-item-invalid-key")

    key.fill("db.url")
    page.get_by_label("Value", exact=True).fill("postgres://db-1:5432/shop")
    page.get_by_label("Comment", exact=True).fill("primary")
    page.get_by_role("button", name="Save", exact=True).click()
    db = row(page, "db.url")
    expect(db).to_contain_text("postgres://db-1:5432/shop")
    expect(db).to_contain_text("primary")
    expect(db).to_contain_text("admin")
    expect(db).to_contain_text("new")
    assert server.item("items", "prod", "db.url")["value"] == "postgres://db-1:5432/shop"

    db.get_by_role("button", name="Edit").click()
    value = db.get_by_label("Value of db.url")
    value.fill("y" * 70_000)
    db.get_by_role("button", name="Save").click()
    expect(value).to_have_accessible_description(re.compile(r"the limit is 65536"))
    assert_accessible(page)
    shot(page, "03-edit-item-too-large")

    value.fill("postgres://db-2:5432/shop")
    db.get_by_label("Comment on db.url").fill("moved to db-2")
    db.get_by_role("button", name="Save").click()
    expect(db.locator("pre.value")).to_have_text("postgres://db-2:5432/shop")
    expect(db).to_contain_text("moved to db-2")
    item = server.item("items", "prod", "db.url")
    assert (item["value"], item["comment"]) == ("postgres://db-2:5432/shop", "moved to db-2")

    server.ok("PATCH", "/api/v1/apps/items/envs/prod/items", {"set": {"cache.ttl": "60"}})
    page.reload()
    cache = row(page, "cache.ttl")
    expect(cache).to_be_visible()
    shot(page, "03-items-table")
    cache.get_by_role("button", name="Delete").click()
    confirm = dialog(page)
    expect(confirm).to_contain_text("Clients keep the published value until you publish")
    confirm.get_by_role("button", name="Delete").click()
    expect(cache).to_have_count(0)
    expect(row(page, "db.url")).to_be_visible()
    assert server.call("GET", "/api/v1/apps/items/envs/prod/items/cache.ttl")[0] == 404


def test_draft_badge_diff_and_publish_with_a_comment(signed_in: Page, server: Server) -> None:
    page = signed_in
    server.app("pub", ["prod"], {"a": "1", "b": "2", "c": "3"})
    server.publish("pub", "prod", "first")
    server.ok("PATCH", "/api/v1/apps/pub/envs/prod/items", {"set": {"b": "20", "d": "4"}})
    server.ok("PATCH", "/api/v1/apps/pub/envs/prod/items", {"delete": ["c"]})

    page.goto(env_url("pub", "prod"))
    expect(page.get_by_text("Unpublished changes")).to_be_visible()
    expect(page.get_by_text("1 added · 1 changed · 1 removed since v1")).to_be_visible()
    expect(row(page, "d")).to_contain_text("new")
    expect(row(page, "b")).to_contain_text("changed")
    expect(page.get_by_text("Deleted from the draft, still published in v1")).to_be_visible()
    shot(page, "04-draft-badge")

    page.get_by_role("button", name="Publish").click()
    publish = dialog(page)
    expect(publish).to_contain_text("Publish pub/prod")
    added = publish.locator(".diff-added")
    expect(added).to_contain_text("Added (1)")
    expect(added.locator(".diff-key")).to_have_text(["d"])
    expect(added.locator("pre")).to_have_text(["4"])
    changed = publish.locator(".diff-changed")
    expect(changed.locator(".diff-key")).to_have_text(["b"])
    expect(changed.locator("pre")).to_have_text(["2", "20"])
    removed = publish.locator(".diff-removed")
    expect(removed.locator(".diff-key")).to_have_text(["c"])
    expect(removed.locator("pre")).to_have_text(["3"])
    publish.get_by_label("Release comment").fill("raise b, add d")
    assert_accessible(page)
    shot(page, "04-publish-dialog", full_page=False)
    publish.get_by_role("button", name="Publish").click()

    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_text("Matches v2")).to_be_visible()
    expect(page.get_by_role("button", name="Publish")).to_be_disabled()
    expect(page.get_by_role("status")).to_contain_text("Published pub/prod v2")
    shot(page, "04-after-publish")
    release = server.ok("GET", "/api/v1/apps/pub/envs/prod/releases/2")
    assert release["comment"] == "raise b, add d"
    assert release["author"] == "admin"
    assert release["items"] == {"a": "1", "b": "20", "d": "4"}


# ------------------------------------------------------------------ history


def test_history_view_compare_and_roll_back(signed_in: Page, server: Server) -> None:
    page = signed_in
    server.app("hist", ["prod"], {"k": "one"})
    server.publish("hist", "prod", "first")
    server.ok("PATCH", "/api/v1/apps/hist/envs/prod/items", {"set": {"k": "two", "x": "1"}})
    server.publish("hist", "prod", "second")
    server.ok("PATCH", "/api/v1/apps/hist/envs/prod/items", {"set": {"k": "three"}})
    server.publish("hist", "prod", "third")

    page.goto(env_url("hist", "prod", "/history"))
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("v3")
    expect(rows.nth(0)).to_contain_text("latest")
    expect(rows.nth(0)).to_contain_text("third")
    expect(rows.nth(0)).to_contain_text("admin")
    expect(rows.nth(2)).to_contain_text("first")
    assert_accessible(page)
    shot(page, "05-history")

    rows.nth(2).get_by_role("link", name="View").click()
    expect(page.get_by_role("heading", name="Release v1")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("one")
    expect(page.get_by_text("first", exact=True)).to_be_visible()
    shot(page, "05-release-v1")

    page.get_by_role("link", name="All releases").click()
    page.get_by_label("From", exact=True).select_option("1")
    page.get_by_label("To", exact=True).select_option("3")
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("heading", name="Compare v1 → v3")).to_be_visible()
    expect(page.locator(".diff-changed .diff-key")).to_have_text(["k"])
    expect(page.locator(".diff-changed pre")).to_have_text(["one", "three"])
    expect(page.locator(".diff-added .diff-key")).to_have_text(["x"])
    expect(page.locator(".diff-removed")).to_have_count(0)
    assert_accessible(page)
    shot(page, "05-compare")
    # The comparison has the same bar, set to what it shows; it opens the order chosen.
    expect(page.get_by_label("From", exact=True)).to_have_value("1")
    expect(page.get_by_label("To", exact=True)).to_have_value("3")
    page.get_by_label("From", exact=True).select_option("3")
    page.get_by_label("To", exact=True).select_option("1")
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_role("heading", name="Compare v3 → v1")).to_be_visible()
    expect(page.locator(".diff-changed pre")).to_have_text(["three", "one"])
    expect(page.locator(".diff-removed .diff-key")).to_have_text(["x"])
    expect(page.locator(".diff-added")).to_have_count(0)

    page.get_by_role("link", name="History").click()
    page.locator('tr[data-version="1"]').get_by_role("button", name="Roll back").click()
    confirm = dialog(page)
    expect(confirm).to_contain_text("Roll back hist/prod to v1?")
    expect(confirm).to_contain_text("publishes v4 with the items of v1")
    expect(confirm.locator(".diff-changed pre")).to_have_text(["three", "one"])
    expect(confirm.locator(".diff-removed .diff-key")).to_have_text(["x"])
    confirm.get_by_label("Comment").fill("back to the start")
    assert_accessible(page)
    shot(page, "05-roll-back-dialog", full_page=False)
    confirm.get_by_role("button", name="Roll back").click()

    expect(page.get_by_role("dialog")).to_have_count(0)
    top = page.locator("tbody tr").first
    expect(top).to_contain_text("v4")
    expect(top).to_contain_text("rollback of v1")
    expect(top).to_contain_text("back to the start")
    # The page made that release itself: a success message, no "published elsewhere" notice.
    expect(page.get_by_role("status")).to_contain_text("Rolled back hist/prod to v1 as v4")
    expect(page.get_by_role("status")).not_to_contain_text("New release")
    shot(page, "05-after-roll-back")
    release = server.ok("GET", "/api/v1/apps/hist/envs/prod/releases/4")
    assert release["items"] == {"k": "one"}
    assert release["rollback_of"] == 1
    draft = server.ok("GET", "/api/v1/apps/hist/envs/prod/items")["items"]
    assert {i["key"]: i["value"] for i in draft} == {"k": "one"}


def test_older_releases_and_audit_entries_load_a_page_at_a_time(
    signed_in: Page, server: Server
) -> None:
    page = signed_in
    server.app("paged", ["prod"])
    for n in range(1, 52):
        server.ok("PUT", "/api/v1/apps/paged/envs/prod/items/n", {"value": str(n)})
        server.publish("paged", "prod", f"release {n}")

    page.goto(env_url("paged", "prod", "/history"))
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("v51")
    more = page.get_by_role("button", name="Load older releases")
    more.click()
    expect(rows).to_have_count(51)
    expect(rows.last).to_contain_text("release 1")
    expect(more).to_have_count(0)

    # One app.create, 51 item writes and 51 publishes: a page of 100, then 3 more.
    page.goto("/#/audit?app=paged")
    expect(rows).to_have_count(100)
    more = page.get_by_role("button", name="Load older entries")
    more.click()
    expect(rows).to_have_count(103)
    expect(rows.last).to_contain_text("app.create")
    expect(more).to_have_count(0)


# ------------------------------------------------------------------ live


def test_a_publish_by_curl_appears_on_the_open_page(signed_in: Page, server: Server) -> None:
    page = signed_in
    server.app("live", ["prod"], {"a": "1"})
    server.publish("live", "prod", "first")
    token = server.ok("POST", "/api/v1/tokens", {"name": "ci", "scopes": ["write:live"]})["token"]

    page.goto(env_url("live", "prod"))
    expect(page.get_by_text("Matches v1")).to_be_visible()
    expect(page.locator(".live")).to_have_text("Live")

    base = f"{server.url}/api/v1/apps/live/envs/prod"
    auth = f"Authorization: Bearer {token}"
    json_type = "Content-Type: application/json"
    status, body = curl(
        "-X", "PUT", "-H", auth, "-H", json_type, "-d", '{"value":"from curl"}',
        f"{base}/items/added.by.curl",
    )  # fmt: skip
    assert status == 201, body
    status, body = curl(
        "-X", "POST", "-H", auth, "-H", json_type, "-d", '{"comment":"shipped by curl"}',
        f"{base}/releases",
    )  # fmt: skip
    assert status == 201, body

    notice = page.get_by_role("status")
    expect(notice).to_contain_text("New release v2")
    expect(notice).to_contain_text("token:ci published live/prod as v2")
    expect(notice).to_contain_text("shipped by curl")
    expect(row(page, "added.by.curl")).to_contain_text("from curl")
    expect(page.get_by_text("Matches v2")).to_be_visible()
    shot(page, "06-live-publish-notice", full_page=False)

    page.get_by_role("link", name="History").click()
    expect(page.locator("tbody tr").first).to_contain_text("v2")
    status, _ = curl(
        "-X", "POST", "-H", auth, "-H", json_type, "-d", '{"comment":"undo"}',
        f"{base}/releases/1/rollback",
    )  # fmt: skip
    assert status == 201
    expect(page.locator("tbody tr").first).to_contain_text("v3")
    expect(page.get_by_role("status")).to_contain_text("rolled back live/prod to v1 as v3")


def test_saving_an_item_changed_meanwhile_shows_a_conflict(signed_in: Page, server: Server) -> None:
    page = signed_in
    server.app("race", ["prod"], {"db.url": "original"})
    page.goto(env_url("race", "prod"))
    db = row(page, "db.url")
    db.get_by_role("button", name="Edit").click()
    db.get_by_label("Value of db.url").fill("from the page")

    server.ok("PUT", "/api/v1/apps/race/envs/prod/items/db.url", {"value": "from someone else"})
    db.get_by_role("button", name="Save").click()

    conflict = db.get_by_role("alert")
    expect(conflict).to_contain_text("Conflict: not saved.")
    expect(conflict).to_contain_text("from someone else")
    assert server.item("race", "prod", "db.url")["value"] == "from someone else"
    assert_accessible(page)
    shot(page, "07-conflict")

    conflict.get_by_role("button", name="Overwrite with mine").click()
    expect(db.locator("pre.value")).to_have_text("from the page")
    assert server.item("race", "prod", "db.url")["value"] == "from the page"

    # Deleting an item someone changes while the dialog asks is refused the same way. (Changed
    # before the dialog opens, the page would show their value within a poll and delete that.)
    db.get_by_role("button", name="Delete").click()
    confirm = dialog(page)
    expect(confirm).to_contain_text("from the page")
    server.ok("PUT", "/api/v1/apps/race/envs/prod/items/db.url", {"value": "changed again"})
    confirm.get_by_role("button", name="Delete").click()
    expect(confirm.get_by_role("alert")).to_contain_text("changed db.url meanwhile")
    confirm.get_by_role("button", name="Cancel").click()
    expect(db.locator("pre.value")).to_have_text("changed again")
    assert server.item("race", "prod", "db.url")["value"] == "changed again"


# ------------------------------------------------------------------ security


def test_a_script_tag_value_is_shown_as_text(
    signed_in: Page, server: Server, problems: Problems
) -> None:
    page = signed_in
    server.ok(
        "POST",
        "/api/v1/apps",
        {"name": "xss", "description": '<img src=x onerror="alert(2)">', "envs": ["prod"]},
    )
    page.goto(env_url("xss", "prod"))
    page.get_by_role("button", name="Add item").first.click()
    page.get_by_label("Key", exact=True).fill("html")
    page.get_by_label("Value", exact=True).fill(SCRIPT_VALUE)
    page.get_by_label("Comment", exact=True).fill("<b>not bold</b>")
    page.get_by_role("button", name="Save", exact=True).click()

    html = row(page, "html")
    expect(html.locator("pre.value")).to_have_text(SCRIPT_VALUE)
    expect(html).to_contain_text("<b>not bold</b>")
    assert page.locator("#main script, #main img, #main b").count() == 0
    assert server.item("xss", "prod", "html")["value"] == SCRIPT_VALUE

    page.get_by_role("button", name="Publish").click()
    expect(dialog(page).locator(".diff-added pre")).to_have_text([SCRIPT_VALUE])
    shot(page, "08-script-value-in-publish-dialog", full_page=False)
    dialog(page).get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Matches v1")).to_be_visible()

    page.goto("/#/apps")
    expect(page.get_by_text('<img src=x onerror="alert(2)">')).to_be_visible()
    page.goto(env_url("xss", "prod", "/releases/1"))
    expect(page.locator("pre.value")).to_have_text([SCRIPT_VALUE])
    shot(page, "08-script-value-as-text")
    assert page.locator("#main script, #main img").count() == 0
    assert problems.dialogs == []


def test_cross_site_form_posts_and_fetches_without_the_csrf_token_are_refused(
    signed_in: Page, context: BrowserContext, server: Server
) -> None:
    page = signed_in
    # A JSON body smuggled in a text/plain form: {"name":"evil-N","pad":"="}
    evil_form = """<!doctype html><title>evil</title>
      <form method="post" action="{action}" enctype="text/plain">
        <input name='{{"name":"evil-{n}","pad":"' value='"}}'>
      </form>
      <form method="post" action="{logout}"><input name="x" value="1"></form>
      <script>document.forms[{which}].submit()</script>"""

    def serve_evil(origin: str, n: int, which: int) -> None:
        html = evil_form.format(
            action=f"{server.url}/api/v1/apps", logout=f"{server.url}/logout", n=n, which=which
        )
        context.route(
            f"{origin}/**",
            lambda route: route.fulfill(status=200, content_type="text/html", body=html),
        )

    cross_site = "http://evil.example"
    same_site = f"http://127.0.0.1:{free_port()}"  # another origin on the same host
    serve_evil(cross_site, 1, 0)
    serve_evil(same_site, 2, 0)

    for origin, refused in ((cross_site, 401), (same_site, 403)):
        with page.expect_response(
            lambda r: r.url.endswith("/api/v1/apps") and r.request.method == "POST"
        ) as answer:
            page.goto(f"{origin}/attack")
        # Cross-site: SameSite=Strict keeps the cookie home. Same site: the cookie goes,
        # but the form cannot send the X-CSRF-Token header.
        assert answer.value.status == refused, answer.value.text()
    assert server.call("GET", "/api/v1/apps/evil-1")[0] == 404
    assert server.call("GET", "/api/v1/apps/evil-2")[0] == 404

    # A sign-out form from another origin does not end the session.
    context.unroute(f"{same_site}/**")
    serve_evil(same_site, 3, 1)
    with page.expect_response(lambda r: r.url.endswith("/logout")) as answer:
        page.goto(f"{same_site}/logout-attack")
    assert answer.value.status == 403
    shot(page, "09-cross-site-sign-out-refused")

    # Our own page: a fetch without the token, or with a wrong one, is refused.
    page.goto("/#/apps")
    expect(page.get_by_role("heading", name="Apps", level=1)).to_be_visible()
    statuses = page.evaluate(
        """async () => {
          const token = document.querySelector('meta[name="csrf-token"]').content;
          const post = (headers) => fetch('/api/v1/apps', {method: 'POST',
            headers: {'Content-Type': 'application/json', ...headers},
            body: JSON.stringify({name: 'csrf-' + Object.keys(headers).length +
              (headers['X-CSRF-Token'] === token ? '-ok' : '')})}).then((r) => r.status);
          return [await post({}), await post({'X-CSRF-Token': 'f'.repeat(40)}),
                  await post({'X-CSRF-Token': token})];
        }"""
    )
    assert statuses == [403, 403, 201]
    assert server.call("GET", "/api/v1/apps/csrf-1-ok")[0] == 200
    assert server.call("GET", "/api/v1/apps/csrf-0")[0] == 404
    assert server.call("GET", "/api/v1/apps/csrf-1")[0] == 404

    # A same-origin form post without the token is refused too.
    without_token = page.request.post("/logout", form={"csrf_token": "wrong"})
    assert without_token.status == 403
    page.reload()
    expect(page.get_by_role("heading", name="Apps", level=1)).to_be_visible()


def test_sign_out_ends_the_session(
    signed_in: Page, context: BrowserContext, server: Server
) -> None:
    page = signed_in
    secret = session_cookie(context)["value"]
    as_session = {"Authorization": f"Bearer {secret}"}
    assert server.process.request("GET", "/api/v1/me", headers=as_session)[0] == 200

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "cc_session"]
    shot(page, "10-signed-out")

    # The session is revoked on the server, not just forgotten by the browser.
    status, body = server.process.request("GET", "/api/v1/me", headers=as_session)
    assert status == 401, body
    context.add_cookies([{"name": "cc_session", "value": secret, "url": server.url}])
    page.goto("/#/apps")
    expect(page).to_have_url(re.compile(r"/login(#/apps)?$"))
    assert page.request.get("/api/v1/apps").status == 401


# ------------------------------------------------------------------ admin pages


def test_tokens_audit_and_cluster(signed_in: Page, server: Server) -> None:
    page = signed_in
    server.app("shop", ["prod"])
    page.get_by_role("link", name="Tokens").click()
    expect(page.get_by_role("heading", name="Tokens", level=1)).to_be_visible()

    page.get_by_label("Token name").fill("deploy-bot")
    scopes = page.get_by_label("Scopes")
    scopes.fill("read:shop write:Shop")
    page.get_by_role("button", name="Create token").click()
    expect(scopes).to_have_accessible_description(re.compile(r"scope 'write:Shop' is invalid"))
    scopes.fill("read:shop write:shop")
    page.get_by_role("button", name="Create token").click()

    secret_field = page.get_by_label("Secret of deploy-bot")
    expect(secret_field).to_have_value(re.compile(r"^cc_"))
    secret = secret_field.input_value()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied.")).to_be_visible()
    expect(page.get_by_text("it is shown once")).to_be_visible()
    assert_accessible(page)
    shot(page, "11-token-created")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert server.process.request("GET", "/api/v1/apps/shop", headers=bearer)[0] == 200

    page.get_by_role("button", name="Done").click()
    expect(secret_field).to_have_count(0)
    page.reload()
    token_row = page.locator("tbody tr", has_text="deploy-bot")
    expect(token_row).to_contain_text("read:shop")
    expect(token_row).to_contain_text("active")
    assert secret not in page.content()
    token_row.get_by_role("button", name="Revoke").click()
    dialog(page).get_by_role("button", name="Revoke").click()
    expect(token_row).to_contain_text("revoked")
    assert server.process.request("GET", "/api/v1/apps/shop", headers=bearer)[0] == 401
    shot(page, "11-tokens")

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    expect(page.locator("tbody tr").first).to_contain_text("token.revoke")
    expect(page.locator("tbody")).to_contain_text("created token deploy-bot")
    page.get_by_label("App").fill("shop")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("app.create")
    assert_accessible(page)
    shot(page, "11-audit")

    page.get_by_role("link", name="Cluster").click()
    expect(page.get_by_text("Standalone mode.")).to_be_visible()
    expect(page.get_by_text("No etcd in standalone mode")).to_be_visible()
    replicas = page.locator("section", has=page.get_by_role("heading", name="Replicas (1)"))
    expect(replicas.locator("tbody tr")).to_have_count(1)
    assert_accessible(page)
    shot(page, "11-cluster")


def test_an_operator_without_admin_sees_only_their_apps(
    page: Page, server: Server, tmp_path: Path
) -> None:
    server.app("team-a", ["prod"], {"k": "v"})
    server.app("team-b", ["prod"])
    result = subprocess.run(
        [sys.executable, "-m", "server", "user", "add", "ops", "--role", "team-a=publisher"],
        input="ops-password-1\n",
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "CONFIGCENTER_STORE_URL": server.process.store_url},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    sign_in(page, server, "ops", "ops-password-1")
    expect(page.get_by_role("link", name="team-a", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="team-b", exact=True)).to_have_count(0)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Apps"])
    shot(page, "13-operator-apps")

    page.goto("/#/apps/team-a")
    expect(page.get_by_role("heading", name="Envs (1)")).to_be_visible()
    expect(page.get_by_role("button", name="Delete app")).to_have_count(0)
    # A publisher sees whether clients need a credential; only an owner changes it.
    expect(page.get_by_test_id("anonymous-read-state")).to_have_text("credential required")
    expect(page.get_by_role("button", name="Allow anonymous read…")).to_have_count(0)
    page.goto(env_url("team-a", "prod"))
    expect(row(page, "k")).to_be_visible()
    page.goto("/#/audit")
    expect(page.get_by_text("Admins only")).to_be_visible()
    page.goto(env_url("team-b", "prod"))
    expect(page.get_by_role("alert")).to_contain_text("ops needs role viewer or read:APP")
    shot(page, "13-operator-forbidden")


def test_the_page_fits_a_phone(browser: Browser, server: Server, problems: Problems) -> None:
    items = {"db.url": "postgres://db:5432/phone", "a.long.key": "x" * 200}
    server.app("phone", ["dev", "prod"], items)
    server.publish("phone", "dev", "first")
    server.ok("PATCH", "/api/v1/apps/phone/envs/dev/items", {"set": {"feature.flag": "on"}})
    context = browser.new_context(base_url=server.url, viewport=PHONE, is_mobile=True)
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.errors.append(str(exc)))
        sign_in(page, server)
        assert_no_horizontal_scroll(page)
        shot(page, "12-phone-apps")
        page.goto(env_url("phone", "dev"))
        expect(page.get_by_text("Unpublished changes")).to_be_visible()
        row(page, "db.url").get_by_role("button", name="Edit").click()
        assert_no_horizontal_scroll(page)
        assert_accessible(page)
        shot(page, "12-phone-draft")
        page.get_by_role("button", name="Publish").click()
        expect(dialog(page)).to_contain_text("Added (1)")
        shot(page, "12-phone-publish", full_page=False)
        dialog(page).get_by_role("button", name="Cancel").click()
        page.goto(env_url("phone", "dev", "/history"))
        expect(page.locator("tbody tr")).to_have_count(1)
        assert_no_horizontal_scroll(page)
        shot(page, "12-phone-history")
    finally:
        context.close()
    assert problems.errors == []
