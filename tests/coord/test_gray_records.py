"""A gray release's etcd record: one key holds the env's whole state (the gray release and
the main release everyone else keeps), so a replica applies it without the store."""

from __future__ import annotations

import orjson
import pytest

from server.coord import etcd_keys
from server.coord.etcd_keys import decode_release, encode_release
from server.domain.canonical import checksum
from server.published import PublishedConfigs
from server.records import Gray, GrayRule, GrayStatus, Release, utc_now


def release(version: int, gray: Gray | None = None, **items: str) -> Release:
    values = items or {"v": str(version)}
    return Release(
        "shop", "prod", version, checksum(values), "test", "", utc_now(), values, gray=gray
    )


RULE = GrayRule(labels={"zone": "a"}, instances=frozenset({"pod-1", "pod-2"}), percent=10)


def test_an_active_gray_record_carries_its_rule_step_and_main_release() -> None:
    main = release(4, color="blue")
    gray = release(5, Gray(RULE, GrayStatus.ACTIVE, 2, 4, main), color="green")
    record = decode_release(encode_release(gray))
    assert record.inline
    decoded = record.release
    assert decoded == gray
    assert decoded.gray is not None
    assert decoded.gray.rule == RULE
    assert decoded.gray.step == 2
    assert decoded.stamp == (5, 2)
    assert decoded.gray.main == main
    # What a replica does with it: both releases, each reader its own.
    published = PublishedConfigs()
    assert published.apply(decoded)
    assert published.get("shop", "prod") == main
    assert published.for_reader("shop", "prod", "pod-2", {}) == gray


def test_a_promoted_release_travels_as_a_plain_one_with_its_gray_history() -> None:
    promoted = release(5, Gray(RULE, GrayStatus.PROMOTED, 3, 4))
    record = decode_release(encode_release(promoted))
    assert record.inline
    assert record.release.gray == promoted.gray
    assert "main" not in orjson.loads(encode_release(promoted))
    plain = decode_release(encode_release(release(6)))
    assert plain.release.gray is None
    assert plain.release.stamp == (6, 0)


def test_a_gray_record_too_large_for_etcd_leaves_both_releases_to_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(etcd_keys, "INLINE_ITEMS_LIMIT", 600)
    main = release(4, big="m" * 400)
    gray = release(5, Gray(RULE, GrayStatus.ACTIVE, 1, 4, main), v="small")
    # Its own items fit, with its main release they do not: inline without the main, which
    # a replica holding version 4 already has (one that does not reads the store).
    raw = orjson.loads(encode_release(gray))
    assert "main" not in raw
    assert raw["items"] == {"v": "small"}
    record = decode_release(encode_release(gray))
    assert record.inline
    assert record.release.gray is not None
    assert record.release.gray.main is None
    held = PublishedConfigs()
    held.apply(main)
    assert held.apply(record.release)
    assert held.for_reader("shop", "prod", "pod-1", {}) == gray
    assert not PublishedConfigs().apply(record.release)
    huge = release(5, Gray(RULE, GrayStatus.ACTIVE, 1, 4, main), v="g" * 700)
    assert orjson.loads(encode_release(huge))["inline"] is False


@pytest.mark.parametrize(
    "gray",
    [
        {"rule": {}, "status": "sideways", "step": 1, "main_version": 1},
        {"rule": {"percent": "ten"}, "status": "active", "step": 1, "main_version": 1},
        {"status": "active", "step": 1, "main_version": 1},
        "active",
    ],
)
def test_a_malformed_gray_part_is_not_a_release_record(gray: object) -> None:
    raw = orjson.loads(encode_release(release(2)))
    raw["gray"] = gray
    with pytest.raises(ValueError, match="not a release record"):
        decode_release(orjson.dumps(raw))
