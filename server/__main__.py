"""`configcenter` / `python -m server`: serve, migrate, user add|list|passwd|disable|roles,
token create, backup, restore, export, import, secrets rotate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from server.config import Config, ConfigError, load_config, with_server_address
from server.connections import ConnectionGuard, raise_open_files_limit
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

log = logging.getLogger("server")

# Between requests a connection may idle this long (aiohttp's usual); the first request
# must come within server.idle_timeout.
KEEPALIVE_SECONDS = 75.0

CLI_ACTOR = Principal(name="cli", scopes=frozenset({"admin"}), kind="cli")


def _setup_logging() -> None:
    # The format uses none of these; not collecting them makes every log call cheaper.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("aiohttp.server").addFilter(BriefParserErrors())


class BriefParserErrors(logging.Filter):
    """A request the HTTP parser refused is the client's doing: one line, not a traceback.

    aiohttp logs each with its traceback; a flood of malformed requests would fill the disk.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite a parser rejection as one warning line; pass everything else through."""
        from aiohttp.http_exceptions import HttpProcessingError

        from server.middleware import loggable

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            reason = str(error.message or type(error).__name__)
            said = record.getMessage()
            record.msg, record.args = "%s: %s", (said, loggable(reason[:200]))
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _listen(host: str, port: int) -> list[socket.socket]:
    """Bound, listening sockets for every address of host:port, as aiohttp would make them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve(config: Config, args: argparse.Namespace) -> int:
    from aiohttp import web

    from server.app import create_app

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    host, port = config.server.host, config.server.port
    # Bound here, before the app starts, so a taken port is one clear line, not a traceback.
    try:
        sockets = _listen(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} is in use; set CONFIGCENTER_SERVER_PORT or --port"
        else:
            message = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        print(f"configcenter: {message}", file=sys.stderr)
        return 2

    async def announce(app: web.Application) -> None:
        log.info(
            "configcenter serving on %s (store %s, %s)",
            ", ".join(_url(sock) for sock in sockets),
            config.store.url.split("://")[0],
            "standalone" if config.standalone else f"etcd {','.join(config.etcd.endpoints)}",
        )

    try:
        app = create_app(config)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    app.on_startup.append(announce)  # after the app's own start-up: the store is open
    _, open_files = raise_open_files_limit()
    if config.server.max_connections > open_files - 256:
        log.warning(
            "server.max_connections %d leaves little room under the open-files limit %d",
            config.server.max_connections,
            open_files,
        )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(app, sockets, config))
    except SecretKeyError as exc:
        # Logged by the app too; a wrong key is one clear line, not a traceback.
        print(f"configcenter: secrets: {exc}", file=sys.stderr)
        return 2
    return 0


async def _run(app: Any, sockets: list[socket.socket], config: Config) -> None:
    """Serve on the bound sockets behind the connection guard until SIGINT or SIGTERM."""
    from aiohttp import web

    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=5.0,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    await runner.setup()
    assert runner.server is not None
    # Our own listeners instead of aiohttp's sites: each connection goes through the guard.
    guard = ConnectionGuard(config.server.max_connections, config.server.idle_timeout)
    factory = guard.protocol_factory(runner.server)
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(factory, sock=sock) for sock in sockets]
    # A signal ends the wait, so cleanup runs before anything is cancelled: open requests
    # are answered (long polls get their 304) and sockets closed in order.
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        await runner.cleanup()


async def _with_services(config: Config, action: Callable[[Services], Awaitable[int]]) -> int:
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

    return await _with_services(config, action)


async def _token_create(config: Config, args: argparse.Namespace) -> int:
    async def action(services: Services) -> int:
        token, secret = await services.auth.create_token(CLI_ACTOR, args.name, args.scope)
        print(secret)
        print(
            f"token {token.id} ({' '.join(token.scopes)}): shown once, store it now",
            file=sys.stderr,
        )
        return 0

    return await _with_services(config, action)


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

    return await _with_services(config, action)


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

    return await _with_services(config, action)


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
        f"{done.new_key_id} (was {done.old_key_id})"
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


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="configcenter", description=__doc__)
    parser.add_argument("--config", type=Path, default=None, help="config file (config.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    serve.add_argument(
        "--host", default=None, help="listen on this address (overrides [server] host)"
    )
    serve.add_argument(
        "--port", type=_port, default=None, help="listen on this port (overrides [server] port)"
    )
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
    _add_remote_commands(commands)
    return parser


def _add_remote_commands(commands: Any) -> None:
    try:
        from server import remote_cli
    except ImportError:  # pragma: no cover - ships with the server
        return
    remote_cli.add_commands(commands)


def main(argv: list[str] | None = None) -> int:
    """Entry point; a bad config ends the process with one line and exit code 2."""
    _setup_logging()
    args = build_parser().parse_args(argv)
    if getattr(args, "remote", False):
        return int(args.run(args))
    try:
        config = load_config(args.config)
        if args.command == "serve":
            config = with_server_address(config, args.host, args.port)
    except ConfigError as exc:
        print(f"configcenter: config error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "serve":
            return _serve(config, args)
        if args.command == "migrate":
            return asyncio.run(_migrate(config))
        if args.command == "user":
            return asyncio.run(_user(config, args))
        if args.command == "token":
            return asyncio.run(_token_create(config, args))
        if args.command == "backup":
            return asyncio.run(_backup(config, args))
        if args.command == "restore":
            return asyncio.run(_restore(config, args))
        if args.command == "export":
            return asyncio.run(_export(config, args))
        if args.command == "import":
            return asyncio.run(_import(config, args))
        if args.command == "secrets":
            return asyncio.run(_secrets_rotate(config, args))
    except AppError as exc:
        print(f"configcenter: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except SecretKeyError as exc:
        print(f"configcenter: secrets: {exc}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
