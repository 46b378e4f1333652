"""Every error code with its status, in one table; the one error type the domain raises."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


class ErrorCode(Enum):
    """Every code the server answers with, beside its HTTP status (docs/api-notes.md lists them)."""

    INVALID_REQUEST = ("invalid_request", 400)
    INVALID_JSON = ("invalid_json", 400)
    INVALID_NAME = ("invalid_name", 400)
    INVALID_KEY = ("invalid_key", 400)
    INVALID_VALUE = ("invalid_value", 400)
    INVALID_COMMENT = ("invalid_comment", 400)
    INVALID_DESCRIPTION = ("invalid_description", 400)
    INVALID_SCOPE = ("invalid_scope", 400)
    INVALID_PASSWORD = ("invalid_password", 400)
    INVALID_FORMAT = ("invalid_format", 400)
    INVALID_ROLE = ("invalid_role", 400)
    INVALID_IMPORT = ("invalid_import", 400)
    INVALID_BACKUP = ("invalid_backup", 400)
    UNAUTHORIZED = ("unauthorized", 401)
    INVALID_CREDENTIALS = ("invalid_credentials", 401)
    FORBIDDEN = ("forbidden", 403)
    CSRF_FAILED = ("csrf_failed", 403)
    SELF_APPROVAL = ("self_approval", 403)
    WRONG_PASSWORD = ("wrong_password", 403)
    NOT_FOUND = ("not_found", 404)
    NOT_PUBLISHED = ("not_published", 404)
    NO_GRAY = ("no_gray", 404)
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405)
    EXISTS = ("exists", 409)
    CONFLICT = ("conflict", 409)
    NOTHING_TO_PUBLISH = ("nothing_to_publish", 409)
    FORMAT_CONFLICT = ("format_conflict", 409)
    LOCK_LOST = ("lock_lost", 409)
    VERSION_CONFLICT = ("version_conflict", 409)
    LIMIT_EXCEEDED = ("limit_exceeded", 409)
    LAST_ADMIN = ("last_admin", 409)
    LAST_ENV = ("last_env", 409)
    DRAFT_CHANGED = ("draft_changed", 409)
    APPROVAL_REQUIRED = ("approval_required", 409)
    STALE_REQUEST = ("stale_request", 409)
    REQUEST_DECIDED = ("request_decided", 409)
    GRAY_ACTIVE = ("gray_active", 409)
    GRAY_NARROWING = ("gray_narrowing", 409)
    PRECONDITION_FAILED = ("precondition_failed", 412)
    TOO_LARGE = ("too_large", 413)
    VALUE_TOO_LARGE = ("value_too_large", 413)
    TOO_MANY_ITEMS = ("too_many_items", 413)
    RELEASE_TOO_LARGE = ("release_too_large", 413)
    DRAFT_TOO_LARGE = ("draft_too_large", 413)
    UNSUPPORTED_MEDIA_TYPE = ("unsupported_media_type", 415)
    TOO_MANY_ATTEMPTS = ("too_many_attempts", 429)
    HTTP_ERROR = ("http_error", 400)
    INTERNAL = ("internal", 500)
    STORE_UNAVAILABLE = ("store_unavailable", 503)
    COORDINATOR_UNAVAILABLE = ("coordinator_unavailable", 503)
    LOCK_TIMEOUT = ("lock_timeout", 503)
    BUSY = ("busy", 503)
    SECRETS_UNAVAILABLE = ("secrets_unavailable", 503)
    # WebSocket-only: sent as error messages, never as an HTTP status.
    INVALID_OP = ("invalid_op", 400)
    APP_DELETED = ("app_deleted", 410)
    ENV_DELETED = ("env_deleted", 410)
    TOO_MANY_SUBSCRIPTIONS = ("too_many_subscriptions", 409)

    @property
    def code(self) -> str:
        """The code as it appears in the envelope."""
        return self.value[0]

    @property
    def status(self) -> int:
        """The HTTP status that goes with the code."""
        return self.value[1]

    @classmethod
    def for_status(cls, status: int) -> ErrorCode:
        """The generic code for an HTTP status aiohttp raised by itself (404, 405, 413, ...)."""
        return _GENERIC_BY_STATUS.get(status, cls.HTTP_ERROR)


_GENERIC_BY_STATUS = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    412: ErrorCode.PRECONDITION_FAILED,
    413: ErrorCode.TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    500: ErrorCode.INTERNAL,
}


class AppError(Exception):
    """An expected failure: a code from the table and a human message."""

    def __init__(self, error: ErrorCode, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.code = error.code
        self.status = error.status
        self.message = message
        # Seconds, sent as Retry-After (429 and 503 answers).
        self.retry_after = retry_after

    def envelope(self) -> dict[str, Any]:
        """The documented error body."""
        return error_envelope(self.code, self.message)


def error_envelope(code: str, message: str) -> dict[str, Any]:
    """Every non-2xx JSON answer has this shape."""
    return {"error": {"code": code, "message": message}}


def describe_invalid(error: Mapping[str, Any], whole: str) -> str:
    """One validation error (pydantic's dict) as a phrase; `whole` names the input itself."""
    where = ".".join(str(part) for part in error.get("loc", ())) or whole
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown field {where!r}"
    if kind == "missing":
        return f"missing field {where!r}"
    return f"field {where!r}: {error.get('msg', 'invalid')}"


def not_found(what: str) -> AppError:
    """A 404 naming what is missing."""
    return AppError(ErrorCode.NOT_FOUND, f"{what} not found")


def exists(what: str) -> AppError:
    """A 409 for a name that is taken."""
    return AppError(ErrorCode.EXISTS, f"{what} already exists")
