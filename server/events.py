"""Cluster events: what every replica must act on, one frozen type each; imports nothing of ours.

Who announces each, and who acts on it (on every replica, the announcer's included):

- `TokenRevoked`: announced by auth (revoke, sign-out); auth forgets the token, the hub closes
  its sockets with 1008.
- `UserChanged`: announced by auth (a user added); auth forgets every cached principal.
- `AppDeleted`: announced by apps (delete); the published configs drop the app and tell its
  subscribers.
- `EnvDeleted`: announced by apps (env delete); the published configs drop the env, its
  subscribers get `env_deleted` and its long polls end with 404.

Handlers are registered on the coordinator by type (`coordinator.on_event(TokenRevoked, ...)`);
the etcd coordinator's wire format is in `server/coord/etcd_keys.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenRevoked:
    """An API token or a session was revoked: no replica may accept it any more."""

    id: int


@dataclass(frozen=True)
class UserChanged:
    """A user was added or changed: cached principals may be out of date."""

    name: str


@dataclass(frozen=True)
class AppDeleted:
    """An app and its whole history were deleted."""

    app: str


@dataclass(frozen=True)
class EnvDeleted:
    """One env of an app and its history were deleted (the app stays)."""

    app: str
    env: str


ClusterEvent = TokenRevoked | UserChanged | AppDeleted | EnvDeleted
EVENT_TYPES: tuple[type[ClusterEvent], ...] = (TokenRevoked, UserChanged, AppDeleted, EnvDeleted)

EventT = TypeVar("EventT", bound=ClusterEvent)


class EventHandlers:
    """Handlers by event type; a failing handler is logged and the others still run."""

    def __init__(self) -> None:
        self._handlers: dict[type[Any], list[Callable[[Any], None]]] = {}

    def add(self, event_type: type[EventT], handler: Callable[[EventT], None]) -> None:
        """Call handler with every event of event_type, in the order handlers were added."""
        self._handlers.setdefault(event_type, []).append(handler)

    def dispatch(self, event: ClusterEvent) -> None:
        """Call every handler of the event's type."""
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception:
                name = getattr(handler, "__qualname__", repr(handler))
                log.exception("event handler %s failed for %r", name, event)
