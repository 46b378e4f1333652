"""AES-256-GCM for secret item values: the keys in memory, sealing and opening one value.

A sealed value is `v1:KEYID:base64(nonce || ciphertext+tag)`: KEYID (the first 8 bytes of the
key's SHA-256, hex) names the key that opens it, so several keys can be loaded while
`configcenter secrets rotate` moves every value to a new one. The nonce is 96 random bits.
The associated data is where the value lives (`app/env/key`): a sealed value copied to another
item does not open there. Only the `cryptography` package does cryptography here.

A leaf: the published configs and the domain both use it, and it imports nothing of ours.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT = "v1"
# What the key check value seals (secret_key_check in the store): a replica whose key does
# not open it has another cluster's key.
CHECK_TEXT = "configcenter secrets key check"
CHECK_WHERE = "configcenter/key-check"


class SecretKeyError(Exception):
    """A key that cannot be used, or a sealed value no loaded key opens; never holds a value."""


def key_id(key: bytes) -> str:
    """The id a key's sealed values carry: hex of the first 8 bytes of its SHA-256."""
    return hashlib.sha256(key).digest()[:8].hex()


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return os.urandom(KEY_BYTES)


def decode_key(text: str, source: str) -> bytes:
    """A key written as base64 of 32 bytes; SecretKeyError naming source (never the text)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretKeyError(f"{source} is not base64") from None
    if len(key) != KEY_BYTES:
        raise SecretKeyError(f"{source} holds {len(key)} bytes, not {KEY_BYTES}")
    return key


def encode_key(key: bytes) -> str:
    """A key as key files and CONFIGCENTER_SECRETS_KEY hold it: base64, one line."""
    return base64.b64encode(key).decode("ascii")


def sealed_key_id(sealed: str) -> str | None:
    """The key id a sealed value names, None when it is not a sealed value."""
    parts = sealed.split(":", 2)
    if len(parts) != 3 or parts[0] != FORMAT:
        return None
    return parts[1]


class Keyring:
    """The loaded keys: the current one seals, every one opens. Empty until install()."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._ciphers: dict[str, AESGCM] = {}
        self._current: str | None = None

    def install(self, current: bytes, old: Iterable[bytes] = ()) -> None:
        """Load the current key and the old ones still needed to open values."""
        keys = {key_id(k): k for k in (*old, current)}
        self._keys = keys
        self._ciphers = {kid: AESGCM(k) for kid, k in keys.items()}
        self._current = key_id(current)

    @property
    def loaded(self) -> bool:
        """True once install() ran."""
        return self._current is not None

    @property
    def current_id(self) -> str:
        """The id of the key that seals."""
        if self._current is None:
            raise SecretKeyError("no secrets key is loaded")
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of every loaded key."""
        return frozenset(self._ciphers)

    def keys(self) -> list[bytes]:
        """Every loaded key (to build the keyring of a rotation)."""
        return list(self._keys.values())

    def opens(self, sealed: str) -> bool:
        """True when sealed names a loaded key (whether it opens is known only by opening)."""
        return sealed_key_id(sealed) in self._ciphers

    def seal(self, where: str, clear: str) -> str:
        """clear sealed under the current key, bound to where (`app/env/key`)."""
        current = self.current_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[current].encrypt(nonce, clear.encode("utf-8"), where.encode())
        return f"{FORMAT}:{current}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, where: str, sealed: str) -> str:
        """The clear value of sealed at where; SecretKeyError when no loaded key opens it."""
        kid = sealed_key_id(sealed)
        if kid is None:
            raise SecretKeyError(f"the value of {where} is not a sealed value")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SecretKeyError(f"the value of {where} is sealed with key {kid}, not loaded here")
        try:
            raw = base64.b64decode(sealed.split(":", 2)[2], validate=True)
            clear = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], where.encode())
            return clear.decode("utf-8")
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            raise SecretKeyError(
                f"the value of {where} does not open with key {kid} (altered, or moved)"
            ) from None

    def reseal(self, where: str, sealed: str) -> str | None:
        """sealed under the current key, or None when it already is."""
        if sealed_key_id(sealed) == self.current_id:
            return None
        return self.seal(where, self.open(where, sealed))


def where(app: str, env: str, key: str) -> str:
    """The associated data of an item's sealed value (app and env names hold no '/')."""
    return f"{app}/{env}/{key}"
