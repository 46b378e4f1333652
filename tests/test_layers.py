"""Layers import one way: every import in `server/` (read with `ast`) follows this graph.

```
                 app, __main__, admin_commands    the wiring and the commands: anything
                       |
                      keys                    every web.AppKey
                       |
   api --- pages --- watch --- middleware     HTTP and WebSocket: across each other only
                       |                      through the entry modules below
                     domain                   plain Python, never aiohttp
                    /  |   \\
               store   |   coord.base         the domain sees the coordinator protocol only
                       |   coord              store and coord never import each other
                       |  /
                    published                 the in-memory published configs and instances

   leaves: records, events, errors, config, metrics, tasks
```

Each layer imports only what hangs below it, and the leaves, which import nothing of ours.
Store and coord stay side by side (neither imports the other: a database and etcd are separate
seams). `LAYERS` below is the same graph as data; a new module must be placed in it.

The entry modules of the HTTP layer, which the others may import: `server.api.common` (request
helpers: the principal, the services, JSON answers), `server.api.routes` (the route table and
its policy), `server.watch.http` (the /watch handler, for the route table), `server.pages` (its
routes, for the OpenAPI document) and `server.middleware` (the session cookie). The watch
layer's hub, connections and message shapes, and the API's resource handlers, stay inside their
package.

The client (`server.client`, `server.remote_cli`) imports nothing of the server (the test
harness, `devservices/`, lives outside the package). `server.domain`, and everything below
it, never imports aiohttp. Imports inside functions and under TYPE_CHECKING count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "server"

LEAVES = (
    "server.records",
    "server.events",
    "server.errors",
    "server.config",
    "server.metrics",
    "server.access_log",
    "server.tasks",
    "server.connections",
    # AES-GCM sealing of secret values: the published configs open releases with it.
    "server.secretbox",
)
HTTP_ENTRY = (
    "server.api.common",
    "server.api.routes",
    "server.watch.http",
    "server.pages",
    "server.middleware",
)
# Each layer: the modules it holds (a module, or `package.*` for a package and everything in
# it) and the layers it may import.
# A module in no layer fails the test: place it, and say why, when adding one.
LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "leaf": (LEAVES, ()),
    # server.instances: who reads what, in memory beside the published configs (never stored).
    "published": (("server.published", "server.instances"), ("leaf",)),
    "store": (("server.store.*",), ("leaf",)),
    "coord": (("server.coord.*",), ("leaf", "published")),
    "domain": (("server.domain.*",), ("leaf", "published", "store", "coord.base")),
    "api": (("server.api.*",), ("leaf", "published", "domain", "keys", "http-entry")),
    "watch": (("server.watch.*",), ("leaf", "published", "domain", "keys", "http-entry")),
    "pages": (("server.pages",), ("leaf", "published", "domain", "keys", "http-entry")),
    # server.compat: the Apollo, Spring and Nacos protocols, an edge beside the JSON API that
    # reuses its answers (server.api.answers) and credentials.
    "compat": (
        ("server.compat.*",),
        ("leaf", "published", "domain", "keys", "http-entry", "api"),
    ),
    # server.forwarded: the public side of a request behind a trusted proxy (a middleware).
    "middleware": (
        ("server.middleware", "server.forwarded"),
        ("leaf", "published", "domain", "keys", "http-entry"),
    ),
    "keys": (
        ("server.keys",),
        (
            "leaf",
            "published",
            "store",
            "coord",
            "domain",
            "api",
            "watch",
            "pages",
            "middleware",
            "compat",
        ),
    ),
    "wiring": (("server.app", "server.__main__", "server.admin_commands", "server"), ("*",)),
    "client": (("server.client", "server.remote_cli"), ("client",)),
}
# Not layers of their own: narrower targets some layers are limited to.
TARGETS = {"coord.base": ("server.coord.base",), "http-entry": HTTP_ENTRY}
NO_AIOHTTP = ("leaf", "published", "store", "coord", "domain")


@dataclass(frozen=True)
class Import:
    """One import statement's target, seen from a module."""

    importer: str
    target: str
    line: int


def module_name(path: Path) -> str:
    """server/a/b.py -> server.a.b; server/a/__init__.py -> server.a."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the server package, by name."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_in(name: str, source: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every module an import in a module's source names (ours, or a third party's)."""
    tree = ast.parse(source, filename=name)
    package = name if is_package else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(name, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from server.api import apps` imports the module server.api.apps.
                child = f"{base}.{alias.name}"
                found.append(Import(name, child if child in known else base, node.lineno))
    return found


def layer_of(module: str) -> str | None:
    """The layer holding a project module, None when it is in none."""
    for layer, (members, _) in LAYERS.items():
        for member in members:
            package = member.removesuffix(".*")
            if module == package or (member.endswith(".*") and module.startswith(package + ".")):
                return layer
    return None


def allowed(importer_layer: str, target: str) -> bool:
    """True when a module of importer_layer may import the project module target."""
    target_layer = layer_of(target)
    if target_layer == importer_layer:
        return True
    for permitted in LAYERS[importer_layer][1]:
        if permitted == "*":
            return True
        if permitted in TARGETS:
            if any(target == t or target.startswith(t + ".") for t in TARGETS[permitted]):
                return True
        elif permitted == target_layer:
            return True
    return False


ALL = modules()
KNOWN = set(ALL)
IMPORTS = {
    name: imports_in(name, path.read_text(), path.name == "__init__.py", KNOWN)
    for name, path in ALL.items()
}


def project(imp: Import) -> bool:
    return imp.target == "server" or imp.target.startswith("server.")


def where(imp: Import) -> str:
    return f"{ALL[imp.importer].relative_to(ROOT)}:{imp.line}: {imp.importer} imports {imp.target}"


def test_every_module_is_in_a_layer() -> None:
    unplaced = [name for name in ALL if layer_of(name) is None]
    assert not unplaced, f"place these modules in LAYERS: {unplaced}"


def test_every_import_follows_the_graph() -> None:
    wrong = [
        f"{where(imp)} ({layer_of(imp.importer)} may not import {layer_of(imp.target)})"
        for name, found in IMPORTS.items()
        for imp in found
        if project(imp) and not allowed(layer_of(name) or "?", imp.target)
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaves_import_nothing_of_ours(leaf: str) -> None:
    wrong = [where(imp) for imp in IMPORTS[leaf] if project(imp)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("server.store", "server.domain"),
        ("server.coord", "server.domain"),
        ("server.store", "server.coord"),
        ("server.coord", "server.store"),
        ("server.domain", "server.api"),
        ("server.domain", "server.pages"),
        ("server.domain", "server.watch"),
        ("server.domain", "server.middleware"),
        ("server.domain", "server.keys"),
        ("server.domain", "server.app"),
    ],
)
def test_a_lower_layer_never_imports_an_upper_one(lower: str, upper: str) -> None:
    """The rules the graph above implies, spelled out (a wrong LAYERS table cannot hide them)."""
    wrong = [
        where(imp)
        for name, found in IMPORTS.items()
        if name == lower or name.startswith(lower + ".")
        for imp in found
        if imp.target == upper or imp.target.startswith(upper + ".")
    ]
    assert not wrong, "\n".join(wrong)


def test_domain_and_below_never_import_aiohttp() -> None:
    wrong = [
        where(imp)
        for name, found in IMPORTS.items()
        if layer_of(name) in NO_AIOHTTP
        for imp in found
        if imp.target.split(".")[0].startswith("aiohttp")
    ]
    assert not wrong, "\n".join(wrong)


def test_loading_the_domain_loads_no_aiohttp() -> None:
    """What the graph promises, seen by the interpreter: the domain runs without aiohttp."""
    code = (
        "import sys, server.domain.services, server.coord.etcd, server.store.store;"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('aiohttp')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_reader_sees_every_kind_of_import() -> None:
    """The parser itself: absolute, from-package, relative, nested and TYPE_CHECKING imports."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import server.records\n"
        "from server.api import common\n"
        "from . import context\n"
        "from .scopes import Principal\n"
        "if TYPE_CHECKING:\n"
        "    from server.watch.hub import Hub\n"
        "def late():\n"
        "    import aiohttp\n"
    )
    known = KNOWN | {"server.domain.example"}
    found = {imp.target for imp in imports_in("server.domain.example", source, False, known)}
    assert found == {
        "typing",
        "server.records",
        "server.api.common",
        "server.domain.context",
        "server.domain.scopes",
        "server.watch.hub",
        "aiohttp",
    }
