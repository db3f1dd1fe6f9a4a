"""GET /fhir/metadata: the CapabilityStatement (public, as FHIR discovery requires)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from joinedup import __version__
from joinedup.documents.query import MHD_CAPABILITIES, capability_resources

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
        "instantiates": list(MHD_CAPABILITIES),
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
                "resource": _resources(),
                "searchParam": [
                    {"name": "_id", "type": "token"},
                    {"name": "_lastUpdated", "type": "date"},
                    {"name": "_count", "type": "number"},
                    {"name": "_offset", "type": "number",
                     "documentation": "paging: the index of the first match to return"},
                    {"name": "_sort", "type": "string",
                     "documentation": "_id, _lastUpdated or -_lastUpdated"},
                ],
            }
        ],
    }


def _includes(rtype: str) -> list[str]:
    from joinedup.records.params import SEARCH_PARAMS, Kind

    names = [n for n, p in sorted(SEARCH_PARAMS[rtype].items())
             if p.kind in (Kind.REFERENCE, Kind.SUBJECT)]
    return [f"{rtype}:{n}" for n in names] + ([f"{rtype}:*"] if names else [])


def _resources() -> list[dict[str, Any]]:
    from joinedup.records.params import SEARCH_PARAMS, Kind

    resources = capability_resources()  # IHE MHD (joinedup.api.fhir.mhd) answers these
    served_by_mhd = {r["type"] for r in resources}
    for rtype in sorted(set(SEARCH_PARAMS) - served_by_mhd):
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [
                {"code": "read"},
                {"code": "vread"},
                {"code": "history-instance"},
                {"code": "search-type"},
            ],
            "versioning": "versioned",
            "readHistory": True,
            "searchInclude": _includes(rtype),
            "searchParam": [
                {
                    "name": name,
                    "type": "reference" if param.kind is Kind.SUBJECT else param.kind.value,
                }
                for name, param in sorted(SEARCH_PARAMS[rtype].items())
            ],
        }
        if rtype == "Patient":
            entry["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                },
                {
                    "name": "declare-relationship",
                    "definition": "https://joinedup.dev/fhir/OperationDefinition/"
                    "Patient-declare-relationship",
                },
            ]
        if rtype == "Consent":  # the consent store answers these (joinedup.api.fhir.consent)
            entry["interaction"].insert(0, {"code": "create"})
            entry["searchParam"] = [{"name": "patient", "type": "reference"},
                                    {"name": "status", "type": "token"}]
            entry["documentation"] = (
                "A person's consent directives; recorded by an organisation holding a "
                "record of the person (consents:write). See docs/reference/consent.md.")
        resources.append(entry)
    return sorted(resources, key=lambda r: str(r["type"]))


@router.get("/metadata", summary="FHIR CapabilityStatement")
def metadata(request: Request) -> JSONResponse:
    base = request.app.state.services.settings.issuer.rstrip("/")
    return JSONResponse(capability_statement(base), media_type=FHIR_JSON)
