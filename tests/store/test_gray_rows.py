"""Gray releases in the store, on both databases: the rule and status travel with the release
row, and the latest release of an env in gray comes with the main release."""

from __future__ import annotations

from pathlib import Path

from server.domain.canonical import canonical_json, checksum
from server.records import Gray, GrayRule, GrayStatus, Release, utc_now
from server.store.queries import Queries
from tests.store.test_migrations import store_for

RULE = GrayRule(labels={"zone": "a"}, instances=frozenset({"pod-7"}), percent=25)


def release(env: str, version: int, gray: Gray | None = None) -> Release:
    items = {"v": f"{env}-{version}"}
    return Release("shop", env, version, checksum(items), "ann", "", utc_now(), items, gray=gray)


async def insert(q: Queries, env_id: int, row: Release) -> None:
    await q.insert_release(env_id, row, canonical_json(row.items))


async def test_a_gray_release_row_keeps_its_rule_and_brings_its_main_release(
    store_url: str, tmp_path: Path
) -> None:
    store = store_for(store_url, tmp_path)
    await store.open()
    try:
        now = utc_now()
        async with store.transaction() as q:
            app_id = await q.insert_app("shop", "", now, "ann")
            prod = await q.insert_env(app_id, "prod", now)
            staging = await q.insert_env(app_id, "staging", now)
            main = release("prod", 1)
            await insert(q, prod, main)
            await insert(q, prod, release("prod", 2, Gray(RULE, GrayStatus.ACTIVE, 1, 1)))
            await insert(q, staging, release("staging", 1))
        async with store.reader() as q:
            latest = await q.latest_release(prod)
            every = {r.env: r for r in await q.latest_releases()}
            listed = await q.releases(prod, 10, None)
        assert latest is not None
        assert latest.gray == Gray(RULE, GrayStatus.ACTIVE, 1, 1)
        assert latest.gray is not None
        assert latest.gray.main == main
        assert latest.gray.main.items == {"v": "prod-1"}
        assert every["prod"].gray is not None
        assert every["prod"].gray.main == main
        assert every["staging"].gray is None
        assert [(r.version, r.gray) for r in listed] == [(2, latest.gray), (1, None)]

        # A widen, then a promote: the same row, a newer step; a promoted release is everyone's.
        wider = Gray(GrayRule(percent=60), GrayStatus.ACTIVE, 2, 1)
        async with store.transaction() as q:
            await q.set_gray(prod, 2, wider)
        async with store.reader() as q:
            widened = await q.latest_release(prod)
        assert widened is not None
        assert widened.gray == wider
        assert widened.stamp == (2, 2)
        async with store.reader() as q:
            # what the refresh compares with etcd's records
            assert await q.latest_stamps() == {
                ("shop", "prod"): (2, 2),
                ("shop", "staging"): (1, 0),
            }
        promoted = Gray(GrayRule(percent=60), GrayStatus.PROMOTED, 3, 1)
        async with store.transaction() as q:
            await q.set_gray(prod, 2, promoted)
        async with store.reader() as q:
            after = await q.latest_release(prod)
            first = await q.release(prod, 1)
        assert after is not None
        assert after.gray == promoted
        assert after.gray is not None
        assert after.gray.main is None
        assert after.items == {"v": "prod-2"}
        assert first == main
    finally:
        await store.close()
