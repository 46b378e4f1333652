"""The wheel ships the server only: no test harness, nothing that imports test-only packages."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from devservices import REPO_ROOT

# Packages a runtime install does not have (the `test` extra) and our own test-only code.
TEST_ONLY = {"mirakuru", "port_for", "pytest", "playwright", "devservices", "tests", "bench"}
# Not copied: environments, caches and build output (a build must not write into the repo).
UNCOPIED = shutil.ignore_patterns(
    ".git", ".venv", "data", "artifacts", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
)


def _build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    shutil.copytree(REPO_ROOT, source, ignore=UNCOPIED)
    dist = tmp_path / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--disable-pip-version-check", "-q", "-w", str(dist), str(source)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = dist.glob("configcenter-*.whl")
    return wheel


def _imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_wheel_holds_no_test_harness_and_no_test_only_import(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        sources = {n: archive.read(n).decode() for n in names if n.endswith(".py")}
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"server"}
    assert "server/__main__.py" in sources
    offending = {
        name: sorted(roots & TEST_ONLY)
        for name, source in sources.items()
        if (roots := _imported_roots(source)) & TEST_ONLY
    }
    assert offending == {}
