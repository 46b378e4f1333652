"""Secret items: the keys a replica loads, the store's key check, sealed snapshots, rotation.

A secret's clear value lives only in memory: the store, etcd, the log, the audit and error
messages see it sealed (server/secretbox.py) or not at all. Who may read it is
`Permission.SEE_SECRETS`; everyone else gets `"value": null`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from server.config import Config
from server.domain.access_keys import access_key_where
from server.domain.canonical import canonical_json, checksum_of_canonical
from server.domain.scopes import Permission, Principal
from server.errors import AppError, ErrorCode
from server.published import open_release
from server.records import AuditAction, Item, Release, utc_now
from server.secretbox import (
    CHECK_TEXT,
    CHECK_WHERE,
    Keyring,
    SecretKeyError,
    decode_key,
    encode_key,
    new_key,
    sealed_key_id,
    where,
)
from server.store.db import IntegrityError
from server.store.store import Store

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secrets.key"
ENV_KEY = "CONFIGCENTER_SECRETS_KEY"


def may_see(principal: Principal, app: str) -> bool:
    """True when principal is shown secret values of app in clear."""
    return principal.may(app, Permission.SEE_SECRETS)


# --- keys ------------------------------------------------------------------------


def data_dir(config: Config) -> Path:
    """Where a standalone server keeps its files: beside the SQLite file, else ./data."""
    sqlite = config.sqlite_path()
    return sqlite.parent if sqlite is not None else config.base_dir / "data"


def _path(config: Config, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else config.base_dir / path


def read_key_file(path: Path) -> bytes:
    """The key in a key file (base64 of 32 bytes); SecretKeyError when it is unusable."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not ASCII"
        raise SecretKeyError(f"cannot read the secrets key file {path}: {reason}") from None
    return decode_key(text, f"the secrets key file {path}")


def create_key_file(path: Path) -> bytes:
    """A new random key in a new file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key()
    # O_EXCL: two servers starting on one data dir never overwrite each other's key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(encode_key(key) + "\n")
    return key


def load_keys(config: Config, create: bool = True) -> tuple[bytes, list[bytes]]:
    """(current key, old keys) from the config; a standalone server without one makes a key file.

    The current key is `secrets.key` (CONFIGCENTER_SECRETS_KEY) or the file `secrets.key_file`;
    `secrets.old_key_files` only open values (during a rotation). SecretKeyError when a key
    cannot be read, or a cluster replica has none (every replica must have the same one).
    """
    section = config.secrets
    old = [read_key_file(_path(config, name)) for name in section.old_key_files]
    if section.key and section.key_file:
        raise SecretKeyError(f"set either {ENV_KEY} (secrets.key) or secrets.key_file, not both")
    if section.key:
        return decode_key(section.key, f"{ENV_KEY} (secrets.key)"), old
    if section.key_file:
        return read_key_file(_path(config, section.key_file)), old
    if not config.standalone:
        raise SecretKeyError(
            "a cluster replica needs the cluster's secrets key: set secrets.key_file or "
            f"{ENV_KEY} (the same key on every replica)"
        )
    path = data_dir(config) / KEY_FILE_NAME
    if path.exists() or not create:
        return read_key_file(path), old
    key = create_key_file(path)
    log.warning("created the secrets key file %s (mode 0600); back it up", path)
    return key, old


async def check_store_key(store: Store, keyring: Keyring) -> None:
    """Refuse to serve (SecretKeyError) when the store's secrets are under another key.

    The store holds one key check value: a fixed text sealed with the cluster's key. The first
    replica of a new store writes it; every later one must open it with its current key.
    """
    async with store.reader() as q:
        stored = await q.secret_key_check()
    if stored is None:
        check = keyring.seal(CHECK_WHERE, CHECK_TEXT)
        try:
            async with store.transaction() as q:
                await q.insert_secret_key_check(keyring.current_id, check, utc_now())
            log.info("secrets key %s recorded in the store", keyring.current_id)
            return
        except IntegrityError:  # another replica recorded its key first
            async with store.reader() as q:
                stored = await q.secret_key_check()
        assert stored is not None
    stored_id, check = stored
    if stored_id != keyring.current_id:
        raise SecretKeyError(
            f"this replica's secrets key is {keyring.current_id} but the store's secrets are "
            f"under key {stored_id}: start it with the cluster's key (secrets.key_file or "
            f"{ENV_KEY}); after a rotation, with the new key and the old one in "
            "secrets.old_key_files"
        )
    check_store_key_text(keyring, check)


# --- values ----------------------------------------------------------------------


def open_value(keyring: Keyring, app: str, env: str, key: str, sealed: str) -> str:
    """One secret's clear value; 503 secrets_unavailable when no loaded key opens it."""
    try:
        return keyring.open(where(app, env, key), sealed)
    except SecretKeyError as exc:
        log.error("%s", exc)
        raise AppError(
            ErrorCode.SECRETS_UNAVAILABLE,
            f"the secret {key!r} is sealed with a key this replica does not have",
        ) from None


def opened_item(keyring: Keyring, app: str, env: str, item: Item) -> Item:
    """A stored item with its value in clear."""
    if not item.secret:
        return item
    return dataclasses.replace(item, value=open_value(keyring, app, env, item.key, item.value))


def opened_items(keyring: Keyring, app: str, env: str, items: Iterable[Item]) -> list[Item]:
    """Stored items with their values in clear."""
    return [opened_item(keyring, app, env, item) for item in items]


def sealed_item(keyring: Keyring, app: str, env: str, item: Item) -> Item:
    """An item with a clear value as the store holds it."""
    if not item.secret:
        return item
    return dataclasses.replace(item, value=keyring.seal(where(app, env, item.key), item.value))


def opened_release(keyring: Keyring, release: Release) -> Release:
    """A stored release with its secret values in clear (503 when a key is missing)."""
    try:
        return open_release(keyring, release)
    except SecretKeyError as exc:
        log.error("%s", exc)
        raise AppError(
            ErrorCode.SECRETS_UNAVAILABLE,
            f"release {release.version} of {release.app}/{release.env} holds secrets sealed "
            "with a key this replica does not have",
        ) from None


@dataclass(frozen=True)
class Snapshot:
    """A set of items as stored: secret values sealed, the canonical text, the clear checksum."""

    items: dict[str, str]
    text: str
    checksum: str
    secret_keys: frozenset[str]


def snapshot(
    keyring: Keyring, app: str, env: str, clear: Mapping[str, str], secret_keys: Iterable[str]
) -> Snapshot:
    """The one serialisation of an items snapshot (a release, a release request).

    The checksum is over the clear items (what clients compare); the text is what the store
    keeps, with every secret value sealed under the current key.
    """
    secrets = frozenset(secret_keys) & clear.keys()
    items = {
        k: keyring.seal(where(app, env, k), v) if k in secrets else v for k, v in clear.items()
    }
    checksum = checksum_of_canonical(canonical_json(clear))
    return Snapshot(items, canonical_json(items), checksum, secrets)


# --- rotation --------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    """What `configcenter secrets rotate` changed."""

    old_key_id: str
    new_key_id: str
    items: int
    releases: int
    access_keys: int = 0


async def rotate(store: Store, keyring: Keyring, new: bytes) -> Rotation:
    """Re-seal every secret under new, in one transaction with the key check and its audit.

    keyring holds the keys in use now (the store's key among them); a value already under new
    is left as it is, so running it again after an interruption finishes the job.
    """
    async with store.reader() as q:
        stored = await q.secret_key_check()
    if stored is not None and stored[0] not in keyring.key_ids:
        raise SecretKeyError(
            f"the store's secrets are under key {stored[0]}, which is not loaded here: "
            "configure it as secrets.key_file (or CONFIGCENTER_SECRETS_KEY)"
        )
    if stored is not None:
        check_store_key_text(keyring, stored[1])
    target = Keyring()
    target.install(new, old=keyring.keys())
    items = releases = 0
    async with store.transaction() as q:
        for env_id, app, env, item in await q.secret_items():
            resealed = target.reseal(where(app, env, item.key), item.value)
            if resealed is not None:
                await q.set_item_value(env_id, item.key, resealed)
                items += 1
        for release_id, app, env, text, secret_keys in await q.secret_releases():
            values: dict[str, str] = orjson.loads(text)
            changed = False
            for name in secret_keys & values.keys():
                resealed = target.reseal(where(app, env, name), values[name])
                if resealed is not None:
                    values[name], changed = resealed, True
            if changed:
                await q.set_release_items(release_id, canonical_json(values))
                releases += 1
        access_keys = 0
        for key in await q.all_access_keys():
            resealed = target.reseal(access_key_where(key.app), key.secret_sealed)
            if resealed is not None:
                await q.set_access_key_secret(key.id, resealed)
                access_keys += 1
        check = target.seal(CHECK_WHERE, CHECK_TEXT)
        await q.set_secret_key_check(target.current_id, check, utc_now())
        old_id = stored[0] if stored is not None else keyring.current_id
        await q.add_audit(
            utc_now(),
            "cli",
            AuditAction.SECRETS_ROTATE,
            "secrets",
            f"re-encrypted {items} items and {releases} releases under key "
            f"{target.current_id} (was {old_id}); {access_keys} access keys",
            None,
            None,
        )
    return Rotation(old_id, target.current_id, items, releases, access_keys)


def check_store_key_text(keyring: Keyring, check: str) -> None:
    """Refuse a keyring that does not open the store's key check value."""
    kid = sealed_key_id(check) or "?"
    try:
        opened = keyring.open(CHECK_WHERE, check)
    except SecretKeyError:
        opened = None
    if opened != CHECK_TEXT:
        raise SecretKeyError(
            f"the store's key check value does not open with key {kid}: this key file differs "
            "from the cluster's key"
        )
