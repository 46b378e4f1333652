"""The Nacos v1 config API, under /nacos: reads, listener long polls and sign-in.

Answers are plain text, as Nacos's are: an auth failure is a 403, a config that cannot be read
a 404 `config data not exist`, never the JSON envelope of /api/v1. Which env a name stands for,
listener lists, files and credentials are server/domain/nacos.py; the files of a release are
built once per release and format (they live as long as the release's ConfigAnswer).
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiDictProxy, MultiMapping

from server.api.answers import ANONYMOUS, ConfigAnswer, Reader
from server.api.common import HELD, services
from server.api.config import INSTANCE_HEADER
from server.api.routes import Route
from server.domain import nacos
from server.domain.nacos import ConfigRef, Credential, Listened, NacosFile, ProtocolError
from server.domain.scopes import Principal
from server.domain.secrets import may_see
from server.errors import AppError, ErrorCode
from server.instances import Transport
from server.keys import ANSWERS, INSTANCES, PUBLISHED
from server.middleware import PROTOCOL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ACCESS_TOKEN = "accessToken"  # noqa: S105 - the parameter's name
TAG_HEADER = "Vipserver-Tag"
TIMEOUT_HEADER = "Long-Pulling-Timeout"
NO_HANGUP_HEADER = "Long-Pulling-Timeout-No-Hangup"
MAX_LOGIN_BODY_BYTES = 4096
_NO_CACHE = {"Pragma": "no-cache", "Cache-Control": "no-cache,no-store"}
_TEXT = "text/plain"
_NO_FORM: MultiMapping[Any] = MultiDictProxy(MultiDict())

_files: weakref.WeakKeyDictionary[ConfigAnswer, dict[str, NacosFile]] = weakref.WeakKeyDictionary()


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, content_type=_TEXT, headers=headers)


def _not_found() -> web.Response:
    return _text(404, nacos.NOT_FOUND_BODY)


def _protocol_answers(handler: Handler) -> Handler:
    """The handler with every refusal answered as Nacos does: plain text, auth failures 403."""

    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AppError as exc:
            status = 403 if exc.status in (401, 403, 429) else exc.status
            retry = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
            return _text(status, exc.message, retry)
        except ProtocolError as exc:
            return _text(400, str(exc))
        except web.HTTPRequestEntityTooLarge:
            return _text(413, "the request body is too large")

    return answer


async def _form(request: web.Request) -> MultiMapping[Any]:
    """The form body (empty for any other body); ProtocolError when it cannot be decoded."""
    if not request.body_exists:
        return _NO_FORM
    try:
        return await request.post()
    except (ValueError, LookupError) as exc:  # a bad charset or a broken multipart body
        raise ProtocolError(f"the form body cannot be read: {exc}") from None


def _param(request: web.Request, form: MultiMapping[Any], name: str) -> str | None:
    """A parameter from the query or the form, as Nacos's getParameter reads both."""
    value = request.query.get(name)
    if value is None:
        value = form.get(name)
    return value if isinstance(value, str) else None


def _credential(request: web.Request, form: MultiMapping[Any]) -> Credential:
    secret = _param(request, form, ACCESS_TOKEN) or request.headers.get(ACCESS_TOKEN)
    if secret:
        return Credential(secret=secret)
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AppError(ErrorCode.UNAUTHORIZED, "Authorization must be 'Bearer TOKEN'")
        return Credential(secret=value.strip())
    username = _param(request, form, "username")
    if username:
        return Credential(username=username, password=_param(request, form, "password"))
    return Credential()


async def _caller(request: web.Request, form: MultiMapping[Any]) -> Principal | None:
    return await nacos.caller(
        services(request).auth, _credential(request, form), request.remote or "unknown"
    )


def _identity(request: web.Request) -> Reader:
    instance, labels = nacos.reader_identity(
        request.headers.get(INSTANCE_HEADER), request.headers.get(TAG_HEADER), request.remote
    )
    return ANONYMOUS if instance is None else Reader(instance, labels)


def _file(answer: ConfigAnswer, ref: ConfigRef) -> NacosFile:
    """The file of one release in ref's format, built on first use."""
    files = _files.get(answer)
    if files is None:
        files = _files[answer] = {}
    built = files.get(ref.fmt)
    if built is None:
        if ref.fmt == "json":
            body = nacos.json_file(answer.release, answer.reveal)
        else:
            body = answer.render(ref.fmt)[0]
        built = files[ref.fmt] = NacosFile.of(body, ref)
    return built


def _note(request: web.Request, ref: ConfigRef, reader: Reader, version: int | None) -> None:
    if reader.instance is not None:
        request.app[INSTANCES].read(
            ref.app,
            ref.env,
            reader.instance,
            reader.labels_text,
            Transport.NACOS,
            request.remote,
            version,
        )


@_protocol_answers
async def get_nacos_config(request: web.Request) -> web.StreamResponse:
    """GET /nacos/v1/cs/configs?dataId=&group=&tenant=: one config's content."""
    query = request.query
    data_id = query.get("dataId")
    if not data_id:
        raise ProtocolError("dataId is required")
    ref = nacos.resolve(data_id, query.get("group") or nacos.DEFAULT_GROUP, query.get("tenant", ""))
    if ref is None:
        return _not_found()
    who = await nacos.reader(services(request).compat, ref.app, await _caller(request, _NO_FORM))
    reader = _identity(request)
    answer = request.app[ANSWERS].current(ref.app, ref.env, may_see(who, ref.app), reader)
    if answer is None:
        return _not_found()
    built = _file(answer, ref)
    _note(request, ref, reader, answer.release.version)
    headers = {"Content-MD5": built.md5, "Config-Type": built.config_type, **_NO_CACHE}
    response = web.Response(body=built.body, headers=headers)
    response.headers["Content-Type"] = built.content_type
    return response


class _Listener:
    """One listener request: what each entry's reader gets now, and its MD5."""

    def __init__(self, request: web.Request, entries: list[Listened]) -> None:
        self.request = request
        self.entries = entries
        self.reader = _identity(request)
        self.reveal: dict[str, bool] = {}

    async def check_access(self, who: Principal | None) -> None:
        compat = services(self.request).compat
        for app in {e.ref.app for e in self.entries if e.ref is not None}:
            self.reveal[app] = may_see(await nacos.reader(compat, app, who), app)

    def current(self, ref: ConfigRef) -> ConfigAnswer | None:
        answers = self.request.app[ANSWERS]
        return answers.current(ref.app, ref.env, self.reveal[ref.app], self.reader)

    def md5(self, entry: Listened) -> str:
        """The MD5 of what this reader gets for entry; empty when there is nothing."""
        ref = entry.ref
        answer = self.current(ref) if ref is not None else None
        if ref is None or answer is None:
            return ""
        try:
            return _file(answer, ref).md5
        except AppError:  # a dotenv file two keys collide in: nothing to read
            return ""

    def changed(self) -> list[Listened]:
        return [entry for entry in self.entries if self.md5(entry) != entry.md5]

    def note(self, changed: list[Listened]) -> None:
        """Each env read is an instance; with the version it holds, when it holds the current."""
        stale = {e.ref.key for e in changed if e.ref is not None}
        noted: set[tuple[str, str]] = set()
        for entry in self.entries:
            ref = entry.ref
            if ref is None or ref.key in noted:
                continue
            noted.add(ref.key)
            answer = self.current(ref)
            if answer is not None:  # an env never published is nobody's instance yet
                held = None if ref.key in stale else answer.release.version
                _note(self.request, ref, self.reader, held)


@_protocol_answers
async def listen_nacos_configs(request: web.Request) -> web.StreamResponse:
    """POST /nacos/v1/cs/configs/listener: which listened configs differ, at once or when one
    changes within Long-Pulling-Timeout less 500 ms."""
    form = await _form(request)
    entries = nacos.parse_listening(_param(request, form, "Listening-Configs") or "")
    headers = request.headers
    hold = nacos.hold_ms(headers.get(TIMEOUT_HEADER), headers.get(NO_HANGUP_HEADER))
    listener = _Listener(request, entries)
    await listener.check_access(await _caller(request, form))
    changed = listener.changed()
    listener.note(changed)
    if not changed and hold:
        published = request.app[PUBLISHED]
        request[HELD] = True
        keys = {e.ref.key for e in entries if e.ref is not None}
        clock = asyncio.get_running_loop().time
        deadline = clock() + hold / 1000
        # Woken by any publish to the envs listened to; one that leaves this reader's files
        # as they were (another reader's gray release) waits on.
        while not changed and await published.wait_change(keys, deadline - clock()):
            changed = listener.changed()
        listener.note(changed)
    return web.Response(body=nacos.changed_body(changed), headers=_NO_CACHE, content_type=_TEXT)


async def _sign_in(request: web.Request) -> web.StreamResponse:
    if request.body_exists and (
        request.content_length is None or request.content_length > MAX_LOGIN_BODY_BYTES
    ):
        return _text(
            413, f"a sign-in needs a Content-Length of at most {MAX_LOGIN_BODY_BYTES} bytes"
        )
    form = await _form(request)
    username = _param(request, form, "username")
    password = _param(request, form, "password")
    if not username or password is None:
        raise ProtocolError("username and password are required")
    signed_in = await nacos.sign_in(
        services(request).auth, username, password, request.remote or "unknown"
    )
    return web.json_response(signed_in.to_json())


@_protocol_answers
async def login_nacos(request: web.Request) -> web.StreamResponse:
    """POST /nacos/v1/auth/login: a user's session, or an API token given as `token`'s password."""
    return await _sign_in(request)


@_protocol_answers
async def login_nacos_user(request: web.Request) -> web.StreamResponse:
    """POST /nacos/v1/auth/users/login: the same sign-in, where Java clients send it."""
    return await _sign_in(request)


_READ_ONLY = (
    "publishing through the Nacos API is not supported: configcenter publishes from its page "
    "or /api/v1, with review and history"
)


async def refuse_nacos_publish(request: web.Request) -> web.StreamResponse:
    """POST /nacos/v1/cs/configs: refused, nothing changes."""
    return _text(403, _READ_ONLY)


async def refuse_nacos_delete(request: web.Request) -> web.StreamResponse:
    """DELETE /nacos/v1/cs/configs: refused, nothing changes."""
    return _text(403, _READ_ONLY)


CONFIGS = "/nacos/v1/cs/configs"
_NACOS: dict[str, Any] = {"policy": PROTOCOL, "tag": "nacos"}

ROUTES: tuple[Route, ...] = (
    Route("GET", CONFIGS, get_nacos_config, "Nacos: a config", **_NACOS),
    Route("POST", f"{CONFIGS}/listener", listen_nacos_configs, "Nacos: listener", **_NACOS),
    Route("POST", "/nacos/v1/auth/login", login_nacos, "Nacos: sign in", **_NACOS),
    Route("POST", "/nacos/v1/auth/users/login", login_nacos_user, "Nacos: sign in", **_NACOS),
    Route("POST", CONFIGS, refuse_nacos_publish, "Nacos: publish (refused)", **_NACOS),
    Route("DELETE", CONFIGS, refuse_nacos_delete, "Nacos: delete (refused)", **_NACOS),
)
