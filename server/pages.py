"""The admin page: sign-in and sign-out forms, the single-page shell, static files, headers."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from server.api.common import services
from server.domain.auth import check_csrf, csrf_token_for
from server.domain.scopes import ROLE_PERMISSIONS, Principal
from server.errors import AppError, ErrorCode
from server.keys import CONFIG
from server.middleware import PAGE, declare, same_origin, session_cookie_name

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"

LOGIN_COOKIE = "cc_login"
"""Double-submit token of the sign-in form: a cross-site post cannot read or send it."""
SECURE_LOGIN_COOKIE = "__Secure-cc_login"
"""Its name when the public origin is https (Path=/login rules out __Host-)."""
CSRF_FIELD = "csrf_token"
LOGIN_COOKIE_SECONDS = 3600
MAX_FIELD_CHARS = 1024
# Where to go after signing in: a page address inside the admin page (its hash route).
_NEXT = re.compile(r"#/[A-Za-z0-9_.:/%?=&~-]{0,500}")

PAGE_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/", "The admin page (needs a session; otherwise redirects to /login)"),
    ("GET", "/login", "The sign-in form"),
    ("POST", "/login", "Sign in with the form; sets the session cookie"),
    ("POST", "/logout", "Sign out with the form; ends the session"),
    ("GET", "/static/{path}", "The admin page's stylesheets, scripts and icons"),
)
"""(method, path, summary) of every route registered here, for the OpenAPI document."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def setup(app: web.Application) -> None:
    """Register the page routes, the static files, the templates and the security headers."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        default_helpers=False,
    )
    # A global, so that every page, the error page too, cache-busts the same URLs.
    env.globals["static_version"] = _static_version(STATIC_DIR)
    app.router.add_get("/", get_admin_page, name="get_admin_page")
    app.router.add_get("/login", get_login_page, name="get_login_page")
    app.router.add_post("/login", post_login, name="post_login")
    app.router.add_post("/logout", post_logout, name="post_logout")
    app.router.add_get("/static/{path:.+}", get_static, name="static")
    for name in ("get_admin_page", "get_login_page", "post_login", "post_logout", "static"):
        # Each page checks its own session; its errors are pages (GET and HEAD alike).
        for route in app.router[name]:
            declare(app, route, PAGE)
    app.on_response_prepare.append(_add_security_headers)


def _static_version(directory: Path) -> str:
    """A short hash of every static file: cache-busts the URLs the templates write."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(directory).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.status == 101:
        # A WebSocket upgrade: no page is rendered from it, so none of these applies, and its
        # headers live as long as the socket (~800 bytes per idle subscriber).
        return
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/static/"):
        # Revalidate every time (Last-Modified): module imports carry no version in their URL.
        response.headers.setdefault("Cache-Control", "no-cache")
    elif response.content_type == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")


def _login_cookie_name(request: web.Request) -> str:
    return SECURE_LOGIN_COOKIE if request.secure else LOGIN_COOKIE


def _set_session_cookie(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Path=/, no Domain; Secure on https."""
    response.set_cookie(
        session_cookie_name(request),
        secret,
        max_age=request.app[CONFIG].auth.session_ttl,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def _forget_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    # A browser ignores a __Host- cookie (its deletion too) that lacks Secure.
    response.del_cookie(
        session_cookie_name(request),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


async def _session(request: web.Request) -> tuple[str, Principal] | None:
    """The session cookie and its principal, or None when absent, expired or revoked."""
    cookie = request.cookies.get(session_cookie_name(request))
    if not cookie:
        return None
    try:
        principal = await services(request).auth.authenticate(cookie)
    except AppError as exc:
        if exc.status == 401:
            return None
        raise
    if principal.kind != "session":
        return None
    return cookie, principal


async def _form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The posted form, or a 400 page when its body cannot be read as the Content-Type says."""
    try:
        return await request.post()
    except ValueError:  # a multipart Content-Type without a boundary, a malformed part
        raise AppError(ErrorCode.INVALID_REQUEST, "The form could not be read.") from None


async def get_static(request: web.Request) -> web.StreamResponse:
    """GET /static/{path}: a file of the admin page; anything else is the 404 page."""
    # Not aiohttp's add_static: it answers a missing file with an empty 404 decided while
    # sending, after the error page, the request log and the metrics saw a 200.
    try:
        path = (STATIC_DIR / request.match_info["path"]).resolve()
        found = path.is_relative_to(STATIC_DIR) and path.is_file()
    except (OSError, ValueError):  # a NUL byte, a name too long
        found = False
    if not found:
        raise web.HTTPNotFound(reason="No such file")
    return web.FileResponse(path)


def _redirect(location: str) -> web.Response:
    """A 303 See Other: after a form post the browser follows it with a GET."""
    return web.Response(status=303, headers={"Location": location})


def _to_sign_in(request: web.Request) -> web.Response:
    """Back to the sign-in form, forgetting a session cookie that no longer works."""
    response = _redirect("/login")
    if session_cookie_name(request) in request.cookies:
        _forget_session_cookie(request, response)
    return response


def _next_page(value: object) -> str:
    """The admin page address to return to after signing in; anything else means the start."""
    if isinstance(value, str) and _NEXT.fullmatch(value):
        return value
    return ""


def _login_form(
    request: web.Request, error: str | None, username: str, status: int, next_page: str = ""
) -> web.Response:
    """The sign-in page with a fresh double-submit token."""
    token = secrets.token_urlsafe(24)
    response = aiohttp_jinja2.render_template(
        "login.html",
        request,
        {"csrf_token": token, "error": error, "username": username, "next": next_page},
        status=status,
    )
    response.set_cookie(
        _login_cookie_name(request),
        token,
        max_age=LOGIN_COOKIE_SECONDS,
        path="/login",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def get_admin_page(request: web.Request) -> web.StreamResponse:
    """GET /: the single-page shell for a signed-in operator, else a redirect to sign in."""
    session = await _session(request)
    if session is None:
        return _to_sign_in(request)
    cookie, principal = session
    config = request.app[CONFIG]
    return aiohttp_jinja2.render_template(
        "app.html",
        request,
        {
            "csrf_token": csrf_token_for(cookie),
            "user": principal.name,
            # The account page marks this session among the user's and ends it last.
            "session_id": principal.token_id,
            "is_admin": principal.is_admin,
            "roles": {app: role.value for app, role in principal.roles.items()},
            # The page shows only what the user may do, by the same table the server enforces.
            "role_permissions": {
                role.value: sorted(p.value for p in allowed)
                for role, allowed in ROLE_PERMISSIONS.items()
            },
            "mode": "standalone" if config.standalone else "cluster",
        },
    )


async def get_login_page(request: web.Request) -> web.StreamResponse:
    """GET /login: the sign-in form, or the admin page when already signed in."""
    if await _session(request) is not None:
        return _redirect("/")
    return _login_form(request, None, "", 200)


async def post_login(request: web.Request) -> web.StreamResponse:
    """POST /login: check the form's token, sign in, set the session cookie."""
    form = await _form(request)
    username = form.get("username")
    password = form.get("password")
    presented = form.get(CSRF_FIELD)
    expected = request.cookies.get(_login_cookie_name(request))
    next_page = _next_page(form.get("next"))
    if (
        not same_origin(request)
        or not isinstance(presented, str)
        or not expected
        or not hmac.compare_digest(presented.encode(), expected.encode())
    ):
        return _login_form(
            request,
            "The sign-in form expired or came from another site. Try again.",
            "",
            403,
            next_page,
        )
    if not isinstance(username, str) or not isinstance(password, str):
        return _login_form(request, "Enter your user name and password.", "", 400, next_page)
    username = username.strip()[:MAX_FIELD_CHARS]
    if not username or not password:
        return _login_form(request, "Enter your user name and password.", username, 400, next_page)
    if len(password) > MAX_FIELD_CHARS:
        return _login_form(request, "Wrong user name or password.", username, 401, next_page)
    try:
        session = await services(request).auth.login(
            username, password, request.remote or "unknown"
        )
    except AppError as exc:
        if exc.status == 401:
            message = "Wrong user name or password."
        elif exc.retry_after is not None:
            message = exc.message[:1].upper() + exc.message[1:] + "."
        else:
            raise
        refused = _login_form(request, message, username, exc.status, next_page)
        if exc.retry_after is not None:
            refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    response = _redirect("/" + next_page)
    _set_session_cookie(request, response, session.secret)
    response.del_cookie(
        _login_cookie_name(request),
        path="/login",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def post_logout(request: web.Request) -> web.StreamResponse:
    """POST /logout: a CSRF-checked form that revokes the session and clears the cookie."""
    session = await _session(request)
    if session is None:
        # Nothing to end. A cross-site post carries no cookie (SameSite=Strict) and clears nothing.
        return _to_sign_in(request)
    cookie, principal = session
    form = await _form(request)
    presented = form.get(CSRF_FIELD)
    if not same_origin(request) or not check_csrf(
        cookie, presented if isinstance(presented, str) else None
    ):
        raise AppError(
            ErrorCode.CSRF_FAILED,
            "The sign-out form was missing its security token or came from another site, "
            "so you are still signed in.",
        )
    await services(request).auth.logout(principal)
    response = _redirect("/login")
    _forget_session_cookie(request, response)
    return response
