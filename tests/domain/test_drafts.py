"""The draft's write rules: reconciling to a target, the items limit, item preconditions."""

from __future__ import annotations

import pytest

from server.domain.drafts import DraftChange, Precondition, check_items_limit, plan_reconcile
from server.errors import AppError
from server.records import Item

NOW = "2026-01-02T03:04:05.000000Z"


def item(key: str, value: str, comment: str = "", revision: int = 1) -> Item:
    """A draft item as the store holds it, written by someone else earlier."""
    return Item(key, value, comment, revision, "2026-01-01T00:00:00.000000Z", "earlier")


def test_reconcile_adds_updates_and_deletes_under_one_revision() -> None:
    current = {
        "same": item("same", "s", "kept", revision=3),
        "changed": item("changed", "old", "tuned", revision=4),
        "gone": item("gone", "bye", revision=5),
    }
    target = {"same": "s", "changed": "new", "added": "hi"}
    change = plan_reconcile(current, target, 9, NOW, "alice")
    assert change == DraftChange(
        9,
        added=(Item("added", "hi", "", 9, NOW, "alice"),),
        updated=(Item("changed", "new", "tuned", 9, NOW, "alice"),),
        deleted=("gone",),
    )
    assert change.summary == "1 added, 1 changed, 1 deleted"


def test_reconcile_to_what_the_draft_holds_is_empty() -> None:
    current = {"a": item("a", "1"), "b": item("b", "")}
    change = plan_reconcile(current, {"a": "1", "b": ""}, 2, NOW, "alice")
    assert not change
    assert change.summary == "0 added, 0 changed, 0 deleted"


def test_reconcile_an_empty_draft_or_to_an_empty_target() -> None:
    grown = plan_reconcile({}, {"a": "1"}, 1, NOW, "alice")
    assert [i.key for i in grown.added] == ["a"]
    emptied = plan_reconcile({"a": item("a", "1"), "b": item("b", "2")}, {}, 2, NOW, "alice")
    assert emptied.deleted == ("a", "b")
    assert not emptied.added
    assert not emptied.updated


@pytest.mark.parametrize(
    ("before", "after", "allowed"),
    [
        (2, 3, True),  # up to the limit
        (3, 4, False),  # one past it
        (0, 4, False),
        (5, 5, True),  # past a lowered limit: changing in place is allowed
        (5, 4, True),  # and so is shrinking, even while still past it
        (5, 6, False),  # growing is not
    ],
)
def test_items_limit_refuses_only_growth_past_it(before: int, after: int, allowed: bool) -> None:
    if allowed:
        check_items_limit(before, after, 3)
    else:
        with pytest.raises(AppError) as refused:
            check_items_limit(before, after, 3)
        assert refused.value.code == "too_many_items"
        assert refused.value.status == 413


def test_preconditions() -> None:
    at_7 = item("k", "v", revision=7)
    Precondition().check("k", None)
    Precondition().check("k", at_7)
    Precondition(revision=7).check("k", at_7)
    Precondition(absent=True).check("k", None)
    for precondition, existing in [
        (Precondition(revision=6), at_7),
        (Precondition(revision=7), None),
        (Precondition(absent=True), at_7),
    ]:
        with pytest.raises(AppError) as refused:
            precondition.check("k", existing)
        assert refused.value.code == "precondition_failed"
        assert refused.value.status == 412
