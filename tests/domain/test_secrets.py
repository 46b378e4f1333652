"""Sealing secret values: AES-256-GCM round trips, key ids, binding to the item, keys on disk."""

from __future__ import annotations

import base64
import dataclasses
import stat
from pathlib import Path

import pytest

from server.config import Config, EtcdSection, SecretsSection, StoreSection
from server.domain.canonical import checksum
from server.domain.diff import diff_items
from server.domain.secrets import load_keys, snapshot
from server.published import PublishedConfigs
from server.records import Release
from server.secretbox import (
    Keyring,
    SecretKeyError,
    decode_key,
    encode_key,
    key_id,
    new_key,
    sealed_key_id,
    where,
)

SECRET = "s3cr3t-value-ü"


def keyring(*old: bytes, current: bytes | None = None) -> Keyring:
    ring = Keyring()
    ring.install(current if current is not None else new_key(), old)
    return ring


def test_a_sealed_value_opens_to_the_clear_value_and_names_its_key() -> None:
    ring = keyring()
    sealed = ring.seal(where("shop", "prod", "db.password"), SECRET)
    assert sealed.startswith(f"v1:{ring.current_id}:")
    assert SECRET not in sealed
    assert ring.open(where("shop", "prod", "db.password"), sealed) == SECRET
    assert sealed_key_id(sealed) == ring.current_id
    assert len(ring.current_id) == 16


def test_two_seals_of_one_value_differ_because_each_has_a_random_nonce() -> None:
    ring = keyring()
    at = where("shop", "prod", "k")
    assert ring.seal(at, SECRET) != ring.seal(at, SECRET)


@pytest.mark.parametrize(
    "other",
    [where("shop", "prod", "other"), where("shop", "dev", "k"), where("bank", "prod", "k")],
)
def test_a_sealed_value_moved_to_another_item_does_not_open(other: str) -> None:
    ring = keyring()
    sealed = ring.seal(where("shop", "prod", "k"), SECRET)
    with pytest.raises(SecretKeyError, match="does not open") as err:
        ring.open(other, sealed)
    assert SECRET not in str(err.value)


def test_an_altered_sealed_value_does_not_open() -> None:
    ring = keyring()
    at = where("shop", "prod", "k")
    sealed = ring.seal(at, SECRET)
    raw = bytearray(base64.b64decode(sealed.split(":", 2)[2]))
    raw[-1] ^= 1
    altered = f"v1:{ring.current_id}:{base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(SecretKeyError, match="does not open"):
        ring.open(at, altered)
    for garbage in ("plain text", f"v1:{ring.current_id}:!!!", f"v1:{ring.current_id}:AAAA"):
        with pytest.raises(SecretKeyError):
            ring.open(at, garbage)


def test_a_value_sealed_with_a_key_not_loaded_is_refused_by_its_key_id() -> None:
    sealed = keyring().seal(where("a", "b", "k"), SECRET)
    other = keyring()
    with pytest.raises(SecretKeyError, match="not loaded"):
        other.open(where("a", "b", "k"), sealed)
    assert not other.opens(sealed)


def test_rotation_reseals_under_the_new_key_while_the_old_key_still_opens() -> None:
    old_key, new = new_key(), new_key()
    before = keyring(current=old_key)
    at = where("shop", "prod", "k")
    sealed = before.seal(at, SECRET)
    after = keyring(old_key, current=new)
    assert after.open(at, sealed) == SECRET
    resealed = after.reseal(at, sealed)
    assert resealed is not None
    assert sealed_key_id(resealed) == key_id(new)
    assert after.reseal(at, resealed) is None
    assert keyring(current=new).open(at, resealed) == SECRET


def test_keys_are_base64_of_32_bytes_and_errors_never_quote_the_text() -> None:
    key = new_key()
    assert decode_key(encode_key(key) + "\n", "test") == key
    for bad in ("not base64 at all!", base64.b64encode(b"short").decode()):
        with pytest.raises(SecretKeyError) as err:
            decode_key(bad, "the key file K")
        assert bad not in str(err.value)
        assert "the key file K" in str(err.value)


def test_a_snapshot_seals_secrets_and_its_checksum_is_over_the_clear_items() -> None:
    ring = keyring()
    clear = {"db.password": SECRET, "db.host": "h"}
    snap = snapshot(ring, "shop", "prod", clear, {"db.password", "gone"})
    assert snap.checksum == checksum(clear)
    assert snap.secret_keys == {"db.password"}
    assert snap.items["db.host"] == "h"
    assert SECRET not in snap.text
    assert ring.open(where("shop", "prod", "db.password"), snap.items["db.password"]) == SECRET


def test_the_published_configs_hold_a_sealed_release_opened() -> None:
    published = PublishedConfigs()
    published.keyring.install(new_key())
    snap = snapshot(published.keyring, "shop", "prod", {"k": SECRET, "p": "1"}, {"k"})
    release = Release(
        "shop", "prod", 1, snap.checksum, "a", "", "t", snap.items, secret_keys=snap.secret_keys
    )
    assert published.apply(release)
    held = published.get("shop", "prod")
    assert held is not None
    assert held.items == {"k": SECRET, "p": "1"}
    assert held.shown_items(reveal=False) == {"k": None, "p": "1"}
    assert held.to_json(reveal=True)["items"]["k"] == SECRET


def test_a_release_no_loaded_key_opens_is_not_served() -> None:
    sealed = snapshot(keyring(), "shop", "prod", {"k": SECRET}, {"k"})
    published = PublishedConfigs()
    published.keyring.install(new_key())
    release = Release("shop", "prod", 1, sealed.checksum, "a", "", "t", sealed.items)
    release = dataclasses.replace(release, secret_keys=sealed.secret_keys)
    assert not published.opens(release)
    assert not published.apply(release)
    assert published.get("shop", "prod") is None


def test_a_masked_diff_shows_which_secrets_changed_but_no_value() -> None:
    diff = diff_items({"s": "old", "gone": "x", "p": "1"}, {"s": "new", "add": "y", "p": "2"}, 3)
    shown = diff.masked({"s", "gone", "add"}).to_json()
    assert shown["changed"] == {"p": {"old": "1", "new": "2"}, "s": {"old": None, "new": None}}
    assert shown["added"] == {"add": None}
    assert shown["removed"] == {"gone": None}


def _config(tmp_path: Path, **secrets: object) -> Config:
    return Config(
        store=StoreSection(url=f"sqlite:///{tmp_path}/db/store.db"),
        secrets=SecretsSection(**secrets),  # type: ignore[arg-type]
        base_dir=tmp_path,
    )


def test_a_standalone_server_without_a_key_creates_one_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    current, old = load_keys(config)
    path = tmp_path / "db" / "secrets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert old == []
    assert load_keys(config) == (current, [])  # the same key on the next start


def test_keys_come_from_the_config_the_key_file_and_the_old_key_files(tmp_path: Path) -> None:
    first, second = new_key(), new_key()
    (tmp_path / "new.key").write_text(encode_key(first))
    (tmp_path / "old.key").write_text(encode_key(second))
    config = _config(tmp_path, key_file="new.key", old_key_files=("old.key",))
    assert load_keys(config) == (first, [second])
    assert load_keys(_config(tmp_path, key=encode_key(second))) == (second, [])
    assert not (tmp_path / "db" / "secrets.key").exists()


def test_unusable_key_settings_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="cannot read the secrets key file"):
        load_keys(_config(tmp_path, key_file="missing.key"))
    with pytest.raises(SecretKeyError, match="not both"):
        load_keys(_config(tmp_path, key=encode_key(new_key()), key_file="x.key"))
    cluster = dataclasses.replace(_config(tmp_path), etcd=EtcdSection(endpoints=("h:1",)))
    with pytest.raises(SecretKeyError, match="same key on every replica"):
        load_keys(cluster)
    with pytest.raises(SecretKeyError, match="not base64"):
        load_keys(_config(tmp_path, key="###"))


def test_the_config_never_prints_the_key() -> None:
    key = encode_key(new_key())
    assert key not in repr(Config(secrets=SecretsSection(key=key)))
