"""Secret values through etcd: records carry them sealed, replicas open them on load, and a
record sealed with a key a replica no longer has (written before a rotation) is read from the
store instead."""

from __future__ import annotations

import asyncio

import aetcd

from devservices import EtcdCluster, free_port
from server.config import EtcdSection
from server.coord.etcd import EtcdCoordinator
from server.coord.etcd_keys import Keys, decode_release, encode_release
from server.domain.secrets import snapshot
from server.published import PublishedConfigs
from server.records import Release, utc_now
from server.secretbox import Keyring, new_key
from tests.coord.helpers import StoreReleases

SECRET = "s3cr3t-through-etcd"


def sealed_release(keyring: Keyring, version: int) -> tuple[Release, str]:
    snap = snapshot(keyring, "vault", "prod", {"k": SECRET, "p": "1"}, {"k"})
    release = Release(
        "vault",
        "prod",
        version,
        snap.checksum,
        "test",
        "",
        utc_now(),
        snap.items,
        secret_keys=snap.secret_keys,
    )
    return release, snap.text


def test_a_release_record_carries_sealed_values_and_its_secret_keys() -> None:
    keyring = Keyring()
    keyring.install(new_key())
    release, _ = sealed_release(keyring, 1)
    value = encode_release(release)
    assert SECRET.encode() not in value
    decoded = decode_release(value).release
    assert decoded.secret_keys == {"k"}
    assert decoded.items == release.items


async def test_a_record_sealed_with_a_key_no_longer_loaded_is_read_from_the_store(
    etcd_module: EtcdCluster, prefix: str, store: StoreReleases, raw_etcd: aetcd.Client
) -> None:
    old, new = Keyring(), Keyring()
    old.install(new_key())
    new.install(new_key())
    published = PublishedConfigs(new)
    coordinator = EtcdCoordinator(
        EtcdSection(endpoints=tuple(etcd_module.client_endpoints), prefix=prefix),
        f"http://127.0.0.1:{free_port()}",
    )
    await coordinator.start(published, store)
    try:
        # The store holds the release re-sealed under the new key; the watch then delivers a
        # record of it sealed under the old one, which this replica does not have.
        rotated, text = sealed_release(new, 1)
        async with store.store.transaction() as q:
            app_id = await q.insert_app("vault", "", utc_now(), "test")
            env_id = await q.insert_env(app_id, "prod", utc_now())
            await q.insert_release(env_id, rotated, text)
        before_rotation, _ = sealed_release(old, 1)
        assert not published.opens(before_rotation)
        await raw_etcd.put(Keys(prefix).release("vault", "prod"), encode_release(before_rotation))
        deadline = asyncio.get_running_loop().time() + 10
        while published.get("vault", "prod") is None:
            assert asyncio.get_running_loop().time() < deadline, "not applied from the store"
            await asyncio.sleep(0.02)
        held = published.get("vault", "prod")
        assert held is not None
        assert held.items == {"k": SECRET, "p": "1"}
        assert held.secret_keys == {"k"}
    finally:
        await coordinator.close()
