"""The examples in README.md and docs/client.md, pasted into an interactive Python against a real
server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devservices import REPO_ROOT, ServerProcess
from tests.client.helpers import Admin
from tests.helpers import LineReader

DOC = REPO_ROOT / "docs" / "client.md"
README = REPO_ROOT / "README.md"
DOC_URL = "http://127.0.0.1:8080"


def examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 2, "docs/client.md should have the async and the sync example"
    return blocks


def readme_example() -> str:
    """The Python block of the README's "Use it from your service"."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Use it from your service") :]
    section = section[: section.index("\n## ", 1)]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the README's service section should have one Python example"
    return blocks[0]


def paste(code: str, server: ServerProcess, token: str, cwd: Path) -> subprocess.Popen[str]:
    """Start `python -i` and paste code into it, as a user would (blank lines matter there)."""
    assert DOC_URL in code
    process = subprocess.Popen(
        [sys.executable, "-i"],
        cwd=cwd,
        env={**os.environ, "CONFIGCENTER_TOKEN": token, "PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(code.replace(DOC_URL, server.url))
    process.stdin.close()
    return process


@pytest.fixture
def shop(admin: Admin) -> tuple[Admin, str]:
    """The docs' app (shop/prod with db.pool and feature.search) and a read token for it."""
    status, _ = admin.server.request(
        "GET",
        "/api/v1/apps/shop",
        headers={"Authorization": f"Bearer {admin.server.admin_token()}"},
    )
    if status == 404:
        admin.call("POST", "/api/v1/apps", {"name": "shop", "envs": ["prod"]}, expect=201)
    admin.publish("shop", {"db.pool": "10", "feature.search": "on"})
    return admin, admin.token("read:shop")[1]


def test_the_async_example(
    shop: tuple[Admin, str], shared_server: ServerProcess, tmp_path: Path
) -> None:
    admin, token = shop
    process = paste(examples()[0], shared_server, token, tmp_path)
    reader = LineReader(process.stdout, strip_newlines=True)
    lines = reader.lines
    try:
        first = lines.get(timeout=30)
        assert re.fullmatch(r"version \d+ db\.pool 10", first), first
        admin.publish("shop", {"db.pool": "20"}, ["feature.search"])
        assert re.fullmatch(r"version \d+ added \{\}", lines.get(timeout=30))
        change = lines.get(timeout=30)
        assert change == "  changed {'db.pool': ('10', '20')} removed {'feature.search': 'on'}"
        assert (tmp_path / ".configcenter-cache" / "shop@prod.json").is_file()
    finally:
        process.kill()  # the example sleeps 60 s to show changes; no need to wait it out
        process.wait(timeout=10)
        reader.join(timeout=10)
        assert process.stdout is not None
        assert process.stderr is not None
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    assert "Traceback" not in stderr, stderr


def test_the_sync_example(
    shop: tuple[Admin, str], shared_server: ServerProcess, tmp_path: Path
) -> None:
    _, token = shop
    process = paste(examples()[1], shared_server, token, tmp_path)
    assert process.wait(timeout=60) == 0  # the output is small: the pipes cannot fill up
    assert process.stdout is not None
    assert process.stderr is not None
    with process.stdout, process.stderr:
        stdout, stderr = process.stdout.read(), process.stderr.read()
    assert "Traceback" not in stderr, stderr
    lines = stdout.splitlines()
    assert re.fullmatch(r"version \d+ search True", lines[0]), stdout
    assert lines[-1] == "{'db.pool': '10', 'feature.search': 'on'}"


def test_the_readme_example_sees_a_change_arrive(
    admin: Admin, shared_server: ServerProcess, tmp_path: Path
) -> None:
    status, _ = admin.server.request(
        "GET",
        "/api/v1/apps/shop",
        headers={"Authorization": f"Bearer {admin.server.admin_token()}"},
    )
    if status == 404:
        admin.call("POST", "/api/v1/apps", {"name": "shop", "envs": ["prod"]}, expect=201)
    # A key of its own makes this publish a change whatever ran before on the shared server.
    version = admin.publish("shop", {"pool.size": "10", "readme.run": uuid.uuid4().hex})
    token = admin.token("read:shop")[1]
    process = paste(readme_example(), shared_server, token, tmp_path)
    reader = LineReader(process.stdout, strip_newlines=True)
    lines = reader.lines
    try:
        assert lines.get(timeout=30) == f"version {version} pool.size 10"
        assert lines.get(timeout=30) == "waiting for a release: publish one from another shell"
        # What the README tells the reader to do from another shell.
        assert admin.publish("shop", {"pool.size": "30"}) == version + 1
        assert (
            lines.get(timeout=30)
            == f"now version {version + 1} changed {{'pool.size': ('10', '30')}}"
        )
        assert process.wait(timeout=30) == 0  # it stops waiting and closes once a change came
        assert (tmp_path / ".cache" / "shop@prod.json").is_file()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=10)
        assert process.stdout is not None
        assert process.stderr is not None
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    assert "Traceback" not in stderr, stderr
    assert lines.empty()
