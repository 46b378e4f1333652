"""`configcenter get` and `configcenter watch` as subprocesses against a running server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devservices import REPO_ROOT, ServerProcess, free_port
from server.__main__ import main
from server.client import Change
from server.remote_cli import _print_text
from tests.client.helpers import Admin
from tests.helpers import LineReader

ITEMS = {"db.url": "jdbc:x://h/db", "feature-on": "true", "note": "a=b\nline 2"}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], *fragments: str, code: int = 1
) -> None:
    """Exit code `code`, nothing on stdout, one line on stderr naming every fragment."""
    assert result.returncode == code, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configcenter")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def published(admin: Admin) -> tuple[str, str]:
    """(app, read token) of an app whose prod env has ITEMS published as version 1."""
    app = admin.new_app()
    admin.publish(app, ITEMS)
    return app, admin.token(f"read:{app}")[1]


def test_get_as_a_subprocess(shared_server: ServerProcess, published: tuple[str, str]) -> None:
    app, token = published
    result = run_cli("get", app, "prod", "--url", shared_server.url, "--token", token)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["app"], document["version"], document["items"]) == (app, 1, ITEMS)

    # URL and token from the environment; KEY prints the bare value.
    env = {"CONFIGCENTER_URL": shared_server.url, "CONFIGCENTER_TOKEN": token}
    value = run_cli("get", app, "prod", "note", env=env)
    assert (value.returncode, value.stdout) == (0, "a=b\nline 2\n")

    refused = run_cli("get", app, "prod", "--url", shared_server.url, "--token", "cc_bad")
    assert_one_line_error(refused, "401")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The same command line in this process (cheaper than a subprocess for the many cases)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_get_formats(
    shared_server: ServerProcess, published: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    app, token = published
    options = ["--url", shared_server.url, "--token", token]
    properties = cli(capsys, "get", app, "prod", "--format", "properties", *options)
    assert properties.returncode == 0, properties.stderr
    assert "db.url=jdbc\\:x\\://h/db" in properties.stdout.splitlines()
    assert "note=a\\=b\\nline 2" in properties.stdout.splitlines()
    as_yaml = cli(capsys, "get", app, "prod", "--format", "yaml", *options)
    assert yaml.safe_load(as_yaml.stdout) == ITEMS
    dotenv = cli(capsys, "get", app, "prod", "--format", "dotenv", *options)
    assert "FEATURE_ON='true'" in dotenv.stdout.splitlines()
    as_json = cli(capsys, "get", app, "prod", "--format", "json", *options)
    assert json.loads(as_json.stdout)["items"] == ITEMS


def test_get_errors_are_one_line_and_non_zero(
    shared_server: ServerProcess,
    published: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, token = published
    options = ["--url", shared_server.url, "--token", token]
    missing = cli(capsys, "get", app, "prod", "nope", *options)
    assert_one_line_error(missing, "'nope'", "version 1")
    assert_one_line_error(cli(capsys, "get", app, "staging", *options), "404", "not_found")
    unreachable = f"http://127.0.0.1:{free_port()}"
    assert_one_line_error(
        cli(capsys, "get", app, "prod", "--url", unreachable, "--token", token), "cannot reach"
    )
    refused = cli(capsys, "watch", app, "prod", "--url", shared_server.url, "--token", "cc_bad")
    assert_one_line_error(refused, "401")


def test_usage_errors_exit_2(
    shared_server: ServerProcess,
    published: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, token = published
    options = ["--url", shared_server.url, "--token", token]
    # Caught by the command line parser: usage, then one error line.
    for args in (
        ("fetch", app, "prod"),  # unknown command
        ("get", app),  # no ENV
        ("watch",),  # no APP, no ENV
        ("get", app, "prod", "--format", "xml", *options),
        ("watch", app, "prod", "--format", "yaml", *options),
        ("get", app, "prod", "--timeout", "soon", *options),
    ):
        result = cli(capsys, *args)
        assert result.returncode == 2, args
        assert result.stdout == ""
        assert "error: " in result.stderr.splitlines()[-1], args
        assert "Traceback" not in result.stderr
    # Caught once parsed: one line.
    both = cli(capsys, "get", app, "prod", "note", "--format", "yaml", *options)
    assert_one_line_error(both, "KEY", "--format", code=2)
    not_http = cli(capsys, "get", app, "prod", "--url", "127.0.0.1:8080", "--token", token)
    assert_one_line_error(not_http, "http://", code=2)
    monkeypatch.setenv("CONFIGCENTER_TOKEN", "")
    for command in ("get", "watch"):
        no_token = cli(capsys, command, app, "prod", "--url", shared_server.url)
        assert_one_line_error(no_token, "CONFIGCENTER_TOKEN", code=2)
    # And as a real process, as a shell sees it.
    assert_one_line_error(
        run_cli("get", app, "prod", "note", "--format", "json", *options), "--format", code=2
    )


def test_watch_prints_each_release_until_ctrl_c(
    admin: Admin, shared_server: ServerProcess, published: tuple[str, str], tmp_path: Path
) -> None:
    app, token = published
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "watch", app, "prod", "--format", "json"],
        cwd=REPO_ROOT,
        env={**os.environ, "CONFIGCENTER_URL": shared_server.url, "CONFIGCENTER_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = LineReader(process.stdout)
    lines = reader.lines
    try:
        first = json.loads(lines.get(timeout=30))
        assert (first["version"], first["items"], first["added"]) == (1, ITEMS, ITEMS)
        admin.publish(app, {"feature-on": "false", "new": "n"}, ["note"])
        second = json.loads(lines.get(timeout=30))
        assert second["version"] == 2
        assert second["added"] == {"new": "n"}
        assert second["changed"] == {"feature-on": {"old": "true", "new": "false"}}
        assert second["removed"] == {"note": "a=b\nline 2"}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
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
    assert "Traceback" not in stderr
    assert lines.empty()
    # The client's log lines went to stderr: stdout had the two releases and nothing else.
    assert "subscribed at" in stderr
    assert "applied version 2" in stderr


def test_watch_text_lines(capsys: pytest.CaptureFixture[str]) -> None:
    change = Change(
        app="shop",
        env="prod",
        version=3,
        previous_version=2,
        checksum="sha256:abc",
        items={"a": "1", "b": "two\nlines"},
        added={"a": "1"},
        changed={"b": ("old", "two\nlines")},
        removed={"c": "gone"},
        from_cache=False,
    )
    _print_text(change)
    assert capsys.readouterr().out.splitlines() == [
        "# shop/prod version 3 sha256:abc",
        "+ a=1",
        "~ b=two\\nlines (was old)",
        "- c",
    ]


def test_watch_without_a_server_fails_in_one_line(published: tuple[str, str]) -> None:
    app, token = published
    unreachable = f"http://127.0.0.1:{free_port()}"
    failed = run_cli("watch", app, "prod", "--url", unreachable, "--token", token, "--timeout", "1")
    assert_one_line_error(failed, "no server answered within 1 s")
