"""`configcenter get` and `configcenter watch`: read a remote server's published config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import aiohttp

from server.client import Change, ConfigClient, ConfigClientError, checksum_of

DEFAULT_URL = "http://127.0.0.1:8080"
FORMATS = ("json", "properties", "yaml", "dotenv")


class CliError(Exception):
    """One line for stderr; the command exits with code 1."""


class UsageError(CliError):
    """A command line that cannot run as given; one line for stderr, exit code 2."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `get` and `watch`; both run against a server over HTTP, not the local store."""
    get = commands.add_parser(
        "get",
        help="print an env's published config (or one value) from a server",
        description="Print the latest release of APP/ENV, or the value of KEY.",
    )
    _common(get)
    get.add_argument("key", nargs="?", metavar="KEY", help="print only this key's value, as it is")
    get.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="how to print the whole env (default json); not with KEY, whose value is raw",
    )
    get.set_defaults(remote=True, run=_sync(_get))

    watch = commands.add_parser(
        "watch",
        help="print each release of an env as it is published, until Ctrl-C",
        description="Subscribe to APP/ENV and print every release as it arrives.",
    )
    _common(watch)
    watch.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: a header and the changed keys; json: one JSON object per release",
    )
    watch.set_defaults(remote=True, run=_sync(_watch))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", metavar="APP")
    parser.add_argument("env", metavar="ENV")
    parser.add_argument(
        "--url",
        default=os.environ.get("CONFIGCENTER_URL", DEFAULT_URL),
        help="server base URL, several comma-separated for failover "
        f"(default $CONFIGCENTER_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("CONFIGCENTER_TOKEN"),
        help="API token with read:APP (default $CONFIGCENTER_TOKEN)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for a server (default 10)"
    )


def _sync(
    command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    """Run an async command; any failure is one line on stderr, never a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            if not args.token:
                raise UsageError("a token is needed: --token or CONFIGCENTER_TOKEN")
            return asyncio.run(command(args))
        except UsageError as exc:
            print(f"configcenter {args.command}: {exc}", file=sys.stderr)
            return 2
        except (CliError, ConfigClientError, ValueError) as exc:
            print(f"configcenter: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130

    return run


def _urls(value: str) -> list[str]:
    urls = [u.strip().rstrip("/") for u in value.split(",") if u.strip()]
    if not urls:
        raise UsageError("--url is empty")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--url must start with http:// or https://: {url!r}")
    return urls


async def _fetch(args: argparse.Namespace, fmt: str) -> bytes:
    """The body of GET …/config?format=fmt from the first server that answers."""
    path = f"/api/v1/apps/{quote(args.app, safe='')}/envs/{quote(args.env, safe='')}/config"
    params = {} if fmt == "json" else {"format": fmt}
    failures: list[str] = []
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=aiohttp.ClientTimeout(total=args.timeout),
    ) as session:
        for url in _urls(args.url):
            try:
                async with session.get(url + path, params=params) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                failures.append(f"{url}: {_describe(exc)}")
                continue
            if status == 200:
                return body
            raise CliError(f"{url}: HTTP {status}: {_error_text(body)}")
    raise CliError("cannot reach the server: " + "; ".join(failures))


async def _get(args: argparse.Namespace) -> int:
    if args.key is not None and args.format is not None:
        raise UsageError("KEY prints one raw value and --format the whole env: give one")
    fmt = args.format or "json"
    body = await _fetch(args, fmt)
    if fmt != "json":
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return 0
    try:
        document = json.loads(body)
        valid = checksum_of(document["items"]) == document["checksum"]
    except (ValueError, KeyError, TypeError, AttributeError):
        valid = False
    if not valid:
        raise CliError("the server sent a release whose checksum does not match its items")
    if args.key is None:
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    items: dict[str, str] = document["items"]
    if args.key not in items:
        raise CliError(
            f"no key {args.key!r} in {args.app}/{args.env} (version {document['version']})"
        )
    print(items[args.key])
    return 0


def _escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )


def _print_text(change: Change) -> None:
    lines = [
        f"# {change.app}/{change.env} version {change.version} {change.checksum}"
        + (" (from cache)" if change.from_cache else "")
    ]
    for key in sorted({*change.added, *change.changed, *change.removed}):
        if key in change.added:
            lines.append(f"+ {key}={_escape(change.added[key])}")
        elif key in change.changed:
            old, new = change.changed[key]
            lines.append(f"~ {key}={_escape(new)} (was {_escape(old)})")
        else:
            lines.append(f"- {key}")
    print("\n".join(lines), flush=True)


def _print_json(change: Change) -> None:
    document = {
        "app": change.app,
        "env": change.env,
        "version": change.version,
        "checksum": change.checksum,
        "items": dict(change.items),
        "added": dict(change.added),
        "changed": {k: {"old": old, "new": new} for k, (old, new) in change.changed.items()},
        "removed": dict(change.removed),
    }
    print(json.dumps(document, ensure_ascii=False), flush=True)


async def _watch(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = ConfigClient(
        _urls(args.url), args.token, args.app, args.env, start_timeout=args.timeout
    )
    client.on_change(_print_json if args.format == "json" else _print_text)
    starting = asyncio.create_task(client.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # raises what start() raised
            if client.version == 0:
                print(
                    f"configcenter: {args.app}/{args.env} has no release yet; waiting",
                    file=sys.stderr,
                )
            await stopping
    finally:
        for task in (starting, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await client.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error_text(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip() or "(empty body)"
