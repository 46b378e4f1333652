"""Gray releases on one server, on SQLite and MariaDB: who gets V and who keeps the main
release, over the WebSocket, long polls and plain reads; widen, promote, abandon, rollback;
and bad input refused with nothing changed. The cluster's side is tests/cluster/test_gray.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.api.helpers import Api
from tests.api.test_requests import publisher

ENV = "/api/v1/apps/shop/envs/prod"
WITHIN = 5.0


async def publish(api: Api, value: str) -> int:
    await api.set_items("shop", "prod", {"k": value})
    answer = await api.publish("shop", "prod")
    assert answer.status == 201, answer.text
    return int(answer.body["version"])


async def subscriber(
    api: Api, instance: str | None, labels: dict[str, str] | None = None
) -> aiohttp.ClientWebSocketResponse:
    ws = await api.client.ws_connect(
        "/api/v1/watch", headers={"Authorization": f"Bearer {api.token}"}
    )
    op: dict[str, Any] = {"op": "subscribe", "app": "shop", "env": "prod"}
    if instance is not None:
        op["instance"] = instance
    if labels:
        op["labels"] = labels
    await ws.send_json(op)
    return ws


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await ws.receive(timeout=WITHIN)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data: dict[str, Any] = message.json()
    return data


async def nothing_more(ws: aiohttp.ClientWebSocketResponse) -> None:
    """No message within a moment (the push of the same change reached the others already)."""
    try:
        message = await ws.receive(timeout=0.3)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message {message.data}")


async def read(api: Api, headers: dict[str, str] | None = None, query: str = "") -> Any:
    answer = await api.call("GET", f"{ENV}/config{query}", headers=headers)
    assert answer.status == 200, answer.text
    return answer


async def test_a_gray_release_reaches_only_the_instances_its_rule_takes(api: Api) -> None:
    await api.app_with_env()
    main = await publish(api, "blue")
    canary = await subscriber(api, "pod-1", {"track": "canary"})
    stable = await subscriber(api, "pod-2", {"track": "stable"})
    anonymous = await subscriber(api, None)
    for ws in (canary, stable, anonymous):
        assert (await receive(ws))["version"] == main

    await api.set_items("shop", "prod", {"k": "green"})
    draft = (await api.call("GET", ENV)).body["draft_revision"]
    started = await api.call(
        "POST",
        f"{ENV}/gray",
        {"comment": "try green", "rule": {"labels": {"track": "canary"}}, "draft_revision": draft},
    )
    assert started.status == 201, started.text
    gray = started.body["version"]
    assert gray == main + 1
    assert started.body["gray"] == {"rule": {"labels": {"track": "canary"}}, "status": "active"}
    pushed = await receive(canary)
    assert (pushed["version"], pushed["items"], pushed["gray"]) == (gray, {"k": "green"}, True)
    await nothing_more(stable)
    await nothing_more(anonymous)

    # Plain reads and long polls: an identified matching reader gets V, with its own ETag.
    plain = await read(api)
    assert (plain.body["version"], plain.body["gray"]) == (main, False)
    mine = await read(api, {"X-Config-Instance": "pod-9", "X-Config-Labels": "track=canary"})
    assert (mine.body["version"], mine.body["items"], mine.body["gray"]) == (
        gray,
        {"k": "green"},
        True,
    )
    assert mine.headers["ETag"] != plain.headers["ETag"]
    other = await read(api, {"X-Config-Instance": "pod-8", "X-Config-Labels": "track=stable"})
    assert other.body["version"] == main
    by_query = await read(api, query="?instance=pod-7&labels=track%3Dcanary")
    assert by_query.body["version"] == gray
    poll = await api.call(
        "GET", f"{ENV}/config?after={main}&wait=1&instance=pod-6&labels=track%3Dstable"
    )
    assert poll.status == 304
    env = (await api.call("GET", ENV)).body
    assert env["gray"] == {
        "version": gray,
        "rule": {"labels": {"track": "canary"}},
        "status": "active",
        "main_version": main,
    }
    current = await api.call("GET", f"{ENV}/gray")
    assert current.status == 200
    assert (current.body["version"], current.body["items"]) == (gray, {"k": "green"})
    assert current.body["matched"] == 3  # pod-1 subscribed, pod-9 and pod-7 read (listed)
    listed = (await api.call("GET", f"{ENV}/instances")).body["instances"]
    in_gray = {i["instance"]: i["gray"] for i in listed}
    assert in_gray == {
        "pod-1": True,
        "pod-2": False,
        "pod-9": True,
        "pod-7": True,
        "pod-8": False,
        "pod-6": False,
    }
    # Its rule can be read back, but its items may not go to everyone yet.
    refused = await api.publish("shop", "prod")
    assert refused.status == 409
    assert refused.body["error"]["code"] == "gray_active"
    second = await api.call("POST", f"{ENV}/gray", {"rule": {"percent": 50}})
    assert second.body["error"]["code"] == "gray_active"

    # Widen: the newly taken instances get V at once; the ones that have it are not sent it.
    widened = await api.call("PATCH", f"{ENV}/gray", {"rule": {"percent": 100}})
    assert widened.status == 200, widened.text
    assert widened.body["version"] == gray
    assert (await receive(stable))["version"] == gray
    await nothing_more(canary)
    await nothing_more(anonymous)
    narrowing = await api.call("PATCH", f"{ENV}/gray", {"rule": {"percent": 40}})
    assert narrowing.status == 409
    assert narrowing.body["error"]["code"] == "gray_narrowing"

    # Promote: everyone has V; the gray ones are not sent it again.
    promoted = await api.call("POST", f"{ENV}/gray/promote", {"comment": "good"})
    assert promoted.status == 200, promoted.text
    assert promoted.body["gray"]["status"] == "promoted"
    everyone = await receive(anonymous)
    assert (everyone["version"], everyone["gray"]) == (gray, False)
    await nothing_more(canary)
    await nothing_more(stable)
    assert (await read(api)).body["version"] == gray
    assert (await api.call("GET", f"{ENV}/gray")).body["error"]["code"] == "no_gray"
    assert (await api.call("GET", ENV)).body["gray"] is None
    history = (await api.call("GET", f"{ENV}/releases")).body["releases"]
    assert history[0]["gray"] == {"rule": {"percent": 100}, "status": "promoted"}
    assert history[1]["gray"] is None
    actions = [e["action"] for e in (await api.call("GET", "/api/v1/audit")).body["entries"]]
    assert actions[:3] == ["gray.promote", "gray.widen", "gray.start"]
    for ws in (canary, stable, anonymous):
        await ws.close()


async def test_abandon_and_rollback_end_a_gray_release_with_a_higher_version(api: Api) -> None:
    await api.app_with_env()
    main = await publish(api, "blue")
    canary = await subscriber(api, "pod-1")
    stable = await subscriber(api, "pod-2")
    assert (await receive(canary))["version"] == main
    assert (await receive(stable))["version"] == main
    await api.set_items("shop", "prod", {"k": "green"})
    started = await api.call("POST", f"{ENV}/gray", {"rule": {"instances": ["pod-1"]}})
    assert started.status == 201, started.text
    gray = started.body["version"]
    assert (await receive(canary))["version"] == gray

    abandoned = await api.call("POST", f"{ENV}/gray/abandon", {})
    assert abandoned.status == 201, abandoned.text
    after = abandoned.body["version"]
    assert after == gray + 1
    assert abandoned.body["items"] == {"k": "blue"}
    for ws in (canary, stable):
        pushed = await receive(ws)
        assert (pushed["version"], pushed["items"], pushed["gray"]) == (after, {"k": "blue"}, False)
    stored = (await api.call("GET", f"{ENV}/releases/{gray}")).body
    assert stored["gray"]["status"] == "abandoned"
    # The draft keeps the gray items: fix it and try again.
    assert (await api.call("GET", f"{ENV}/diff")).body["changed"] == {
        "k": {"old": "blue", "new": "green"}
    }
    assert (await api.call("POST", f"{ENV}/gray/abandon", {})).body["error"]["code"] == "no_gray"

    again = await api.call("POST", f"{ENV}/gray", {"rule": {"instances": ["pod-1"]}})
    assert again.status == 201
    assert (await receive(canary))["version"] == again.body["version"]
    rolled = await api.call("POST", f"{ENV}/releases/{main}/rollback", {"comment": "no"})
    assert rolled.status == 201, rolled.text
    assert rolled.body["version"] == again.body["version"] + 1
    for ws in (canary, stable):
        assert (await receive(ws))["version"] == rolled.body["version"]
    ended = (await api.call("GET", f"{ENV}/releases/{again.body['version']}")).body
    assert ended["gray"]["status"] == "abandoned"
    assert (await api.call("GET", ENV)).body["gray"] is None
    # With no gray release, a publish goes to everyone again.
    assert (await publish(api, "red")) == rolled.body["version"] + 1
    for ws in (canary, stable):
        await ws.close()


async def test_a_subscriber_that_arrives_or_comes_back_mid_gray_gets_its_own_version(
    api: Api,
) -> None:
    await api.app_with_env()
    main = await publish(api, "blue")
    await api.set_items("shop", "prod", {"k": "green"})
    started = await api.call("POST", f"{ENV}/gray", {"rule": {"labels": {"zone": "a"}}})
    gray = started.body["version"]
    late = await subscriber(api, "pod-3", {"zone": "a"})
    assert (await receive(late))["version"] == gray
    await late.close()
    back = await subscriber(api, "pod-3", {"zone": "a"})
    assert (await receive(back))["version"] == gray
    outside = await subscriber(api, "pod-4", {"zone": "b"})
    assert (await receive(outside))["version"] == main
    for ws in (back, outside):
        await ws.close()


async def test_bad_rules_and_courses_without_a_gray_change_nothing(api: Api) -> None:
    await api.app_with_env()
    await api.set_items("shop", "prod", {"k": "v"})
    never = await api.call("POST", f"{ENV}/gray", {"rule": {"percent": 10}})
    assert never.status == 409
    assert never.body["error"]["code"] == "conflict"
    main = await publish(api, "blue")
    await api.set_items("shop", "prod", {"k": "green"})
    bad_rules: list[Any] = [
        {},
        {"labels": {}},
        {"percent": 101},
        {"percent": -1},
        {"percent": "10"},
        {"percent": True},
        {"labels": {"Zone": "a"}},
        {"instances": ["bad id!"]},
        {"instances": []},
        {"instances": None, "labels": None, "percent": None},
        {"labels": None, "percent": 10},
        {"labels": {"zone": ""}},
        {"labels": {"zone": "a"}, "colour": "red"},
        "everyone",
    ]
    for rule in bad_rules:
        answer = await api.call("POST", f"{ENV}/gray", {"rule": rule})
        assert answer.status == 400, (rule, answer.text)
        assert answer.body["error"]["code"] == "invalid_request", rule
    missing = await api.call("POST", f"{ENV}/gray", {"comment": "no rule"})
    assert missing.status == 400
    for method, path in (
        ("PATCH", f"{ENV}/gray"),
        ("POST", f"{ENV}/gray/promote"),
        ("POST", f"{ENV}/gray/abandon"),
    ):
        body = {"rule": {"percent": 5}} if method == "PATCH" else {}
        answer = await api.call(method, path, body)
        assert answer.status == 404, (path, answer.text)
        assert answer.body["error"]["code"] == "no_gray"
    stale = await api.call("POST", f"{ENV}/gray", {"rule": {"percent": 5}, "draft_revision": 1})
    assert stale.body["error"]["code"] == "draft_changed"
    # Nothing was made: the draft is still to publish, and everyone has version main.
    assert (await read(api)).body["version"] == main
    releases = (await api.call("GET", f"{ENV}/releases")).body["releases"]
    assert [r["version"] for r in releases] == [main]
    assert (await api.call("GET", ENV)).body["gray"] is None


async def test_a_gray_release_in_an_approval_env_needs_an_emergency_from_an_admin(
    api: Api,
) -> None:
    await api.app_with_env()
    await publish(api, "blue")
    assert (await api.call("PATCH", ENV, {"approval_required": True})).status == 200
    await api.set_items("shop", "prod", {"k": "green"})
    refused = await api.call("POST", f"{ENV}/gray", {"rule": {"percent": 10}})
    assert refused.status == 409
    assert refused.body["error"]["code"] == "approval_required"
    urgent = await api.call("POST", f"{ENV}/gray", {"rule": {"percent": 10}, "emergency": True})
    assert urgent.status == 201, urgent.text
    # Its course needs no second approval.
    assert (await api.call("PATCH", f"{ENV}/gray", {"rule": {"percent": 30}})).status == 200
    assert (await api.call("POST", f"{ENV}/gray/promote")).status == 200
    await asyncio.sleep(0)


async def test_a_preview_counts_the_live_instances_a_rule_would_take(api: Api) -> None:
    await api.app_with_env()
    await publish(api, "blue")
    sockets = [
        await subscriber(api, f"pod-{n}", {"track": "canary" if n < 2 else "stable"})
        for n in range(5)
    ]
    for ws in sockets:
        await receive(ws)
    by_label = await api.call(
        "POST", f"{ENV}/gray/preview", {"rule": {"labels": {"track": "canary"}}}
    )
    assert by_label.status == 200, by_label.text
    assert by_label.body == {"matched": 2, "total": 5, "instances": ["pod-0", "pod-1"]}
    by_id = await api.call(
        "POST", f"{ENV}/gray/preview", {"rule": {"instances": ["pod-4", "gone"], "percent": 0}}
    )
    assert by_id.body == {"matched": 1, "total": 5, "instances": ["pod-4"]}
    everyone = await api.call("POST", f"{ENV}/gray/preview", {"rule": {"percent": 100}})
    assert everyone.body["matched"] == 5
    bad = await api.call("POST", f"{ENV}/gray/preview", {"rule": {"percent": 101}})
    assert (bad.status, bad.body["error"]["code"]) == (400, "invalid_request")
    # nothing started
    assert (await api.call("GET", f"{ENV}/gray")).status == 404
    for ws in sockets:
        await ws.close()


async def test_a_release_request_for_a_gray_release_starts_it_when_approved(api: Api) -> None:
    await api.app_with_env()
    main = await publish(api, "blue")
    assert (await api.call("PATCH", ENV, {"approval_required": True})).status == 200
    canary = await subscriber(api, "pod-1", {"track": "canary"})
    stable = await subscriber(api, "pod-2", {"track": "stable"})
    for ws in (canary, stable):
        assert (await receive(ws))["version"] == main
    alice, bob = await publisher(api, "alice"), await publisher(api, "bob")
    assert (await api.call("POST", "/api/v1/apps/shop/envs", {"name": "dev"})).status == 201
    await api.set_items("shop", "dev", {"k": "new"})
    never = await api.call(
        "POST",
        "/api/v1/apps/shop/envs/dev/release-requests",
        {"comment": "", "gray": {"percent": 5}},
        token=alice.secret,
    )
    # A gray release needs a main release for the others to keep.
    assert (never.status, never.body["error"]["code"]) == (409, "conflict"), never.text

    await api.set_items("shop", "prod", {"k": "green"})
    made = await api.call(
        "POST",
        f"{ENV}/release-requests",
        {"comment": "canary green", "gray": {"labels": {"track": "canary"}}},
        token=alice.secret,
    )
    assert made.status == 201, made.text
    assert made.body["gray"] == {"labels": {"track": "canary"}}
    assert made.body["diff"]["changed"] == {"k": {"old": "blue", "new": "green"}}
    shown = await api.call("GET", f"{ENV}/release-requests/{made.body['id']}")
    assert shown.body["gray"] == {"labels": {"track": "canary"}}
    await nothing_more(canary)
    # The draft moves on after the request: approval starts what was frozen.
    await api.set_items("shop", "prod", {"k": "red"})

    approved = await api.call(
        "POST", f"{ENV}/release-requests/{made.body['id']}/approve", {}, token=bob.secret
    )
    assert approved.status == 201, approved.text
    gray = approved.body["version"]
    assert approved.body["items"] == {"k": "green"}
    assert approved.body["gray"] == {
        "rule": {"labels": {"track": "canary"}},
        "status": "active",
    }
    got = await receive(canary)
    assert (got["version"], got["items"], got["gray"]) == (gray, {"k": "green"}, True)
    await nothing_more(stable)
    env = (await api.call("GET", ENV)).body
    assert env["gray"]["version"] == gray
    assert env["gray"]["main_version"] == main
    decided = await api.call("GET", f"{ENV}/release-requests/{made.body['id']}")
    assert (decided.body["status"], decided.body["release_version"]) == ("approved", gray)
    entries = (await api.call("GET", "/api/v1/audit?app=shop&action=request.approve")).body
    assert "gray version" in entries["entries"][0]["summary"]
    # Its course needs no second approval; a plain request meanwhile waits for the gray.
    assert (await api.call("PATCH", f"{ENV}/gray", {"rule": {"percent": 100}})).status == 200
    got = await receive(stable)
    assert (got["version"], got["gray"]) == (gray, True)
    for ws in (canary, stable):
        await ws.close()
