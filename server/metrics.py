"""Prometheus metrics, one registry per application."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The server's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "configcenter_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "configcenter_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 60),
        )
        self.publishes = Counter(
            "configcenter_publishes_total", "Releases made on this replica", registry=self.registry
        )
        self.ws_connections = Gauge(
            "configcenter_ws_connections", "Open WebSocket subscribers", registry=self.registry
        )
        self.published_envs = Gauge(
            "configcenter_published_envs", "Envs held in memory", registry=self.registry
        )
        self.long_polls_waiting = Gauge(
            "configcenter_long_polls_waiting",
            "Long polls held open waiting for a newer release",
            registry=self.registry,
        )

        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            # labels() validates and locks on every call; the children are cached instead.
            children = self._request_children[key] = (
                self.requests.labels(method, route, str(status)),
                self.request_seconds.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
