"""create_app(config): the only wiring; no I/O happens until the app starts."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from server.access_log import FLUSH_SECONDS, AccessLog
from server.api.answers import ConfigAnswers
from server.api.held_polls import HeldPolls
from server.api.routes import add_routes
from server.compat import add_compat_routes
from server.config import Config
from server.coord import create_coordinator
from server.domain.auth import (
    LAST_USED_WRITE_SECONDS,
    SESSION_SWEEP_SECONDS,
    WS_TOKEN_CHECK_SECONDS,
)
from server.domain.context import DomainContext
from server.domain.secrets import check_store_key, load_keys
from server.domain.services import Services
from server.events import AppDeleted, EnvDeleted, TokenRevoked, UserChanged
from server.forwarded import behind_proxy
from server.instances import InstanceRegistry
from server.keys import (
    ACCESS_LOG,
    ANSWERS,
    CONFIG,
    COORDINATOR,
    HELD_POLLS,
    HUB,
    INSTANCES,
    METRICS,
    PUBLISHED,
    SERVICES,
    STORE,
    TASKS,
)
from server.metrics import Metrics
from server.middleware import observe
from server.published import PublishedConfigs
from server.secretbox import SecretKeyError
from server.store.store import Store
from server.tasks import BackgroundTasks
from server.watch.hub import Hub

log = logging.getLogger(__name__)


def create_app(config: Config) -> web.Application:
    """The application: routes, middlewares and resources opened in cleanup_ctx order."""
    # First, so that every later middleware and handler sees the public side of the request.
    edge = behind_proxy(config.server)
    middlewares: list[Middleware] = [observe]
    if edge is not None:
        middlewares.insert(0, edge)
    app = web.Application(middlewares=middlewares, client_max_size=config.limits.max_body_bytes)
    advertise = f"http://{config.server.host}:{config.server.port}"
    store = Store.from_config(config)
    coordinator = create_coordinator(config, advertise)
    published = PublishedConfigs()
    instances = InstanceRegistry(coordinator.replica_id, config.instances.ttl_seconds)
    coordinator.share_instances(instances)
    ctx = DomainContext(store, coordinator, published, config.limits, instances)
    services = Services.build(ctx, config.auth)
    hub = Hub(published, config.limits.max_subscriptions_per_socket, instances)

    # Each cluster event to its owners, on every replica (the announcer's included).
    coordinator.on_event(TokenRevoked, services.auth.on_token_revoked)
    coordinator.on_event(TokenRevoked, hub.on_token_revoked)
    coordinator.on_event(UserChanged, services.auth.on_user_changed)
    coordinator.on_event(UserChanged, hub.on_user_changed)
    coordinator.on_event(AppDeleted, published.on_app_deleted)
    coordinator.on_event(EnvDeleted, published.on_env_deleted)

    app[CONFIG] = config
    app[STORE] = store
    app[COORDINATOR] = coordinator
    app[PUBLISHED] = published
    app[ANSWERS] = answers = ConfigAnswers(published)
    app[HELD_POLLS] = HeldPolls(published, answers)
    app[SERVICES] = services
    app[HUB] = hub
    app[INSTANCES] = instances
    app[METRICS] = Metrics()
    app[ACCESS_LOG] = AccessLog()
    app[TASKS] = BackgroundTasks()

    add_routes(app)
    add_compat_routes(app, config.compat)
    _add_pages(app)

    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_coordinator_ctx)
    # The hub holds no resource to open; at shutdown, before aiohttp waits for open
    # handlers (cleanup comes after that wait), its sockets close and long polls answer.
    app.on_shutdown.append(_end_open_requests)
    app.on_response_prepare.append(_without_version_banner)
    app.cleanup_ctx.append(_background_ctx)
    return app


def _add_pages(app: web.Application) -> None:
    """The admin page, when its module is present."""
    try:
        from server import pages
    except ImportError:  # pragma: no cover - the page ships with the server
        return
    pages.setup(app)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    # Closed whatever happens: a store left open keeps the process alive (its threads).
    try:
        await store.open()
        await _load_secrets_key(app)
        generated = await app[SERVICES].users.bootstrap_admin(
            os.environ.get("CONFIGCENTER_ADMIN_PASSWORD")
        )
        if generated is not None:
            # The contract: a random bootstrap password is written once to the log.
            log.warning("created user admin with password %s (change it)", generated)
        yield
    finally:
        app[SERVICES].close()
        await store.close()


async def _load_secrets_key(app: web.Application) -> None:
    """Load the secrets keys (before any release is loaded) and check them against the store's
    key check value: a replica with another key refuses to start (SecretKeyError) rather than
    serve values it cannot open or seal values the others cannot."""
    keyring = app[PUBLISHED].keyring
    if not keyring.loaded:
        current, old = await asyncio.to_thread(load_keys, app[CONFIG])
        keyring.install(current, old)
    try:
        await check_store_key(app[STORE], keyring)
    except SecretKeyError as exc:
        log.error("refusing to start: %s", exc)
        raise
    log.info("secrets key %s loaded (%d keys)", keyring.current_id, len(keyring.key_ids))


async def _coordinator_ctx(app: web.Application) -> AsyncIterator[None]:
    coordinator = app[COORDINATOR]
    hub = app[HUB]
    try:
        await coordinator.start(
            app[PUBLISHED], app[SERVICES].releases, lambda: hub.subscriber_count
        )
        yield
    finally:
        await coordinator.close()


async def _without_version_banner(request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp would announce "Python/3.x aiohttp/3.x" to every caller. The key is hdrs.SERVER
    # (an istr): a plain str costs the headers of each response ~200 bytes more, and an
    # upgraded WebSocket keeps its response's headers for as long as it is open.
    response.headers[hdrs.SERVER] = "configcenter"


async def _end_open_requests(app: web.Application) -> None:
    app[PUBLISHED].close()
    await app[HUB].close_all()


async def _background_ctx(app: web.Application) -> AsyncIterator[None]:
    tasks = app[TASKS]
    tasks.every("access-log", FLUSH_SECONDS, app[ACCESS_LOG].flush)
    tasks.every("ws-heartbeat", app[CONFIG].server.heartbeat_seconds, app[HUB].heartbeat)
    tasks.every("session-sweep", SESSION_SWEEP_SECONDS, app[SERVICES].auth.sweep_expired_sessions)
    # HTTP readers leave the list ttl after their last read (listings also skip them lazily).
    ttl = app[CONFIG].instances.ttl_seconds
    tasks.every("instances-sweep", min(60.0, max(1.0, ttl / 10)), app[INSTANCES].sweep)
    tasks.every("token-last-used", LAST_USED_WRITE_SECONDS, app[SERVICES].auth.write_last_used)
    tasks.every(
        "ws-token-check",
        WS_TOKEN_CHECK_SECONDS,
        functools.partial(app[HUB].close_stale, app[SERVICES].auth.stale_among),
    )
    try:
        yield
    finally:
        await tasks.close()
        app[ACCESS_LOG].flush()  # the reads counted since the last flush
        # The store closes after this: the uses noted since the last write are kept. Best
        # effort: a store gone by now must not turn a clean shutdown into a failed one.
        try:
            await app[SERVICES].auth.write_last_used()
        except Exception as exc:  # any failure only loses some last_used_at times
            log.warning("could not write the tokens' last use at shutdown: %s", exc)
