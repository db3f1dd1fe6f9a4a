"""``POST /fhir/Patient/{id}/$declare-relationship``: a practitioner says they are caring
for the person, and why.

Body: a FHIR ``Parameters`` resource with ``reason`` (``valueString``, required:
what the practitioner is doing for the person; no NHS numbers) and optionally
``hours`` (``valueInteger``, 1 to 168, default 24). The token must carry
``records:read``, a practitioner and a role, and a purpose of individual care.

The declaration is kept for that many hours, for that practitioner of that
organisation and the person (every Patient record linked to them). While it
lasts, the decision point counts it as a **self-declared relationship**: it
satisfies ``relationship_required`` only under agreements with
``self_declared_relationship_allowed: true``, every read permitted on it is
audited at the elevated level with the reason code
``self-declared-relationship`` and an alert to the data owner's IG lead, and
the declaration itself is a ``relationship.declare`` audit event carrying the
stated reason; the IG lead's ``self-declared`` report lists both.

If the declaration would let the practitioner see nothing of the person (no
agreement accepts it, or the person is unknown), it is not kept and the answer
is the 404 an unknown Patient gets; the attempt is still audited (outcome
``deny``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from joinedup.access.consent_store import DEFAULT_DECLARATION_HOURS, MAX_DECLARATION_HOURS
from joinedup.access.decisions import Action, AlertKind, ReasonCode
from joinedup.access.purposes import INDIVIDUAL_CARE, Purpose
from joinedup.access.relationships import Relationship, RelationshipKind, Relationships
from joinedup.access.service import NOTHING_SERVED, PersonAccess, requester_identity
from joinedup.api.audit_trail import actor_of
from joinedup.api.deps import Token, require, services
from joinedup.audit.events import AuditAction, AuditEvent, Outcome, contains_nhs_number
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.errors import Forbidden, InvalidInput, NotFound, Problem
from joinedup.services import Services

router = APIRouter(tags=["fhir: relationships"],
                   dependencies=[Depends(require(Permission.RECORDS_READ))])
FHIR_JSON = "application/fhir+json"
Svc = Annotated[Services, Depends(services)]


def _parameters(body: Any) -> tuple[str, int]:
    """(reason, hours) from a Parameters body; every problem listed."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidInput("the body must be a FHIR Parameters resource",
                           [Problem("must be 'Parameters'", "resourceType")])
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for i, p in enumerate(body.get("parameter") or []):
        name = p.get("name") if isinstance(p, dict) else None
        value = p.get("valueInteger") if name == "hours" else None
        if name == "reason" and isinstance(p.get("valueString"), str):
            values["reason"] = p["valueString"]
        elif name == "hours" and isinstance(value, int) and not isinstance(value, bool):
            values["hours"] = value
        else:
            problems.append(Problem("expected reason (valueString) or hours (valueInteger)",
                                    f"parameter[{i}]"))
    reason = str(values.get("reason", "")).strip()
    if not reason:
        problems.append(Problem("a self-declared relationship needs a reason", "reason"))
    elif len(reason) > MAX_REASON:
        problems.append(Problem(f"at most {MAX_REASON} characters", "reason"))
    elif contains_nhs_number(reason):
        problems.append(Problem("must not contain an NHS number (it goes to the audit log)",
                                "reason"))
    hours = values.get("hours", DEFAULT_DECLARATION_HOURS)
    if not 1 <= hours <= MAX_DECLARATION_HOURS:
        problems.append(Problem(f"must be 1 to {MAX_DECLARATION_HOURS} hours", "hours"))
    if problems:
        raise InvalidInput("the declaration is not valid", problems)
    return reason, int(hours)


MAX_REASON = 1000
"""As ``ConsentStore.declare`` allows; checked here too so every problem is listed at once."""


def _event(request: Request, token: AccessToken, outcome: Outcome, person: str | None,
           patient: str, reason: str, detail: dict[str, Any],
           alerts: list[dict[str, str]]) -> AuditEvent:
    return AuditEvent(
        action=AuditAction.RELATIONSHIP_DECLARE,
        actor=actor_of(token),
        outcome=outcome,
        purpose=token.purpose,
        persons=(person,) if person else (),
        resources=(f"Patient/{patient}",),
        reasons=() if outcome is Outcome.SUCCESS else (NOTHING_SERVED,),
        obligations={"audit_level": "elevated", "alerts": alerts},
        request_id=getattr(request.state, "request_id", None),
        detail={"relationship_reason": reason, **detail},
    )


@router.post("/Patient/{id}/$declare-relationship", status_code=201,
             summary="Declare a legitimate relationship with the person, with a reason")
def declare_relationship(
    id: str, request: Request, token: Token, svc: Svc, body: Annotated[Any, Body()]
) -> JSONResponse:
    practitioner, _role = requester_identity(token)
    if token.purpose not in INDIVIDUAL_CARE or token.purpose is Purpose.EMERGENCY:
        raise Forbidden("a relationship is declared acting for individual care (direct care, "
                        "care coordination or safeguarding)")
    reason, hours = _parameters(body)
    # Decided first, with the declaration added in memory, and kept only if it opens
    # something: a refusal writes nothing, so an existing Patient's refusal does the
    # same work as an unknown one's (no insert and delete to time) and nothing is
    # ever half-kept.
    access = svc.access.for_patient(token, id, Action.READ)
    declared = None if access is None else _with_declaration(access, reason)
    opened, visible = (False, False) if declared is None else _opened(svc, declared)
    if declared is None or not opened:
        svc.audit.append([_event(request, token, Outcome.DENY,
                                 None if access is None else access.person_id, id, reason,
                                 {"hours": hours}, [])])
        if visible:  # they see the person already: saying it adds nothing tells nothing new
            raise InvalidInput("the declaration is not kept", [Problem(
                "a self-declared relationship would show you nothing more of this person "
                "(no agreement accepts one for what you cannot see yet, or you already "
                "have a relationship)", "reason")])
        raise NotFound(f"Patient/{id} is not known")
    declaration = svc.consents.declare(
        id, org=token.org, practitioner=practitioner, reason=reason, hours=hours)
    alerts = sorted({a.to_org for a in declared.decisions.alerts()
                     if a.kind is AlertKind.SELF_DECLARED_RELATIONSHIP})
    try:
        svc.audit.append([_event(
            request, token, Outcome.SUCCESS, declaration.person_id, id, reason,
            {"declaration": declaration.id, "hours": hours,
             "expires_at": declaration.expires_at.isoformat()},
            [{"kind": AlertKind.SELF_DECLARED_RELATIONSHIP.value, "to_org": o} for o in alerts],
        )])
    except BaseException:  # no declaration stands without its event (503 follows)
        svc.consents.withdraw_declaration(declaration.id)
        raise
    return JSONResponse({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "declaration", "valueString": declaration.id},
            {"name": "reason", "valueString": declaration.reason},
            {"name": "expires", "valueDateTime": declaration.expires_at.isoformat()},
            *({"name": "alerted", "valueString": o} for o in alerts),
        ],
    }, status_code=201, media_type=FHIR_JSON)


def _with_declaration(access: PersonAccess, reason: str) -> PersonAccess:
    """The requester's access as it would be with the declaration, decided by the same
    decision point without writing anything (the point reads only whether a
    self-declared relationship exists, not which)."""
    d = access.decisions
    relationships = Relationships.of(
        [*d.relationships.items, Relationship(RelationshipKind.SELF_DECLARED, reason)])
    decided = d.point.decide_for_person(d.requester, d.consents, relationships)
    return PersonAccess(access.person_id, access.patient_ids, decided)


def _opened(svc: Services, access: PersonAccess) -> tuple[bool, bool]:
    """(whether the declaration itself lets the requester see a record, whether they see
    any record of the person at all). Only a record permitted on the self-declared
    relationship counts as opened: one the practitioner's own organisation holds, or
    sees on a relationship the records show, needs no declaration."""
    found = svc.records.by_subject(access.patient_ids, where=access.where())
    opened = any(ReasonCode.SELF_DECLARED_RELATIONSHIP in access.decisions_for(s).reasons
                 and access.decisions_for(s).permitted for s in found)
    return opened, bool(found)
