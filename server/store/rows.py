"""Stored rows and snapshots turned into records, shared by the parts of `Queries`."""

from __future__ import annotations

import orjson

from server.records import Item
from server.store.db import Row


def snapshot_items(text: str) -> dict[str, str]:
    """A stored snapshot's items (a release's, or a release request's frozen ones)."""
    items: dict[str, str] = orjson.loads(text)
    return items


def item_from_row(row: Row) -> Item:
    """An item from its row, in the order of _ITEM_COLUMNS (server/store/queries.py)."""
    return Item(
        key=row[0],
        value=row[1],
        comment=row[2],
        revision=int(row[3]),
        updated_at=row[4],
        updated_by=row[5],
        secret=bool(row[6]),
    )
