"""Every failure answered by one function: the envelope on API routes, an HTML page on pages."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

from server.app import create_app
from server.errors import AppError, ErrorCode
from server.keys import STORE
from server.middleware import PAGE, PUBLIC, SESSION_COOKIE, declare
from tests.api.helpers import ADMIN_PASSWORD, Api, AppFactory, make_config

ITEMS = "/api/v1/apps/shop/envs/prod/items"
HTML = "text/html"


def _request_id_in_page(text: str, request_id: str) -> bool:
    return f'<code id="request-id">{request_id}</code>' in text


async def test_a_store_outage_is_an_html_page_on_a_page_route_and_the_envelope_on_the_api(
    api_factory: AppFactory, sqlite_url: str
) -> None:
    api = await api_factory(sqlite_url)
    # A session that was never used: its check has to read the store.
    login = await api.call(
        "POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD}, token=None
    )
    cookie = {"Cookie": f"{SESSION_COOKIE}={login.body['token']}"}
    assert (await api.call("GET", "/api/v1/me")).status == 200  # the bearer token is now known
    await api.app[STORE].close()

    page = await api.call("GET", "/", token=None, headers={**cookie, "X-Request-Id": "page-1"})
    assert page.status == 503
    assert page.headers["Content-Type"].startswith(HTML)
    assert _request_id_in_page(page.text, "page-1")
    assert "store_unavailable" in page.text
    assert page.headers["X-Request-Id"] == "page-1"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")

    listed = await api.call("GET", "/api/v1/apps", headers={"X-Request-Id": "api-1"})
    assert listed.status == 503
    assert listed.headers["Content-Type"].startswith("application/json")
    assert listed.body["error"]["code"] == "store_unavailable"
    assert listed.headers["X-Request-Id"] == "api-1"


async def _fail(request: web.Request) -> web.StreamResponse:
    raise RuntimeError("a bug in a handler")


async def _refuse(request: web.Request) -> web.StreamResponse:
    raise AppError(ErrorCode.INVALID_REQUEST, "<script>alert(1)</script> & more")


@pytest.fixture
async def failing(
    aiohttp_client: AiohttpClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sqlite_url: str,
) -> TestClient[web.Request, web.Application]:
    """The real app with routes that fail: one answered as the API does, two as pages."""
    monkeypatch.setenv("CONFIGCENTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    app = create_app(make_config(sqlite_url, tmp_path))
    declare(app, app.router.add_get("/fail", _fail), PUBLIC)
    declare(app, app.router.add_get("/fail-page", _fail), PAGE)
    declare(app, app.router.add_get("/refuse-page", _refuse), PAGE)
    return await aiohttp_client(app)


async def test_an_unexpected_exception_is_logged_and_answered_internal_with_the_request_id(
    failing: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="server.http")
    as_api = await failing.get("/fail", headers={"X-Request-Id": "boom-1"})
    assert as_api.status == 500
    body = await as_api.json()
    assert body == {"error": {"code": "internal", "message": "internal error (request id boom-1)"}}
    assert "a bug" not in await as_api.text()

    as_page = await failing.get("/fail-page", headers={"X-Request-Id": "boom-2"})
    assert as_page.status == 500
    assert as_page.content_type == HTML
    text = await as_page.text()
    assert _request_id_in_page(text, "boom-2")
    assert "a bug" not in text
    assert "Traceback" not in text

    logged = [r for r in caplog.records if r.exc_info is not None]
    assert [r.getMessage().split()[0] for r in logged] == ["rid=boom-1", "rid=boom-2"]


async def test_the_error_page_escapes_its_message(
    failing: TestClient[web.Request, web.Application],
) -> None:
    answer = await failing.get("/refuse-page")
    assert answer.status == 400
    text = await answer.text()
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in text


async def test_page_errors_are_pages_and_other_paths_keep_the_envelope(api: Api) -> None:
    too_large = await api.call(
        "POST",
        "/login",
        token=None,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        data=io.BytesIO(b"username=" + b"x" * (3 * 1024 * 1024)),
    )
    assert too_large.status == 413
    assert too_large.headers["Content-Type"].startswith(HTML)
    assert _request_id_in_page(too_large.text, too_large.headers["X-Request-Id"])
    unmatched = await api.call("GET", "/no-such-page", token=None)
    assert unmatched.status == 404
    assert unmatched.body["error"]["code"] == "not_found"


async def test_a_sign_out_form_without_its_token_is_refused_with_an_error_page(api: Api) -> None:
    login = await api.call(
        "POST", "/api/v1/login", {"username": "admin", "password": ADMIN_PASSWORD}, token=None
    )
    session = login.body["token"]
    refused = await api.call(
        "POST",
        "/logout",
        token=None,
        headers={"Cookie": f"{SESSION_COOKIE}={session}"},
        data=b"csrf_token=wrong",
    )
    assert refused.status == 403
    assert refused.headers["Content-Type"].startswith(HTML)
    assert "still signed in" in refused.text
    assert _request_id_in_page(refused.text, refused.headers["X-Request-Id"])
    assert (await api.call("GET", "/api/v1/me", token=session)).status == 200


async def test_an_http_error_keeps_its_headers(api: Api) -> None:
    wrong_method = await api.call("PUT", "/api/v1/apps")
    assert wrong_method.status == 405
    assert wrong_method.body["error"]["code"] == "method_not_allowed"
    assert set(wrong_method.headers["Allow"].split(",")) == {"GET", "POST"}


async def test_every_json_answer_ends_with_a_newline(api: Api) -> None:
    await api.app_with_env()
    answers = [
        await api.call("GET", "/api/v1/apps"),
        await api.call("GET", "/healthz", token=None),
        await api.call("GET", "/api/openapi.json", token=None),
        await api.call("GET", "/api/v1/apps/nope"),
        await api.call("GET", "/api/v1/apps", token=None),
        await api.call("POST", "/api/v1/apps", data=b"{not json"),
    ]
    assert [a.status for a in answers] == [200, 200, 200, 404, 401, 400]
    for answer in answers:
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.text.endswith("}\n"), answer.text[-40:]


@pytest.mark.parametrize(
    "tag", ["nonsense", '"abc"', 'W/"x"', '"1", "2"', '"²"', '"99999999999999999999"', '""']
)
async def test_if_match_with_any_tag_that_is_not_a_revision_is_412(api: Api, tag: str) -> None:
    await api.app_with_env()
    created = await api.call("PUT", f"{ITEMS}/k", {"value": "1"})
    assert created.status == 201
    before = await api.snapshot()
    put = await api.call("PUT", f"{ITEMS}/k", {"value": "2"}, headers={"If-Match": tag})
    assert put.status == 412, put.text
    assert put.body["error"]["code"] == "precondition_failed"
    deleted = await api.call("DELETE", f"{ITEMS}/k", headers={"If-Match": tag})
    assert deleted.status == 412, deleted.text
    absent = await api.call("PUT", f"{ITEMS}/new", {"value": "1"}, headers={"If-Match": tag})
    assert absent.status == 412, absent.text
    assert await api.snapshot() == before


async def test_if_match_star_is_refused_as_unsupported(api: Api) -> None:
    await api.app_with_env()
    await api.call("PUT", f"{ITEMS}/k", {"value": "1"})
    star = await api.call("PUT", f"{ITEMS}/k", {"value": "2"}, headers={"If-Match": "*"})
    assert star.status == 400
    assert star.body["error"]["code"] == "invalid_request"
