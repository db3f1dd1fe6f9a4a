"""Admin routes for consent directives (``consents:write``): record, list, read, withdraw.

For the hub's operators and IG staff, e.g. loading national data opt-outs or
recording a directive a person made in writing. The body of a new directive
is a FHIR R4 Consent (the format directives are kept in); answers use the
admin schema (``StoredConsent.as_dict`` with the stored ``resource``). Unlike
``POST /fhir/Consent``, the recording organisation (the token's) need not hold
a record of the person: the hub records for the whole area. Every change is a
``consent.change`` audit event.

Only the **hub** (an organisation of kind ``hub``) has these powers: partners'
systems get ``consents:write`` to record through ``/fhir``, and a partner's token
here is held to the partner rules (``joinedup.api.fhir.consent``): it records
only for a person it holds a record of, sees only the directives it recorded or
that name it, withdraws only what it recorded; anything else is answered as an
unknown person or directive.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from joinedup.access.consent import DirectiveStatus
from joinedup.access.consent_changes import (
    held_by,
    record_directive,
    revoke_directive,
    visible_to,
)
from joinedup.access.consent_store import StoredConsent
from joinedup.api.audit_trail import actor_of
from joinedup.api.deps import Token, require, services
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.errors import InvalidInput, NotFound, Problem
from joinedup.services import Services

router = APIRouter(
    prefix="/consents", tags=["admin: consent"],
    dependencies=[Depends(require(Permission.CONSENTS_WRITE))],
)
Svc = Annotated[Services, Depends(services)]


def _view(stored: Any) -> dict[str, Any]:
    return {**stored.as_dict(), "resource": stored.resource}


def _may_see(svc: Services, token: AccessToken, stored: StoredConsent) -> bool:
    """The hub sees every directive; a partner what it may see through /fhir."""
    return svc.registry.is_hub(token.org) or (
        held_by(svc, token.org, stored.directive.person) is not None and visible_to(token.org, stored))


@router.post("", status_code=201, summary="Record a directive (a FHIR Consent body)")
def create(request: Request, token: Token, svc: Svc, body: Annotated[Any, Body()]
           ) -> dict[str, Any]:
    stored = record_directive(
        svc, body, org=token.org, actor=actor_of(token),
        holder_required=not svc.registry.is_hub(token.org),
        purpose=token.purpose, request_id=getattr(request.state, "request_id", None),
    )
    return _view(stored)


@router.get("", summary="A person's directives, by Patient id or person id")
def list_consents(
    token: Token,
    svc: Svc,
    patient: Annotated[str | None, Query()] = None,
    person: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query(pattern="^(active|inactive)$")] = None,
) -> list[dict[str, Any]]:
    if (patient is None) == (person is None):
        raise InvalidInput("say whose directives", [Problem("give exactly one of patient or person",
                                                            "patient")])
    hub = svc.registry.is_hub(token.org)
    patients = _patients(svc, patient, person, None if hub else token.org)
    found = svc.consents.for_patients(
        patients, status=None if status is None else DirectiveStatus(status))
    return [_view(c) for c in found if hub or visible_to(token.org, c)]


def _patients(svc: Services, patient: str | None, person: str | None,
              holder: str | None) -> list[str]:
    """The person's Patient ids; ``NotFound`` for an unknown person, and alike for one
    ``holder`` (a partner) holds no record of."""
    if person is not None:
        found = svc.consents.patients_of_person(person)
        if not found or (holder is not None and held_by(svc, holder, found[0]) is None):
            raise NotFound(f"no person {person}")
        return found
    assert patient is not None
    of = svc.consents.person_of_patient(patient.removeprefix("Patient/"))
    if of is None or (holder is not None and holder not in of[1]):
        raise NotFound(f"Patient/{patient} is not in the person index")
    return sorted(p for ids in of[1].values() for p in ids)


@router.get("/{consent_id}", summary="One directive")
def read(token: Token, svc: Svc, consent_id: str) -> dict[str, Any]:
    stored = svc.consents.read(consent_id)
    if stored is None or not _may_see(svc, token, stored):
        raise NotFound(f"Consent/{consent_id} is not known")
    return _view(stored)


@router.post("/{consent_id}/revoke", summary="Withdraw a directive (kept, made inactive)")
def revoke(request: Request, token: Token, svc: Svc, consent_id: str) -> dict[str, Any]:
    if not svc.registry.is_hub(token.org):
        # A partner withdraws only what it recorded (never, say, an objection to itself
        # that the person made elsewhere), for a person it holds a record of.
        found = svc.consents.read(consent_id)
        if (found is None or found.recorded_by_org != token.org
                or held_by(svc, token.org, found.directive.person) is None):
            raise NotFound(f"Consent/{consent_id} is not known")
    stored = revoke_directive(
        svc, consent_id, org=token.org, actor=actor_of(token),
        purpose=token.purpose, request_id=getattr(request.state, "request_id", None),
    )
    return _view(stored)
