"""Clients of a server behind the real nginx: through the proxy, or straight to the server."""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import urllib.parse
from http.cookies import SimpleCookie
from typing import Any

from devservices import LOOPBACK, NginxProxy, ServerProcess

# Linux routes all of 127.0.0.0/8 to the loopback interface, so a client may connect from any
# of these: the proxy is trusted as 127.0.0.1, every other source address is a client.
CLIENT_BEHIND_PROXY = "127.0.0.7"
OTHER_CLIENT_BEHIND_PROXY = "127.0.0.8"
DIRECT_CLIENT = "127.0.0.2"
TRUSTED_PROXY = LOOPBACK
FAILURES_PER_ADDRESS = 3
_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@dataclasses.dataclass
class Reply:
    """One response read whole."""

    status: int
    headers: http.client.HTTPMessage
    text: str

    @property
    def body(self) -> Any:
        """The JSON body."""
        return json.loads(self.text)

    def set_cookies(self) -> dict[str, str]:
        """Each Set-Cookie header, by cookie name (the whole header line as the value)."""
        lines = self.headers.get_all("Set-Cookie") or []
        return {line.split("=", 1)[0]: line for line in lines}


@dataclasses.dataclass
class Proxied:
    """A server process with the real nginx in front of it (TLS, docs/proxy.md's config)."""

    server: ServerProcess
    proxy: NginxProxy

    def through_proxy(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        source: str = CLIENT_BEHIND_PROXY,
    ) -> Reply:
        """One HTTPS request to nginx, from the source address given."""
        connection = http.client.HTTPSConnection(
            LOOPBACK,
            self.proxy.port,
            timeout=10,
            context=self.proxy.client_context(),
            source_address=(source, 0),
        )
        return _send(connection, method, path, body, headers)

    def direct(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        source: str = DIRECT_CLIENT,
    ) -> Reply:
        """One plain HTTP request straight to the server, from the source address given."""
        connection = http.client.HTTPConnection(
            LOOPBACK, self.server.port, timeout=10, source_address=(source, 0)
        )
        return _send(connection, method, path, body, headers)

    def admin_call(self, method: str, path: str, body: Any = None) -> Any:
        """An API call as admin (bearer token, straight to the server) that must succeed."""
        token = self.server.admin_token()
        headers = {"Authorization": f"Bearer {token}"}
        reply = self.direct(method, path, body, headers=headers, source=TRUSTED_PROXY)
        assert 200 <= reply.status < 300, f"{method} {path}: {reply.status} {reply.text}"
        return reply.body if reply.text else None

    def audit_summaries(self) -> list[tuple[str, str, str]]:
        """(actor, action, summary) of the newest audit entries."""
        entries = self.admin_call("GET", "/api/v1/audit?limit=500")["entries"]
        return [(e["actor"], e["action"], e["summary"]) for e in entries]

    def sign_in_with_the_form(self, *, origin: str | None = None) -> tuple[Reply, Reply]:
        """GET /login, then POST it back as a browser would: (the form, the sign-in answer)."""
        form = self.through_proxy("GET", "/login")
        assert form.status == 200, form.text
        match = _CSRF_INPUT.search(form.text)
        assert match is not None, form.text
        login_cookie = SimpleCookie()
        for line in form.headers.get_all("Set-Cookie") or []:
            login_cookie.load(line)
        cookie_header = "; ".join(f"{name}={m.value}" for name, m in login_cookie.items())
        fields = urllib.parse.urlencode(
            {
                "username": "admin",
                "password": self.server.admin_password,
                "csrf_token": match.group(1),
            }
        )
        answer = self.through_proxy(
            "POST",
            "/login",
            fields,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": cookie_header,
                "Origin": origin or self.proxy.origin,
            },
        )
        return form, answer

    def csrf_token(self, cookie_header: str) -> str:
        """The admin page's CSRF token for a session cookie (read from the page, as app.js does)."""
        page = self.through_proxy("GET", "/", headers={"Cookie": cookie_header})
        assert page.status == 200, page.text
        match = _CSRF_META.search(page.text)
        assert match is not None, page.text
        return match.group(1)


def _send(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None,
) -> Reply:
    all_headers = dict(headers or {})
    data: bytes | None = None
    if isinstance(body, str):
        data = body.encode()
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read().decode())
    finally:
        connection.close()
