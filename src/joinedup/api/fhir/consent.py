"""FHIR R4 ``Consent``: a person's consent directives, recorded and read by the
organisations that care for them.

* ``POST /fhir/Consent`` (``consents:write``): record a directive. The token
  must act for a practitioner of an organisation that **holds a Patient record
  of the person** (any of the person's Patient records may be referenced):
  that organisation records it acting for the person, and is named as the
  Consent's ``organization``. A Patient the organisation holds no record of
  is refused exactly as one that does not exist. The server assigns the id.
  Every problem is listed in the OperationOutcome (400, as FHIR answers a
  resource it cannot accept).
* ``GET /fhir/Consent/{id}`` and ``GET /fhir/Consent?patient=<id>[&status=]``
  (``records:read``): for practitioners of organisations holding a record of
  the person; anyone else gets what an unknown id or patient gets (404, or an
  empty searchset).

Consent resources that arrive in an organisation's feed are records like any
other (access-filtered, in ``$everything``) but are not directives the decision
point enforces; ``GET /fhir/Consent/{id}`` falls back to them (through the
records route), the search lists directives only.

Withdrawal is through the admin API and the CLI (``joinedup consent revoke``).
Every change is a ``consent.change`` audit event; every read a ``record.read``
or ``record.search`` event, written before the answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from joinedup.access.consent import DirectiveStatus
from joinedup.access.consent_changes import held_by, record_directive, visible_to
from joinedup.access.service import NOTHING_SERVED, requester_identity
from joinedup.api.audit_trail import actor_of
from joinedup.api.deps import Token, fhir_base, public_url, require, services
from joinedup.api.fhir import records
from joinedup.audit.events import AuditAction, AuditEvent, Outcome
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.errors import NotFound, Problem, UserError
from joinedup.services import Services

router = APIRouter(tags=["fhir: consent"])
FHIR_JSON = "application/fhir+json"
Svc = Annotated[Services, Depends(services)]
SEARCH_PARAMS = frozenset({"patient", "status", "_format"})


def _audit_read(
    svc: Services, request: Request, token: AccessToken, action: AuditAction, asked: str,
    person: str | None, resources: list[str],
) -> None:
    served = bool(resources)
    svc.audit.append([AuditEvent(
        action=action if served else AuditAction.ACCESS_DECISION,
        actor=actor_of(token),
        outcome=Outcome.SUCCESS if served else Outcome.DENY,
        purpose=token.purpose,
        persons=(person,) if person else (),
        resources=tuple(resources),
        reasons=() if served else (NOTHING_SERVED,),
        request_id=getattr(request.state, "request_id", None),
        detail={"asked": asked, "served": len(resources)},
    )])


@router.post(
    "/Consent",
    status_code=201,
    summary="Record a consent directive",
    dependencies=[Depends(require(Permission.CONSENTS_WRITE))],
)
def create_consent(
    request: Request, token: Token, svc: Svc, body: Annotated[Any, Body()]
) -> JSONResponse:
    requester_identity(token)  # a practitioner, acting for the person
    stored = record_directive(
        svc, body, org=token.org, actor=actor_of(token), holder_required=True,
        purpose=token.purpose, request_id=getattr(request.state, "request_id", None),
    )
    return JSONResponse(
        stored.resource, status_code=201, media_type=FHIR_JSON,
        headers={"Location": f"{fhir_base(request)}/Consent/{stored.directive.id}"},
    )


@router.get("/Consent/{id}", summary="Read a consent directive",
            dependencies=[Depends(require(Permission.RECORDS_READ))])
def read_consent(id: str, request: Request, token: Token, svc: Svc) -> JSONResponse:
    requester_identity(token)
    stored = svc.consents.read(id)
    if stored is None:  # a Consent that arrived in an organisation's feed, if any
        return records.read("Consent", id, request, token, svc)
    held = held_by(svc, token.org, stored.directive.person)
    if held is None or not visible_to(token.org, stored):
        _audit_read(svc, request, token, AuditAction.RECORD_READ, f"Consent/{id}", None, [])
        raise NotFound(f"Consent/{id} is not known")
    _audit_read(svc, request, token, AuditAction.RECORD_READ, f"Consent/{id}", held[0],
                [f"Consent/{id}"])
    return JSONResponse(stored.resource, media_type=FHIR_JSON)


@router.get("/Consent", summary="Search a person's consent directives",
            dependencies=[Depends(require(Permission.RECORDS_READ))])
def search_consents(request: Request, token: Token, svc: Svc) -> JSONResponse:
    requester_identity(token)
    params = request.query_params
    problems = [Problem("is not a supported search parameter", k)
                for k in sorted(set(params)) if k not in SEARCH_PARAMS]
    patients = params.getlist("patient")
    if len(patients) != 1:
        problems.append(Problem("give exactly one patient=<Patient id>", "patient"))
    status = params.get("status")
    if status is not None and status not in {s.value for s in DirectiveStatus}:
        problems.append(Problem("must be active or inactive", "status"))
    if problems:
        raise UserError("the Consent search cannot be run", problems)
    patient = patients[0].removeprefix("Patient/")
    held = held_by(svc, token.org, patient)
    found = [] if held is None else [c for c in svc.consents.for_patients(
        held[1], status=None if status is None else DirectiveStatus(status))
        if visible_to(token.org, c)]
    refs = [f"Consent/{c.directive.id}" for c in found]
    _audit_read(svc, request, token, AuditAction.RECORD_SEARCH, "Consent?",
                held[0] if held else None, refs)
    base = fhir_base(request)
    return JSONResponse({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": public_url(request)}],
        "entry": [
            {"fullUrl": f"{base}/Consent/{c.directive.id}", "resource": c.resource,
             "search": {"mode": "match"}}
            for c in found
        ],
    }, media_type=FHIR_JSON)
