"""Request dependencies: the verified token, and permission checks.

They are ``async``: verifying an ES256 signature is a fraction of a millisecond
of CPU, cheaper than a hop to the threadpool that sync dependencies cost.

Routers declare ``dependencies=[Depends(authenticated)]`` once; routes add
``Depends(require(Permission.X))``. tests/integration/test_route_auth.py walks
every route and fails if one answers without a valid token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from joinedup.auth.cache import Verifier
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.errors import Forbidden, Unauthenticated
from joinedup.services import Services

_bearer = HTTPBearer(auto_error=False, description="An access token from /oauth2/token")


async def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AccessToken:
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
