"""The instance registry on its own: identity patterns, ttl, coalescing, summaries and peers."""

from __future__ import annotations

import hashlib

import pytest

from server import instances
from server.instances import (
    Filters,
    InstanceRegistry,
    Transport,
    check_instance,
    decode_summary,
    parse_labels,
)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def registry(clock: Clock, replica: str = "r1", ttl: float = 600) -> InstanceRegistry:
    return InstanceRegistry(replica, ttl, clock)


def test_labels_are_pairs_with_either_separator_and_keys_in_pattern() -> None:
    assert parse_labels("zone=eu-1, tier:web ,url=http://x:80/") == {
        "zone": "eu-1",
        "tier": "web",
        "url": "http://x:80/",
    }
    assert parse_labels("") == {}
    assert parse_labels("  ") == {}
    for bad in ("zone", "=eu", "zone=", "Zone=eu", "zone=eu,zone=us", "zone=eu,", "z=\x07"):
        with pytest.raises(ValueError, match="label"):
            parse_labels(bad)
    assert check_instance("a" * 128) == "a" * 128
    for bad in ("", "a" * 129, "a b", "a\n", "é"):
        with pytest.raises(ValueError, match="instance"):
            check_instance(bad)


def test_a_known_reader_is_updated_in_place_and_marks_the_summary_at_a_coarse_grain(
    clock: Clock,
) -> None:
    r = registry(clock, ttl=600)
    marks: list[bool] = []
    r.add_listener(lambda: marks.append(True))
    r.read("shop", "prod", "web-1", "zone=eu", Transport.HTTP, "10.0.0.1", 3)
    [record] = r.instances("shop", "prod")
    assert (record.labels, record.delivered_version) == ({"zone": "eu"}, 3)
    assert marks == [True]
    r.summary()  # written: clean again
    clock.now += 30  # under ttl / 10: last_seen alone does not make a write
    r.read("shop", "prod", "web-1", "zone=eu", Transport.HTTP, "10.0.0.1", 3)
    assert not r.dirty
    assert r.instances("shop", "prod")[0] is record  # the same record, updated in place
    assert record.last_seen == clock.now
    clock.now += 31  # 61 s since it was last marked
    r.read("shop", "prod", "web-1", "zone=eu", Transport.HTTP, "10.0.0.1", 3)
    assert r.dirty
    r.summary()
    r.read("shop", "prod", "web-1", "zone=eu", Transport.HTTP, "10.0.0.1", 4)  # a new version
    assert r.dirty
    r.summary()
    r.read("shop", "prod", "web-1", "zone=us", Transport.LONGPOLL, "10.0.0.1", 4)
    assert (record.labels, record.transport) == ({"zone": "us"}, Transport.LONGPOLL)
    assert r.dirty


def test_http_readers_expire_after_the_ttl_and_subscribers_do_not(clock: Clock) -> None:
    r = registry(clock, ttl=10)
    r.read("shop", "prod", "reader", None, Transport.HTTP, None, 1)
    r.subscribed("shop", "prod", "socket", {}, None, None)
    clock.now += 10.5
    assert [i.instance for i in r.instances("shop", "prod")] == ["socket"]  # lazily
    assert len(r) == 2
    assert r.sweep() == 1
    assert len(r) == 1
    assert r.sweep() == 0


def test_one_record_per_id_a_subscription_first_then_the_latest_seen(clock: Clock) -> None:
    here = registry(clock, "r1")
    there = registry(clock, "r2")
    here.read("shop", "prod", "pod", None, Transport.HTTP, None, 1)
    clock.now += 1
    there.subscribed("shop", "prod", "pod", {"on": "r2"}, None, 1)
    clock.now += 1
    here.read("shop", "prod", "pod", None, Transport.HTTP, None, 1)
    here.peer_summary("r2", 10, there.summary())
    [pod] = here.instances("shop", "prod")
    assert (pod.replica, pod.transport) == ("r2", Transport.WEBSOCKET)
    here.peer_summary("r2", 11, None)  # its lease expired
    [pod] = here.instances("shop", "prod")
    assert (pod.replica, pod.transport) == ("r1", Transport.HTTP)


def test_a_newer_subscription_of_an_id_survives_the_end_of_the_older(clock: Clock) -> None:
    r = registry(clock)
    old = r.subscribed("shop", "prod", "pod", {"v": "1"}, None, None)
    new = r.subscribed("shop", "prod", "pod", {"v": "2"}, None, None)
    r.unsubscribed(old)
    assert r.instances("shop", "prod") == [new]
    r.unsubscribed(new)
    assert r.instances("shop", "prod") == []


def test_acks_only_go_up_and_the_version_run_is_the_acked_one(clock: Clock) -> None:
    r = registry(clock)
    record = r.subscribed("shop", "prod", "pod", {}, None, 2)
    assert record.version == 2  # it said it holds 2 (after=2)
    r.delivered(record, 3)
    assert record.version == 3
    r.acked(record, 2)
    assert (record.version, record.applied_version) == (2, 2)
    r.acked(record, 3)
    r.acked(record, 1)
    assert record.applied_version == 3
    listing = r.listing("shop", "prod", Filters(version=3))
    assert listing["summary"] == {"total": 1, "by_version": {"3": 1}}


def test_a_summary_carries_every_field_and_peers_keep_the_newest(clock: Clock) -> None:
    here = registry(clock, "r1")
    there = registry(clock, "r2")
    record = there.subscribed("shop", "prod", "pod-1", {"zone": "eu"}, "10.0.0.9", None)
    there.delivered(record, 4)
    there.acked(record, 4)
    there.read("shop", "dev", "reader", "a=b", Transport.LONGPOLL, "::1", 2)
    old = there.summary()
    assert not there.dirty
    decoded = decode_summary(old)
    [copy] = decoded[("shop", "prod")]
    assert copy.to_json() == record.to_json()
    [reader] = decoded[("shop", "dev")]
    assert (reader.transport, reader.labels, reader.address) == (
        Transport.LONGPOLL,
        {"a": "b"},
        "::1",
    )

    here.peer_summary("r2", 5, old)
    there.unsubscribed(record)
    here.peer_summary("r2", 3, there.summary())  # an older revision arriving late: ignored
    assert [i.instance for i in here.instances("shop", "prod")] == ["pod-1"]
    here.peer_summary("r1", 9, old)  # its own name: never a peer
    assert here.peers == ["r2"]
    # A snapshot read at revision 7 no longer has r2, but r2's held summary is from 8: kept.
    here.peer_summary("r2", 8, old)
    here.peer_snapshot(7, {})
    assert here.peers == ["r2"]
    here.peer_snapshot(9, {})
    assert here.peers == []
    here.peer_snapshot(9, {"r3": (9, b"not zlib")})
    assert here.instances("shop", "prod") == []  # a bad summary is logged and ignored
    here.forget_peers()
    assert here.peers == []


def test_a_summary_over_the_size_limit_leaves_out_the_readers_seen_longest_ago(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 100_000  # the real one (1 MiB) takes about 80,000 readers to reach
    monkeypatch.setattr(instances, "MAX_SUMMARY_BYTES", limit)
    r = registry(clock)
    r.subscribed("shop", "prod", "socket", {}, None, None)
    # Ids of hashes compress little: 3,000 of them are well over the limit.
    for n in range(3000):
        r.read(
            "shop",
            "prod",
            hashlib.sha512(str(n).encode()).hexdigest(),
            None,
            Transport.HTTP,
            None,
            1,
        )
        clock.now += 0.001
    value = r.summary()
    assert len(value) <= limit
    kept = {i.instance for i in decode_summary(value)[("shop", "prod")]}
    assert "socket" in kept
    assert 1 < len(kept) < 3001
    newest = max(r.instances("shop", "prod"), key=lambda i: i.last_seen)
    assert newest.instance in kept
    assert len(r.instances("shop", "prod")) == 3001  # this replica still lists them all
