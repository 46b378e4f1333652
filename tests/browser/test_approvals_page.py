"""The admin page for approvals, as two people in two browser contexts: an owner turns
approvals on, an editor requests a release, a publisher sees it arrive and approves it; reject,
withdraw, a decision that came too late, emergency releases, and what a viewer sees."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser.helpers import DESKTOP, PHONE, Server, shot, sign_in

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 10_000
PASSWORD = "approvals-password-1"


@pytest.fixture
def other_page(other_context: BrowserContext) -> Page:
    """A blank page in the second context: another user."""
    return other_context.new_page()


def add_user(server: Server, name: str, roles: dict[str, str]) -> None:
    """Create a user with roles over the API."""
    server.ok("POST", "/api/v1/users", {"name": name, "password": PASSWORD, "roles": roles})


def request_ids(server: Server, app: str, env: str) -> list[int]:
    """The ids of an env's release requests, newest first."""
    answer = server.ok("GET", f"/api/v1/apps/{app}/envs/{env}/release-requests")
    return [int(r["id"]) for r in answer["requests"]]


def switch_user(page: Page, server: Server, name: str) -> None:
    """Sign out of the page, then sign in as another user."""
    page.get_by_role("button", name="Sign out", exact=True).click()
    sign_in(page, server, name, PASSWORD)


def section_tab(page: Page, name: str | re.Pattern[str]) -> Locator:
    """A tab of the env's sections."""
    return page.get_by_role("navigation", name="Sections").get_by_role("link", name=name)


def request_card(page: Page, request_id: int) -> Locator:
    """A pending request."""
    return page.get_by_role("article", name=re.compile(rf"^Request #{request_id}\b"))


def decided_row(page: Page, request_id: int) -> Locator:
    """A decided request's row."""
    return page.locator(f'tr[data-request="{request_id}"]')


def edit_item(page: Page, key: str, value: str) -> None:
    """Edit a draft item in its row."""
    row = page.locator(f'tr[data-key="{key}"]')
    row.get_by_role("button", name=f"Edit {key}").click()
    row.get_by_label(f"Value of {key}").fill(value)
    row.get_by_role("button", name="Save").click()
    expect(row.locator("pre.value")).to_have_text(value)


def assert_fits(page: Page) -> None:
    """The layout fits the viewport width."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the viewport"


def test_an_editors_release_request_is_approved_by_a_publisher_who_sees_it_arrive_live(
    page: Page, other_page: Page, server: Server
) -> None:
    server.app("shop", ["prod", "dev"], {"color": "blue", "size": "m"})
    server.ok("PUT", "/api/v1/apps/shop/envs/prod/items/token", {"value": "s1", "secret": True})
    server.publish("shop", "prod", "first")
    add_user(server, "olga", {"shop": "owner"})
    add_user(server, "eddie", {"shop": "editor"})
    add_user(server, "pat", {"shop": "publisher"})

    # The owner turns approvals on in the env's settings, and deletes an env but not the last.
    boss = other_page
    sign_in(boss, server, "olga", PASSWORD)
    boss.goto("/#/apps/shop/prod")
    section_tab(boss, "Settings").click()
    toggle = boss.get_by_label("Releases need an approved request")
    expect(toggle).not_to_be_checked()
    toggle.check()
    expect(boss.get_by_role("status")).to_contain_text("Approvals are on for shop/prod")
    expect(toggle).to_be_checked()
    assert server.ok("GET", "/api/v1/apps/shop/envs/prod")["approval_required"] is True
    expect(section_tab(boss, re.compile("^Requests"))).to_be_visible()
    shot(boss, "pa-env-settings")
    boss.goto("/#/apps/shop/dev/settings")
    boss.get_by_role("button", name="Delete env").click()
    confirm = boss.get_by_role("dialog")
    confirm.get_by_label("Type dev to confirm").fill("dev")
    confirm.get_by_role("button", name="Delete env").click()
    expect(boss.get_by_role("status")).to_contain_text("Env shop/dev deleted.")
    assert server.ok("GET", "/api/v1/apps/shop")["envs"] == ["prod"]
    boss.goto("/#/apps/shop/prod/settings")
    boss.get_by_role("button", name="Delete env").click()
    confirm.get_by_label("Type prod to confirm").fill("prod")
    confirm.get_by_role("button", name="Delete env").click()
    expect(confirm.get_by_role("alert")).to_contain_text("prod is the only env of shop")
    confirm.get_by_role("button", name="Cancel").click()
    assert server.ok("GET", "/api/v1/apps/shop")["envs"] == ["prod"]

    # The publisher opens the requests: none yet.
    publisher = boss
    switch_user(publisher, server, "pat")
    publisher.goto("/#/apps/shop/prod/requests")
    expect(publisher.get_by_text("No pending requests")).to_be_visible()

    # The editor edits the draft; the publish action is a release request (no Settings).
    editor = page
    sign_in(editor, server, "eddie", PASSWORD)
    editor.goto("/#/apps/shop/prod")
    edit_item(editor, "color", "green")
    server.ok("PUT", "/api/v1/apps/shop/envs/prod/items/token", {"value": "s2"})
    expect(section_tab(editor, "Settings")).to_have_count(0)
    expect(editor.get_by_role("button", name="Publish", exact=True)).to_have_count(0)
    expect(editor.get_by_role("button", name="Emergency publish")).to_have_count(0)
    editor.get_by_role("button", name="Request release").click()
    ask = editor.get_by_role("dialog")
    expect(ask).to_contain_text("Request a release of shop/prod")
    expect(ask.locator(".diff-changed .diff-key")).to_have_text(["color", "token"])
    # A secret the editor may not read shows as hidden, never as "null".
    expect(ask.locator(".diff-changed .secret-hidden")).to_have_text(["hidden", "hidden"])
    expect(ask).not_to_contain_text("null")
    ask.get_by_role("button", name="Request release").click()
    expect(ask.get_by_label("Why (the approver reads this)")).to_have_attribute(
        "aria-invalid", "true"
    )
    ask.get_by_label("Why (the approver reads this)").fill("greener")
    # Someone edits the draft while the editor reviews: the dialog shows the new changes.
    server.ok("PUT", "/api/v1/apps/shop/envs/prod/items/size", {"value": "l"})
    ask.get_by_role("button", name="Request release").click()
    expect(ask.get_by_role("alert")).to_contain_text("The draft changed while you were reviewing")
    expect(ask.locator(".diff-changed .diff-key")).to_have_text(["color", "size", "token"])
    shot(editor, "pa-request-dialog-moved", full_page=False)
    assert server.ok("GET", "/api/v1/apps/shop/envs/prod/release-requests")["requests"] == []
    ask.get_by_role("button", name="Request release").click()
    expect(editor.get_by_role("dialog")).to_have_count(0)
    (one,) = request_ids(server, "shop", "prod")
    expect(editor.get_by_role("status")).to_contain_text(
        f"Release request #{one} for shop/prod sent"
    )
    expect(section_tab(editor, re.compile("^Requests"))).to_contain_text("1")

    # The publisher sees it arrive without a reload, with its diff in clear.
    mine = request_card(publisher, one)
    expect(mine).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(mine).to_contain_text("by eddie")
    expect(mine).to_contain_text("greener")
    expect(mine).to_contain_text("based on v1")
    expect(mine.locator(".diff-changed .diff-key")).to_have_text(["color", "size", "token"])
    expect(mine.locator(".diff-changed pre")).to_have_text(["blue", "green", "m", "l"])
    # The secret is masked for the publisher too, until revealed.
    assert "s2" not in mine.inner_html()
    mine.get_by_role("button", name="Reveal token").last.click()
    expect(mine.locator(".diff-changed pre")).to_have_text(["blue", "green", "m", "l", "s2"])
    shot(publisher, "pa-requests-pending")
    publisher.set_viewport_size(PHONE)
    assert_fits(publisher)
    shot(publisher, "pa-requests-pending-phone")
    publisher.set_viewport_size(DESKTOP)

    # The editor sees their own request: no Approve, and why; Withdraw is theirs.
    section_tab(editor, re.compile("^Requests")).click()
    own = request_card(editor, one)
    expect(own).to_contain_text("Your request: a publisher of shop approves it.")
    expect(own.get_by_role("button", name=re.compile("^Approve"))).to_have_count(0)
    expect(own.get_by_role("button", name=f"Withdraw request #{one}")).to_be_visible()
    expect(own.locator(".secret-hidden")).to_have_count(2)
    shot(editor, "pa-requests-own")

    # The publisher approves; the editor sees it approved and the release, live.
    mine.get_by_role("button", name=f"Approve request #{one}").click()
    approve = publisher.get_by_role("dialog")
    expect(approve).to_contain_text("publishes shop/prod v2")
    approve.get_by_label("Approval comment (optional)").fill("looks right")
    approve.get_by_role("button", name="Approve and publish").click()
    expect(publisher.get_by_role("status")).to_contain_text(
        f"Approved request #{one}: published shop/prod v2."
    )
    expect(decided_row(publisher, one)).to_contain_text("approved")
    release = server.ok("GET", "/api/v1/apps/shop/envs/prod/releases/2")
    assert (release["author"], release["comment"]) == ("pat", "greener")
    row = decided_row(editor, one)
    expect(row).to_contain_text("approved", timeout=LIVE_TIMEOUT_MS)
    expect(row).to_contain_text("pat")
    expect(row).to_contain_text("looks right")
    expect(row.get_by_role("link", name="v2")).to_have_attribute(
        "href", "#/apps/shop/prod/releases/2"
    )
    expect(editor.get_by_role("status")).to_contain_text("pat published shop/prod as v2")
    expect(editor.get_by_text("No pending requests")).to_be_visible()

    # Two more requests from the editor: one withdrawn (the publisher's approval comes too
    # late and says so), one rejected.
    server.ok("PUT", "/api/v1/apps/shop/envs/prod/items/size", {"value": "xl"})
    section_tab(editor, "Draft").click()
    for comment in ("bigger", "bigger again"):
        editor.get_by_role("button", name="Request release").click()
        editor.get_by_role("dialog").get_by_label("Why (the approver reads this)").fill(comment)
        editor.get_by_role("dialog").get_by_role("button", name="Request release").click()
        expect(editor.get_by_role("dialog")).to_have_count(0)
    section_tab(editor, re.compile("^Requests")).click()
    three, two, _ = request_ids(server, "shop", "prod")
    expect(request_card(publisher, three)).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    request_card(publisher, two).get_by_role("button", name=f"Approve request #{two}").click()
    request_card(editor, two).get_by_role("button", name=f"Withdraw request #{two}").click()
    editor.get_by_role("dialog").get_by_role("button", name="Withdraw").click()
    expect(decided_row(editor, two)).to_contain_text("withdrawn")
    publisher.get_by_role("dialog").get_by_role("button", name="Approve and publish").click()
    expect(publisher.get_by_role("status")).to_contain_text(f"Request #{two} was already decided")
    expect(decided_row(publisher, two)).to_contain_text("withdrawn")
    request_card(publisher, three).get_by_role("button", name=f"Reject request #{three}").click()
    publisher.get_by_role("dialog").get_by_label("Reason (optional)").fill("not now")
    publisher.get_by_role("dialog").get_by_role("button", name="Reject").click()
    expect(publisher.get_by_role("status")).to_contain_text(f"Rejected request #{three}.")
    rejected = decided_row(editor, three)
    expect(rejected).to_contain_text("rejected", timeout=LIVE_TIMEOUT_MS)
    expect(rejected).to_contain_text("not now")
    statuses = {
        r["id"]: r["status"]
        for r in server.ok("GET", "/api/v1/apps/shop/envs/prod/release-requests")["requests"]
    }
    assert statuses == {one: "approved", two: "withdrawn", three: "rejected"}
    shot(editor, "pa-requests-decided")
    editor.set_viewport_size(PHONE)
    assert_fits(editor)
    shot(editor, "pa-requests-decided-phone")
    assert server.ok("GET", "/api/v1/apps/shop/envs/prod")["latest_version"] == 2


def test_an_admin_releases_in_an_emergency_and_a_viewer_sees_no_settings(
    page: Page, other_page: Page, server: Server
) -> None:
    server.app("ops", ["prod"], {"mode": "a"})
    server.publish("ops", "prod", "first")
    server.ok("PATCH", "/api/v1/apps/ops/envs/prod/items", {"set": {"mode": "b"}})
    server.publish("ops", "prod", "second")
    server.ok("PATCH", "/api/v1/apps/ops/envs/prod", {"approval_required": True})
    server.ok("PATCH", "/api/v1/apps/ops/envs/prod/items", {"set": {"mode": "c"}})
    add_user(server, "vic", {"ops": "viewer"})

    viewer = other_page
    sign_in(viewer, server, "vic", PASSWORD)
    viewer.goto("/#/apps/ops/prod")
    expect(viewer.get_by_text("You may view this draft.")).to_be_visible()
    expect(section_tab(viewer, re.compile("^Requests"))).to_be_visible()
    expect(section_tab(viewer, "Settings")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Request release")).to_have_count(0)
    viewer.goto("/#/apps/ops/prod/settings")
    expect(viewer.get_by_text("Owners only")).to_be_visible()
    expect(viewer.get_by_label("Releases need an approved request")).to_have_count(0)

    admin = page
    sign_in(admin, server)
    admin.goto("/#/apps/ops/prod")
    expect(admin.get_by_role("button", name="Publish", exact=True)).to_have_count(0)
    expect(admin.get_by_role("button", name="Request release")).to_be_enabled()
    shot(admin, "pa-draft-approvals")
    admin.get_by_role("button", name="Emergency publish").click()
    urgent = admin.get_by_role("dialog")
    expect(urgent).to_contain_text("skips the approval")
    urgent.get_by_label("Reason for the emergency").fill("outage")
    urgent.get_by_role("button", name="Publish now").click()
    expect(admin.get_by_role("status")).to_contain_text("Emergency release: published ops/prod v3")
    assert server.ok("GET", "/api/v1/apps/ops/envs/prod/releases/3")["comment"] == "outage"

    section_tab(admin, "History").click()
    admin.locator('tr[data-version="1"]').get_by_role("button", name="Request rollback").click()
    back = admin.get_by_role("dialog")
    back.get_by_label("Why (the approver reads this)").fill("a was right")
    back.get_by_label("Emergency: roll back now, without approval").check()
    back.get_by_role("button", name="Roll back now").click()
    expect(admin.get_by_role("status")).to_contain_text("rolled back to v1 as v4")
    expect(admin.locator("tbody tr").first).to_contain_text("rollback of v1")

    # The viewer's page learns of both releases; a rollback request shows on Requests.
    expect(viewer.get_by_role("status")).to_contain_text("v4", timeout=LIVE_TIMEOUT_MS)
    admin.locator('tr[data-version="3"]').get_by_role("button", name="Request rollback").click()
    back.get_by_label("Why (the approver reads this)").fill("c after all")
    back.get_by_role("button", name="Request rollback").click()
    expect(admin.get_by_role("status")).to_contain_text(
        re.compile(r"Rollback request #\d+ for ops/prod sent")
    )
    (made,) = server.ok("GET", "/api/v1/apps/ops/envs/prod/release-requests")["requests"]
    assert (made["rollback_to"], made["status"]) == (3, "pending")
    viewer.goto("/#/apps/ops/prod/requests")
    card = request_card(viewer, made["id"])
    expect(card).to_contain_text("rollback to v3")
    expect(card).to_contain_text("A publisher of ops approves or rejects it.")
    expect(card.get_by_role("button")).to_have_count(0)
