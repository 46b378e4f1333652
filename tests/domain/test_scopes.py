"""Tests for server.domain.scopes."""

from __future__ import annotations

import dataclasses

import pytest

from server.domain.scopes import Permission, Principal, Role, parse_roles, parse_scopes
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


def user(roles: dict[str, Role], admin: bool = False) -> Principal:
    return Principal("alice", roles=roles, admin=admin, kind="session", token_id=3, user="alice")


EXPECTED_ROLE_PERMISSIONS = {
    Role.VIEWER: {"read_config", "view"},
    Role.EDITOR: {"read_config", "view", "edit"},
    Role.PUBLISHER: {"read_config", "view", "edit", "publish", "see_secrets"},
    Role.OWNER: {"read_config", "view", "edit", "publish", "see_secrets", "manage"},
}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_allows_what_the_contract_table_says(role: Role) -> None:
    p = user({"shop": role})
    assert {perm.value for perm in Permission if p.may("shop", perm)} == (
        EXPECTED_ROLE_PERMISSIONS[role]
    )
    assert not any(p.may("billing", perm) for perm in Permission)


def test_star_role_applies_to_every_app_and_an_app_entry_overrides_it() -> None:
    p = user({"*": Role.VIEWER, "shop": Role.OWNER})
    assert p.may("anything", Permission.VIEW)
    assert not p.may("anything", Permission.EDIT)
    assert p.may("shop", Permission.MANAGE)
    narrower = user({"*": Role.OWNER, "shop": Role.VIEWER})
    assert not narrower.may("shop", Permission.EDIT)


def test_admin_can_do_everything() -> None:
    for p in (who("admin"), user({}, admin=True)):
        assert p.is_admin
        assert all(p.may("any", perm) for perm in Permission)
        p.require_admin()


def test_read_scope_reads_published_config_and_secrets_but_no_drafts_or_history() -> None:
    p = who("read:shop")
    assert not p.is_admin
    assert p.may("shop", Permission.READ_CONFIG)
    assert p.may("shop", Permission.SEE_SECRETS)
    assert not p.may("shop", Permission.VIEW)
    assert not p.may("shop2", Permission.READ_CONFIG)
    assert not p.may("sho", Permission.READ_CONFIG)
    with pytest.raises(AppError) as err:
        p.require("shop", Permission.PUBLISH)
    assert (err.value.code, err.value.status) == ("forbidden", 403)
    assert "write:APP" in err.value.message
    assert "'shop'" in err.value.message


def test_write_scope_is_a_publisher() -> None:
    p = who("write:shop")
    assert {perm.value for perm in Permission if p.may("shop", perm)} == (
        EXPECTED_ROLE_PERMISSIONS[Role.PUBLISHER]
    )
    assert not p.may("billing", Permission.READ_CONFIG)


def test_no_scopes_and_non_admin() -> None:
    p = who()
    checks = (
        p.require_admin,
        lambda: p.require("a", Permission.READ_CONFIG),
        lambda: p.require("a", Permission.PUBLISH),
    )
    for check in checks:
        with pytest.raises(AppError) as err:
            check()
        assert (err.value.code, err.value.status) == ("forbidden", 403)


def test_wildcards_in_scopes_grant_nothing() -> None:
    p = who("read:*", "write:*")
    assert not p.may("shop", Permission.READ_CONFIG)
    assert not p.may("shop", Permission.PUBLISH)


def test_visible_apps() -> None:
    p = who("read:a", "write:c")
    assert p.visible_apps(["a", "b", "c", "d"]) == ["a", "c"]
    assert who("admin").visible_apps(["x", "y"]) == ["x", "y"]
    assert user({"b": Role.VIEWER}).visible_apps(["a", "b"]) == ["b"]


def test_actor_names_the_user_the_token_and_its_id_or_the_cli() -> None:
    assert user({}).actor == "user:alice"
    assert Principal("token:deploy", frozenset({"read:a"}), token_id=7).actor == "token:deploy#7"
    assert Principal("cli", frozenset({"admin"}), kind="cli").actor == "cli"


def test_parse_roles() -> None:
    assert parse_roles({"shop": "editor", "*": "viewer"}) == {
        "*": Role.VIEWER,
        "shop": Role.EDITOR,
    }
    assert parse_roles({}) == {}
    for bad in ({"shop": "god"}, {"Shop": "viewer"}, {"a*": "viewer"}, ["shop"], {"s": 1}):
        with pytest.raises(AppError) as err:
            parse_roles(bad)
        assert (err.value.code, err.value.status) == ("invalid_role", 400)


def test_principal_defaults_and_frozen() -> None:
    p = Principal("admin", frozenset({"admin"}))
    assert (p.token_id, p.kind) == (None, "api")
    session = Principal("alice", frozenset(), 9, "session")
    assert (session.token_id, session.kind) == (9, "session")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "x"  # type: ignore[misc]  # frozen: the point of the test


def test_forbidden_message_truncates_app() -> None:
    with pytest.raises(AppError) as err:
        who().require("x" * 1000, Permission.READ_CONFIG)
    assert len(err.value.message) < 200
