"""What schemathesis found, each pinned by a test that failed before its fix."""

from __future__ import annotations

import re

from tests.api.helpers import Api


async def test_a_form_whose_content_type_cannot_be_read_is_a_400_page_not_a_500(api: Api) -> None:
    # A multipart Content-Type without a boundary made request.post() raise ValueError.
    headers = {"Content-Type": "multipart/form-data"}
    signin = await api.call("POST", "/login", data="username=a&password=b", headers=headers)
    assert signin.status == 400, signin.text
    assert signin.headers["Content-Type"].startswith("text/html")
    assert "could not be read" in signin.text
    signout = await api.call(
        "POST",
        "/logout",
        data="csrf_token=x",
        token=None,
        headers={**headers, "Cookie": f"cc_session={api.token}"},
    )
    assert signout.status == 400, signout.text
    assert signout.headers["Content-Type"].startswith("text/html")
    # The session was not touched.
    assert (await api.call("GET", "/api/v1/me")).status == 200


async def test_a_missing_static_file_is_the_404_page_and_counted_as_a_404(api: Api) -> None:
    # aiohttp's static route answered an empty application/octet-stream 404, decided while
    # sending, after the log line and the metrics had counted a 200.
    for path in ("/static/nope.css", "/static/%C2%84", "/static/..%2Fpyproject.toml", "/static/js"):
        answer = await api.call("GET", path, token=None)
        assert answer.status == 404, path
        assert answer.headers["Content-Type"].startswith("text/html"), path
        assert "Not Found" in answer.text, path
    metrics = await api.call("GET", "/metrics", token=None)
    counted = r'_http_requests_total\{method="GET",route="/static/\{path\}",status="404"\} 4\.0'
    assert re.search(counted, metrics.text), metrics.text
    found = await api.call("GET", "/static/app.css", token=None)
    assert found.status == 200
    assert found.headers["Content-Type"].startswith("text/css")
    assert "Last-Modified" in found.headers
    nested = await api.call("GET", "/static/js/main.js", token=None)
    assert nested.status == 200


async def test_an_audit_filter_no_app_could_have_is_a_400_not_an_empty_log(api: Api) -> None:
    bad = await api.call("GET", "/api/v1/audit?app=Not%20An%20App")
    assert bad.status == 400
    assert bad.body["error"]["code"] == "invalid_name"
    # An empty filter is no filter, as before.
    every = await api.call("GET", "/api/v1/audit?app=")
    assert every.status == 200
    assert every.body["entries"]


async def test_an_empty_filter_the_schema_refuses_is_a_400_not_ignored(api: Api) -> None:
    # `actor=` (minLength 1) answered the whole log, as if no filter had been sent.
    for query in ("actor=", "action=", "limit=", "before="):
        answer = await api.call("GET", f"/api/v1/audit?{query}")
        assert answer.status == 400, query
        assert answer.body["error"]["code"] == "invalid_request", query
    await api.call("POST", "/api/v1/apps", {"name": "shop"})
    await api.call("POST", "/api/v1/apps/shop/envs", {"name": "prod"})
    for query in ("status=", "limit=", "before="):
        path = f"/api/v1/apps/shop/envs/prod/release-requests?{query}"
        answer = await api.call("GET", path)
        assert answer.status == 400, query
    assert (await api.call("GET", "/api/v1/audit?actor=nobody")).body["entries"] == []
    listed = await api.call("GET", "/api/v1/apps/shop/envs/prod/release-requests?status=pending")
    assert listed.status == 200
