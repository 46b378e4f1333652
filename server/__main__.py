"""`configcenter` / `python -m server`: serve, and the local-store commands of
server/admin_commands.py (migrate, user, token, backup, restore, export, import, secrets) and
the remote ones of server/remote_cli.py (get, watch)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from server import admin_commands
from server.config import Config, ConfigError, load_config, with_server_address
from server.connections import ConnectionGuard, raise_open_files_limit
from server.domain.scopes import Principal
from server.errors import AppError
from server.secretbox import SecretKeyError

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


LISTEN_BACKLOG = 1024
"""Connections the kernel queues before accept: a restarted replica's thousands of
subscribers come back at once (aiohttp's default of 128 drops most of them for a retry)."""


def _listen(host: str, port: int, reuse_port: bool = False) -> list[socket.socket]:
    """Bound, listening sockets for every address of host:port, as aiohttp would make them;
    with reuse_port, other processes may listen on it too (SO_REUSEPORT)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
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
        sockets = _listen(host, port, config.server.reuse_port)
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


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="configcenter",
        description="Run the configuration center (serve), manage its store directly "
        "(migrate, user, token, backup, restore, export, import, secrets), or read from a "
        "running one (get, watch).",
    )
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
    admin_commands.add_commands(commands)
    _add_remote_commands(commands)
    return parser


def _add_remote_commands(commands: Any) -> None:
    try:
        from server import remote_cli
    except ImportError:  # pragma: no cover - ships with the server
        return
    remote_cli.add_commands(commands)


def await_command(run: admin_commands.Command, config: Config, args: argparse.Namespace) -> int:
    """Run a local-store command to its end."""
    return asyncio.run(run(config, args))


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
        run = admin_commands.COMMANDS.get(args.command)
        if run is not None:
            return asyncio.run(run(config, args))
    except AppError as exc:
        print(f"configcenter: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except SecretKeyError as exc:
        print(f"configcenter: secrets: {exc}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
