"""Tests for server.domain.diff."""

from __future__ import annotations

import dataclasses

import pytest

from server.domain.diff import Diff, diff_items


def test_added_changed_removed() -> None:
    base = {"same": "1", "changed": "old", "gone": "bye", "empty": ""}
    draft = {"same": "1", "changed": "new", "new": "hi", "empty": " "}
    diff = diff_items(base, draft, 7)
    assert diff == Diff(
        base_version=7,
        added={"new": "hi"},
        changed={"changed": ("old", "new"), "empty": ("", " ")},
        removed={"gone": "bye"},
    )
    assert not diff.is_empty


def test_to_json_shape() -> None:
    diff = diff_items({"a": "1", "b": "2"}, {"a": "10", "c": "3"}, 4)
    assert diff.to_json() == {
        "base_version": 4,
        "added": {"c": "3"},
        "changed": {"a": {"old": "1", "new": "10"}},
        "removed": {"b": "2"},
        "secret_keys": [],
    }


def test_with_secrets_names_only_the_secret_keys_the_diff_lists() -> None:
    diff = diff_items({"a": "1", "b": "2"}, {"a": "10", "c": "3"}, 4)
    flagged = diff.with_secrets({"a", "b", "elsewhere"})
    assert flagged.to_json()["secret_keys"] == ["a", "b"]
    masked = flagged.masked({"a", "b"})
    assert masked.to_json()["secret_keys"] == ["a", "b"]
    assert masked.changed == {"a": (None, None)}
    assert masked.removed == {"b": None}


def test_no_base_release() -> None:
    diff = diff_items({}, {"b": "2", "a": "1"}, None)
    assert diff.to_json() == {
        "base_version": None,
        "added": {"a": "1", "b": "2"},
        "changed": {},
        "removed": {},
        "secret_keys": [],
    }
    assert list(diff.added) == ["a", "b"]


def test_equal_is_empty() -> None:
    items = {"a": "1", "b": ""}
    diff = diff_items(items, dict(items), 3)
    assert diff.is_empty
    assert diff.to_json() == {
        "base_version": 3,
        "added": {},
        "changed": {},
        "removed": {},
        "secret_keys": [],
    }
    assert diff_items({}, {}, None).is_empty


def test_everything_removed() -> None:
    diff = diff_items({"a": "1"}, {}, 2)
    assert diff.removed == {"a": "1"}
    assert not diff.is_empty


def test_keys_are_case_sensitive() -> None:
    diff = diff_items({"Key": "v"}, {"key": "v"}, 1)
    assert diff.added == {"key": "v"}
    assert diff.removed == {"Key": "v"}
    assert diff.changed == {}


def test_parts_are_sorted_by_key() -> None:
    base = {k: "old" for k in "zyxw"}
    draft = {k: "new" for k in "zyx"} | {"c": "1", "a": "1", "b": "1"}
    diff = diff_items(base, draft, 1)
    assert list(diff.added) == ["a", "b", "c"]
    assert list(diff.changed) == ["x", "y", "z"]
    assert list(diff.to_json()["changed"]) == ["x", "y", "z"]


def test_frozen_and_inputs_untouched() -> None:
    base = {"a": "1"}
    draft = {"a": "2"}
    diff = diff_items(base, draft, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        diff.base_version = 2  # type: ignore[misc]  # frozen: the point of the test
    assert base == {"a": "1"}
    assert draft == {"a": "2"}
    diff.to_json()["added"]["x"] = "y"
    assert diff.added == {}
