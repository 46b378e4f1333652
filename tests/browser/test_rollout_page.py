"""The admin page's rollout: real WebSocket subscribers that name themselves, carry labels and
ack what they get; a gray release started from the publish dialog by label (with the server's
preview), the rollout bar moving as they ack, the instance list with its laggard, a refused
narrowing, a widening to 100 % with the slider, promote and abandon with their diffs, the
history's gray rows, and what a viewer may not do."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser.helpers import DESKTOP, PHONE, Server, shot, sign_in

pytestmark = pytest.mark.browser

T = TypeVar("T")
WITHIN_S = 10.0
PASSWORD = "rollout-password-1"


class Fleet:
    """WebSocket subscribers of one env, each naming itself, on an event loop in a thread of
    its own (the test's thread belongs to Playwright's). Each records the releases it is sent
    and acks them, unless it was made not to."""

    def __init__(self, server: Server, app: str, env: str) -> None:
        self.server = server
        self.app = app
        self.env = env
        self.received: dict[str, list[tuple[int, bool]]] = {}
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []
        self._tasks: list[asyncio.Task[None]] = []

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=WITHIN_S)

    def add(self, instance: str, labels: dict[str, str], *, ack: bool = True) -> None:
        """Subscribe one more instance."""
        self._run(self._add(instance, labels, ack))

    async def _add(self, instance: str, labels: dict[str, str], ack: bool) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        token = self.server.process.admin_token()
        ws = await self._session.ws_connect(
            f"{self.server.url}/api/v1/watch", headers={"Authorization": f"Bearer {token}"}
        )
        await ws.send_json(
            {
                "op": "subscribe",
                "app": self.app,
                "env": self.env,
                "instance": instance,
                "labels": labels,
            }
        )
        self._sockets.append(ws)
        self._tasks.append(asyncio.create_task(self._listen(instance, ws, ack)))

    async def _listen(self, instance: str, ws: aiohttp.ClientWebSocketResponse, ack: bool) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = message.json()
            if frame.get("type") != "release":
                continue
            with self._changed:
                self.received.setdefault(instance, []).append((frame["version"], frame["gray"]))
                self._changed.notify_all()
            if ack:
                await ws.send_json(
                    {"op": "ack", "app": self.app, "env": self.env, "version": frame["version"]}
                )

    def versions(self, instance: str) -> list[int]:
        """The versions an instance was sent, in order."""
        with self._changed:
            return [version for version, _ in self.received.get(instance, [])]

    def wait(self, what: str, predicate: Callable[[], bool]) -> None:
        """Until predicate() holds (checked at every release received), or fail."""
        with self._changed:
            assert self._changed.wait_for(predicate, timeout=WITHIN_S), what

    def wait_for_version(self, version: int, *instances: str) -> None:
        """Until every one of instances was sent version."""
        self.wait(
            f"{instances} sent v{version}: {self.received}",
            lambda: all(version in [v for v, _ in self.received.get(i, [])] for i in instances),
        )

    def close(self) -> None:
        """Close every socket, stop the loop and its thread."""
        self._run(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=WITHIN_S)
        self._loop.close()

    async def _close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        await asyncio.gather(*self._tasks)
        if self._session is not None:
            await self._session.close()


@pytest.fixture
def fleet_factory(server: Server) -> Iterator[Callable[[str, str], Fleet]]:
    """Fleets of subscribers, closed after the test."""
    made: list[Fleet] = []

    def make(app: str, env: str) -> Fleet:
        fleet = Fleet(server, app, env)
        made.append(fleet)
        return fleet

    try:
        yield make
    finally:
        for fleet in made:
            fleet.close()


CANARIES = ("pod-1", "pod-2")
STABLE = ("pod-3", "pod-4", "pod-5")


def start_fleet(fleet: Fleet) -> None:
    """Two canaries, three stable instances and one that never acks (a laggard), on v1."""
    for name in CANARIES:
        fleet.add(name, {"track": "canary", "zone": "eu-1"})
    for name in STABLE:
        fleet.add(name, {"track": "stable", "zone": "eu-1"})
    fleet.add("pod-lazy", {"track": "stable", "zone": "us-2"}, ack=False)
    fleet.wait_for_version(1, *CANARIES, *STABLE, "pod-lazy")


def assert_fits(page: Page) -> None:
    """The layout fits the viewport width."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the viewport"


def rollout(page: Page) -> Locator:
    """The rollout card above the env's sections."""
    return page.get_by_role("region", name="Rollout")


def legend(page: Page, version: int) -> Locator:
    """The rollout legend's entry of one version."""
    return rollout(page).locator(f'.rollout-legend-item[data-version="{version}"]')


def section_tab(page: Page, name: str) -> Locator:
    """A tab of the env's sections."""
    return page.get_by_role("navigation", name="Sections").get_by_role("link", name=name)


def test_a_gray_release_by_label_is_started_widened_and_promoted_from_the_page(
    signed_in: Page, server: Server, fleet_factory: Callable[[str, str], Fleet]
) -> None:
    page = signed_in
    server.app("shop", ["prod"], {"color": "blue", "size": "m"})
    assert server.publish("shop", "prod", "first") == 1
    fleet = fleet_factory("shop", "prod")
    start_fleet(fleet)

    page.goto("/#/apps/shop/prod")
    # Six instances on v1, one of them lagging (it never acked).
    expect(legend(page, 1)).to_have_text("v1 · 6")
    expect(rollout(page)).to_contain_text("1 lagging")
    server.ok("PUT", "/api/v1/apps/shop/envs/prod/items/color", {"value": "green"})
    publish = page.get_by_role("button", name="Publish", exact=True)
    expect(publish).to_be_enabled()
    publish.click()

    # The publish dialog starts a gray release to the label the canaries carry.
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Only some instances first (gray release)").check()
    expect(dialog.get_by_role("button", name="Start gray release")).to_be_visible()
    expect(dialog.get_by_label("Label to add")).to_contain_text("track=canary (2 instances)")
    dialog.get_by_label("Label to add").select_option("track=canary")
    dialog.get_by_role("button", name="Add label").click()
    expect(dialog.locator(".gray-preview")).to_have_text("Would match 2 of 6 live instances")
    expect(dialog.locator(".gray-chip")).to_contain_text(["track=canary"])
    # The instances to pick are the live ones, not typed.
    expect(dialog.locator(".gray-instance code")).to_have_text(
        sorted([*CANARIES, *STABLE, "pod-lazy"])
    )
    dialog.get_by_label("Release comment").fill("green on the canaries")
    shot(page, "rollout-start-dialog", full_page=False)
    revision = server.ok("GET", "/api/v1/apps/shop/envs/prod")["draft_revision"]
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/envs/prod/gray")
    ) as sent:
        dialog.get_by_role("button", name="Start gray release").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert sent.value.post_data_json == {
        "comment": "green on the canaries",
        "draft_revision": revision,
        "rule": {"labels": {"track": "canary"}},
    }
    expect(page.get_by_role("status")).to_contain_text(
        "Started gray release v2 of shop/prod to track=canary."
    )

    # Only the canaries get v2; the bar follows as they ack, without a reload.
    fleet.wait_for_version(2, *CANARIES)
    expect(legend(page, 2)).to_have_text("v2 (gray) · 2")
    expect(legend(page, 1)).to_have_text("v1 · 4")
    for name in CANARIES:
        assert fleet.received[name][-1] == (2, True)
    for name in (*STABLE, "pod-lazy"):
        assert fleet.versions(name) == [1]
    panel = page.locator(".gray-panel")
    expect(panel).to_contain_text("Gray release v2")
    expect(panel.locator(".gray-counts")).to_have_text(
        "Its rule takes 2 of 6 live instances; 2 run v2. Everyone else keeps v1."
    )
    # A publish would be refused while the gray release is active.
    expect(publish).to_be_disabled()
    expect(page.locator(".draft-status")).to_contain_text("Gray release v2 is active")
    shot(page, "rollout-draft-gray-active")

    # The instance list: gray flags, the laggard, the filters.
    section_tab(page, "Instances").click()
    rows = page.locator("tr[data-instance]")
    expect(rows).to_have_count(6)
    for name in CANARIES:
        expect(page.locator(f'tr[data-instance="{name}"]')).to_contain_text("gray")
    lazy = page.locator('tr[data-instance="pod-lazy"]')
    expect(lazy).to_have_class(re.compile(r"\brow-lagging\b"))
    expect(lazy).to_contain_text("sent v1, not acked")
    expect(lazy).to_contain_text("websocket")
    expect(page.locator("tr.row-lagging")).to_have_count(1)
    page.get_by_label("Label", exact=True).select_option("track=stable")
    expect(rows).to_have_count(4)
    page.get_by_label("Version", exact=True).select_option("2")
    expect(rows).to_have_count(0)
    page.get_by_label("Label", exact=True).select_option("")
    expect(rows).to_have_count(2)
    page.get_by_label("Version", exact=True).select_option("")
    page.get_by_label("Lagging only").check()
    expect(rows).to_have_count(1)
    page.get_by_label("Lagging only").uncheck()
    expect(rows).to_have_count(6)
    shot(page, "rollout-instances")

    # Widening by swapping the label would leave the canaries out: refused, and said so.
    page.get_by_role("button", name="Widen").click()
    widen = page.get_by_role("dialog")
    widen.get_by_label("Label to add").select_option("track=stable")
    widen.get_by_role("button", name="Add label").click()
    expect(widen.locator(".gray-preview")).to_have_text("Would match 4 of 6 live instances")
    widen.get_by_role("button", name="Widen").click()
    expect(widen.get_by_role("alert")).to_contain_text(
        "Not widened: a gray release only widens; this rule drops label track=stable"
    )
    shot(page, "rollout-widen-refused", full_page=False)
    widen.get_by_role("button", name="Cancel").click()
    assert server.ok("GET", "/api/v1/apps/shop/envs/prod")["gray"]["rule"] == {
        "labels": {"track": "canary"}
    }

    # Widening to 100 % with the slider: everyone gets v2.
    page.get_by_role("button", name="Widen").click()
    widen = page.get_by_role("dialog")
    widen.get_by_label("Percent of instances").fill("100")
    expect(widen.locator(".gray-percent-value")).to_have_text("100 %")
    expect(widen.locator(".gray-preview")).to_have_text("Would match 6 of 6 live instances")
    shot(page, "rollout-widen-dialog", full_page=False)
    widen.get_by_role("button", name="Widen").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    fleet.wait_for_version(2, *STABLE, "pod-lazy")
    for name in (*STABLE, "pod-lazy"):
        assert fleet.received[name] == [(1, False), (2, True)]
    expect(legend(page, 2)).to_have_text("v2 (gray) · 6")
    expect(legend(page, 1)).to_have_count(0)
    expect(panel.locator(".gray-counts")).to_contain_text("Its rule takes 6 of 6")

    # Promote, after the diff of what everyone else sees change.
    page.get_by_role("button", name="Promote").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("Promote v2 to everyone?")
    expect(confirm.locator(".diff-changed .diff-key")).to_have_text(["color"])
    expect(confirm.locator(".diff-changed")).to_contain_text("blue")
    expect(confirm.locator(".diff-changed")).to_contain_text("green")
    shot(page, "rollout-promote-dialog", full_page=False)
    confirm.get_by_label("Comment").fill("looks good")
    confirm.get_by_role("button", name="Promote").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(panel).to_be_hidden()
    expect(legend(page, 2)).to_have_text("v2 · 6")
    assert server.ok("GET", "/api/v1/apps/shop/envs/prod")["gray"] is None
    # Everyone had v2 already: promoting sends nobody anything new.
    for name in (*CANARIES, *STABLE, "pod-lazy"):
        assert fleet.versions(name) == [1, 2]

    # The history shows the gray release with its rule and status.
    section_tab(page, "History").click()
    row = page.locator('tr[data-version="2"]')
    expect(row).to_contain_text("gray promoted")
    expect(row).to_contain_text("Gray to track=canary · 100 %")
    expect(page.locator('tr[data-version="1"] .gray-rule-line')).to_have_count(0)
    shot(page, "rollout-history")
    row.get_by_role("link", name="View v2").click()
    expect(page.locator(".meta")).to_contain_text("Gray releasepromoted, to track=canary · 100 %")


def test_an_abandoned_gray_release_and_what_a_viewer_sees(
    signed_in: Page,
    other_context: BrowserContext,
    server: Server,
    fleet_factory: Callable[[str, str], Fleet],
) -> None:
    page = signed_in
    server.app("cart", ["prod"], {"limit": "10"})
    assert server.publish("cart", "prod", "first") == 1
    fleet = fleet_factory("cart", "prod")
    start_fleet(fleet)
    server.ok("PUT", "/api/v1/apps/cart/envs/prod/items/limit", {"value": "20"})

    # Started by picking two instances from the live list.
    page.goto("/#/apps/cart/prod")
    page.get_by_role("button", name="Publish", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Only some instances first (gray release)").check()
    dialog.get_by_label("pod-3").check()
    dialog.get_by_label("pod-lazy").check()
    expect(dialog.locator(".gray-preview")).to_have_text("Would match 2 of 6 live instances")
    dialog.get_by_role("button", name="Start gray release").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    fleet.wait_for_version(2, "pod-3", "pod-lazy")
    expect(legend(page, 2)).to_have_text("v2 (gray) · 2")
    assert fleet.versions("pod-1") == [1]

    # A viewer sees the gray release and the rollout, and none of its actions.
    server.ok(
        "POST", "/api/v1/users", {"name": "vic", "password": PASSWORD, "roles": {"cart": "viewer"}}
    )
    other = other_context.new_page()
    sign_in(other, server, "vic", PASSWORD)
    other.goto("/#/apps/cart/prod")
    expect(other.locator(".gray-panel")).to_contain_text("Gray release v2")
    expect(legend(other, 2)).to_have_text("v2 (gray) · 2")
    for name in ("Widen", "Promote", "Abandon"):
        expect(other.get_by_role("button", name=name)).to_have_count(0)
    other.close()

    # At phone width the rollout, the gray release and the instance list fit.
    page.set_viewport_size(PHONE)
    section_tab(page, "Instances").click()
    expect(page.locator("tr[data-instance]")).to_have_count(6)
    shot(page, "rollout-phone-instances")
    assert_fits(page)
    section_tab(page, "Draft").click()
    page.set_viewport_size(DESKTOP)

    # Abandon: the diff of what the gray instances see change, then v3 with v1's items.
    page.get_by_role("button", name="Abandon").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("This publishes v3 with the items of v1 for everyone")
    expect(confirm.locator(".diff-changed .diff-key")).to_have_text(["limit"])
    shot(page, "rollout-abandon-dialog", full_page=False)
    confirm.get_by_role("button", name="Abandon").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    fleet.wait_for_version(3, *CANARIES, *STABLE, "pod-lazy")
    for name in (*CANARIES, *STABLE, "pod-lazy"):
        assert fleet.received[name][-1] == (3, False)
    expect(page.locator(".gray-panel")).to_be_hidden()
    # pod-lazy never acks: it runs what it was sent last.
    expect(legend(page, 3)).to_have_text("v3 · 6")
    expect(page.get_by_role("button", name="Publish", exact=True)).to_be_enabled()

    section_tab(page, "History").click()
    expect(page.locator('tr[data-version="2"]')).to_contain_text("gray abandoned")
    expect(page.locator('tr[data-version="2"]')).to_contain_text("Gray to pod-3, pod-lazy")
    # v3 is a plain release (its default comment names the gray release it ended).
    expect(page.locator('tr[data-version="3"] .gray-rule-line')).to_have_count(0)
    expect(page.locator('tr[data-version="3"]')).not_to_contain_text("gray abandoned")


def test_in_an_env_with_approvals_an_editor_requests_a_gray_release_that_a_publisher_approves(
    signed_in: Page,
    other_context: BrowserContext,
    server: Server,
    fleet_factory: Callable[[str, str], Fleet],
) -> None:
    page = signed_in
    server.app("mail", ["prod"], {"sender": "a"})
    assert server.publish("mail", "prod", "first") == 1
    server.ok("PATCH", "/api/v1/apps/mail/envs/prod", {"approval_required": True})
    server.ok(
        "POST",
        "/api/v1/users",
        {"name": "eddie", "password": PASSWORD, "roles": {"mail": "editor"}},
    )
    fleet = fleet_factory("mail", "prod")
    start_fleet(fleet)
    server.ok("PUT", "/api/v1/apps/mail/envs/prod/items/sender", {"value": "b"})

    # The editor's release request carries a rule: one instance picked from the live list.
    editor = other_context.new_page()
    sign_in(editor, server, "eddie", PASSWORD)
    editor.goto("/#/apps/mail/prod")
    editor.get_by_role("button", name="Request release").click()
    ask = editor.get_by_role("dialog")
    ask.get_by_label("Only some instances first (gray release)").check()
    ask.get_by_label("pod-4").check()
    expect(ask.locator(".gray-preview")).to_have_text("Would match 1 of 6 live instances")
    ask.get_by_label("Why (the approver reads this)").fill("try b on one")
    ask.get_by_role("button", name="Request gray release").click()
    expect(editor.get_by_role("dialog")).to_have_count(0)
    (request,) = server.ok("GET", "/api/v1/apps/mail/envs/prod/release-requests")["requests"]
    assert request["gray"] == {"instances": ["pod-4"]}
    editor.close()

    # The publisher sees what approving starts, approves, and the one instance gets v2.
    page.goto("/#/apps/mail/prod/requests")
    card = page.get_by_role("article", name=re.compile(rf"^Request #{request['id']}\b"))
    expect(card).to_contain_text("gray release")
    expect(card).to_contain_text("Approving starts a gray release to pod-4")
    card.get_by_role("button", name=f"Approve request #{request['id']}").click()
    approve = page.get_by_role("dialog")
    expect(approve).to_contain_text("This starts gray release mail/prod v2")
    shot(page, "rollout-approve-gray-request", full_page=False)
    approve.get_by_role("button", name="Approve and publish").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Approved request #{request['id']}: started gray release mail/prod v2."
    )
    fleet.wait_for_version(2, "pod-4")
    assert fleet.received["pod-4"][-1] == (2, True)
    for name in (*CANARIES, "pod-3", "pod-5", "pod-lazy"):
        assert fleet.versions(name) == [1]
    expect(legend(page, 2)).to_have_text("v2 (gray) · 1")
    expect(page.locator(".gray-panel")).to_contain_text("to pod-4")
