"""Request dependencies: the verified token, and permission checks.

They are ``async``: verifying an ES256 signature is a fraction of a millisecond
of CPU, cheaper than a hop to the threadpool that sync dependencies cost.

Routers declare ``dependencies=[Depends(authenticated)]`` once; routes add
``Depends(require(Permission.X))``. tests/integration/test_route_auth.py walks
every route and fails if one answers without a valid token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import URL

from joinedup.auth.cache import Verifier
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.errors import Forbidden, Unauthenticated
from joinedup.services import Services

_bearer = HTTPBearer(auto_error=False, description="An access token from /oauth2/token")


def bearer_credentials(authorization: str | None) -> str | None:
    """The token of an ``Authorization`` header value as ``_bearer`` (FastAPI's
    ``HTTPBearer(auto_error=False)``) reads it, or None where it gives no credentials:
    for code that runs before FastAPI (``joinedup.api.fast_lane``). A test holds the
    two together."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


async def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessToken:
    return _verified(request, credentials)


def _verified(request: Request, credentials: HTTPAuthorizationCredentials | None) -> AccessToken:
    if credentials is None:
        if request.headers.get("authorization"):
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        raise Unauthenticated("this route needs a bearer token from /oauth2/token")
    verifier: Verifier = request.app.state.verifier  # a CachingVerifier (auth.cache)
    token = verifier.verify(credentials.credentials)
    request.state.token = token
    return token


Token = Annotated[AccessToken, Depends(authenticated)]


def require(permission: Permission) -> Callable[[AccessToken], Awaitable[AccessToken]]:
    async def check(token: Token) -> AccessToken:
        if not token.has(permission):
            raise Forbidden(f"this token does not grant {permission.value}")
        return token

    check.__name__ = f"require_{permission.name.lower()}"
    return check


def authenticated_for(
    permission: Permission, then: Callable[[AccessToken], object]
) -> Callable[[Request], Awaitable[AccessToken]]:
    """``authenticated``, ``require(permission)`` and ``then(token)`` as ONE dependency,
    with the same checks in the same order and the same refusals, for the hot route
    (``Patient/$everything``): FastAPI's resolution of a graph of five dependencies
    cost more CPU per request than the route's own work once its reads were cached.
    The route declares the bearer scheme in its OpenAPI (``BEARER_OPENAPI``)."""

    async def check(request: Request) -> AccessToken:
        token = _verified(request, await _bearer(request))
        if not token.has(permission):
            raise Forbidden(f"this token does not grant {permission.value}")
        then(token)
        return token

    check.__name__ = f"authenticated_for_{permission.name.lower()}"
    return check


BEARER_OPENAPI: dict[str, Any] = {"security": [{"HTTPBearer": []}]}
"""What ``Depends(_bearer)`` adds to a route's OpenAPI, for routes using ``authenticated_for``."""


def fhir_base(request: Request) -> str:
    """The FHIR base URL for links in answers: ``JOINEDUP_PUBLIC_BASE_URL`` when set (a
    service behind a proxy), else the URL the request came in on; then ``/fhir``."""
    public = request.app.state.services.settings.public_base_url
    return (public or str(request.base_url)).rstrip("/") + "/fhir"


def public_url(request: Request, url: URL | None = None) -> str:
    """``url`` (default: the request's own, e.g. a ``self`` link) as clients reach it:
    on ``JOINEDUP_PUBLIC_BASE_URL`` when that is set."""
    text = str(request.url if url is None else url)
    public = request.app.state.services.settings.public_base_url
    if not public:
        return text
    here = str(request.base_url).rstrip("/")
    return public.rstrip("/") + text[len(here):] if text.startswith(here) else text
