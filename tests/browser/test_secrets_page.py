"""The admin page's secrets, import and export views, as a publisher and an editor in two
browser contexts, and as an admin importing and exporting."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, FilePayload, Locator, Page, expect

from tests.browser.helpers import DESKTOP, PHONE, Server, shot, sign_in

pytestmark = pytest.mark.browser

# Where the screenshots to look at are also written.
REVIEW_SHOTS = Path("/tmp/pb-shots")
SECRET = "s3cr3t-Value-42"
BLIND = "overwritten-blind-7"


def review_shot(page: Page, name: str) -> None:
    """A screenshot in artifacts/screenshots and a copy in /tmp/pb-shots for review."""
    path = shot(page, name)
    REVIEW_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, REVIEW_SHOTS / path.name)


def row(page: Page, key: str) -> Locator:
    """The draft table row of an item."""
    return page.locator(f'tr[data-key="{key}"]')


def draft_values(server: Server, app: str, env: str) -> dict[str, Any]:
    """The draft's items as {key: value} (admin sees secrets in clear)."""
    items = server.ok("GET", f"/api/v1/apps/{app}/envs/{env}/items")["items"]
    return {i["key"]: i["value"] for i in items}


def assert_nowhere(page: Page, text: str) -> None:
    """text is in neither the page's HTML, its URL nor its storage."""
    assert text not in page.content()
    assert text not in page.url
    storage = page.evaluate("() => JSON.stringify([localStorage, sessionStorage])")
    assert text not in storage


def test_a_publisher_sees_a_secret_masked_and_an_editor_overwrites_it_blind(
    context: BrowserContext, other_context: BrowserContext, server: Server
) -> None:
    server.app("vault", ["prod"], {"db.url": "mysql://db/vault"})
    server.publish("vault", "prod", "first")
    server.ok(
        "POST",
        "/api/v1/users",
        {"name": "pia", "password": "pia-password-1", "roles": {"vault": "publisher"}},
    )
    server.ok(
        "POST",
        "/api/v1/users",
        {"name": "eddie", "password": "eddie-password-1", "roles": {"vault": "editor"}},
    )

    pia = context.new_page()
    sign_in(pia, server, "pia", "pia-password-1")
    pia.goto("/#/apps/vault/prod")
    pia.get_by_role("button", name="Add item").first.click()
    form = pia.get_by_role("form", name="Add item")
    form.get_by_label("Key").fill("db.password")
    form.get_by_label("Value").fill(SECRET)
    form.get_by_label("Secret").check()
    form.get_by_role("button", name="Save").click()
    secret_row = row(pia, "db.password")
    expect(secret_row).to_contain_text("secret")
    expect(secret_row).to_contain_text("•••••")
    assert server.item("vault", "prod", "db.password")["secret"] is True
    assert_nowhere(pia, SECRET)
    review_shot(pia, "pb-draft-secret-masked")

    secret_row.get_by_role("button", name="Reveal db.password").click()
    expect(secret_row.locator("pre.value")).to_have_text(SECRET)
    review_shot(pia, "pb-draft-secret-revealed")
    secret_row.get_by_role("button", name="Hide db.password").click()
    expect(secret_row.get_by_role("button", name="Reveal db.password")).to_be_visible()
    assert_nowhere(pia, SECRET)

    # The diff of the publish dialog masks it the same way.
    pia.get_by_role("button", name="Review changes").click()
    dialog = pia.get_by_role("dialog")
    added = dialog.locator(".diff-added")
    expect(added).to_contain_text("db.password")
    expect(added).to_contain_text("•••••")
    assert_nowhere(pia, SECRET)
    review_shot(pia, "pb-publish-diff-masked")
    dialog.get_by_role("button", name="Reveal db.password").click()
    expect(added.locator("pre.value")).to_have_text(SECRET)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)

    # The editor sees "hidden" and no reveal, and overwrites the secret without reading it.
    eddie = other_context.new_page()
    sign_in(eddie, server, "eddie", "eddie-password-1")
    eddie.goto("/#/apps/vault/prod")
    hidden_row = row(eddie, "db.password")
    hidden = hidden_row.locator(".secret-hidden")
    expect(hidden).to_have_text("hidden")
    expect(hidden).to_have_attribute("title", re.compile("publishers, owners and admins"))
    expect(hidden_row.get_by_role("button", name=re.compile("Reveal"))).to_have_count(0)
    review_shot(eddie, "pb-draft-secret-hidden-editor")
    hidden_row.get_by_role("button", name="Edit db.password").click()
    value = hidden_row.get_by_label("Value of db.password")
    expect(value).to_have_value("")
    expect(value).to_have_attribute("placeholder", re.compile("Write-only"))
    expect(hidden_row.get_by_label("Secret")).to_be_checked()
    # Saving the empty field would erase the secret unseen: refused in the page.
    before = server.item("vault", "prod", "db.password")["revision"]
    hidden_row.get_by_role("button", name="Save db.password").click()
    expect(hidden_row.get_by_role("alert")).to_contain_text("hidden from you")
    assert server.item("vault", "prod", "db.password")["revision"] == before
    value.fill(BLIND)
    review_shot(eddie, "pb-draft-secret-edit-blind")
    hidden_row.get_by_role("button", name="Save db.password").click()
    expect(row(eddie, "db.password").locator(".secret-hidden")).to_have_text("hidden")
    saved = server.item("vault", "prod", "db.password")
    assert (saved["value"], saved["secret"]) == (BLIND, True)
    assert_nowhere(eddie, BLIND)

    # The publisher's page takes the new value in (it polls the draft), still masked.
    secret_row = row(pia, "db.password")
    expect(secret_row.locator(".editor")).to_have_text("eddie")
    assert_nowhere(pia, BLIND)
    secret_row.get_by_role("button", name="Reveal db.password").click()
    expect(secret_row.locator("pre.value")).to_have_text(BLIND)
    pia.set_viewport_size(PHONE)
    review_shot(pia, "pb-draft-secret-phone")
    pia.set_viewport_size(DESKTOP)

    # A release masks it too: the draft tells which keys are secret.
    version = server.publish("vault", "prod", "with a secret")
    pia.goto(f"/#/apps/vault/prod/releases/{version}")
    released = pia.locator('tr[data-key="db.password"]')
    expect(released).to_contain_text("secret")
    expect(released).to_contain_text("•••••")
    expect(pia.locator('tr[data-key="db.url"]')).to_contain_text("mysql://db/vault")
    assert_nowhere(pia, BLIND)
    released.get_by_role("button", name="Reveal db.password").click()
    expect(released.locator("pre.value")).to_have_text(BLIND)


def test_an_import_is_previewed_then_applied_and_an_app_exported_and_imported(
    context: BrowserContext, server: Server, tmp_path: Path
) -> None:
    server.app("shop", ["prod"], {"a": "1", "b": "2"})
    server.ok("PUT", "/api/v1/apps/shop/envs/prod/items/pw", {"value": "hunter2", "secret": True})
    before = draft_values(server, "shop", "prod")

    admin = context.new_page()
    sign_in(admin, server)
    admin.goto("/#/apps/shop/prod")
    expect(row(admin, "a")).to_be_visible()
    admin.get_by_role("button", name="Import").click()
    dialog = admin.get_by_role("dialog", name="Import into shop/prod")
    dialog.get_by_label("File", exact=True).set_input_files(
        FilePayload(name="shop.properties", mimeType="text/plain", buffer=b"a=10\nc=3\n")
    )
    expect(dialog.get_by_label("Format")).to_have_value("properties")
    expect(dialog.get_by_label("File content")).to_have_value("a=10\nc=3\n")
    dialog.get_by_label("Replace").check()
    expect(dialog.get_by_text("keys not in the file are deleted")).to_be_visible()
    expect(dialog.get_by_role("button", name="Apply")).to_be_disabled()
    dialog.get_by_role("button", name="Preview").click()
    preview = dialog.locator(".import-preview")
    expect(preview.locator('[data-section="added"] [data-key="c"]')).to_contain_text("3")
    changed = preview.locator('[data-section="changed"] [data-key="a"]')
    expect(changed.locator(".value-removed")).to_have_text("1")
    expect(changed.locator(".value-added")).to_have_text("10")
    removed = preview.locator('[data-section="removed"]')
    expect(removed.locator("[data-key]")).to_have_count(2)
    # The secret about to be deleted is masked in the preview too.
    expect(removed.locator('[data-key="pw"]')).to_contain_text("•••••")
    assert "hunter2" not in admin.content()
    review_shot(admin, "pb-import-preview")
    assert draft_values(server, "shop", "prod") == before

    dialog.get_by_role("button", name="Apply").click()
    expect(dialog).to_have_count(0)
    expect(admin.get_by_role("status")).to_contain_text("Imported into shop/prod")
    expect(row(admin, "b")).to_have_count(0)
    expect(row(admin, "c")).to_be_visible()
    assert draft_values(server, "shop", "prod") == {"a": "10", "c": "3"}

    # A file the server refuses: its message, naming the line, and nothing written.
    admin.get_by_role("button", name="Import").click()
    dialog = admin.get_by_role("dialog", name="Import into shop/prod")
    dialog.get_by_label("Format").select_option("properties")
    dialog.get_by_label("File content").fill("ok=1\nbad$key=2\n")
    dialog.get_by_role("button", name="Preview").click()
    expect(dialog.get_by_role("alert")).to_contain_text("line 2")
    expect(dialog.get_by_role("button", name="Apply")).to_be_disabled()
    dialog.get_by_role("button", name="Cancel").click()
    assert draft_values(server, "shop", "prod") == {"a": "10", "c": "3"}

    # Export: the document, secret values null unless an admin includes them.
    server.ok("PUT", "/api/v1/apps/shop/envs/prod/items/pw", {"value": "hunter2", "secret": True})
    admin.goto("/#/apps/shop")
    card = admin.locator(".export-card")
    with admin.expect_download() as masked_download:
        card.get_by_role("button", name="Export").click()
    assert masked_download.value.suggested_filename == "shop-export.json"
    masked = json.loads(Path(masked_download.value.path()).read_text())
    assert masked["kind"] == "configcenter.export"
    assert masked["app"] == "shop"
    items = {i["key"]: i for i in masked["envs"]["prod"]["items"]}
    assert items["pw"]["secret"] is True
    assert items["pw"]["value"] is None
    assert items["a"]["value"] == "10"
    card.get_by_label("Include secret values").check()
    expect(card.get_by_text("hold the secrets in clear")).to_be_visible()
    review_shot(admin, "pb-export-card")
    with admin.expect_download() as full_download:
        card.get_by_role("button", name="Export").click()
    document = json.loads(Path(full_download.value.path()).read_text())
    assert {i["key"]: i["value"] for i in document["envs"]["prod"]["items"]}["pw"] == "hunter2"

    # Import app: the document under a new name, and the answer's per-env outcome.
    document["app"] = "shop-copy"
    copy = tmp_path / "shop-copy-export.json"
    copy.write_text(json.dumps(document))
    admin.goto("/#/apps")
    admin.get_by_role("button", name="Import app").click()
    dialog = admin.get_by_role("dialog", name="Import app")
    dialog.get_by_label("Export document").set_input_files(copy)
    dialog.get_by_role("button", name="Import").click()
    outcome = dialog.locator('.import-envs [data-env="prod"]')
    expect(outcome).to_contain_text("3 added")
    review_shot(admin, "pb-import-app-outcome")
    assert draft_values(server, "shop-copy", "prod") == {"a": "10", "c": "3", "pw": "hunter2"}
    # The same again is refused: the app exists.
    dialog.get_by_role("button", name="Close").click()
    expect(admin.get_by_role("link", name="shop-copy", exact=True)).to_be_visible()
    admin.get_by_role("button", name="Import app").click()
    dialog = admin.get_by_role("dialog", name="Import app")
    dialog.get_by_label("Export document").set_input_files(copy)
    dialog.get_by_role("button", name="Import").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Merge")
