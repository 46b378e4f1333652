"""The one error type the domain raises, and the envelope it becomes."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An expected failure with a stable code, an HTTP status and a human message."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message

    def envelope(self) -> dict[str, Any]:
        """The documented error body."""
        return error_envelope(self.code, self.message)


def error_envelope(code: str, message: str) -> dict[str, Any]:
    """Every non-2xx JSON answer has this shape."""
    return {"error": {"code": code, "message": message}}


def not_found(what: str) -> AppError:
    """A 404 naming what is missing."""
    return AppError("not_found", 404, f"{what} not found")


def bad_request(message: str, code: str = "invalid_request") -> AppError:
    """A 400 for input that fails validation."""
    return AppError(code, 400, message)
