"""The in-memory side of gray releases: which instances a rule takes, what widens it, and
what each reader is served while a gray release is active."""

from __future__ import annotations

import asyncio
import hashlib

from server.domain.canonical import checksum
from server.published import PublishedConfigs
from server.records import Gray, GrayRule, GrayStatus, Release, in_percent, utc_now


def release(version: int, gray: Gray | None = None, **items: str) -> Release:
    """A release of shop/prod as the store would have committed it."""
    values = items or {"v": str(version)}
    return Release(
        "shop", "prod", version, checksum(values), "test", "", utc_now(), values, gray=gray
    )


def gray_of(
    main: Release | None, rule: GrayRule, step: int = 1, status: GrayStatus = GrayStatus.ACTIVE
) -> Gray:
    """The gray part of the release after `main`."""
    version = main.version if main is not None else 0
    return Gray(rule, status, step, version, main)


def test_percent_is_the_contracts_stable_hash_and_only_grows() -> None:
    ids = [f"pod-{n}" for n in range(400)]
    for instance in ids[:20]:
        digest = hashlib.sha256(f"shop/prod/{instance}".encode()).hexdigest()
        assert in_percent("shop", "prod", instance, 37) == (int(digest, 16) % 100 < 37)
    at = {p: {i for i in ids if in_percent("shop", "prod", i, p)} for p in (0, 10, 50, 100)}
    assert at[0] == set()
    assert at[100] == set(ids)
    assert at[10] <= at[50] <= at[100]
    assert 20 <= len(at[10]) <= 60  # about a tenth of 400
    # Another env shuffles the fleet differently.
    other = {i for i in ids if in_percent("shop", "staging", i, 10)}
    assert other != at[10]


def test_a_rule_takes_labels_all_pairs_instances_or_percent_never_an_anonymous_reader() -> None:
    rule = GrayRule(labels={"zone": "a", "tier": "web"}, instances=frozenset({"pod-9"}))
    assert rule.matches("shop", "prod", "pod-1", {"zone": "a", "tier": "web", "x": "y"})
    assert not rule.matches("shop", "prod", "pod-1", {"zone": "a"})
    assert rule.matches("shop", "prod", "pod-9", {})
    assert not rule.matches("shop", "prod", None, {"zone": "a", "tier": "web"})
    everyone = GrayRule(percent=100)
    assert everyone.matches("shop", "prod", "anything", {})
    assert not everyone.matches("shop", "prod", None, {})
    assert not GrayRule(percent=0).matches("shop", "prod", "pod-1", {})


def test_widening_drops_nobody_and_narrowing_names_what_it_drops() -> None:
    rule = GrayRule(labels={"zone": "a", "tier": "web"}, instances=frozenset({"p1"}), percent=10)
    wider = GrayRule(labels={"zone": "a"}, instances=frozenset({"p1", "p2"}), percent=50)
    assert rule.narrowed_by(wider) == []
    assert GrayRule(percent=10).narrowed_by(GrayRule(percent=10, labels={"zone": "b"})) == []
    narrower = GrayRule(labels={"zone": "a", "tier": "db"}, percent=5)
    assert rule.narrowed_by(narrower) == [
        "label tier=db",
        "instance p1",
        "percent 10 to 5",
    ]
    assert GrayRule(labels={"zone": "a"}).narrowed_by(GrayRule(percent=99)) == ["the labels"]
    assert GrayRule(labels={"zone": "a"}).narrowed_by(GrayRule(percent=100)) == []
    assert rule.to_json() == {
        "labels": {"tier": "web", "zone": "a"},
        "instances": ["p1"],
        "percent": 10,
    }


def test_an_active_gray_reaches_its_instances_and_everyone_else_keeps_the_main_release() -> None:
    published = PublishedConfigs()
    pushed: list[tuple[str, int]] = []
    published.add_listener(lambda r: pushed.append(("main", r.version)))
    published.add_gray_listener(lambda r: pushed.append(("gray", r.version)))
    main = release(1, color="blue")
    assert published.apply(main)
    rule = GrayRule(labels={"canary": "yes"})
    gray = release(2, gray_of(main, rule), color="green")
    assert published.apply(gray)
    assert published.get("shop", "prod") == main
    assert published.gray("shop", "prod") == gray
    assert published.version("shop", "prod") == 2
    assert published.stamp("shop", "prod") == (2, 1)
    canary = published.for_reader("shop", "prod", "pod-1", {"canary": "yes"})
    assert canary is not None
    assert canary.items == {"color": "green"}
    other = published.for_reader("shop", "prod", "pod-2", {"canary": "no"})
    assert other is not None
    assert other.items == {"color": "blue"}
    anonymous = published.for_reader("shop", "prod", None, {"canary": "yes"})
    assert anonymous == main
    # A widen is a newer state of the same version; the same state again is not.
    wider = release(2, gray_of(main, GrayRule(percent=100), step=2), color="green")
    assert not published.apply(gray)
    assert published.apply(wider)
    assert published.for_reader("shop", "prod", "pod-2", {}) == wider
    # Promote: version 2 becomes everyone's and the gray ends.
    promoted = release(2, gray_of(main, GrayRule(percent=100), 3, GrayStatus.PROMOTED))
    assert published.apply(promoted)
    assert published.gray("shop", "prod") is None
    assert published.get("shop", "prod") == promoted
    assert published.for_reader("shop", "prod", None, {}) == promoted
    assert pushed == [("main", 1), ("gray", 2), ("gray", 2), ("main", 2)]
    assert published.stamps() == {("shop", "prod"): (2, 3)}


def test_a_gray_release_without_its_main_release_at_hand_is_refused() -> None:
    published = PublishedConfigs()
    published.apply(release(1))
    orphan = release(3, Gray(GrayRule(percent=10), GrayStatus.ACTIVE, 1, 2), v="x")
    assert not published.apply(orphan)
    assert published.gray("shop", "prod") is None
    # Carrying its main release, it brings both (a replica that was behind catches up).
    main = release(2, v="main")
    assert published.apply(release(3, gray_of(main, GrayRule(percent=10)), v="x"))
    assert published.get("shop", "prod") == main
    assert published.version("shop", "prod") == 3
    # The main release it names is the one held: it need not travel.
    fresh = PublishedConfigs()
    fresh.apply(main)
    lean = Gray(GrayRule(percent=10), GrayStatus.ACTIVE, 1, 2)
    assert fresh.apply(release(3, lean, v="x"))
    assert fresh.get("shop", "prod") == main


async def test_a_long_poll_wakes_for_the_gray_release_only_when_the_rule_takes_it() -> None:
    published = PublishedConfigs()
    main = release(1)
    published.apply(main)
    canary = asyncio.create_task(
        published.wait_newer("shop", "prod", 1, 5, "pod-1", {"canary": "yes"})
    )
    other = asyncio.create_task(published.wait_newer("shop", "prod", 1, 0.3, "pod-2", {}))
    await asyncio.sleep(0.05)
    gray = release(2, gray_of(main, GrayRule(labels={"canary": "yes"})), v="gray")
    published.apply(gray)
    assert await canary == gray
    assert await other is None  # woken, but its release is still version 1: it waited on
    abandoned = release(3, v="1")
    published.apply(abandoned)
    assert await published.wait_newer("shop", "prod", 2, 1, "pod-1", {"canary": "yes"}) == (
        abandoned
    )


def test_removing_the_env_or_app_drops_its_gray_release() -> None:
    published = PublishedConfigs()
    main = release(1)
    published.apply(main)
    published.apply(release(2, gray_of(main, GrayRule(percent=50))))
    published.remove_env("shop", "prod")
    assert published.gray("shop", "prod") is None
    assert published.stamp("shop", "prod") == (0, 0)
    published.apply(main)
    published.apply(release(2, gray_of(main, GrayRule(percent=50))))
    published.remove_app("shop")
    assert published.stamps() == {}
