"""Spring Cloud Config under /spring: Environment documents and flat files for existing clients.

The protocol itself (names, labels, documents, credentials) is server/domain/spring.py; here
are the routes, who reads, and answers built once per release and served from memory.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from aiohttp import web

from server.api.answers import ANONYMOUS, ConfigAnswer, Reader
from server.api.common import services
from server.api.config import INSTANCE_HEADER, LABELS_HEADER
from server.api.routes import Route
from server.domain import spring
from server.domain.secrets import may_see
from server.errors import AppError, ErrorCode
from server.instances import Transport
from server.keys import ANSWERS, INSTANCES, PUBLISHED
from server.middleware import PROTOCOL
from server.published import PublishedConfigs
from server.records import Release

HISTORY_BYTES = 32 * 1024 * 1024
"""How much of old releases (read by label) each server holds in memory."""

Built = TypeVar("Built")

_FLAT = "{ext:" + "|".join(spring.FLAT_EXTENSIONS) + "}"

# What the Spring answers add to a latest release's answer (its property sources, whole
# documents, the flat JSON), dropped with it: weakly keyed, so a new release, which replaces
# the answer in server/api/answers.py, lets this go too. No app key, no listener to register.
_BUILT: weakref.WeakKeyDictionary[ConfigAnswer, dict[tuple[object, ...], object]] = (
    weakref.WeakKeyDictionary()
)
# Each server's old releases, made on its first labelled read, gone with its published configs.
_HISTORIES: weakref.WeakKeyDictionary[PublishedConfigs, spring.ReleaseHistory] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True, slots=True)
class _Asked:
    """What a request names: applications, profiles, and the release version (None: the
    latest) of its label, shown as Spring shows it (`(_)` made `/`)."""

    apps: tuple[str, ...]
    envs: tuple[str, ...]
    version: int | None
    label: str | None

    @classmethod
    def of(cls, application: str, profiles: str, label: str | None) -> _Asked:
        """Parse the path's parts: 400 for a name out of pattern, 404 for an unknown label."""
        return cls(
            spring.names(application, "application"),
            spring.names(profiles, "profile"),
            spring.label_version(label),
            None if label is None else label.replace("(_)", "/"),
        )


@dataclass(frozen=True, slots=True)
class _Read:
    """One app/env a request reads: the release it gets, whether secrets show, and the
    cached answer when it is the env's current release."""

    release: Release
    reveal: bool
    answer: ConfigAnswer | None

    def built(self, key: tuple[object, ...], build: Callable[[], Built]) -> Built:
        """build(), held with the current release's answer (built each time for an old one)."""
        if self.answer is None:
            return build()
        held = _BUILT.setdefault(self.answer, {})
        value = held.get(key)
        if value is None:
            value = held[key] = build()
        return cast(Built, value)

    def source(self, origins: bool) -> dict[str, Any]:
        """The property source of this read."""
        return self.built(
            ("source", origins), lambda: spring.property_source(self.release, self.reveal, origins)
        )


def _history(request: web.Request) -> spring.ReleaseHistory:
    published = request.app[PUBLISHED]
    history = _HISTORIES.get(published)
    if history is None:
        store = services(request).ctx.store
        history = _HISTORIES[published] = spring.ReleaseHistory(store, published, HISTORY_BYTES)
    return history


def _reader(request: web.Request) -> Reader:
    """The reader as it named itself (X-Config-Instance, X-Config-Labels), else its address."""
    headers = request.headers
    instance = headers.get(INSTANCE_HEADER) or request.remote
    return ANONYMOUS if instance is None else Reader(instance, headers.get(LABELS_HEADER))


async def _reads(request: web.Request, asked: _Asked) -> list[_Read]:
    """What the request reads, highest precedence first, after the access check of every
    application it names (401, 403); 404 when no env has the release a label names."""
    apps, envs, version = asked.apps, asked.envs, asked.version
    secret = spring.token_secret(request.headers.get("Authorization"))
    compat = services(request).compat
    reveal = {app: may_see(await compat.reader(app, secret), app) for app in apps}
    reader = _reader(request)
    answers = request.app[ANSWERS]
    instances = request.app[INSTANCES]
    found = []
    for app, env in spring.reads(apps, envs):
        answer = answers.current(app, env, reveal[app], reader)
        if version is None:
            if answer is None:
                continue  # Spring leaves out what does not exist; so does this
            release = answer.release
        else:
            published = request.app[PUBLISHED]
            current = answer.release if answer is not None else None
            labelled = await spring.labelled_release(
                published, _history(request), app, env, version, current
            )
            if labelled is None:
                continue
            release = labelled
            answer = answer if current is release else None
        found.append(_Read(release, answer.reveal if answer else reveal[app], answer))
        if reader.instance is not None:
            instances.read(
                app,
                env,
                reader.instance,
                reader.labels_text,
                Transport.SPRING,
                request.remote,
                release.version,
            )
    if version is not None and not found:
        where = f"{','.join(apps)}/{','.join(envs)}"
        raise AppError(ErrorCode.NOT_FOUND, f"no release {version} of {where}")
    return found


def _error(request: web.Request, exc: AppError) -> web.Response:
    response = web.Response(
        body=spring.error_body(exc.status, exc.message, request.path),
        status=exc.status,
        content_type="application/json",
    )
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="configcenter"'
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _environment(request: web.Request, label: str | None) -> web.Response:
    info = request.match_info
    application, profiles = info["application"], info["profiles"]
    origins = spring.V2_MEDIA_TYPE in request.headers.get("Accept", "")
    try:
        asked = _Asked.of(application, profiles, label)
        reads = await _reads(request, asked)
    except AppError as exc:
        return _error(request, exc)

    def document() -> bytes:
        releases = [read.release for read in reads]
        sources = [read.source(origins) for read in reads]
        return spring.environment(application, asked.envs, asked.label, releases, sources)

    if len(reads) == 1 and "," not in application + profiles:
        # One app and one env, as most services read: the whole document is held.
        body = reads[0].built(("environment", application, asked.label, origins), document)
    else:
        body = document()
    content_type = spring.V2_MEDIA_TYPE if origins else "application/json"
    return web.Response(body=body, content_type=content_type)


async def _flat_file(request: web.Request, label: str | None) -> web.Response:
    info = request.match_info
    extension = info["ext"]
    try:
        reads = await _reads(request, _Asked.of(info["application"], info["profiles"], label))
        if len(reads) == 1 and reads[0].answer is not None and extension != "json":
            fmt = "properties" if extension == "properties" else "yaml"
            body, content_type = reads[0].answer.render(fmt)
        elif len(reads) == 1:
            only = reads[0]
            body, content_type = only.built(
                ("file", extension),
                lambda: spring.flat_file(extension, spring.shown_items(only.release, only.reveal)),
            )
        else:
            items = spring.merged_items([spring.shown_items(r.release, r.reveal) for r in reads])
            body, content_type = spring.flat_file(extension, items)
    except AppError as exc:
        return _error(request, exc)
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def get_spring_environment(request: web.Request) -> web.Response:
    """GET /spring/{application}/{profiles}: the latest releases as an Environment."""
    return await _environment(request, None)


async def get_spring_labelled_environment(request: web.Request) -> web.Response:
    """GET /spring/{application}/{profiles}/{label}: release `label` (or the latest)."""
    return await _environment(request, request.match_info["label"])


async def get_spring_file(request: web.Request) -> web.Response:
    """GET /spring/{application}-{profiles}.{ext}: the latest releases as one flat file."""
    return await _flat_file(request, None)


async def get_spring_labelled_file(request: web.Request) -> web.Response:
    """GET /spring/{label}/{application}-{profiles}.{ext}: release `label` as one file."""
    return await _flat_file(request, request.match_info["label"])


async def get_spring_unknown(request: web.Request) -> web.Response:
    """GET /spring/{path}: any other path, answered as Spring answers one it does not serve."""
    return _error(request, AppError(ErrorCode.NOT_FOUND, "no such Spring Cloud Config path"))


# The flat files first: `/spring/LABEL/APP-PROFILE.yml` also has the shape of an Environment
# read with a label.
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"/spring/{{application}}-{{profiles}}.{_FLAT}",
        get_spring_file,
        "Spring Cloud Config: the latest releases as one properties, YAML or JSON file",
        policy=PROTOCOL,
        tag="compat",
    ),
    Route(
        "GET",
        f"/spring/{{label}}/{{application}}-{{profiles}}.{_FLAT}",
        get_spring_labelled_file,
        "Spring Cloud Config: one release version as a flat file",
        policy=PROTOCOL,
        tag="compat",
    ),
    Route(
        "GET",
        "/spring/{application}/{profiles}",
        get_spring_environment,
        "Spring Cloud Config: the latest releases as an Environment",
        policy=PROTOCOL,
        tag="compat",
    ),
    Route(
        "GET",
        "/spring/{application}/{profiles}/{label}",
        get_spring_labelled_environment,
        "Spring Cloud Config: one release version (or main, master) as an Environment",
        policy=PROTOCOL,
        tag="compat",
    ),
    Route(
        "GET",
        "/spring/{path:.*}",
        get_spring_unknown,
        "Spring Cloud Config: a 404 in Spring's shape for any other path",
        policy=PROTOCOL,
        tag="compat",
    ),
)
