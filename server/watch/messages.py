"""Every message of the push channel: client ops parsed strictly, server messages encoded once."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from server.errors import AppError, ErrorCode, describe_invalid
from server.instances import check_instance, check_labels, parse_labels
from server.published import PerRelease
from server.records import Release

MAX_AFTER = 2**62  # the same bound as the long poll's after=


# --- client -> server ----------------------------------------------------------
class Op(BaseModel):
    """A client message: a strict, closed JSON object (no "5" for 5, no unknown fields)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Subscribe(Op):
    """`{"op":"subscribe","app","env","after"?,"instance"?,"labels"?}`: pushes for one env, to
    an instance that names itself (listed in GET …/instances) or to an anonymous subscriber."""

    op: Literal["subscribe"]
    app: str
    env: str
    after: int | None = Field(default=None, ge=0, le=MAX_AFTER)
    instance: str | None = None
    labels: dict[str, str] | None = None

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        return None if value is None else check_instance(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else check_labels(value)

    @model_validator(mode="after")
    def _labels_need_an_instance(self) -> Subscribe:
        if self.labels and self.instance is None:
            raise ValueError("labels need an instance")
        return self


class Ack(Op):
    """`{"op":"ack","app","env","version"}`: the subscribed instance applied that version."""

    op: Literal["ack"]
    app: str
    env: str
    version: int = Field(ge=1, le=MAX_AFTER)


class Unsubscribe(Op):
    """`{"op":"unsubscribe","app","env"}`: no more pushes for that env."""

    op: Literal["unsubscribe"]
    app: str
    env: str


ClientOp = Subscribe | Unsubscribe | Ack
_OPS: dict[str, type[ClientOp]] = {"subscribe": Subscribe, "unsubscribe": Unsubscribe, "ack": Ack}
_Op = TypeVar("_Op", bound=Op)


def _validate(model: type[_Op], data: dict[str, Any]) -> _Op:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(describe_invalid(e, "message") for e in exc.errors()[:5])
        raise AppError(ErrorCode.INVALID_REQUEST, details) from None


def parse_op(raw: str) -> ClientOp:
    """A text frame as the op it names; AppError (sent back as an error) for anything else."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AppError(ErrorCode.INVALID_JSON, "messages must be JSON objects") from None
    if not isinstance(data, dict):
        raise AppError(ErrorCode.INVALID_JSON, "messages must be JSON objects")
    op = data.get("op")
    model = _OPS.get(op) if isinstance(op, str) else None
    if model is None:
        raise AppError(ErrorCode.INVALID_OP, "op must be subscribe, unsubscribe or ack")
    return _validate(model, data)


def subscribe_from_query(query: Mapping[str, str]) -> Subscribe | None:
    """The subscription `?app=A&env=E&after=N&instance=I&labels=k:v,k2:v2` asks for at open,
    or None without app and env."""
    if "app" not in query and "env" not in query:
        return None
    data: dict[str, Any] = {"op": "subscribe"}
    for name in ("app", "env", "instance"):
        if name in query:
            data[name] = query[name]
    if "labels" in query:
        try:
            data["labels"] = parse_labels(query["labels"])
        except ValueError as exc:
            raise AppError(ErrorCode.INVALID_REQUEST, f"field 'labels': {exc}") from None
    after = query.get("after")
    if after is not None:
        # A query carries text: ASCII digits are the number, anything else stays text (refused).
        data["after"] = int(after) if after.isascii() and after.isdigit() else after
    return _validate(Subscribe, data)


# --- server -> client ----------------------------------------------------------
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
    def of(cls, release: Release, *, reveal: bool) -> ReleaseMessage:
        """`{"type":"release","app","env","version","checksum","items","gray"}`; secret values
        null unless reveal; gray true for an active gray release."""
        payload = orjson.dumps(
            {
                "type": "release",
                "app": release.app,
                "env": release.env,
                "version": release.version,
                "checksum": release.checksum,
                "items": release.shown_items(reveal=reveal),
                "gray": release.gray_active,
            }
        )
        return cls(release, release.version, payload.decode(), text_frame(payload))


@dataclass(eq=False)
class ReleaseVariants:
    """A release's message for subscribers who may see its secrets and for the others, each
    built on first use (the same one when the release has no secrets)."""

    release: Release
    _built: dict[bool, ReleaseMessage] = field(default_factory=dict)

    @property
    def version(self) -> int:
        """The release version."""
        return self.release.version

    def get(self, reveal: bool) -> ReleaseMessage:
        """The message with secret values in clear (reveal) or null."""
        reveal = reveal or not self.release.secret_keys
        message = self._built.get(reveal)
        if message is None:
            message = self._built[reveal] = ReleaseMessage.of(self.release, reveal=reveal)
        return message


def error_message(error: ErrorCode, message: str) -> str:
    """`{"type":"error","code","message"}` for a bad op or a lost subscription."""
    return orjson.dumps({"type": "error", "code": error.code, "message": message}).decode()


class ReleaseMessages(PerRelease[ReleaseVariants]):
    """The messages of each env's latest release, built once for every socket that gets them."""

    def __init__(self) -> None:
        super().__init__(ReleaseVariants)
