"""GET /fhir/metadata: the CapabilityStatement (public, as FHIR discovery requires)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from joinedup import __version__

router = APIRouter(tags=["fhir"])

FHIR_JSON = "application/fhir+json"


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "joinedup",
        "kind": "instance",
        "software": {"name": "joinedup", "version": __version__},
        "implementation": {"description": "joinedup partner API", "url": f"{base}/fhir"},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth2 client credentials with private_key_jwt; "
                    "see /.well-known/smart-configuration",
                },
                "resource": [],
            }
        ],
    }


@router.get("/metadata", summary="FHIR CapabilityStatement")
def metadata(request: Request) -> JSONResponse:
    base = request.app.state.services.settings.issuer.rstrip("/")
    return JSONResponse(capability_statement(base), media_type=FHIR_JSON)
