"""Walk every route: each one outside the public list must refuse a missing or bad token."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from joinedup.api.public import PUBLIC_PATHS
from joinedup.api.routes import route_table

DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
BAD_TOKENS = {
    "missing": {},
    "not bearer": {"Authorization": "Basic dXNlcjpwYXNz"},
    "garbage": {"Authorization": "Bearer not.a.token"},
    "unsigned": {
        "Authorization": "Bearer eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0."
    },
}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "X1", path)


def _protected_routes(client: TestClient) -> list[tuple[str, str]]:
    routes = []
    for route in route_table(client.app):  # type: ignore[arg-type]
        if route.path in PUBLIC_PATHS | DOCS:
            continue
        assert route.is_api, f"{route.path} is not an APIRoute: check its auth by hand"
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, route.path))
    return routes


def test_there_are_protected_routes_to_walk(client: TestClient) -> None:
    assert len(_protected_routes(client)) >= 6


@pytest.mark.parametrize("label", sorted(BAD_TOKENS))
def test_every_non_public_route_rejects_missing_or_bad_token(
    client: TestClient, label: str
) -> None:
    for method, path in _protected_routes(client):
        r = client.request(method, _concrete(path), headers=BAD_TOKENS[label], json={})
        assert r.status_code == 401, f"{method} {path} answered {r.status_code} with {label} token"
        assert "www-authenticate" in r.headers
        body = r.json()
        assert body.get("status") == 401 or body.get("resourceType") == "OperationOutcome"
        assert "Traceback" not in r.text


def test_public_list_is_what_answers_without_a_token(client: TestClient) -> None:
    for path in [
        "/health",
        "/.well-known/jwks.json",
        "/.well-known/smart-configuration",
        "/metrics",
    ]:
        assert client.get(path).status_code == 200, path
