"""The canonical JSON of a release's items and the checksum clients compare."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

# The contract defines the canonical form as exactly this json.dumps call, so the
# stdlib is used rather than a faster encoder with subtly different escaping.


def canonical_json(items: Mapping[str, str]) -> str:
    """Items as JSON: keys sorted, no spaces, non-ASCII and <>& written as themselves."""
    return json.dumps(dict(items), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def checksum(items: Mapping[str, str]) -> str:
    """'sha256:' + the hex SHA-256 of the UTF-8 canonical JSON of items."""
    return checksum_of_canonical(canonical_json(items))


def checksum_of_canonical(text: str) -> str:
    """The checksum of items already in canonical JSON (saves encoding them twice)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
