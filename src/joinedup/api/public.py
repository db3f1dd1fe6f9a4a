"""Routes that need no token: health, readiness, discovery, the token endpoint, metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from joinedup.api.deps import services
from joinedup.auth.grants import TokenRequest
from joinedup.auth.permissions import Permission
from joinedup.errors import UserError
from joinedup.services import Services
from joinedup.storage.migrate import ensure_migrated

router = APIRouter(tags=["public"])

PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/ready",
        "/metrics",
        "/.well-known/jwks.json",
        "/.well-known/smart-configuration",
        "/oauth2/token",
        "/fhir/metadata",
    }
)
"""Paths that answer without a token. Anything else must demand one (route-walk test)."""

Svc = Annotated[Services, Depends(services)]


@router.get("/health", summary="Liveness: the process is up")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: the database answers and is migrated")
def ready(svc: Svc) -> JSONResponse:
    try:
        ensure_migrated(svc.db)
        svc.keys.active()
    except UserError as exc:
        return JSONResponse({"status": "unavailable", "detail": exc.detail}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/.well-known/jwks.json", summary="Public keys that verify joinedup's tokens")
def jwks(svc: Svc) -> JSONResponse:
    return JSONResponse(svc.keys.public_jwks(), headers={"Cache-Control": "max-age=300"})


@router.get("/.well-known/smart-configuration", summary="OAuth discovery (SMART Backend Services)")
def smart_configuration(svc: Svc) -> dict[str, Any]:
    base = svc.settings.issuer.rstrip("/")
    return {
        "issuer": svc.settings.issuer,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint": svc.settings.token_endpoint,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": [
            "ES256",
            "ES384",
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "EdDSA",
        ],
        "scopes_supported": [p.value for p in Permission],
        "capabilities": ["client-confidential-asymmetric"],
    }


@router.post("/oauth2/token", summary="Client credentials grant with private_key_jwt (RFC 7523)")
def token(
    svc: Svc,
    grant_type: Annotated[str, Form()],
    client_assertion_type: Annotated[str, Form()],
    client_assertion: Annotated[str, Form()],
    purpose: Annotated[str, Form(description="Purpose of use, e.g. direct-care")],
    scope: Annotated[str | None, Form()] = None,
    practitioner: Annotated[
        str | None, Form(description="Registry id of the acting practitioner")
    ] = None,
    reason: Annotated[str | None, Form(description="Required for purpose=emergency")] = None,
) -> JSONResponse:
    issued = svc.tokens.client_credentials(
        grant_type=grant_type,
        assertion_type=client_assertion_type,
        assertion=client_assertion,
        request=TokenRequest(
            purpose=purpose, scope=scope, practitioner=practitioner, reason=reason
        ),
    )
    return JSONResponse(
        {
            "access_token": issued.access_token,
            "token_type": issued.token_type,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


@router.get("/metrics", summary="Prometheus metrics (no personal data)", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
