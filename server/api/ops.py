"""Operations: health, readiness, metrics, audit and the cluster view."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from server.api.common import int_query, json_response, principal, services
from server.errors import AppError, ErrorCode
from server.keys import CONFIG, COORDINATOR, HUB, METRICS, PUBLISHED, STORE

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is up."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: 200 when the store and the coordinator answer, else 503 naming which.

    Anyone may ask, so the answer names only the part; what failed (addresses, errors) goes
    to the log.
    """
    checks: dict[str, str] = {}
    for name, check in (
        ("store", request.app[STORE].ping),
        ("coordinator", request.app[COORDINATOR].check),
    ):
        try:
            await check()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = "unavailable"
            detail = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            log.warning("readyz: %s is not ready: %s", name, detail)
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


async def get_metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text; with server.metrics_token set, only for its bearer."""
    expected = request.app[CONFIG].server.metrics_token
    if expected:
        presented = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(presented, f"Bearer {expected}".encode()):
            raise AppError(ErrorCode.UNAUTHORIZED, "metrics need the metrics token")
    metrics = request.app[METRICS]
    metrics.ws_connections.set(request.app[HUB].subscriber_count)
    metrics.published_envs.set(len(request.app[PUBLISHED]))
    metrics.long_polls_waiting.set(request.app[PUBLISHED].waiting)
    return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")


async def list_audit(request: web.Request) -> web.Response:
    """GET /api/v1/audit?app=&actor=&action=&limit=&before= (admin, or the app's viewers)."""
    limit = int_query(request, "limit", 100, 1, 500)
    before = int_query(request, "before", None, 1, 2**62)
    assert limit is not None
    query = request.query
    entries = await services(request).list_audit(
        principal(request),
        query.get("app") or None,
        limit,
        before,
        query.get("actor"),
        query.get("action"),
    )
    return json_response({"entries": [e.to_json() for e in entries]})


async def get_cluster(request: web.Request) -> web.Response:
    """GET /api/v1/cluster (admin): replicas, etcd members, lock holders."""
    principal(request).require_admin()
    description = await request.app[COORDINATOR].describe()
    description["subscribers"] = request.app[HUB].subscriber_count
    return json_response(description)
