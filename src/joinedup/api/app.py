"""The FastAPI application, assembled from configured services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from joinedup import __version__
from joinedup.api import admin, fhir, problems, public
from joinedup.api.fast_lane import EverythingFastLane, everything_path
from joinedup.api.observe import Metrics, ObserveMiddleware
from joinedup.api.routes import RouteTemplates
from joinedup.auth.cache import CachingVerifier
from joinedup.services import Services
from joinedup.storage.changes import register_queue_gauge

DESCRIPTION = """
joinedup lets the NHS, councils and charities in one area share what they know
about the people they jointly care for, lawfully and audited.

* `/oauth2/token`: client credentials with `private_key_jwt` (RFC 7523).
* `/admin/...`: the admin API (problem+json errors).
* `/fhir/...`: the partner FHIR R4 API (OperationOutcome errors).
"""


def create_app(svc: Services, *, fast_lane: bool = True) -> FastAPI:
    """``fast_lane``: answer ``Patient/$everything`` cache hits below FastAPI
    (``joinedup.api.fast_lane``); off only to compare the two paths in tests."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        svc.close()

    app = FastAPI(
        title="joinedup",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    metrics = Metrics()
    app.state.services = svc
    app.state.verifier = CachingVerifier(svc.verifier())
    app.state.metrics = metrics
    if svc.changes is not None:  # the read cache's listener (PostgreSQL)
        register_queue_gauge(metrics.registry, svc.changes)
    problems.install(app)
    app.include_router(fhir.first)  # matched first: the hot partner route
    app.include_router(public.router)
    app.include_router(admin.router)
    app.include_router(fhir.router)
    # the fast lane is asked by ObserveMiddleware: the same request ids, metrics, log lines
    lane = EverythingFastLane(everything_path(app)) if fast_lane else None
    app.add_middleware(ObserveMiddleware, metrics=metrics, templates=RouteTemplates(app),
                       lane=lane)
    return app
