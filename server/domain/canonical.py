"""The canonical JSON of a release's items and the checksum clients compare."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from json.encoder import encode_basestring

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


def entry_bytes(key: str, value: str) -> int:
    """The UTF-8 bytes one item takes in the canonical JSON, with its comma: `"key":"value",`.

    Keys are ASCII needing no escape; the value is escaped by the same function json.dumps
    uses for it (ensure_ascii=False).
    """
    return len(key) + 4 + len(encode_basestring(value).encode())


def document_bytes(count: int, entries: int) -> int:
    """The canonical JSON's size from its items' entry_bytes: the last comma becomes the `}`."""
    return entries + 1 if count else 2


def rare_escape_surplus(value: str) -> int:
    """The bytes escaping adds for the control characters other than \\n \\r \\t (see
    Queries.draft_size, which counts `"`, `\\`, \\n, \\r and \\t itself)."""
    return sum(_RARE_SURPLUS.get(c, 0) for c in value if c < " ")


# \b and \f are written as two bytes, every other control character as \u00XX (six).
_RARE_SURPLUS = {chr(c): 5 for c in range(0x20) if chr(c) not in "\n\r\t"} | {"\b": 1, "\f": 1}
