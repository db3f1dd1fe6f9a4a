"""Request ids, access logs and Prometheus metrics, as one plain ASGI middleware.

Labels and log fields use the route template (``/admin/orgs/{code}``), never
the raw path or query string, which can carry personal data.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from joinedup.api.fast_lane import EverythingFastLane
from joinedup.api.routes import RouteTemplates
from joinedup.logs import get_logger

_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-]{8,64}$")
log = get_logger("joinedup.access_log")


class Metrics:
    """Per-application metrics (no global registry: each app owns its own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "joinedup_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "joinedup_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


class _RequestIds:
    """Request ids: 32 random hex digits each (the form of ``uuid4().hex``), drawn from
    the operating system 256 at a time: one ``getrandom`` call per request cost ~6% of
    a cached ``$everything``'s worker CPU under load. Nothing in an id counts requests
    (a per-process counter would tell a client how busy the service is). Called from
    the event loop only."""

    _BATCH = 256

    def __init__(self) -> None:
        self._pid = -1
        self._pool = b""
        self._at = 0

    def __call__(self) -> str:
        if self._at >= len(self._pool) or self._pid != os.getpid():
            # a forked worker must not reuse its parent's unread bytes
            self._pid = os.getpid()
            self._pool = os.urandom(16 * self._BATCH)
            self._at = 0
        at = self._at
        self._at = at + 16
        return self._pool[at:at + 16].hex()


class ObserveMiddleware:
    def __init__(
        self, app: ASGIApp, metrics: Metrics, templates: RouteTemplates,
        lane: EverythingFastLane | None = None,
    ) -> None:
        self.app = app
        self.lane = lane
        """``$everything`` cache hits answered here, below FastAPI (``api.fast_lane``)."""
        self.metrics = metrics
        self.templates = templates
        self._request_ids = _RequestIds()
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        """(counter, histogram) children per (method, route, status): ``labels()`` takes
        a lock and builds its key on every call; routes and statuses are few."""

    def _observe(self, method: str, template: str, status: int, elapsed: float) -> None:
        key = (method, template, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                self.metrics.requests.labels(method, template, str(status)),
                self.metrics.latency.labels(method, template),
            )
        series[0].inc()
        series[1].observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else self._request_ids()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()
        lane = self.lane
        hit = lane.hit(scope) if lane is not None else None
        if lane is not None and hit is not None:
            try:
                status = await lane.serve(
                    hit, scope, receive, send, [(b"x-request-id", request_id.encode())])
            finally:
                self._done(scope, status, started, request_id)
            return

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._done(scope, status, started, request_id)

    def _done(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        elapsed = time.perf_counter() - started
        template = self.templates.template(scope["path"])
        method = scope["method"]
        self._observe(method, template, status, elapsed)
        log.info(
            "request",
            method=method,
            route=template,
            status=status,
            ms=round(elapsed * 1000, 2),
            request_id=request_id,
        )
