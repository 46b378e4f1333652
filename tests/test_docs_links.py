"""The docs stand on their own: every route documented, every link inside the repo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web

from server.app import create_app
from server.config import load_config

ROOT = Path(__file__).resolve().parent.parent
API_DOC = ROOT / "docs" / "api.md"
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "bench").glob("*.md")])

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.M)
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
# What a clone does not have, or what only the people who planned the work know.
_INTERNAL = re.compile(r"\.\./shared|FACTS\.md|\bissue #?\d+", re.I)


def _routes(app: web.Application) -> list[str]:
    """`METHOD /path` of every route the app registers (HEAD comes with GET)."""
    routes = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path = f"{path}/{{path}}"
        routes.append(f"{route.method} {path}")
    return routes


def test_every_route_of_the_server_is_in_the_api_reference() -> None:
    app = create_app(load_config(environ={}))
    routes = _routes(app)
    assert "GET /api/v1/apps/{app}/envs/{env}/config" in routes
    assert "GET /api/openapi.json" in routes
    text = API_DOC.read_text(encoding="utf-8")
    missing = [route for route in routes if f"`{route}`" not in text]
    assert not missing, f"docs/api.md does not document {missing}"


def _anchor(heading: str) -> str:
    """The id GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_anchor(heading) for heading in _HEADING.findall(text)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve_inside_the_repo(doc: Path) -> None:
    text = _FENCE.sub("", doc.read_text(encoding="utf-8"))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.is_relative_to(ROOT) or not path.is_file():
            broken.append(target)
        elif fragment and path.suffix == ".md" and fragment not in _anchors(path):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)} links to what the repo does not have: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_doc_points_outside_the_repo_or_at_planning(doc: Path) -> None:
    found = [
        f"line {number}: {line.strip()}"
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        if _INTERNAL.search(line)
    ]
    assert not found, f"{doc.relative_to(ROOT)} mentions {found}"


def test_the_readme_points_at_the_api_reference() -> None:
    assert "(docs/api.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
