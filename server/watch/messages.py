"""Every message the push channel sends, each encoded once."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import orjson

from server.errors import ErrorCode
from server.published import EnvKey
from server.records import Release


def text_frame(payload: bytes) -> bytes:
    """A whole unmasked, uncompressed WebSocket text frame (RFC 6455 5.2), as a server sends."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


@dataclass(frozen=True, slots=True, eq=False)
class ReleaseMessage:
    """A release message, encoded once: as text for a send queue, as a whole frame (wire)."""

    release: Release
    version: int
    text: str
    wire: bytes

    @classmethod
    def of(cls, release: Release) -> ReleaseMessage:
        """`{"type":"release","app","env","version","checksum","items"}`."""
        payload = orjson.dumps(
            {
                "type": "release",
                "app": release.app,
                "env": release.env,
                "version": release.version,
                "checksum": release.checksum,
                "items": release.items,
            }
        )
        return cls(release, release.version, payload.decode(), text_frame(payload))


def error_message(error: ErrorCode, message: str) -> str:
    """`{"type":"error","code","message"}` for a bad op or a lost subscription."""
    return orjson.dumps({"type": "error", "code": error.code, "message": message}).decode()


class ReleaseMessages:
    """The message of each env's latest release, built once for every socket that gets it."""

    def __init__(self) -> None:
        self._by_key: dict[EnvKey, ReleaseMessage] = {}

    def of(self, release: Release) -> ReleaseMessage:
        """The message for release, built on first use and kept until its env moves on."""
        key = (release.app, release.env)
        message = self._by_key.get(key)
        if message is None or message.release is not release:
            message = ReleaseMessage.of(release)
            self._by_key[key] = message
        return message

    def forget(self, key: EnvKey) -> None:
        """Drop an env's message (a newer release replaced it, nobody is subscribed)."""
        self._by_key.pop(key, None)

    def forget_app(self, app: str) -> None:
        """Drop the messages of a deleted app."""
        for key in [k for k in self._by_key if k[0] == app]:
            del self._by_key[key]
