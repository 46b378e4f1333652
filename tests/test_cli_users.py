"""`configcenter user add|list|passwd|disable|roles` on a real SQLite store, as operators run it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.test_config import run_cli


def test_user_commands_manage_roles_passwords_and_the_disabled_flag(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    env = {"CONFIGCENTER_STORE_URL": f"sqlite:///{db}"}
    assert run_cli("migrate", env=env).returncode == 0
    added = run_cli(
        "user",
        "add",
        "alice",
        "--role",
        "shop=editor",
        "--role",
        "*=viewer",
        env=env,
        stdin="first-password\n",
    )
    assert added.returncode == 0, added.stderr
    assert "created user alice" in added.stdout

    listed = run_cli("user", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    alice = next(line for line in listed.stdout.splitlines() if line.startswith("alice\t"))
    assert alice.split("\t")[1:3] == ["-", "*=viewer shop=editor"]

    bad_role = run_cli("user", "roles", "alice", "--role", "shop=god", env=env)
    assert bad_role.returncode == 1
    assert "invalid_role" in bad_role.stderr
    no_equals = run_cli("user", "roles", "alice", "--role", "shop", env=env)
    assert no_equals.returncode == 1
    roles = run_cli("user", "roles", "alice", "--role", "shop=owner", "--admin", env=env)
    assert roles.returncode == 0, roles.stderr
    assert roles.stdout.split("\t")[1:3] == ["admin", "shop=owner"]
    last_admin = run_cli("user", "roles", "alice", "--no-admin", env=env)
    assert last_admin.returncode == 1
    assert "last_admin" in last_admin.stderr
    assert (
        run_cli("user", "add", "root", "--admin", env=env, stdin="root-password\n").returncode == 0
    )
    cleared = run_cli("user", "roles", "alice", "--clear", "--no-admin", env=env)
    assert cleared.stdout.split("\t")[1:3] == ["-", "-"]

    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT password_hash FROM users WHERE name = 'alice'").fetchone()
    changed = run_cli("user", "passwd", "alice", env=env, stdin="second-password\n")
    assert changed.returncode == 0, changed.stderr
    short = run_cli("user", "passwd", "alice", env=env, stdin="short\n")
    assert short.returncode == 1
    assert "invalid_password" in short.stderr
    with sqlite3.connect(db) as conn:
        after = conn.execute("SELECT password_hash FROM users WHERE name = 'alice'").fetchone()
    assert before != after
    assert "second-password" not in after[0]

    disabled = run_cli("user", "disable", "alice", env=env)
    assert disabled.returncode == 0, disabled.stderr
    assert "disabled" in disabled.stdout.split("\t")[1]
    enabled = run_cli("user", "disable", "alice", "--enable", env=env)
    assert enabled.stdout.split("\t")[1] == "-"
    missing = run_cli("user", "disable", "nobody", env=env)
    assert missing.returncode == 1
    assert "not_found" in missing.stderr
    with sqlite3.connect(db) as conn:
        actions = [row[0] for row in conn.execute("SELECT action FROM audit WHERE actor = 'cli'")]
    assert actions.count("user.update") == 4
    assert "user.password" in actions
