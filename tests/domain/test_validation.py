"""Tests for server.domain.validation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.domain import validation as v
from server.errors import AppError

NAME_VALIDATORS = [
    v.validate_app_name,
    v.validate_env_name,
    v.validate_token_name,
    v.validate_user_name,
]


@pytest.mark.parametrize("validate", NAME_VALIDATORS)
@pytest.mark.parametrize("name", ["a", "0", "dev", "my-app.v2_x", "a" * 64, "9lives"])
def test_names_accepted(validate: Callable[[object], str], name: str) -> None:
    assert validate(name) == name


@pytest.mark.parametrize("validate", NAME_VALIDATORS)
@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "App",
        "-a",
        ".a",
        "_a",
        "a" * 65,
        "a b",
        "a/b",
        "a:b",
        "é",
        "a\n",
        "\uff41",
        7,
        None,
    ],
)
def test_names_rejected(validate: Callable[[object], str], name: object) -> None:
    with pytest.raises(AppError) as err:
        validate(name)
    assert err.value.code == "invalid_name"
    assert err.value.status == 400


def test_name_message_names_input_and_rule() -> None:
    with pytest.raises(AppError) as err:
        v.validate_env_name("Prod")
    assert err.value.message == (
        "env name 'Prod' is invalid: 1-64 characters from a-z 0-9 _ . -, "
        "starting with a letter or digit"
    )


def test_message_truncates_long_input() -> None:
    with pytest.raises(AppError) as err:
        v.validate_app_name("X" * 5000)
    assert "'" + "X" * 40 + "'…" in err.value.message
    assert len(err.value.message) < 200


def test_message_escapes_control_characters() -> None:
    with pytest.raises(AppError) as err:
        v.validate_key("a\nb\x00")
    assert "'a\\nb\\x00'" in err.value.message
    assert "\n" not in err.value.message


@pytest.mark.parametrize(
    "key", ["a", "A", "db.url", "a:b/c-d_e", "Z" * 255, "..", "-", ":", "/", "1"]
)
def test_keys_accepted(key: str) -> None:
    assert v.validate_key(key) == key


@pytest.mark.parametrize(
    "key", ["", "Z" * 256, "a b", "a=b", "a#b", "é", "a\n", "a\t", "ä", "a*", 1, None, ["a"]]
)
def test_keys_rejected(key: object) -> None:
    with pytest.raises(AppError) as err:
        v.validate_key(key)
    assert (err.value.code, err.value.status) == ("invalid_key", 400)


def test_value_limit_counts_utf8_bytes() -> None:
    assert v.validate_value("", 0) == ""
    assert v.validate_value("é" * 5, 10) == "é" * 5  # 10 bytes
    assert v.validate_value("😀", 4) == "😀"
    with pytest.raises(AppError) as err:
        v.validate_value("é" * 6, 10)  # 6 characters, 12 bytes
    assert (err.value.code, err.value.status) == ("value_too_large", 413)
    assert "12 bytes" in err.value.message
    assert "10" in err.value.message


def test_value_at_default_limit() -> None:
    limit = 64 * 1024
    assert len(v.validate_value("x" * limit, limit)) == limit
    with pytest.raises(AppError):
        v.validate_value("x" * (limit + 1), limit)


@pytest.mark.parametrize("value", [None, 1, 1.5, True, ["a"], {"a": "b"}])
def test_value_must_be_string(value: object) -> None:
    with pytest.raises(AppError) as err:
        v.validate_value(value, 100)
    assert (err.value.code, err.value.status) == ("invalid_value", 400)


def test_value_with_lone_surrogate_rejected() -> None:
    with pytest.raises(AppError) as err:
        v.validate_value("a\ud800b", 100)
    assert (err.value.code, err.value.status) == ("invalid_value", 400)


def test_value_keeps_every_valid_character() -> None:
    value = '\x00\n\t \u2028😀<>&"\\'
    assert v.validate_value(value, 100) == value


def test_comment_bounds() -> None:
    assert v.validate_comment("") == ""
    assert v.validate_comment("x" * v.MAX_COMMENT_CHARS) == "x" * v.MAX_COMMENT_CHARS
    assert v.validate_comment("line 1\nline 2") == "line 1\nline 2"
    for bad in ["x" * (v.MAX_COMMENT_CHARS + 1), 3, None, "\udfff"]:
        with pytest.raises(AppError) as err:
            v.validate_comment(bad)
        assert (err.value.code, err.value.status) == ("invalid_comment", 400)


def test_description_bounds() -> None:
    limit = v.MAX_DESCRIPTION_CHARS
    assert v.validate_description("é" * limit) == "é" * limit
    for bad in ["x" * (limit + 1), {}, "\ud800"]:
        with pytest.raises(AppError) as err:
            v.validate_description(bad)
        assert (err.value.code, err.value.status) == ("invalid_description", 400)
