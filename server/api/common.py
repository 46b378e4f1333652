"""What every handler shares: the caller, the services, JSON in and out."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.domain.scopes import Principal
from server.domain.services import Services
from server.errors import AppError, ErrorCode, describe_invalid
from server.keys import SERVICES

PRINCIPAL = web.RequestKey("principal", Principal)
SESSION_SECRET = web.RequestKey("session_secret", str)
HELD = web.RequestKey("held", bool)
"""Set by a handler that holds the request on purpose (a long poll): its time is the wait,
so the request log counts it with the quick reads instead of a line of its own."""

Body = TypeVar("Body", bound=BaseModel)

_DIGITS = re.compile(r"[0-9]{1,18}")


def services(request: web.Request) -> Services:
    """The domain services."""
    return request.app[SERVICES]


def principal(request: web.Request) -> Principal:
    """The authenticated caller (set by the auth middleware)."""
    return request[PRINCIPAL]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer serialised with orjson, ending with a newline."""
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def read_body(request: web.Request, model: type[Body], allow_empty: bool = False) -> Body:
    """The request body parsed as JSON and validated against model, or a 400."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return model.model_validate({})
        raise AppError(ErrorCode.INVALID_JSON, "a JSON object body is required")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AppError(ErrorCode.INVALID_JSON, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AppError(ErrorCode.INVALID_JSON, "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        details = "; ".join(describe_invalid(e, "body") for e in errors[:5])
        raise AppError(ErrorCode.INVALID_REQUEST, details) from None


def int_query(
    request: web.Request, name: str, default: int | None, low: int, high: int
) -> int | None:
    """An optional integer query parameter within [low, high], or a 400."""
    raw = request.query.get(name)
    if raw is None:
        return default
    # ASCII digits only: int() also takes full-width digits, " 5", "+5" and "5_0".
    if _DIGITS.fullmatch(raw) is None:
        raise AppError(ErrorCode.INVALID_REQUEST, f"{name} must be an integer")
    value = int(raw)
    if not low <= value <= high:
        raise AppError(ErrorCode.INVALID_REQUEST, f"{name} must be between {low} and {high}")
    return value


def etag_revision(header: str | None) -> int | None:
    """The revision an If-Match header names ("7", 7 or W/"7"), or a 412 for any other tag."""
    if header is None:
        return None
    tag = header.strip()
    if tag == "*":
        raise AppError(ErrorCode.INVALID_REQUEST, 'If-Match: * is not supported; send "<revision>"')
    value = tag.removeprefix("W/").strip('"')
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        # No item has this tag, so the precondition fails whatever the item is (RFC 9110 13.1.1).
        raise AppError(
            ErrorCode.PRECONDITION_FAILED,
            f"If-Match {tag[:64]!r} is not a revision of this item; read its ETag and retry",
        )
    return int(value)


def path_int(request: web.Request, name: str) -> int:
    """An integer path segment, or a 400."""
    raw = request.match_info[name]
    if _DIGITS.fullmatch(raw) is None:
        raise AppError(ErrorCode.INVALID_REQUEST, f"{name} must be a positive integer")
    return int(raw)
