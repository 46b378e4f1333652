"""The commands that work on the local store without a running server: migrate, user,
token create, backup, restore, export, import, secrets rotate (`configcenter COMMAND`)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from server.config import Config
from server.coord.local import LocalCoordinator
from server.domain.context import DomainContext
from server.domain.scopes import Principal
from server.domain.secrets import load_keys, read_key_file, rotate
from server.domain.services import Services
from server.errors import AppError, ErrorCode, describe_invalid
from server.published import PublishedConfigs
from server.records import User
from server.secretbox import Keyring, SecretKeyError, decode_key
from server.store.migrations import current_version, migrate
from server.store.store import Store

CLI_ACTOR = Principal(name="cli", scopes=frozenset({"admin"}), kind="cli")


async def with_services(config: Config, action: Callable[[Services], Awaitable[int]]) -> int:
    store = Store.from_config(config)
    await store.open()
    try:
        ctx = DomainContext(store, LocalCoordinator(), PublishedConfigs(), config.limits)
        services = Services.build(ctx, config.auth)
        try:
            return await action(services)
        finally:
            services.close()
    finally:
        await store.close()


async def _migrate(config: Config) -> int:
    store = Store.from_config(config)
    await store.db.open()
    try:
        applied = await migrate(store.db)
        version = await current_version(store.db)
    finally:
        await store.close()
    names = ", ".join(f"{m.version:03d}_{m.name}" for m in applied) or "nothing to apply"
    print(f"schema at version {version} ({names})")
    return 0


def _read_password(prompt_twice: bool) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if prompt_twice and getpass.getpass("again: ") != first:
        raise AppError(ErrorCode.INVALID_PASSWORD, "the passwords differ")
    return first


def _roles(pairs: list[str]) -> dict[str, str]:
    """APP=ROLE arguments as a roles object (the domain validates both halves)."""
    roles = {}
    for pair in pairs:
        app, sep, role = pair.partition("=")
        if not sep:
            raise AppError(ErrorCode.INVALID_ROLE, f"expected APP=ROLE (or *=ROLE), got {pair!r}")
        roles[app] = role
    return roles


def _describe_user(user: User) -> str:
    roles = " ".join(f"{app}={role}" for app, role in user.roles.items()) or "-"
    flags = ("admin " if user.is_admin else "") + ("disabled " if user.disabled else "")
    last = user.last_login_at or "never"
    return f"{user.name}\t{flags.strip() or '-'}\t{roles}\tlast sign-in {last}"


async def _user(config: Config, args: argparse.Namespace) -> int:
    command = args.user_command
    password = _read_password(prompt_twice=True) if command in ("add", "passwd") else ""

    async def action(services: Services) -> int:
        users = services.users
        if command == "add":
            user = await users.add_user(
                CLI_ACTOR, args.name, password, args.admin, _roles(args.role)
            )
            print(f"created user {user.name}", end=": ")
        elif command == "list":
            for user in await users.list_users(CLI_ACTOR):
                print(_describe_user(user))
            return 0
        elif command == "passwd":
            await users.set_password(CLI_ACTOR, args.name, password)
            print(f"password of {args.name} changed; their sessions ended")
            return 0
        elif command == "disable":
            user = await users.update_user(CLI_ACTOR, args.name, disabled=not args.enable)
        else:  # roles
            user = await users.update_user(
                CLI_ACTOR,
                args.name,
                is_admin=args.admin,
                roles=_roles(args.role) if args.role or args.clear else None,
            )
        print(_describe_user(user))
        return 0

    return await with_services(config, action)


async def _token_create(config: Config, args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        token, secret = await services.auth.create_token(CLI_ACTOR, args.name, args.scope)
        print(secret)
        print(
            f"token {token.id} ({' '.join(token.scopes)}): shown once, store it now",
            file=sys.stderr,
        )
        return 0

    return await with_services(config, action)


async def _backup(config: Config, args: argparse.Namespace) -> int:
    from server.domain import backup

    store = Store.from_config(config)
    await store.open(run_migrations=False)  # a backup changes nothing, the schema included
    try:
        taken = await backup.backup(store, args.file)
    finally:
        await store.close()
    print(f"wrote {args.file}: {taken.row_count} rows, schema {taken.schema_version}")
    return 0


async def _restore(config: Config, args: argparse.Namespace) -> int:
    from server.domain import backup

    store = Store.from_config(config)
    await store.open()
    try:
        restored = await backup.restore(store, args.file, args.replace, args.version_floor)
    finally:
        await store.close()
    for line in backup.describe(restored):
        print(line)
    return 0


def _version(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a version number 0 or more, got {value!r}")
    return int(value)


# export and import: the same domain calls as the HTTP routes, on the local store

# A file's format by its name: `.env` itself, `prod.env`, `app.properties`, `x.yml`.
_FORMAT_BY_SUFFIX = {
    ".json": "json",
    ".properties": "properties",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".env": "dotenv",
    ".dotenv": "dotenv",
}


def _file_format(path: str, given: str | None) -> str:
    if given is not None:
        return given
    name = Path(path).name
    suffix = ".env" if name == ".env" else Path(name).suffix
    found = _FORMAT_BY_SUFFIX.get(suffix.lower())
    if found is None:
        raise AppError(
            ErrorCode.INVALID_FORMAT,
            f"cannot tell the format of {path!r} from its name; give --format "
            "json|properties|yaml|dotenv",
        )
    return found


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise AppError(ErrorCode.INVALID_REQUEST, f"cannot read {path}: {exc.strerror}") from None


def _export_document(data: bytes, app: str) -> dict[str, Any]:
    """An export document read and shape-checked as POST /apps/import does, renamed to app."""
    from pydantic import ValidationError

    from server.api.schemas import ExportDocumentBody

    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise AppError(ErrorCode.INVALID_JSON, f"the file is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise AppError(ErrorCode.INVALID_JSON, "an export document is a JSON object")
    try:
        body = ExportDocumentBody.model_validate({**raw, "app": app})
    except ValidationError as exc:
        details = "; ".join(describe_invalid(e, "document") for e in exc.errors()[:5])
        raise AppError(ErrorCode.INVALID_REQUEST, details) from None
    return body.model_dump()


async def _export(config: Config, args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        document = await services.transfer.export_app(CLI_ACTOR, args.app, args.secrets)
        print(json.dumps(document, ensure_ascii=False, indent=2))
        return 0

    return await with_services(config, action)


async def _import(config: Config, args: argparse.Namespace) -> int:
    if len(args.target) > 2:
        raise AppError(ErrorCode.INVALID_REQUEST, "usage: configcenter import APP [ENV] FILE")
    env, path = (None, args.target[0]) if len(args.target) == 1 else args.target
    if env is None and args.format not in (None, "json"):
        raise AppError(ErrorCode.INVALID_FORMAT, "an app import takes an export document (json)")
    fmt = _file_format(path, args.format) if env is not None else "json"
    data = _read_input(path)

    async def action(services: Services) -> int:
        if env is not None:
            revision, outcome = await services.transfer.import_env(
                CLI_ACTOR, args.app, env, fmt, data, args.mode, args.dry_run
            )
            print(json.dumps({"draft_revision": revision, **outcome.to_json()}))
            return 0
        document = _export_document(data, args.app)
        async with services.ctx.store.reader() as q:
            exists = await q.app_id(args.app) is not None
        app, outcomes = await services.transfer.import_app(
            CLI_ACTOR, document, "merge" if exists else "create"
        )
        envs = {name: outcome.to_json() for name, outcome in outcomes.items()}
        print(json.dumps({"app": app, "envs": envs}))
        return 0

    return await with_services(config, action)


def _add_transfer_commands(commands: Any) -> None:
    export = commands.add_parser("export", help="print an app's export document (every draft)")
    export.add_argument("app")
    export.add_argument("--secrets", action="store_true", help="include secret values")
    export.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    imp = commands.add_parser(
        "import",
        help="import FILE into ENV's draft, or an export document as the app APP",
        description="With ENV: a json, properties, yaml or dotenv file (by its extension, or "
        "--format) into the env's draft. Without: an export document, merged into APP when it "
        "exists, else created as APP. FILE - reads stdin.",
    )
    imp.add_argument("app")
    imp.add_argument("target", nargs="+", metavar="[ENV] FILE")
    imp.add_argument("--format", choices=("json", "properties", "yaml", "dotenv"), default=None)
    imp.add_argument("--mode", choices=("merge", "replace"), default="merge")
    imp.add_argument("--dry-run", action="store_true", help="check and show, write nothing")
    imp.add_argument("--config", type=Path, default=argparse.SUPPRESS)


NEW_KEY_ENV = "CONFIGCENTER_SECRETS_NEW_KEY"


async def _secrets_rotate(config: Config, args: argparse.Namespace) -> int:
    if args.new_key_file is not None:
        new = read_key_file(args.new_key_file)
    elif NEW_KEY_ENV in os.environ:
        new = decode_key(os.environ[NEW_KEY_ENV], NEW_KEY_ENV)
    else:
        raise SecretKeyError(f"give the new key: --new-key-file FILE or {NEW_KEY_ENV}")
    current, old = load_keys(config, create=False)
    keyring = Keyring()
    keyring.install(current, old)
    store = Store.from_config(config)
    await store.open()
    try:
        done = await rotate(store, keyring, new)
    finally:
        await store.close()
    print(
        f"re-encrypted {done.items} items and {done.releases} releases under key "
        f"{done.new_key_id} (was {done.old_key_id}); {done.access_keys} access keys"
    )
    print(
        "next, on every replica: make the new key its secrets.key_file (or "
        "CONFIGCENTER_SECRETS_KEY), list the old key file in secrets.old_key_files, restart it; "
        "replicas with only the old key refuse to start from now on. When all run the new key, "
        "run this command again with the same new key (it re-encrypts what was written under "
        "the old key meanwhile), then drop secrets.old_key_files.",
        file=sys.stderr,
    )
    return 0


def add_commands(commands: Any) -> None:
    """The local-store commands' parsers, under the top-level subcommands."""
    migrate_cmd = commands.add_parser("migrate", help="apply pending schema migrations")
    migrate_cmd.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    user = commands.add_parser("user", help="manage users").add_subparsers(
        dest="user_command", required=True
    )
    role_help = "APP=ROLE (viewer, editor, publisher, owner; APP may be *), repeatable"
    user_add = user.add_parser("add", help="create a user; the password is read from stdin")
    user_add.add_argument("name")
    user_add.add_argument("--admin", action="store_true")
    user_add.add_argument("--role", action="append", default=[], help=role_help)
    user.add_parser("list", help="every user with their roles")
    passwd = user.add_parser("passwd", help="set a user's password (read from stdin)")
    passwd.add_argument("name")
    disable = user.add_parser("disable", help="disable a user and end their sessions")
    disable.add_argument("name")
    disable.add_argument("--enable", action="store_true", help="enable the user again")
    roles = user.add_parser("roles", help="replace a user's roles, or set the admin flag")
    roles.add_argument("name")
    roles.add_argument("--role", action="append", default=[], help=role_help)
    roles.add_argument("--clear", action="store_true", help="remove every role")
    roles.add_argument(
        "--admin", action=argparse.BooleanOptionalAction, default=None, help="the admin flag"
    )
    for sub in user.choices.values():
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    token = commands.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True
    )
    token_create = token.add_parser("create", help="create a token and print its secret once")
    token_create.add_argument("name")
    token_create.add_argument(
        "--scope", nargs="+", required=True, help="admin, write:APP, read:APP"
    )
    token_create.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    backup_cmd = commands.add_parser(
        "backup", help="write a consistent backup of the whole store to FILE (mode 600)"
    )
    backup_cmd.add_argument("file", type=Path, metavar="FILE")
    backup_cmd.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    restore_cmd = commands.add_parser(
        "restore", help="load a backup into an empty store (or --replace its contents)"
    )
    restore_cmd.add_argument("file", type=Path, metavar="FILE")
    restore_cmd.add_argument(
        "--replace", action="store_true", help="replace the store's contents with the backup's"
    )
    restore_cmd.add_argument(
        "--version-floor",
        type=_version,
        default=None,
        metavar="N",
        help="move every env to a release above N (default: above what the replaced store "
        "had, or 1000 above the backup's versions for an empty store)",
    )
    restore_cmd.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    _add_transfer_commands(commands)
    secrets = commands.add_parser("secrets", help="manage the secrets key").add_subparsers(
        dest="secrets_command", required=True
    )
    secrets_rotate = secrets.add_parser(
        "rotate", help="re-encrypt every secret under a new key (base64 of 32 bytes)"
    )
    secrets_rotate.add_argument(
        "--new-key-file", type=Path, default=None, help=f"the new key (else {NEW_KEY_ENV})"
    )
    secrets_rotate.add_argument("--config", type=Path, default=argparse.SUPPRESS)


Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]


async def _migrate_command(config: Config, _args: argparse.Namespace) -> int:
    return await _migrate(config)


# Each top-level command and what runs it.
COMMANDS: dict[str, Command] = {
    "migrate": _migrate_command,
    "user": _user,
    "token": _token_create,
    "backup": _backup,
    "restore": _restore,
    "export": _export,
    "import": _import,
    "secrets": _secrets_rotate,
}
