"""What publishing a draft would change, compared with a base release."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Diff:
    """Keys added, changed (old, new) and removed going from a base to a draft."""

    base_version: int | None
    # None where a secret's value is masked (Diff.masked).
    added: dict[str, str | None]
    changed: dict[str, tuple[str | None, str | None]]
    removed: dict[str, str | None]
    # The draft's revision the diff was read at (None for a request's frozen diff).
    draft_revision: int | None = None
    # The keys of the diff that are secret on either side (with_secrets).
    secret_keys: frozenset[str] = frozenset()

    @property
    def is_empty(self) -> bool:
        """True when the draft equals the base."""
        return not (self.added or self.changed or self.removed)

    def keys(self) -> set[str]:
        """Every key the diff lists."""
        return {*self.added, *self.changed, *self.removed}

    def with_secrets(self, secrets: Collection[str]) -> Diff:
        """The diff naming which of its keys are secret (so a page masks exactly those)."""
        return replace(self, secret_keys=frozenset(k for k in self.keys() if k in secrets))

    def masked(self, secrets: Collection[str]) -> Diff:
        """The diff with the values of secrets null: a secret still shows as added, changed
        (old and new null) or removed, but never its value."""

        def hide(part: Mapping[str, str | None]) -> dict[str, str | None]:
            return {k: None if k in secrets else v for k, v in part.items()}

        return Diff(
            self.base_version,
            hide(self.added),
            {k: (None, None) if k in secrets else v for k, v in self.changed.items()},
            hide(self.removed),
            self.draft_revision,
            self.secret_keys,
        )

    def to_json(self) -> dict[str, Any]:
        """The API shape: {"base_version","draft_revision"?,"added","changed":{k:{"old","new"}},
        "removed","secret_keys"}."""
        revision = {} if self.draft_revision is None else {"draft_revision": self.draft_revision}
        return {
            "base_version": self.base_version,
            **revision,
            "added": dict(self.added),
            "changed": {k: {"old": old, "new": new} for k, (old, new) in self.changed.items()},
            "removed": dict(self.removed),
            "secret_keys": sorted(self.secret_keys),
        }


def diff_items(base: Mapping[str, str], draft: Mapping[str, str], base_version: int | None) -> Diff:
    """Compare draft with base; each part is ordered by key."""
    added: dict[str, str | None] = {}
    changed: dict[str, tuple[str | None, str | None]] = {}
    for key in sorted(draft):
        new = draft[key]
        if key not in base:
            added[key] = new
        elif base[key] != new:
            changed[key] = (base[key], new)
    removed: dict[str, str | None] = {key: base[key] for key in sorted(base) if key not in draft}
    return Diff(base_version, added, changed, removed)
