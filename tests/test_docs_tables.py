"""docs/api-notes.md lists every error code and audit action the code has, and no other."""

from __future__ import annotations

import re
from pathlib import Path

from server.errors import ErrorCode
from server.records import AuditAction

NOTES = Path(__file__).resolve().parent.parent / "docs" / "api-notes.md"
_CODE = re.compile(r"`([a-z][a-z0-9_.]*)`")


def _section(title: str) -> list[str]:
    """The lines of one `## title` section."""
    lines = NOTES.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def _rows(title: str) -> list[list[str]]:
    """The cells of every table body row in a section."""
    rows = []
    for line in _section(title):
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _documented_codes() -> tuple[dict[str, int], set[str]]:
    """(code -> status) from the HTTP table; the codes of the WebSocket-only table."""
    by_status: dict[str, int] = {}
    websocket_only: set[str] = set()
    for cells in _rows("Error codes"):
        if cells[0].isdigit():
            # The second cell names the codes; parenthesised notes may quote other things.
            listed = re.sub(r"\([^)]*\)", "", cells[1])
            for code in _CODE.findall(listed):
                assert code not in by_status, f"{code} is listed twice"
                by_status[code] = int(cells[0])
        elif cells[0] not in ("status", "code"):
            websocket_only.update(_CODE.findall(cells[0]))
    return by_status, websocket_only


def test_every_error_code_is_documented_with_its_status_and_every_documented_one_exists() -> None:
    by_status, websocket_only = _documented_codes()
    assert not by_status.keys() & websocket_only
    in_code = {error.code: error.status for error in ErrorCode}
    documented = by_status.keys() | websocket_only
    assert sorted(in_code.keys() - documented) == [], "codes missing from docs/api-notes.md"
    assert sorted(documented - in_code.keys()) == [], "documented codes the server never answers"
    wrong = {code: (status, in_code[code]) for code, status in by_status.items()}
    assert {code: pair for code, pair in wrong.items() if pair[0] != pair[1]} == {}


def test_every_audit_action_is_documented_and_every_documented_one_exists() -> None:
    documented = [found for cells in _rows("Audit actions") for found in _CODE.findall(cells[0])]
    assert len(documented) == len(set(documented)), "an action is listed twice"
    assert sorted(documented) == sorted(action.value for action in AuditAction)
