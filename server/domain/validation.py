"""Input checks for names, keys, values and free text, as the API contract defines them."""

from __future__ import annotations

import re

from server.errors import AppError, ErrorCode

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}", re.ASCII)
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:/-]{1,255}", re.ASCII)
NAME_RULE = "1-64 characters from a-z 0-9 _ . -, starting with a letter or digit"
KEY_RULE = "1-255 characters from A-Z a-z 0-9 _ . : / -"

MAX_COMMENT_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 1_000

# How much of a rejected input an error message quotes back.
_SHOW_CHARS = 40


def _show(value: object) -> str:
    """A short, printable rendering of bad input for an error message."""
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    if len(value) > _SHOW_CHARS:
        return repr(value[:_SHOW_CHARS]) + "…"
    return repr(value)


def _require_str(value: object, what: str, code: ErrorCode) -> str:
    if not isinstance(value, str):
        raise AppError(code, f"{what} must be a string, got {_show(value)}")
    return value


def _require_utf8(value: str, what: str, code: ErrorCode) -> bytes:
    # JSON can carry lone surrogates ("\ud800"); they cannot be stored or sent back as UTF-8.
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise AppError(code, f"{what} is not valid Unicode (lone surrogate)") from None


def _validate_name(value: object, what: str) -> str:
    name = _require_str(value, what, ErrorCode.INVALID_NAME)
    if NAME_PATTERN.fullmatch(name) is None:
        raise AppError(ErrorCode.INVALID_NAME, f"{what} {_show(name)} is invalid: {NAME_RULE}")
    return name


def validate_app_name(name: object) -> str:
    """An app name matching ^[a-z0-9][a-z0-9_.-]{0,63}$."""
    return _validate_name(name, "app name")


def validate_env_name(name: object) -> str:
    """An env name: the same pattern as app names."""
    return _validate_name(name, "env name")


def validate_token_name(name: object) -> str:
    """A token name: the same pattern as app names."""
    return _validate_name(name, "token name")


def validate_user_name(name: object) -> str:
    """A user name: the same pattern as app names."""
    return _validate_name(name, "user name")


def validate_key(key: object) -> str:
    """An item key matching ^[A-Za-z0-9_.:/-]{1,255}$ (case-sensitive)."""
    key = _require_str(key, "key", ErrorCode.INVALID_KEY)
    if KEY_PATTERN.fullmatch(key) is None:
        raise AppError(ErrorCode.INVALID_KEY, f"key {_show(key)} is invalid: {KEY_RULE}")
    return key


def validate_value(value: object, max_bytes: int) -> str:
    """An item value: a string of at most max_bytes bytes once encoded as UTF-8."""
    value = _require_str(value, "value", ErrorCode.INVALID_VALUE)
    size = len(_require_utf8(value, "value", ErrorCode.INVALID_VALUE))
    if size > max_bytes:
        # Never quoted: the value may be a secret's.
        raise AppError(
            ErrorCode.VALUE_TOO_LARGE,
            f"the value is {size} bytes in UTF-8; the limit is {max_bytes}",
        )
    return value


def _validate_text(value: object, what: str, code: ErrorCode, limit: int) -> str:
    text = _require_str(value, what, code)
    if len(text) > limit:
        raise AppError(code, f"{what} {_show(text)} has {len(text)} characters; at most {limit}")
    _require_utf8(text, what, code)
    return text


def validate_comment(comment: object) -> str:
    """A comment on an item or release: a string of at most MAX_COMMENT_CHARS characters."""
    return _validate_text(comment, "comment", ErrorCode.INVALID_COMMENT, MAX_COMMENT_CHARS)


def validate_description(description: object) -> str:
    """An app description: a string of at most MAX_DESCRIPTION_CHARS characters."""
    return _validate_text(
        description, "description", ErrorCode.INVALID_DESCRIPTION, MAX_DESCRIPTION_CHARS
    )
