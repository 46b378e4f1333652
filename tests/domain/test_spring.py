"""Spring Cloud Config's names, labels, source order, credentials and documents, without HTTP."""

from __future__ import annotations

import base64

import orjson
import pytest

from server.domain import spring
from server.errors import AppError
from server.records import Release


def release(app: str, env: str, version: int, items: dict[str, str], secret: str = "") -> Release:
    secrets = frozenset({secret}) if secret else frozenset()
    return Release(app, env, version, "sha256:x", "a", "", "", items, secret_keys=secrets)


def test_names_are_comma_lists_of_exact_names_duplicates_read_once() -> None:
    assert spring.names("shop", "application") == ("shop",)
    assert spring.names("dev,prod,dev", "profile") == ("dev", "prod")
    for bad in ("", ",", "a,", "Shop", "../x", "a/b", "a\\b", "a\x00", " a", "é", "a" * 65):
        with pytest.raises(AppError) as caught:
            spring.names(bad, "profile")
        assert caught.value.status == 400
    with pytest.raises(AppError):
        spring.names(",".join(f"e{i}" for i in range(spring.MAX_NAMES + 1)), "profile")


@pytest.mark.parametrize(
    ("label", "version"),
    [(None, None), ("main", None), ("master", None), ("7", 7), ("9" * 18, int("9" * 18))],
)
def test_a_label_is_the_latest_or_a_version(label: str | None, version: int | None) -> None:
    assert spring.label_version(label) == version


@pytest.mark.parametrize(
    "label", ["0", "07", "-1", "+1", "1.0", "v1", "main(_)x", "(_)1", "\u0661", "1" * 19, ""]
)
def test_any_other_label_is_a_404(label: str) -> None:
    with pytest.raises(AppError) as caught:
        spring.label_version(label)
    assert caught.value.status == 404


def test_sources_are_ordered_later_profile_then_later_application_first() -> None:
    assert spring.reads(("a", "b"), ("p", "q")) == [("b", "q"), ("a", "q"), ("b", "p"), ("a", "p")]


def _basic(text: bytes) -> str:
    return "Basic " + base64.b64encode(text).decode()


def test_the_token_is_basics_password_or_the_bearer_token() -> None:
    assert spring.token_secret(None) is None
    assert spring.token_secret(_basic(b"anyone:cc_secret")) == "cc_secret"
    assert spring.token_secret(_basic(b":cc_secret:with:colons")) == "cc_secret:with:colons"
    assert spring.token_secret("bearer  cc_secret ") == "cc_secret"
    for bad in (_basic(b"user:"), _basic(b"nocolon"), "Basic %%%", _basic(b"u:\xff"), "Token x"):
        with pytest.raises(AppError) as caught:
            spring.token_secret(bad)
        assert caught.value.status == 401


def test_an_environment_names_its_sources_and_joins_their_versions() -> None:
    prod = release("shop", "prod", 7, {"k": "p", "pw": "s"}, secret="pw")
    dev = release("shop", "dev", 3, {"k": "d"})
    sources = [spring.property_source(r, reveal=False, origins=False) for r in (prod, dev)]
    body = orjson.loads(spring.environment("shop", ["dev", "prod"], None, [prod, dev], sources))
    assert body == {
        "name": "shop",
        "profiles": ["dev", "prod"],
        "label": None,
        "version": "7,3",
        "state": None,
        "propertySources": [
            {"name": "configcenter:shop/prod@v7", "source": {"k": "p"}},
            {"name": "configcenter:shop/dev@v3", "source": {"k": "d"}},
        ],
    }
    with_origin = spring.property_source(prod, reveal=True, origins=True)
    origin = "configcenter:shop/prod@v7"
    assert with_origin["source"]["pw"] == {"value": "s", "origin": origin}
    assert orjson.loads(spring.environment("shop", ["x"], "main", [], []))["version"] is None


def test_flat_files_merge_the_first_source_winning() -> None:
    items = spring.merged_items([{"k": "first"}, {"k": "second", "other": "o"}])
    assert items == {"k": "first", "other": "o"}
    assert spring.flat_file("json", items) == (b'{"k":"first","other":"o"}', "application/json")
    assert spring.flat_file("properties", items)[0] == b"k=first\nother=o\n"
    assert spring.flat_file("yml", items)[0] == b'k: "first"\nother: "o"\n'


def test_an_error_is_spring_boots_shape() -> None:
    body = orjson.loads(spring.error_body(401, "no", "/spring/shop/prod"))
    assert {k: body[k] for k in ("status", "error", "message", "path")} == {
        "status": 401,
        "error": "Unauthorized",
        "message": "no",
        "path": "/spring/shop/prod",
    }
