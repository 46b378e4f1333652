"""create_app(config): the only wiring; no I/O happens until the app starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

from server.api.routes import add_routes
from server.config import Config
from server.coord import create_coordinator
from server.coord.base import ClusterEvent
from server.domain.context import DomainContext
from server.domain.services import Services
from server.keys import CONFIG, COORDINATOR, HUB, METRICS, PUBLISHED, SERVICES, STORE
from server.metrics import Metrics
from server.middleware import authenticate, observe
from server.published import PublishedConfigs
from server.records import utc_now
from server.store.store import Store
from server.watch.hub import Hub

log = logging.getLogger(__name__)

SESSION_SWEEP_SECONDS = 3600.0


def create_app(config: Config) -> web.Application:
    """The application: routes, middlewares and resources opened in cleanup_ctx order."""
    app = web.Application(
        middlewares=[observe, authenticate], client_max_size=config.limits.max_body_bytes
    )
    advertise = f"http://{config.server.host}:{config.server.port}"
    store = Store.from_config(config)
    coordinator = create_coordinator(config, advertise)
    published = PublishedConfigs()
    ctx = DomainContext(store, coordinator, published, config.limits)
    services = Services.build(ctx, config.auth.session_ttl)
    hub = Hub(published, config.limits.max_subscriptions_per_socket)

    app[CONFIG] = config
    app[STORE] = store
    app[COORDINATOR] = coordinator
    app[PUBLISHED] = published
    app[SERVICES] = services
    app[HUB] = hub
    app[METRICS] = Metrics()

    add_routes(app)
    _add_pages(app)

    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_coordinator_ctx)
    # At shutdown, before aiohttp waits for open handlers: close sockets, answer long polls.
    app.on_shutdown.append(_end_open_requests)
    app.cleanup_ctx.append(_session_sweeper_ctx)
    app.cleanup_ctx.append(_heartbeat_ctx)
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
        generated = await app[SERVICES].auth.bootstrap_admin(
            os.environ.get("CONFIGCENTER_ADMIN_PASSWORD")
        )
        if generated is not None:
            # The contract: a random bootstrap password is written once to the log.
            log.warning("created user admin with password %s (change it)", generated)
        yield
    finally:
        await store.close()


async def _coordinator_ctx(app: web.Application) -> AsyncIterator[None]:
    coordinator = app[COORDINATOR]
    services = app[SERVICES]
    hub = app[HUB]
    published = app[PUBLISHED]

    def on_event(event: ClusterEvent) -> None:
        if event.kind == "token_revoked":
            services.auth.forget_token(int(event.data["id"]))
            closed = hub.close_token(int(event.data["id"]))
            if closed:
                log.info("closed %d sockets of revoked token %s", closed, event.data["id"])
        elif event.kind == "app_deleted":
            published.remove_app(str(event.data["app"]))
        else:
            services.auth.handle_event(event)

    coordinator.on_event(on_event)
    try:
        await coordinator.start(published, services.releases, lambda: hub.subscriber_count)
        yield
    finally:
        await coordinator.close()


async def _end_open_requests(app: web.Application) -> None:
    app[PUBLISHED].close()
    await app[HUB].close_all()


async def _heartbeat_ctx(app: web.Application) -> AsyncIterator[None]:
    interval = app[CONFIG].server.heartbeat_seconds
    hub = app[HUB]

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            hub.heartbeat()

    task = asyncio.create_task(beat(), name="ws-heartbeat")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _session_sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    async def sweep() -> None:
        while True:
            await asyncio.sleep(SESSION_SWEEP_SECONDS)
            try:
                async with app[STORE].transaction() as q:
                    removed = await q.delete_expired_sessions(utc_now())
                if removed:
                    log.info("removed %d expired sessions", removed)
            except Exception:
                log.exception("session sweep failed")

    task = asyncio.create_task(sweep(), name="session-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
