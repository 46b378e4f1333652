"""Approvals on both stores: env settings, draft-guarded and emergency publishes, release
requests from creation to approval, and every refusal leaving the tables as they were."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.domain.scopes import Principal, Role
from server.errors import AppError
from server.keys import SERVICES, STORE
from tests.api.helpers import Api

ENV = "/api/v1/apps/shop/envs/prod"
REQUESTS = f"{ENV}/release-requests"
REQUEST_FIELDS = {
    "id",
    "app",
    "env",
    "author",
    "comment",
    "status",
    "base_version",
    "draft_revision",
    "rollback_to",
    "gray",
    "diff",
    "created_at",
    "decided_by",
    "decided_at",
    "decision_comment",
    "release_version",
}


class Publisher:
    """A write:shop token: a publisher of shop, with the actor the audit names it by."""

    def __init__(self, name: str, secret: str, actor: str) -> None:
        self.name = name
        self.secret = secret
        self.actor = actor


async def publisher(api: Api, name: str) -> Publisher:
    _, secret = await api.token_for("write:shop", name=name)
    # The actor as the server's own principal of the token names it (token:NAME#ID).
    actor = (await api.app[SERVICES].auth.authenticate(secret)).actor
    assert actor.startswith(f"token:{name}"), actor
    return Publisher(name, secret, actor)


async def tables(api: Api) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, release requests included."""
    rows = await api.snapshot()
    async with api.app[STORE].reader() as q:
        rows["release_requests"] = await q.conn.fetchall(
            "SELECT * FROM release_requests ORDER BY 1"
        )
    return rows


async def audit_actions(api: Api) -> list[tuple[str, str]]:
    """(action, actor) of shop's audit entries, oldest first."""
    answer = await api.call("GET", "/api/v1/audit?app=shop&limit=500")
    assert answer.status == 200, answer.text
    return [(e["action"], e["actor"]) for e in reversed(answer.body["entries"])]


async def env_settings(api: Api) -> dict[str, Any]:
    answer = await api.call("GET", ENV)
    assert answer.status == 200, answer.text
    result: dict[str, Any] = answer.body
    return result


async def require_approval(api: Api, required: bool = True) -> None:
    answer = await api.call("PATCH", ENV, {"approval_required": required})
    assert answer.status == 200, answer.text
    assert answer.body["approval_required"] is required


async def published_once(api: Api, items: dict[str, str]) -> None:
    """The app with one release of items."""
    await api.app_with_env()
    await api.set_items("shop", "prod", items)
    assert (await api.publish("shop", "prod", "first")).status == 201


async def make_request(api: Api, by: Publisher, **body: Any) -> dict[str, Any]:
    answer = await api.call("POST", REQUESTS, {"comment": "please", **body}, token=by.secret)
    assert answer.status == 201, answer.text
    result: dict[str, Any] = answer.body
    return result


def assert_error(answer: Any, status: int, code: str) -> None:
    assert (answer.status, answer.body["error"]["code"]) == (status, code), answer.text


# env settings


async def test_env_settings_show_where_the_env_stands(api: Api) -> None:
    await api.app_with_env()
    fresh = await env_settings(api)
    assert fresh == {
        "app": "shop",
        "name": "prod",
        "approval_required": False,
        "latest_version": None,
        "draft_revision": 0,
        "gray": None,
    }
    await api.set_items("shop", "prod", {"a": "1"})
    assert (await api.publish("shop", "prod")).status == 201
    await api.set_items("shop", "prod", {"a": "2"})
    now = await env_settings(api)
    assert (now["latest_version"], now["draft_revision"]) == (1, 2)
    assert (await api.call("GET", "/api/v1/apps/shop/envs/nope")).status == 404
    assert (await api.call("GET", "/api/v1/apps/nope/envs/prod")).status == 404


async def test_patch_env_turns_approvals_on_and_off_audited_once_per_change(api: Api) -> None:
    await api.app_with_env()
    before = await audit_actions(api)
    await require_approval(api)
    assert (await env_settings(api))["approval_required"] is True
    await require_approval(api)  # no change: nothing written
    await require_approval(api, False)
    added = (await audit_actions(api))[len(before) :]
    assert [action for action, _ in added] == ["env.update", "env.update"]


async def test_patch_env_refuses_bad_bodies_and_non_owners(api: Api) -> None:
    await api.app_with_env()
    writer = await publisher(api, "writer")
    _, reader = await api.token_for("read:shop", name="reader")
    before = await tables(api)
    for body in (
        {},
        {"approval_required": "yes"},
        {"approval_required": 1},
        {"approval_required": None},
        {"approval_required": True, "extra": 1},
    ):
        assert_error(await api.call("PATCH", ENV, body), 400, "invalid_request")
    assert_error(await api.call("PATCH", ENV, [True]), 400, "invalid_json")
    assert_error(await api.call("PATCH", ENV, data=b"{"), 400, "invalid_json")
    assert_error(await api.call("PATCH", ENV, data=b""), 400, "invalid_json")
    # A publisher is not an owner; a read token sees no env settings at all.
    patch = {"approval_required": True}
    assert_error(await api.call("PATCH", ENV, patch, token=writer.secret), 403, "forbidden")
    assert_error(await api.call("GET", ENV, token=reader), 403, "forbidden")
    assert_error(await api.call("PATCH", "/api/v1/apps/shop/envs/nope", patch), 404, "not_found")
    assert await tables(api) == before


# draft-guarded and emergency publishes


async def test_publish_with_the_reviewed_draft_revision(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"a": "1"})
    reviewed = (await env_settings(api))["draft_revision"]
    await api.set_items("shop", "prod", {"a": "2"})  # someone edits after the review
    before = await tables(api)
    moved = await api.call("POST", f"{ENV}/releases", {"draft_revision": reviewed})
    assert_error(moved, 409, "draft_changed")
    assert f"revision {reviewed + 1}, not {reviewed}" in moved.body["error"]["message"]
    for bad in ("1", -1, True, 1.5, 2**63):
        answer = await api.call("POST", f"{ENV}/releases", {"draft_revision": bad})
        assert_error(answer, 400, "invalid_request")
    assert await tables(api) == before
    current = (await env_settings(api))["draft_revision"]
    release = await api.call("POST", f"{ENV}/releases", {"draft_revision": current})
    assert release.status == 201, release.text
    assert release.body["items"] == {"a": "2"}


async def test_an_approval_env_refuses_direct_publish_and_rollback(api: Api) -> None:
    await published_once(api, {"a": "1"})
    await api.set_items("shop", "prod", {"a": "2"})
    assert (await api.publish("shop", "prod")).status == 201
    await require_approval(api)
    writer = await publisher(api, "writer")
    await api.set_items("shop", "prod", {"a": "3"})
    before = await tables(api)
    publish, rollback = f"{ENV}/releases", f"{ENV}/releases/1/rollback"
    for path in (publish, rollback):
        assert_error(await api.call("POST", path, {}), 409, "approval_required")
        assert_error(
            await api.call("POST", path, {}, token=writer.secret), 409, "approval_required"
        )
        refused = await api.call("POST", path, {"emergency": True}, token=writer.secret)
        assert_error(refused, 403, "forbidden")
        assert_error(await api.call("POST", path, {"emergency": "yes"}), 400, "invalid_request")
    assert await tables(api) == before


async def test_an_admin_emergency_publish_and_rollback_are_audited_as_emergencies(
    api: Api,
) -> None:
    await published_once(api, {"a": "1"})
    await require_approval(api)
    await api.set_items("shop", "prod", {"a": "2"})
    published = await api.call("POST", f"{ENV}/releases", {"comment": "hotfix", "emergency": True})
    assert published.status == 201, published.text
    assert (published.body["version"], published.body["items"]) == (2, {"a": "2"})
    rolled = await api.call("POST", f"{ENV}/releases/1/rollback", {"emergency": True})
    assert rolled.status == 201, rolled.text
    assert (rolled.body["version"], rolled.body["rollback_of"]) == (3, 1)
    actions = [action for action, _ in await audit_actions(api)]
    assert actions[-2:] == ["release.emergency", "release.emergency"]
    assert "release.publish" not in actions[actions.index("env.update") :]
    # Without approvals an emergency is an ordinary publish, and so audited.
    await require_approval(api, False)
    await api.set_items("shop", "prod", {"a": "4"})
    assert (await api.call("POST", f"{ENV}/releases", {"emergency": True})).status == 201
    assert (await audit_actions(api))[-1][0] == "release.publish"


# release requests


async def test_a_request_freezes_the_draft_and_its_approval_publishes_exactly_that(
    api: Api,
) -> None:
    await published_once(api, {"keep": "k", "old": "1", "gone": "g"})
    await require_approval(api)
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    await api.call("PATCH", f"{ENV}/items", {"set": {"old": "2", "new": "n"}, "delete": ["gone"]})
    revision = (await env_settings(api))["draft_revision"]
    request = await make_request(api, alice, draft_revision=revision, comment="tune it")
    assert set(request) == REQUEST_FIELDS
    assert request == {
        "id": request["id"],
        "app": "shop",
        "env": "prod",
        "author": alice.actor,
        "comment": "tune it",
        "status": "pending",
        "base_version": 1,
        "draft_revision": revision,
        "rollback_to": None,
        "gray": None,
        "diff": {
            "added": {"new": "n"},
            "changed": {"old": {"old": "1", "new": "2"}},
            "removed": {"gone": "g"},
            "secret_keys": [],
        },
        "created_at": request["created_at"],
        "decided_by": None,
        "decided_at": None,
        "decision_comment": None,
        "release_version": None,
    }
    # The draft moves on after the request: the approval still publishes the frozen snapshot.
    await api.set_items("shop", "prod", {"old": "3", "later": "x"})
    approved = await api.call(
        "POST", f"{REQUESTS}/{request['id']}/approve", {"comment": "ok"}, token=bob.secret
    )
    assert approved.status == 201, approved.text
    release = approved.body
    assert release["version"] == 2
    assert release["items"] == {"keep": "k", "old": "2", "new": "n"}
    assert (release["author"], release["comment"]) == ("token:bob", "tune it")
    config = await api.call("GET", f"{ENV}/config")
    assert (config.body["version"], config.body["items"]) == (2, release["items"])
    draft = await api.call("GET", f"{ENV}/items")
    assert {i["key"]: i["value"] for i in draft.body["items"]}["later"] == "x"
    after = (await api.call("GET", f"{REQUESTS}/{request['id']}")).body
    assert after["status"] == "approved"
    assert (after["decided_by"], after["decision_comment"], after["release_version"]) == (
        bob.actor,
        "ok",
        2,
    )
    assert after["decided_at"] >= after["created_at"]
    decisions = [entry for entry in await audit_actions(api) if entry[0].startswith("request.")]
    assert decisions == [("request.create", alice.actor), ("request.approve", bob.actor)]


async def test_approval_works_in_an_env_that_does_not_require_it(api: Api) -> None:
    await api.app_with_env()
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    await api.set_items("shop", "prod", {"a": "1"})
    request = await make_request(api, alice)
    assert (request["base_version"], request["diff"]["added"]) == (None, {"a": "1"})
    approved = await api.call("POST", f"{REQUESTS}/{request['id']}/approve", token=bob.secret)
    assert approved.status == 201, approved.text
    assert (approved.body["version"], approved.body["items"]) == (1, {"a": "1"})


async def test_a_rollback_request_publishes_the_target_and_resets_the_draft(api: Api) -> None:
    await published_once(api, {"a": "1", "b": "2"})
    await api.set_items("shop", "prod", {"a": "9"})
    assert (await api.publish("shop", "prod")).status == 201
    await require_approval(api)
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    await api.set_items("shop", "prod", {"c": "draft only"})
    request = await make_request(api, alice, rollback_to=1, comment="")
    assert (request["rollback_to"], request["draft_revision"], request["base_version"]) == (
        1,
        None,
        2,
    )
    assert request["diff"] == {
        "added": {},
        "changed": {"a": {"old": "9", "new": "1"}},
        "removed": {},
        "secret_keys": [],
    }
    approved = await api.call("POST", f"{REQUESTS}/{request['id']}/approve", token=bob.secret)
    assert approved.status == 201, approved.text
    assert approved.body["rollback_of"] == 1
    assert approved.body["items"] == {"a": "1", "b": "2"}
    assert approved.body["comment"] == "rollback to version 1"
    draft = await api.call("GET", f"{ENV}/items")
    assert {i["key"]: i["value"] for i in draft.body["items"]} == {"a": "1", "b": "2"}


async def test_bad_requests_are_refused_and_change_nothing(api: Api) -> None:
    await published_once(api, {"a": "1"})
    alice = await publisher(api, "alice")
    _, reader = await api.token_for("read:shop", name="reader")
    revision = (await env_settings(api))["draft_revision"]
    before = await tables(api)
    for body in (
        {},
        {"comment": 3},
        {"comment": "x", "draft_revision": "1"},
        {"comment": "x", "draft_revision": -1},
        {"comment": "x", "rollback_to": 0},
        {"comment": "x", "rollback_to": True},
        {"comment": "x", "unknown": 1},
        {"comment": "x", "gray": {"percent": 101}},
        {"comment": "x", "gray": {}},
        {"comment": "x", "gray": {"percent": 10}, "rollback_to": 1},
        {"comment": "x", "gray": "all"},
        {"comment": "x", "draft_revision": revision, "rollback_to": 1},
    ):
        answer = await api.call("POST", REQUESTS, body, token=alice.secret)
        assert_error(answer, 400, "invalid_request")
    assert_error(
        await api.call("POST", REQUESTS, {"comment": "c" * 5000}, token=alice.secret),
        400,
        "invalid_comment",
    )
    assert_error(await api.call("POST", REQUESTS, data=b"[]"), 400, "invalid_json")
    # The draft equals release 1; a rollback to the latest release's items changes nothing.
    assert_error(await api.call("POST", REQUESTS, {"comment": ""}), 409, "nothing_to_publish")
    rollback = {"comment": "", "rollback_to": 1}
    assert_error(await api.call("POST", REQUESTS, rollback), 409, "nothing_to_publish")
    assert_error(
        await api.call("POST", REQUESTS, {"comment": "", "rollback_to": 7}), 404, "not_found"
    )
    await api.set_items("shop", "prod", {"a": "2"})
    before = await tables(api)
    stale_review = {"comment": "", "draft_revision": revision}
    assert_error(await api.call("POST", REQUESTS, stale_review), 409, "draft_changed")
    assert_error(await api.call("POST", REQUESTS, {"comment": ""}, token=reader), 403, "forbidden")
    elsewhere = "/api/v1/apps/shop/envs/nope/release-requests"
    assert_error(await api.call("POST", elsewhere, {"comment": ""}), 404, "not_found")
    assert await tables(api) == before


async def test_unknown_ids_statuses_and_forbidden_readers(api: Api) -> None:
    await published_once(api, {"a": "1"})
    alice = await publisher(api, "alice")
    await api.set_items("shop", "prod", {"a": "2"})
    request = await make_request(api, alice)
    _, reader = await api.token_for("read:shop", name="reader")
    await api.call("POST", "/api/v1/apps/shop/envs", {"name": "dev"})
    before = await tables(api)
    for method, suffix in (
        ("GET", ""),
        ("POST", "/approve"),
        ("POST", "/reject"),
        ("DELETE", ""),
    ):
        assert_error(await api.call(method, f"{REQUESTS}/999{suffix}"), 404, "not_found")
        assert_error(await api.call(method, f"{REQUESTS}/abc{suffix}"), 400, "invalid_request")
        assert_error(await api.call(method, f"{REQUESTS}/\u0661{suffix}"), 400, "invalid_request")
        where = f"{REQUESTS}/{request['id']}{suffix}"
        assert_error(await api.call(method, where, token=reader), 403, "forbidden")
    # An id of another env is not found in this one.
    other = f"/api/v1/apps/shop/envs/dev/release-requests/{request['id']}"
    assert_error(await api.call("GET", other), 404, "not_found")
    for body in ({"comment": 1}, {"comment": "x", "force": True}):
        approve = await api.call("POST", f"{REQUESTS}/{request['id']}/approve", body)
        assert_error(approve, 400, "invalid_request")
        reject = await api.call("POST", f"{REQUESTS}/{request['id']}/reject", body)
        assert_error(reject, 400, "invalid_request")
    assert_error(await api.call("GET", f"{REQUESTS}?status=open"), 400, "invalid_request")
    assert_error(await api.call("GET", f"{REQUESTS}?limit=0"), 400, "invalid_request")
    assert_error(await api.call("GET", f"{REQUESTS}", token=reader), 403, "forbidden")
    assert await tables(api) == before


async def test_approving_your_own_request_is_refused(api: Api) -> None:
    await published_once(api, {"a": "1"})
    alice = await publisher(api, "alice")
    await api.set_items("shop", "prod", {"a": "2"})
    by_alice = await make_request(api, alice)
    by_admin = (await api.call("POST", REQUESTS, {"comment": "mine"})).body
    before = await tables(api)
    own = await api.call("POST", f"{REQUESTS}/{by_alice['id']}/approve", token=alice.secret)
    assert_error(own, 403, "self_approval")
    # An admin is no exception: approving needs a second person (or an emergency publish).
    assert_error(
        await api.call("POST", f"{REQUESTS}/{by_admin['id']}/approve"), 403, "self_approval"
    )
    assert await tables(api) == before


async def test_a_release_since_the_base_makes_requests_stale(api: Api) -> None:
    await published_once(api, {"a": "1"})
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    await api.set_items("shop", "prod", {"a": "2"})
    first = await make_request(api, alice)
    second = await make_request(api, alice, comment="same again")
    assert (await api.publish("shop", "prod", "direct")).status == 201
    for request in (first, second):
        shown = (await api.call("GET", f"{REQUESTS}/{request['id']}")).body
        assert shown["status"] == "stale"
    listed = await api.call("GET", f"{REQUESTS}?status=pending")
    assert listed.body["requests"] == []
    before = await tables(api)
    for request in (first, second):
        where = f"{REQUESTS}/{request['id']}"
        assert_error(
            await api.call("POST", f"{where}/approve", token=bob.secret), 409, "stale_request"
        )
        assert_error(
            await api.call("POST", f"{where}/reject", token=bob.secret), 409, "request_decided"
        )
        assert_error(await api.call("DELETE", where, token=alice.secret), 409, "request_decided")
    assert await tables(api) == before


async def test_a_pending_request_behind_the_latest_release_is_marked_stale_at_approval(
    api: Api,
) -> None:
    # Releases mark pending requests stale; a request left pending (as by a replica of an
    # earlier version) is caught by the approval itself.
    await published_once(api, {"a": "1"})
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    await api.set_items("shop", "prod", {"a": "2"})
    request = await make_request(api, alice)
    assert (await api.publish("shop", "prod")).status == 201
    async with api.app[STORE].transaction() as q:
        await q.conn.execute(
            "UPDATE release_requests SET status = 'pending', decided_at = NULL WHERE id = ?",
            (request["id"],),
        )
    refused = await api.call("POST", f"{REQUESTS}/{request['id']}/approve", token=bob.secret)
    assert_error(refused, 409, "stale_request")
    assert "release 2 was made since its base version 1" in refused.body["error"]["message"]
    shown = (await api.call("GET", f"{REQUESTS}/{request['id']}")).body
    assert (shown["status"], shown["release_version"]) == ("stale", None)
    assert [r["version"] for r in (await api.call("GET", f"{ENV}/releases")).body["releases"]] == [
        2,
        1,
    ]


async def test_decided_requests_cannot_be_decided_again(api: Api) -> None:
    await published_once(api, {"a": "1"})
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    ids = {}
    for name in ("approved", "rejected", "withdrawn"):
        await api.set_items("shop", "prod", {"a": name})
        ids[name] = (await make_request(api, alice, comment=name))["id"]
        if name == "approved":
            answer = await api.call("POST", f"{REQUESTS}/{ids[name]}/approve", token=bob.secret)
            assert answer.status == 201, answer.text
    rejected = await api.call(
        "POST", f"{REQUESTS}/{ids['rejected']}/reject", {"comment": "no"}, token=bob.secret
    )
    # Made after the approval's release, so still pending until rejected here.
    assert rejected.status == 200, rejected.text
    assert (rejected.body["status"], rejected.body["decided_by"]) == ("rejected", bob.actor)
    assert rejected.body["decision_comment"] == "no"
    withdrawn = await api.call("DELETE", f"{REQUESTS}/{ids['withdrawn']}", token=alice.secret)
    assert withdrawn.status == 204, withdrawn.text
    shown = (await api.call("GET", f"{REQUESTS}/{ids['withdrawn']}")).body
    assert (shown["status"], shown["decided_by"]) == ("withdrawn", alice.actor)
    before = await tables(api)
    for name, request_id in ids.items():
        where = f"{REQUESTS}/{request_id}"
        approve = await api.call("POST", f"{where}/approve", token=bob.secret)
        assert_error(approve, 409, "request_decided")
        assert name in approve.body["error"]["message"]
        assert_error(
            await api.call("POST", f"{where}/reject", token=bob.secret), 409, "request_decided"
        )
        assert_error(await api.call("DELETE", where, token=alice.secret), 409, "request_decided")
    assert await tables(api) == before
    actions = [action for action, _ in await audit_actions(api)]
    for action in ("request.create", "request.approve", "request.reject", "request.withdraw"):
        assert action in actions


async def test_only_the_author_or_an_admin_may_withdraw(api: Api) -> None:
    await published_once(api, {"a": "1"})
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    await api.set_items("shop", "prod", {"a": "2"})
    first, second = await make_request(api, alice), await make_request(api, alice)
    before = await tables(api)
    refused = await api.call("DELETE", f"{REQUESTS}/{first['id']}", token=bob.secret)
    assert_error(refused, 403, "forbidden")
    assert await tables(api) == before
    assert (await api.call("DELETE", f"{REQUESTS}/{first['id']}", token=alice.secret)).status == 204
    assert (await api.call("DELETE", f"{REQUESTS}/{second['id']}")).status == 204
    statuses = await api.call("GET", f"{REQUESTS}?status=withdrawn")
    assert [r["id"] for r in statuses.body["requests"]] == [second["id"], first["id"]]


async def test_requests_list_newest_first_by_status(api: Api) -> None:
    await published_once(api, {"a": "1"})
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    made = []
    for n in range(3):
        await api.set_items("shop", "prod", {"a": str(n + 10)})
        made.append((await make_request(api, alice, comment=f"r{n}"))["id"])
    rejected = await api.call("POST", f"{REQUESTS}/{made[1]}/reject", token=bob.secret)
    assert rejected.status == 200
    everything = await api.call("GET", REQUESTS)
    assert [r["id"] for r in everything.body["requests"]] == made[::-1]
    pending = await api.call("GET", f"{REQUESTS}?status=pending")
    assert [r["id"] for r in pending.body["requests"]] == [made[2], made[0]]
    page = await api.call("GET", f"{REQUESTS}?limit=1&before={made[2]}")
    assert [r["id"] for r in page.body["requests"]] == [made[1]]


async def test_twenty_concurrent_approvals_make_exactly_one_release(api: Api) -> None:
    await published_once(api, {"a": "1"})
    await require_approval(api)
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    await api.set_items("shop", "prod", {"a": "2"})
    request = await make_request(api, alice)
    where = f"{REQUESTS}/{request['id']}/approve"
    # Two approvers at once, ten calls each.
    answers = await asyncio.gather(
        *(api.call("POST", where, token=bob.secret if n % 2 else "") for n in range(20))
    )
    created = [a for a in answers if a.status == 201]
    assert len(created) == 1, [a.text for a in answers]
    for answer in answers:
        if answer.status != 201:
            assert_error(answer, 409, "request_decided")
    releases = (await api.call("GET", f"{ENV}/releases")).body["releases"]
    assert [r["version"] for r in releases] == [2, 1]
    shown = (await api.call("GET", f"{REQUESTS}/{request['id']}")).body
    assert (shown["status"], shown["release_version"]) == ("approved", 2)
    approvals = [a for a, _ in await audit_actions(api) if a == "request.approve"]
    assert len(approvals) == 1


# roles (users with roles arrive with the Teams work; principals built here meanwhile)


async def test_roles_decide_who_may_request_approve_and_read(api: Api) -> None:
    await published_once(api, {"a": "1"})
    await api.set_items("shop", "prod", {"a": "2"})
    requests = api.app[SERVICES].requests

    def user(name: str, role: Role) -> Principal:
        return Principal(name, roles={"shop": role}, kind="session", user=name)

    viewer, editor = user("vera", Role.VIEWER), user("eddie", Role.EDITOR)
    alice, bob = user("alice", Role.PUBLISHER), user("bob", Role.PUBLISHER)
    with pytest.raises(AppError) as refused:
        await requests.create(viewer, "shop", "prod", "")
    assert refused.value.code == "forbidden"
    made = await requests.create(editor, "shop", "prod", "from an editor")
    assert made.author == "user:eddie"
    assert [r.id for r in await requests.list_requests(viewer, "shop", "prod", None, 10, None)] == [
        made.id
    ]
    assert (await requests.get_request(viewer, "shop", "prod", made.id)).comment == "from an editor"
    for who in (viewer, editor):
        with pytest.raises(AppError) as refused:
            await requests.approve(who, "shop", "prod", made.id, "")
        assert refused.value.code == "forbidden"
        with pytest.raises(AppError) as refused:
            await requests.reject(who, "shop", "prod", made.id, "")
        assert refused.value.code == "forbidden"
    with pytest.raises(AppError) as refused:
        await requests.withdraw(viewer, "shop", "prod", made.id)
    assert refused.value.code == "forbidden"
    release = await requests.approve(bob, "shop", "prod", made.id, "lgtm")
    assert (release.version, release.author) == (2, "bob")
    own = await requests.create(alice, "shop", "prod", "rollback", rollback_to=1)
    with pytest.raises(AppError) as refused:
        await requests.approve(alice, "shop", "prod", own.id, "")
    assert refused.value.code == "self_approval"
    await requests.withdraw(alice, "shop", "prod", own.id)
    assert (await requests.get_request(viewer, "shop", "prod", own.id)).status == "withdrawn"
