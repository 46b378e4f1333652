"""ConfigClient against a real server: reading, changes, callbacks, cache files, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devservices import REPO_ROOT, ServerProcess, free_port
from server.client import (
    Change,
    ConfigAccessError,
    ConfigClient,
    ConfigUnavailableError,
    SyncConfigClient,
    checksum_of,
)
from tests.client.helpers import FAST, Admin, fast, wait_until


def read_token(admin: Admin, app: str) -> str:
    return admin.token(f"read:{app}")[1]


async def test_start_reads_the_latest_release_and_caches_it(
    admin: Admin, shared_server: ServerProcess, tmp_path: Path
) -> None:
    app = admin.new_app()
    admin.publish(app, {"a": "1"})
    items = {"pool": "42", "flag": "on", "name": "ünï <&>", "multi": "x\ny"}
    admin.publish(app, items, ["a"])
    client = ConfigClient(shared_server.url, read_token(admin, app), app, "prod", tmp_path, **FAST)
    async with client:
        assert client.version == 2
        assert dict(client.items) == items
        assert client.checksum == checksum_of(items)
        assert client.get("pool") == "42"
        assert client.get("pool", cast=int) == 42
        assert client.get("flag", False, cast=bool) is True
        assert client.get("missing") is None
        assert client.get("missing", 7, cast=int) == 7
        with pytest.raises(ValueError, match="name"):
            client.get("name", cast=int)
        with pytest.raises(TypeError):
            client.items["pool"] = "1"  # type: ignore[index]  # read-only: the point of the test
        assert not client.from_cache
        await wait_until(lambda: client.connected, "the subscription")
        cache = tmp_path / f"{app}@prod.json"
        document = json.loads(cache.read_text(encoding="utf-8"))
        assert (document["version"], document["items"]) == (2, items)
        assert document["checksum"] == checksum_of(items)
        assert stat.S_IMODE(cache.stat().st_mode) == 0o600
        assert os.listdir(tmp_path) == [cache.name]  # no temp file left
    assert not client.connected
    assert client.get("pool") == "42"  # still readable after close


async def test_on_change_reports_added_changed_removed_in_order(
    admin: Admin, shared_server: ServerProcess, tmp_path: Path
) -> None:
    app = admin.new_app()
    admin.publish(app, {"keep": "k", "edit": "old", "drop": "d"})
    token = read_token(admin, app)
    client = ConfigClient(shared_server.url, token, app, "prod", tmp_path, **FAST)
    seen: list[Change] = []
    client.on_change(seen.append)
    cached_versions: list[int] = []

    def check_cached(change: Change) -> None:
        # By the time a change is reported, the release is in the cache file and applied.
        document = json.loads((tmp_path / f"{app}@prod.json").read_text(encoding="utf-8"))
        cached_versions.append(document["version"])
        assert client.version >= change.version

    client.on_change(check_cached)
    async with client:
        # Registered before start(): the first release is reported too, all of it added.
        assert [c.version for c in seen] == [1]
        assert seen[0].added == {"keep": "k", "edit": "old", "drop": "d"}
        assert (seen[0].previous_version, seen[0].from_cache) == (0, False)
        before = client.items
        await admin.apublish(app, {"edit": "new", "fresh": "f"}, ["drop"])
        await wait_until(lambda: len(seen) == 2, "the change of version 2")
        change = seen[1]
        assert (change.version, change.previous_version) == (2, 1)
        assert change.added == {"fresh": "f"}
        assert change.changed == {"edit": ("old", "new")}
        assert change.removed == {"drop": "d"}
        assert change.items == {"keep": "k", "edit": "new", "fresh": "f"}
        assert client.version == 2
        assert dict(client.items) == dict(change.items)
        # A snapshot taken earlier is never mutated: the new release was swapped in.
        assert dict(before) == {"keep": "k", "edit": "old", "drop": "d"}
        for n in range(3, 6):
            await admin.apublish(app, {"n": str(n)})
        await wait_until(lambda: client.version == 5, "version 5")
        versions = [c.version for c in seen]
        assert versions == sorted(set(versions))  # once each, in order (pushes may coalesce)
        assert versions[-1] == 5
        await wait_until(lambda: len(cached_versions) == len(versions), "the cache checks")
        assert all(c >= v for c, v in zip(cached_versions, versions, strict=True))


async def test_a_callback_that_raises_is_logged_and_others_still_run(
    admin: Admin, shared_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    app = admin.new_app()
    admin.publish(app, {"a": "1"})
    client = ConfigClient(shared_server.url, read_token(admin, app), app, "prod", **FAST)
    calls: list[tuple[str, int]] = []

    def broken(change: Change) -> None:
        calls.append(("broken", change.version))
        if change.version == 2:
            raise RuntimeError("callback bug")
        # A stray CancelledError (not a close()) must not end the dispatching either.
        raise asyncio.CancelledError

    async def fine(change: Change) -> None:
        await asyncio.sleep(0)  # the behaviour under test: a callback that awaits
        calls.append(("fine", change.version))

    async with client:
        client.on_change(broken)
        client.on_change(fine)
        await admin.apublish(app, {"a": "2"})
        await wait_until(lambda: ("fine", 2) in calls, "the second callback on version 2")
        await admin.apublish(app, {"a": "3"})
        await wait_until(lambda: ("fine", 3) in calls, "the second callback on version 3")
        assert calls == [("broken", 2), ("fine", 2), ("broken", 3), ("fine", 3)]
        assert client.get("a") == "3"
        await admin.apublish(app, {"a": "4"})
        await wait_until(lambda: ("fine", 4) in calls, "the second callback on version 4")
    failures = [r for r in caplog.records if "callback" in r.getMessage() and r.exc_info]
    assert [type(r.exc_info[1]) for r in failures if r.exc_info] == [
        RuntimeError,
        asyncio.CancelledError,
        asyncio.CancelledError,
    ]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"format": "configcenter-cache/1", "app": ',  # truncated
        b"\x00\xff not json",
        b'["a list"]',
        None,  # well-formed JSON whose checksum does not match its items
    ],
    ids=["empty", "truncated", "garbage", "wrong-shape", "bad-checksum"],
)
async def test_a_corrupt_cache_file_is_ignored_with_a_warning(
    admin: Admin,
    shared_server: ServerProcess,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    content: bytes | None,
) -> None:
    app = admin.new_app()
    admin.publish(app, {"live": "yes"})
    cache = tmp_path / f"{app}@prod.json"
    if content is None:
        content = json.dumps(
            {
                "format": "configcenter-cache/1",
                "app": app,
                "env": "prod",
                "version": 9,
                "checksum": checksum_of({"live": "no"}),
                "items": {"live": "tampered"},
            }
        ).encode()
    cache.write_bytes(content)
    token = read_token(admin, app)
    async with ConfigClient(shared_server.url, token, app, "prod", tmp_path, **FAST) as client:
        assert (client.version, client.get("live"), client.from_cache) == (1, "yes", False)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"ignoring cache file {cache}" in r.getMessage() for r in warnings)
    assert json.loads(cache.read_text(encoding="utf-8"))["items"] == {"live": "yes"}

    # With no server either, the corrupt file is still ignored: start() fails cleanly.
    cache.write_bytes(content)
    nowhere = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConfigUnavailableError, match="no usable cache file"):
        await ConfigClient(nowhere, token, app, "prod", tmp_path, **fast(0.5)).start()


async def test_no_server_and_no_cache_raises_a_clear_error(tmp_path: Path) -> None:
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    client = ConfigClient(urls, "cc_x", "shop", "prod", tmp_path, **fast(1))
    with pytest.raises(ConfigUnavailableError) as raised:
        await client.start()
    message = str(raised.value)
    assert "shop/prod" in message
    assert "within 1 s" in message
    assert urls[0] in message
    assert urls[1] in message
    assert str(tmp_path / "shop@prod.json") in message
    await client.close()


async def test_refusals_at_start_raise_access_errors(
    admin: Admin, shared_server: ServerProcess, tmp_path: Path
) -> None:
    app = admin.new_app()
    other = admin.new_app()
    admin.publish(app, {"a": "1"})
    url = shared_server.url
    with pytest.raises(ConfigAccessError, match="401"):
        await ConfigClient(url, "cc_wrong", app, "prod", **FAST).start()
    with pytest.raises(ConfigAccessError, match="403"):
        await ConfigClient(url, read_token(admin, other), app, "prod", **FAST).start()
    with pytest.raises(ConfigAccessError, match="404"):
        await ConfigClient(url, read_token(admin, app), app, "staging", **FAST).start()


async def test_an_env_never_published_starts_empty_then_gets_its_first_release(
    admin: Admin, shared_server: ServerProcess
) -> None:
    app = admin.new_app()
    async with ConfigClient(shared_server.url, read_token(admin, app), app, "prod", **FAST) as c:
        assert (c.version, dict(c.items), c.from_cache) == (0, {}, False)
        await admin.apublish(app, {"first": "1"})
        await wait_until(lambda: c.version == 1, "the first release")
        assert c.get("first") == "1"


async def test_a_revoked_token_keeps_the_values_and_keeps_retrying(
    admin: Admin, shared_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    app = admin.new_app()
    admin.publish(app, {"a": "1"})
    token_id, token = admin.token(f"read:{app}")
    async with ConfigClient(shared_server.url, token, app, "prod", **FAST) as client:
        await wait_until(lambda: client.connected, "the subscription")
        await asyncio.to_thread(admin.revoke, token_id)
        await wait_until(lambda: client.last_error is not None, "the revocation to be noticed")
        assert not client.connected
        assert "token revoked" in (client.last_error or "")
        assert (client.version, client.get("a")) == (1, "1")
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert any("token revoked" in r.getMessage() for r in errors)


def test_the_sync_client_on_a_background_thread(
    admin: Admin, shared_server: ServerProcess, tmp_path: Path
) -> None:
    app = admin.new_app()
    admin.publish(app, {"a": "1", "b": "2"})
    token = read_token(admin, app)
    got = threading.Event()
    changes: list[tuple[int, str]] = []

    def changed(change: Change) -> None:
        changes.append((change.version, threading.current_thread().name))
        if change.version == 2:
            got.set()

    with SyncConfigClient(shared_server.url, token, app, "prod", tmp_path, **FAST) as client:
        assert (client.version, client.get("a"), client.get("b", cast=int)) == (1, "1", 2)
        client.on_change(changed)
        admin.publish(app, {"a": "10"}, ["b"])
        assert got.wait(20), "no change within 20 s"
        assert (client.version, dict(client.items)) == (2, {"a": "10"})
        assert changes == [(2, f"configcenter-{app}/prod")]
        thread = client._thread
    assert thread is not None
    assert not thread.is_alive()
    assert client.get("a") == "10"
    with pytest.raises(ConfigUnavailableError):
        SyncConfigClient(
            f"http://127.0.0.1:{free_port()}", token, app, "other", **fast(0.3)
        ).start()


def test_bad_arguments_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="URL"):
        ConfigClient([], "cc_x", "shop", "prod")
    with pytest.raises(ValueError, match="http"):
        ConfigClient("127.0.0.1:8080", "cc_x", "shop", "prod")
    with pytest.raises(ValueError, match="token"):
        ConfigClient("http://127.0.0.1:8080", "", "shop", "prod")
    with pytest.raises(ValueError, match="app name"):
        ConfigClient("http://127.0.0.1:8080", "cc_x", "../etc", "prod")


def test_the_module_can_be_vendored_with_only_aiohttp(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "server" / "client.py", tmp_path / "client.py")
    probe = (
        "import json, sys\n"
        "sys.path.insert(0, '.')  # -I leaves the current directory off the path\n"
        "def third_party():\n"
        "    return {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)\n"
        "import aiohttp\n"
        "with_aiohttp = third_party()\n"
        "import client\n"
        "print(json.dumps(sorted(third_party() - with_aiohttp - {'client'})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == []


async def test_a_deleted_app_loses_its_cache_file_and_its_new_life_goes_on_above_it(
    admin: Admin, shared_server: ServerProcess, tmp_path: Path
) -> None:
    app = admin.new_app()
    admin.publish(app, {"a": "1"})
    assert admin.publish(app, {"a": "2"}) == 2
    client = ConfigClient(shared_server.url, read_token(admin, app), app, "prod", tmp_path, **FAST)
    cache = tmp_path / f"{app}@prod.json"
    async with client:
        await wait_until(lambda: client.connected and cache.exists(), "the subscription")

        await asyncio.to_thread(admin.call, "DELETE", f"/api/v1/apps/{app}", None, 204)

        await wait_until(lambda: not cache.exists(), "the deleted app's cache file to go")
        assert (client.version, client.get("a")) == (2, "2")
        await asyncio.to_thread(
            admin.call, "POST", "/api/v1/apps", {"name": app, "envs": ["prod"]}, 201
        )
        assert await admin.apublish(app, {"a": "reborn"}) == 3
        await wait_until(lambda: client.version == 3, "the first release of the new app")
        assert client.get("a") == "reborn"
        await wait_until(cache.exists, "the new app's cache file")


async def test_a_deleted_env_loses_its_cache_file_and_its_new_life_goes_on_above_it(
    admin: Admin, shared_server: ServerProcess, tmp_path: Path
) -> None:
    app = admin.new_app()
    admin.call("POST", f"/api/v1/apps/{app}/envs", {"name": "dev"}, 201)
    admin.publish(app, {"a": "1"}, env="dev")
    assert admin.publish(app, {"a": "2"}, env="dev") == 2
    client = ConfigClient(shared_server.url, read_token(admin, app), app, "dev", tmp_path, **FAST)
    cache = tmp_path / f"{app}@dev.json"
    async with client:
        await wait_until(lambda: client.connected and cache.exists(), "the subscription")

        await asyncio.to_thread(admin.call, "DELETE", f"/api/v1/apps/{app}/envs/dev", None, 204)

        await wait_until(lambda: not cache.exists(), "the deleted env's cache file to go")
        assert (client.version, client.get("a")) == (2, "2")
        await asyncio.to_thread(
            admin.call, "POST", f"/api/v1/apps/{app}/envs", {"name": "dev"}, 201
        )
        version = await asyncio.to_thread(admin.publish, app, {"a": "reborn"}, None, "dev")
        assert version == 3
        await wait_until(lambda: client.version == 3, "the first release of the new env")
        assert client.get("a") == "reborn"
        await wait_until(cache.exists, "the new env's cache file")
