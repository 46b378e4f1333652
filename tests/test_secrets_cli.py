"""`configcenter secrets rotate` as a process: a wrong key changes nothing, the right one
re-encrypts every secret under the new key and says what to do on the replicas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
from aiohttp import web

from server.admin_commands import CLI_ACTOR
from server.app import create_app
from server.config import Config, SecretsSection, StoreSection
from server.keys import SERVICES, STORE
from server.secretbox import encode_key, key_id, new_key, sealed_key_id

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-rotate-me"


def _config(url: str, key_file: Path) -> Config:
    return Config(store=StoreSection(url=url), secrets=SecretsSection(key_file=str(key_file)))


async def _rows(config: Config) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    try:
        async with runner.app[STORE].reader() as q:
            items = await q.conn.fetchall("SELECT key_name, value FROM items")
            releases = await q.conn.fetchall("SELECT items_json FROM releases")
            return items, releases
    finally:
        await runner.cleanup()


def _rotate(url: str, key_file: Path, new_key_file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFIGCENTER_")}
    env |= {"CONFIGCENTER_STORE_URL": url, "CONFIGCENTER_SECRETS_KEY_FILE": str(key_file)}
    return subprocess.run(
        [sys.executable, "-m", "server", "secrets", "rotate", "--new-key-file", str(new_key_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_rotate_refuses_a_wrong_key_and_re_encrypts_with_the_right_one(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    old, new, wrong = new_key(), new_key(), new_key()
    for name, key in (("old.key", old), ("new.key", new), ("wrong.key", wrong)):
        (tmp_path / name).write_text(encode_key(key) + "\n")
    config = _config(url, tmp_path / "old.key")
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    try:
        services = runner.app[SERVICES]
        await services.apps.create_app(CLI_ACTOR, "shop", "", ["prod"])
        await services.drafts.put_item(CLI_ACTOR, "shop", "prod", "k", SECRET, None, secret=True)
        await services.releases.publish(CLI_ACTOR, "shop", "prod", "")
    finally:
        await runner.cleanup()
    before = await _rows(config)

    refused = _rotate(url, tmp_path / "wrong.key", tmp_path / "new.key")
    assert refused.returncode == 1, refused.stderr
    assert "configcenter: secrets: " in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = _rotate(url, tmp_path / "old.key", tmp_path / "absent.key")
    assert missing.returncode == 1
    assert "cannot read the secrets key file" in missing.stderr
    assert await _rows(config) == before

    done = _rotate(url, tmp_path / "old.key", tmp_path / "new.key")
    assert done.returncode == 0, done.stderr
    assert f"re-encrypted 1 items and 1 releases under key {key_id(new)}" in done.stdout
    assert f"(was {key_id(old)})" in done.stdout
    assert "secrets.old_key_files" in done.stderr
    assert SECRET not in done.stdout + done.stderr
    items, releases = await _rows(_config(url, tmp_path / "new.key"))
    assert sealed_key_id(str(items[0][1])) == key_id(new)
    assert sealed_key_id(orjson.loads(str(releases[0][0]))["k"]) == key_id(new)
