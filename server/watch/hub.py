"""Who is subscribed to what, and fan-out of each release, serialised once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSCloseCode

from server.domain.scopes import Principal
from server.domain.secrets import may_see
from server.errors import AppError, ErrorCode
from server.events import TokenRevoked, UserChanged
from server.instances import InstanceRegistry
from server.published import EnvKey, PublishedConfigs
from server.records import Release
from server.watch.connection import WatchConnection
from server.watch.messages import ReleaseMessages, ReleaseVariants, error_message

log = logging.getLogger(__name__)


class Hub:
    """Subscriptions by env and by token; fed by the published-config cache."""

    def __init__(
        self,
        published: PublishedConfigs,
        max_subscriptions: int,
        instances: InstanceRegistry | None = None,
    ) -> None:
        self.published = published
        self.max_subscriptions = max_subscriptions
        self.instances = instances if instances is not None else InstanceRegistry("local", 600)
        self.messages = ReleaseMessages()
        # An active gray release's messages, beside its env's main release's.
        self.gray_messages = ReleaseMessages()
        self._by_key: dict[EnvKey, set[WatchConnection]] = {}
        self._by_token: dict[int, set[WatchConnection]] = {}
        self.connections: set[WatchConnection] = set()
        published.add_listener(self.broadcast)
        published.add_gray_listener(self.broadcast_gray)
        published.add_removal_listener(self.drop_app)
        published.add_env_removal_listener(self.drop_env)

    @property
    def subscriber_count(self) -> int:
        """Open sockets."""
        return len(self.connections)

    def add(self, conn: WatchConnection) -> None:
        """Track a new socket."""
        self.connections.add(conn)
        if conn.principal.token_id is not None:
            self._by_token.setdefault(conn.principal.token_id, set()).add(conn)

    def remove(self, conn: WatchConnection) -> None:
        """Forget a closed socket and all its subscriptions."""
        self.connections.discard(conn)
        for key in list(conn.subscriptions):
            self._unlink(conn, key)
        conn.subscriptions.clear()
        for record in conn.instances.values():
            self.instances.unsubscribed(record)
        conn.instances.clear()
        if conn.principal.token_id is not None:
            peers = self._by_token.get(conn.principal.token_id)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self._by_token[conn.principal.token_id]

    def subscribe(
        self,
        conn: WatchConnection,
        app: str,
        env: str,
        after: int | None,
        instance: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """Subscribe and send the latest release when it is newer than after; an instance that
        names itself is listed while subscribed."""
        key = (app, env)
        if key not in conn.subscriptions and len(conn.subscriptions) >= self.max_subscriptions:
            raise AppError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"at most {self.max_subscriptions} subscriptions per socket",
            )
        # No await between registering and sending the current release: nothing is missed.
        conn.subscriptions[key] = after if after is not None else -1
        conn.reveal(key, may_see(conn.principal, app))
        self._by_key.setdefault(key, set()).add(conn)
        self._forget_instance(conn, key)
        if instance is not None:
            conn.instances[key] = self.instances.subscribed(
                app, env, instance, labels or {}, conn.address, after
            )
        current = self.published.for_reader(app, env, instance, labels or {})
        if current is not None:
            conn.offer_release(key, self._variants(current).get(key in conn.revealed))
            if instance is not None:
                self.instances.changed()

    def ack(self, conn: WatchConnection, app: str, env: str, version: int) -> None:
        """The instance subscribed on conn applied version of app/env."""
        key = (app, env)
        if key not in conn.subscriptions:
            raise AppError(ErrorCode.INVALID_REQUEST, f"not subscribed to {app}/{env}")
        record = conn.instances.get(key)
        if record is None:
            raise AppError(
                ErrorCode.INVALID_REQUEST, "only an instance acks: subscribe with an instance id"
            )
        if version > self.published.version(app, env):
            raise AppError(
                ErrorCode.INVALID_REQUEST, f"version {version} of {app}/{env} is not published"
            )
        self.instances.acked(record, version)

    def _forget_instance(self, conn: WatchConnection, key: EnvKey) -> None:
        record = conn.instances.pop(key, None)
        if record is not None:
            self.instances.unsubscribed(record)

    def unsubscribe(self, conn: WatchConnection, app: str, env: str) -> None:
        """Stop sending an env to a socket."""
        key = (app, env)
        conn.subscriptions.pop(key, None)
        conn.reveal(key, False)
        self._unlink(conn, key)
        self._forget_instance(conn, key)

    def _unlink(self, conn: WatchConnection, key: EnvKey) -> None:
        peers = self._by_key.get(key)
        if peers is not None:
            peers.discard(conn)
            if not peers:
                del self._by_key[key]

    def _variants(self, release: Release) -> ReleaseVariants:
        held = self.gray_messages if release.gray_active else self.messages
        return held.of(release)

    def broadcast_gray(self, release: Release) -> None:
        """Send an active gray release (started or widened) to the subscribers its rule takes;
        the others keep the main release. Those that have it already are not sent it again."""
        key = (release.app, release.env)
        peers = self._by_key.get(key)
        gray = release.gray
        if not peers or gray is None:
            self.gray_messages.forget(key)
            return
        messages = self.gray_messages.of(release)
        clear, masked = messages.get(True), messages.get(False)
        identified = False
        for conn in list(peers):
            record = conn.instances.get(key)
            if record is None:
                continue  # an anonymous subscriber is never in a gray release
            if gray.rule.matches(release.app, release.env, record.instance, record.labels):
                conn.offer_release(key, clear if key in conn.revealed else masked)
                identified = True
        if identified:
            self.instances.changed()

    def broadcast(self, release: Release) -> None:
        """Send a release to every subscriber of its env; its message is built once for all."""
        key = (release.app, release.env)
        self.gray_messages.forget(key)  # a main release ends any gray one
        peers = self._by_key.get(key)
        if not peers:
            self.messages.forget(key)  # the next subscriber's message is built then
            return
        messages = self.messages.of(release)
        clear, masked = messages.get(True), messages.get(False)
        identified = False
        for conn in list(peers):
            conn.offer_release(key, clear if key in conn.revealed else masked)
            identified = identified or key in conn.instances
        if identified:
            self.instances.changed()  # their delivered_version moved

    def close_token(self, token_id: int, reason: str = "token revoked") -> int:
        """Close every socket opened with a token; returns how many."""
        peers = self._by_token.pop(token_id, set())
        for conn in peers:
            conn.close(WSCloseCode.POLICY_VIOLATION, reason)
        return len(peers)

    def on_token_revoked(self, event: TokenRevoked) -> None:
        """A token was revoked on some replica: close its sockets here (1008)."""
        closed = self.close_token(event.id)
        if closed:
            log.info("closed %d sockets of revoked token %d", closed, event.id)

    def on_user_changed(self, event: UserChanged) -> None:
        """A user changed on some replica: close the sockets of that user's sessions (1008);
        they reconnect with the user's new rights."""
        closed = 0
        for token_id, peers in list(self._by_token.items()):
            if any(conn.principal.user == event.name for conn in peers):
                closed += self.close_token(token_id, "user changed")
        if closed:
            log.info("closed %d sockets of changed user %s", closed, event.name)

    async def close_stale(
        self, stale_among: Callable[[dict[int, Principal]], Awaitable[list[int]]]
    ) -> int:
        """Close the sockets whose token the store says is revoked, or whose user changed
        since the socket opened (the repair of a lost event)."""
        if not self._by_token:
            return 0
        principals = {
            token_id: next(iter(peers)).principal for token_id, peers in self._by_token.items()
        }
        try:
            stale = await stale_among(principals)
        except AppError as exc:
            if exc.code != ErrorCode.STORE_UNAVAILABLE.code:
                raise
            return 0  # kept open through a store outage, as their cached tokens are
        closed = 0
        for token_id in stale:
            count = self.close_token(token_id, "token revoked or user changed")
            if count:
                log.info("closed %d sockets of token %d, stale in the store", count, token_id)
            closed += count
        return closed

    def drop_app(self, app: str) -> None:
        """Tell subscribers of a deleted app and drop their subscriptions."""
        self.messages.forget_app(app)
        self.gray_messages.forget_app(app)
        deleted = error_message(ErrorCode.APP_DELETED, f"app {app!r} was deleted")
        for key in [k for k in self._by_key if k[0] == app]:
            for conn in self._by_key.pop(key):
                conn.subscriptions.pop(key, None)
                conn.instances.pop(key, None)
                conn.send_text(deleted)
        self.instances.drop_app(app)

    def drop_env(self, app: str, env: str) -> None:
        """Tell subscribers of a deleted env and drop their subscriptions."""
        key = (app, env)
        self.messages.forget(key)
        self.gray_messages.forget(key)
        deleted = error_message(ErrorCode.ENV_DELETED, f"env {env!r} of app {app!r} was deleted")
        for conn in self._by_key.pop(key, set()):
            conn.subscriptions.pop(key, None)
            conn.instances.pop(key, None)
            conn.send_text(deleted)
        self.instances.drop_env(app, env)

    def heartbeat(self) -> int:
        """Ping every socket; close those that missed two pings. Returns how many closed."""
        dead = [conn for conn in self.connections if not conn.ping()]
        for conn in dead:
            log.info("ws %d missed two pings; closing", conn.id)
            conn.close(WSCloseCode.GOING_AWAY, "heartbeat: two pings unanswered")
        return len(dead)

    async def close_all(self) -> None:
        """Close every socket (shutdown)."""
        for conn in list(self.connections):
            conn.close(WSCloseCode.GOING_AWAY, "server shutting down")
            await conn.stop()
