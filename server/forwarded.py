"""Behind a reverse proxy: the public origin and the client address of each request.

Only a peer listed in `server.trusted_proxies` is believed about X-Forwarded-Proto, -Host and
-For; from anyone else they are ignored. `server.public_url`, when set, is the origin whatever
the headers say. The middleware hands on a clone of the request whose `scheme`, `host` and
`remote` are the public ones, so the origin check, the cookies' Secure flag, sign-in
throttling, the audit and the request log all read the same answer from the request.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from server.config import ServerSection

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

X_FORWARDED_PROTO = "X-Forwarded-Proto"
X_FORWARDED_HOST = "X-Forwarded-Host"
X_FORWARDED_FOR = "X-Forwarded-For"
_SCHEMES = frozenset({"http", "https"})
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)


def _address(text: str) -> Address | None:
    """An IP address (an IPv4-mapped IPv6 one as IPv4), or None when text is not one."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class Edge:
    """Whom the server believes about the public side of a request."""

    trusted: tuple[Network, ...] = ()
    public_origin: tuple[str, str] | None = None
    """(scheme, host[:port]) of server.public_url."""

    @classmethod
    def from_config(cls, server: ServerSection) -> Edge:
        """The edge of a validated [server] section."""
        networks = tuple(ipaddress.ip_network(entry) for entry in server.trusted_proxies)
        return cls(networks, server.public_origin)

    @property
    def changes_requests(self) -> bool:
        """False when nothing is configured: every request is taken as it comes."""
        return bool(self.trusted) or self.public_origin is not None

    def trusts(self, address: Address | None) -> bool:
        """True when the address is one of the trusted proxies."""
        return address is not None and any(address in network for network in self.trusted)

    def client_address(self, peer: str | None, forwarded_for: Iterable[str]) -> str | None:
        """The right-most X-Forwarded-For hop that is not a trusted proxy, when the peer is one.

        Each proxy appends the address it was connected from, so hops left of the first
        untrusted one were written by that client and prove nothing. A hop that is not an IP
        address ends the walk at the trusted proxy that passed it on; when every hop is
        trusted, the left-most one is the client.
        """
        current = _address(peer) if peer is not None else None
        if current is None or not self.trusts(current):
            return peer
        hops = [hop for header in forwarded_for for hop in header.split(",")]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break
            current = address
            if not self.trusts(current):
                break
        return str(current)

    def request_changes(self, request: web.Request) -> dict[str, Any]:
        """The scheme, host and remote a request's clone gets (empty when none changes)."""
        changes: dict[str, Any] = {}
        peer_trusted = self.trusts(_address(request.remote) if request.remote else None)
        if peer_trusted:
            remote = self.client_address(
                request.remote, request.headers.getall(X_FORWARDED_FOR, [])
            )
            if remote != request.remote:
                changes["remote"] = remote
        if self.public_origin is not None:
            scheme, host = self.public_origin
        elif peer_trusted:
            scheme = _single(request.headers.getall(X_FORWARDED_PROTO, []), request.scheme).lower()
            if scheme not in _SCHEMES:
                scheme = request.scheme
            host = _single(request.headers.getall(X_FORWARDED_HOST, []), request.host)
            if not _HOST.fullmatch(host):
                host = request.host
        else:
            return changes
        if scheme != request.scheme:
            changes["scheme"] = scheme
        if host != request.host:
            changes["host"] = host
        return changes


def _single(values: list[str], fallback: str) -> str:
    """The one value a proxy set; a list (several headers, or commas) is not believed."""
    if len(values) != 1 or "," in values[0]:
        return fallback
    return values[0].strip()


def behind_proxy(server: ServerSection) -> Middleware | None:
    """The middleware for [server] trusted_proxies and public_url, or None when neither is set."""
    edge = Edge.from_config(server)
    if not edge.changes_requests:
        return None

    @web.middleware
    async def public_side(request: web.Request, handler: Handler) -> web.StreamResponse:
        changes = edge.request_changes(request)
        return await handler(request.clone(**changes) if changes else request)

    return public_side
