"""config.toml, CONFIGCENTER_* overrides, and the command line's handling of bad config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.config import ConfigError, load_config, with_server_address
from server.store.migrations import discover

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_from_the_shipped_config() -> None:
    config = load_config(ROOT / "config.toml", environ={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.standalone
    assert config.sqlite_path() == ROOT / "data" / "configcenter.db"
    assert config.limits.max_value_bytes == 64 * 1024
    assert config.limits.max_subscriptions_per_socket == 100


def test_environment_overrides() -> None:
    config = load_config(
        ROOT / "config.toml",
        environ={
            "CONFIGCENTER_SERVER_PORT": "9000",
            "CONFIGCENTER_STORE_URL": "mysql://cc:pw@db:3306/cc",
            "CONFIGCENTER_ETCD_ENDPOINTS": "127.0.0.1:2379, 127.0.0.1:22379",
            "CONFIGCENTER_ETCD_REFRESH_INTERVAL": "2.5",
        },
    )
    assert config.server.port == 9000
    assert config.sqlite_path() is None
    assert config.etcd.endpoints == ("127.0.0.1:2379", "127.0.0.1:22379")
    assert config.etcd.refresh_interval == 2.5
    assert not config.standalone


def test_the_compatible_apis_are_on_by_default_and_switched_off_by_name() -> None:
    shipped = load_config(ROOT / "config.toml", environ={}).compat
    assert (shipped.apollo, shipped.spring, shipped.nacos) == (True, True, True)
    assert shipped.apollo_hold_seconds == 55.0
    off = load_config(
        ROOT / "config.toml",
        environ={
            "CONFIGCENTER_COMPAT_SPRING": "false",
            "CONFIGCENTER_COMPAT_APOLLO_HOLD_SECONDS": "5",
        },
    ).compat
    assert (off.apollo, off.spring, off.apollo_hold_seconds) == (True, False, 5.0)


def test_serve_flags_override_the_file_and_the_environment() -> None:
    config = load_config(ROOT / "config.toml", environ={"CONFIGCENTER_SERVER_PORT": "9000"})
    assert with_server_address(config, None, None) == config
    moved = with_server_address(config, "0.0.0.0", 9100)  # noqa: S104 - only a value here
    assert (moved.server.host, moved.server.port) == ("0.0.0.0", 9100)  # noqa: S104
    assert moved.server.heartbeat_seconds == config.server.heartbeat_seconds
    assert with_server_address(config, None, 0).server.port == 0  # any free port
    with pytest.raises(ConfigError, match="--host"):
        with_server_address(config, " ", None)


@pytest.mark.parametrize(
    ("text", "environ", "fragment"),
    [
        ("[server]\nport = 'x'\n", {}, "[server] port: expected an integer"),
        ("[server]\nprot = 1\n", {}, "unknown key 'prot'"),
        ("[nope]\n", {}, "unknown section [nope]"),
        ("not toml ===", {}, "not valid TOML"),
        ("", {"CONFIGCENTER_SERVER_PORT": "eighty"}, "expected an integer"),
        ("", {"CONFIGCENTER_STORE_URL": "postgres://x/y"}, "[store] url"),
        ("", {"CONFIGCENTER_ETCD_ENDPOINTS": "nohostport"}, "expected host:port"),
        ("", {"CONFIGCENTER_LIMITS_MAX_VALUE_BYTES": "-5"}, "must be positive"),
        ("", {"CONFIGCENTER_ETCD_LOCK_TTL": "1"}, "lock_ttl"),
        ("", {"CONFIGCENTER_COMPAT_NACOS": "maybe"}, "[compat] nacos: expected true or false"),
        ("[compat]\napollo = 1\n", {}, "[compat] apollo: expected true or false"),
        ("[server]\nreuse_port = true\n", {}, "[server] reuse_port: needs [etcd] endpoints"),
    ],
)
def test_bad_config_is_one_clear_error(
    tmp_path: Path, text: str, environ: dict[str, str], fragment: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path, environ=environ)
    assert fragment in str(error.value)


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[server]\nport = 'x'\n")
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "[server] port" in lines[0]
    missing = run_cli("migrate", "--config", str(tmp_path / "absent.toml"))
    assert missing.returncode == 2


def test_migrate_user_and_token_commands(tmp_path: Path) -> None:
    env = {"CONFIGCENTER_STORE_URL": f"sqlite:///{tmp_path}/cli.db"}
    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert f"schema at version {len(discover('sqlite'))} (001_init," in first.stdout
    again = run_cli("migrate", env=env)
    assert "nothing to apply" in again.stdout
    added = run_cli(
        "user", "add", "alice", "--role", "shop=publisher", env=env, stdin="s3cret-pass\n"
    )
    assert added.returncode == 0, added.stderr
    assert "created user alice" in added.stdout
    short = run_cli("user", "add", "bob", env=env, stdin="short\n")
    assert short.returncode == 1
    assert "invalid_password" in short.stderr
    dup = run_cli("user", "add", "alice", env=env, stdin="s3cret-pass\n")
    assert dup.returncode == 1
    token = run_cli("token", "create", "ci", "--scope", "read:shop", "write:blog", env=env)
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip()
    assert secret.startswith("cc_")
    assert secret not in token.stderr
    bad = run_cli("token", "create", "ci", "--scope", "root", env=env)
    assert bad.returncode == 1
    assert "invalid_scope" in bad.stderr
