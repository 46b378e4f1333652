"""`configcenter` / `python -m server`: serve, migrate, user add, token create, secrets rotate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
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
from server.errors import AppError, ErrorCode
from server.published import PublishedConfigs
from server.secretbox import Keyring, SecretKeyError, decode_key
from server.store.migrations import current_version, migrate
from server.store.store import Store

log = logging.getLogger("server")

# Between requests a connection may idle this long (aiohttp's usual); the first request
# must come within server.idle_timeout.
KEEPALIVE_SECONDS = 75.0

CLI_ACTOR = Principal(name="cli", scopes=frozenset({"admin"}), token_id=None, kind="cli")


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


async def _user_add(config: Config, args: argparse.Namespace) -> int:
    password = _read_password(prompt_twice=True)

    async def action(services: Services) -> int:
        user = await services.auth.add_user(args.name, password, args.admin, args.scope, "cli")
        print(f"created user {user.name}{' (admin)' if user.is_admin else ''}")
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
    user_add = user.add_parser("add", help="create a user; the password is read from stdin")
    user_add.add_argument("name")
    user_add.add_argument("--admin", action="store_true")
    user_add.add_argument("--scope", action="append", default=[], help="write:APP or read:APP")
    user_add.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    token = commands.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True
    )
    token_create = token.add_parser("create", help="create a token and print its secret once")
    token_create.add_argument("name")
    token_create.add_argument(
        "--scope", nargs="+", required=True, help="admin, write:APP, read:APP"
    )
    token_create.add_argument("--config", type=Path, default=argparse.SUPPRESS)
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
            return asyncio.run(_user_add(config, args))
        if args.command == "token":
            return asyncio.run(_token_create(config, args))
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
