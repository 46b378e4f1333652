"""Tests for server.domain.scopes."""

from __future__ import annotations

import dataclasses

import pytest

from server.domain.scopes import Principal, parse_scopes
from server.errors import AppError


def test_parse_valid() -> None:
    assert parse_scopes(["admin"]) == ("admin",)
    assert parse_scopes(["read:shop", "write:billing.v2", "read:a-b_c"]) == (
        "read:shop",
        "write:billing.v2",
        "read:a-b_c",
    )


def test_parse_drops_duplicates_keeping_order() -> None:
    assert parse_scopes(["read:b", "read:a", "read:b", "admin", "read:a"]) == (
        "read:b",
        "read:a",
        "admin",
    )


@pytest.mark.parametrize(
    "values",
    [
        [],
        None,
        "admin",
        {"admin": True},
        ("admin",),
        [1],
        [None],
        ["admin", ""],
        ["Admin"],
        ["admin "],
        ["read"],
        ["read:"],
        ["read:*"],
        ["write:*"],
        ["read:Shop"],
        ["read:-shop"],
        ["read:" + "a" * 65],
        ["delete:shop"],
        ["read:shop\n"],
        ["read:shop:x"],
        [["read:shop"]],
    ],
)
def test_parse_invalid(values: list[object]) -> None:
    with pytest.raises(AppError) as err:
        parse_scopes(values)
    assert (err.value.code, err.value.status) == ("invalid_scope", 400)


def test_parse_message_names_bad_scope() -> None:
    with pytest.raises(AppError) as err:
        parse_scopes(["read:shop", "write:*"])
    assert "'write:*'" in err.value.message


def who(*scopes: str) -> Principal:
    return Principal("ci", frozenset(scopes), token_id=5)


def test_admin_can_do_everything() -> None:
    p = who("admin")
    assert p.is_admin
    assert p.can_read("any")
    assert p.can_write("any")
    p.require_admin()
    p.require_read("any")
    p.require_write("any")


def test_read_scope() -> None:
    p = who("read:shop")
    assert not p.is_admin
    assert p.can_read("shop")
    assert not p.can_write("shop")
    assert not p.can_read("shop2")
    assert not p.can_read("sho")
    p.require_read("shop")
    with pytest.raises(AppError) as err:
        p.require_write("shop")
    assert (err.value.code, err.value.status) == ("forbidden", 403)
    assert "write:APP" in err.value.message
    assert "'shop'" in err.value.message


def test_write_implies_read() -> None:
    p = who("write:shop")
    assert p.can_read("shop")
    assert p.can_write("shop")
    assert not p.can_read("billing")
    p.require_read("shop")
    p.require_write("shop")


def test_no_scopes_and_non_admin() -> None:
    p = who()
    for check in (p.require_admin, lambda: p.require_read("a"), lambda: p.require_write("a")):
        with pytest.raises(AppError) as err:
            check()
        assert (err.value.code, err.value.status) == ("forbidden", 403)


def test_wildcards_grant_nothing() -> None:
    p = who("read:*", "write:*")
    assert not p.can_read("shop")
    assert not p.can_write("shop")


def test_readable_apps() -> None:
    p = who("read:a", "write:c")
    assert p.readable_apps(["a", "b", "c", "d"]) == ["a", "c"]
    assert who("admin").readable_apps(["x", "y"]) == ["x", "y"]


def test_principal_defaults_and_frozen() -> None:
    p = Principal("admin", frozenset({"admin"}))
    assert (p.token_id, p.kind) == (None, "token")
    session = Principal("alice", frozenset(), 9, "session")
    assert (session.token_id, session.kind) == (9, "session")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "x"  # type: ignore[misc]  # frozen: the point of the test


def test_forbidden_message_truncates_app() -> None:
    with pytest.raises(AppError) as err:
        who().require_read("x" * 1000)
    assert len(err.value.message) < 200
