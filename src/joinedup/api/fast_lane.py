"""``Patient/$everything`` answered from the worker's read cache below FastAPI.

Under load a cache hit's CPU went mostly to the framework (Starlette's exception
middleware and request objects, the router's walk, ``solve_dependencies``,
response objects) rather than to the hit itself: the decision from cached inputs,
the audit events and their durable commit. The fast lane answers exactly
the requests the route (``records.everything``) would answer with a cache hit, by
the same functions in the same order:

* ``GET``, the route's own path pattern (``everything_path``), no query string, no
  ``root_path`` or ``app_root_path``, no request body;
* the ``Authorization`` header read as FastAPI's ``HTTPBearer`` reads it
  (``deps.bearer_credentials``); the token one the application's
  ``CachingVerifier`` has already verified and that has not expired
  (``CachingVerifier.cached``: a token never seen is verified on the FastAPI path,
  once, and kept);
* ``records:read`` and ``requester_identity``, as ``deps.authenticated_for`` checks
  them (``records.EVERYTHING_READER``);
* ``AccessService.everything_in_memory`` with the route's ``fhir_base`` as the answer
  key (kept per scheme, server, ``Host``, path and public base URL: ``_urls_of``): the
  decision point decides, from the cached inputs, on every request; the answer is
  one that serves something.

Then it builds the audit events with the route's ``everything_served``, awaits
their durable commit (``AuditLog.append_async``) and sends the route's body
(``everything_body``) with the headers a ``Response`` with the route's media type
sends. Anything else (no or an unknown or expired token, a refusal, a miss, an
answer serving nothing, an unusual request, any exception before the append) is
handed to the FastAPI application untouched: nothing is written, counted or left
on the scope. If the append itself fails with a user error (``Unavailable``: the
log cannot take the event) the answer is the application's for that error
(``problems.fhir_error``); any other exception propagates as it does from the route.

It is part of ``ObserveMiddleware``, asked after the request has its id, so request
ids, metrics and the access log line are made the same way on both paths.
ADR 0004 (amendment 2026-12-06).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send

from joinedup.access.service import requester_identity
from joinedup.api.deps import bearer_credentials, fhir_base, public_url
from joinedup.api.fhir import records
from joinedup.api.problems import fhir_error
from joinedup.audit.events import AuditEvent
from joinedup.auth.permissions import Permission
from joinedup.errors import UserError
from joinedup.services import Services

_FHIR_JSON = records.FHIR_JSON.encode("latin-1")
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})
_MAX_URLS = 10_000
"""Requests' (base, self) URLs kept (``_urls_of``); a full memo is emptied."""
_MAX_KEPT_PART = 255
"""A ``Host`` header or path longer than this (bytes / characters) is not kept: a
real one is far shorter (a FHIR id is at most 64 characters), and ~80 kB of
client-chosen headers per entry would let one token fill gigabytes (review)."""


@dataclass(frozen=True)
class EverythingPath:
    """The ``$everything`` route's full path as the router matches it (Starlette's
    ``compile_path`` of the path with its prefixes)."""

    regex: re.Pattern[str]
    convert_id: Callable[[str], Any]


def everything_path(app: FastAPI) -> EverythingPath:
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute) and route.endpoint is records.everything and ctx.path:
            regex, _, convertors = compile_path(ctx.path)
            return EverythingPath(regex, convertors["id"].convert)
    raise LookupError("the application has no Patient/$everything route")


class _Hit:
    __slots__ = ("body", "events", "svc")

    def __init__(self, svc: Services, events: list[AuditEvent], body: bytes) -> None:
        self.svc = svc
        self.events = events
        self.body = body


class EverythingFastLane:
    """Asked by ``ObserveMiddleware`` (after it has given the request its id) before
    it hands a request to the application: :meth:`hit` is the answer or None (hand
    it on), :meth:`serve` sends it."""

    def __init__(self, path: EverythingPath) -> None:
        self._match: Callable[[str], re.Match[str] | None] = path.regex.match
        self._convert = path.convert_id
        self._urls: dict[tuple[Any, ...], tuple[str, str]] = {}

    def hit(self, scope: Scope) -> _Hit | None:
        return self._hit(scope)

    async def serve(self, hit: _Hit, scope: Scope, receive: Receive, send: Send,
                    extra: list[tuple[bytes, bytes]]) -> int:
        """Commit the hit's audit events, then send its answer with ``extra`` headers
        after the route's own; the status sent."""
        cache = hit.svc.access.read_cache
        if cache is not None:  # counted where the route's everything_in_memory counts it
            cache.hit()
        try:
            await hit.svc.audit.append_async(hit.events)
        except UserError as exc:  # what the application's handler answers
            response = fhir_error(exc)
            response.raw_headers = [*response.raw_headers, *extra]
            await response(scope, receive, send)
            return response.status_code
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-length", str(len(hit.body)).encode("latin-1")),
            (b"content-type", _FHIR_JSON),
            *extra,
        ]})
        await send({"type": "http.response.body", "body": hit.body})
        return 200

    def _hit(self, scope: Scope) -> _Hit | None:
        """The audit events and body of a cache hit the route would serve; None for
        anything else. No I/O and no side effect."""
        if scope["method"] != "GET" or scope.get("query_string") or scope.get("root_path") \
                or scope.get("app_root_path"):
            return None
        matched = self._match(scope["path"])
        if matched is None:
            return None
        try:
            return self._decided(scope, self._convert(matched["id"]))
        except Exception:  # the FastAPI path answers it, as it always would
            return None

    def _decided(self, scope: Scope, id: Any) -> _Hit | None:
        authorization = host = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:  # the first, as Request.headers.get reads it
                    authorization = value.decode("latin-1")
            elif name == b"host":
                if host is None:  # the first, as Starlette's URL reads it
                    host = value
            elif name in _BODY_HEADERS:
                return None
        credentials = bearer_credentials(authorization)
        if credentials is None:
            return None
        state = scope["app"].state
        token = state.verifier.cached(credentials)  # a CachingVerifier (create_app)
        if token is None or not token.has(Permission.RECORDS_READ):
            return None
        requester_identity(token)  # Forbidden: the route refuses it
        svc: Services = state.services
        base, self_url = self._urls_of(scope, host, svc.settings.public_base_url)
        found = svc.access.everything_in_memory(token, id, base, count=False)
        if found is None or not found[1].resources or not found[1].entries:
            return None
        request_id = scope.get("state", {}).get("request_id")
        served = records.everything_served(token, request_id, id, found)
        return _Hit(svc, served.events(), records.everything_body(self_url, found[1].entries))

    def _urls_of(self, scope: Scope, host: bytes | None, public: str) -> tuple[str, str]:
        """``fhir_base`` and ``public_url`` of the request, as the route works them out
        (from a Starlette ``Request``), kept per what they are made of: the scheme,
        the server, the ``Host`` header, the path (no query string, no root path) and
        the public base URL. Building the URLs cost ~10% of a hit's event-loop CPU."""
        server = scope.get("server")  # a list from some servers (and the test client)
        path = scope["path"]
        if (host is not None and len(host) > _MAX_KEPT_PART) or len(path) > _MAX_KEPT_PART:
            request = Request(scope)
            return fhir_base(request), public_url(request)  # worked out, not kept
        key = (scope.get("scheme", "http"), None if server is None else tuple(server), host,
               path, public)
        found = self._urls.get(key)
        if found is None:
            request = Request(scope)
            found = (fhir_base(request), public_url(request))
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            self._urls[key] = found
        return found
