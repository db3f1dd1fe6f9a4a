"""Recording and withdrawing a consent directive, audited: the one path that
``POST /fhir/Consent``, the admin API (``/admin/consents``) and ``joinedup consent``
share, so a directive is checked against the same organisations and agreements
and leaves the same ``consent.change`` event whichever way it came.

It also holds the two need-to-know rules the routers share (:func:`held_by`,
:func:`visible_to`). The callers keep what differs: who may record (the FHIR API requires a
practitioner whose organisation holds a record of the person; the admin API and
the CLI record for the whole area) and how they answer (OperationOutcome,
problem+json, the terminal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from joinedup.access.consent_store import StoredConsent, change_event
from joinedup.access.purposes import Purpose
from joinedup.audit.events import Actor

if TYPE_CHECKING:
    from joinedup.services import Services


def visible_to(org: str, stored: StoredConsent) -> bool:
    """Need to know: an organisation holding a record of the person sees the directives
    it recorded and those naming it, not what the person told other organisations about
    yet others (an explicit consent to a charity, an objection to the police, who
    recorded them and against which organisation's Patient record)."""
    return stored.recorded_by_org == org or stored.directive.organisation == org


def held_by(svc: Services, org: str, patient_id: str) -> tuple[str, list[str]] | None:
    """(person id, the person's Patient ids) if ``org`` holds a Patient record of the
    person behind ``patient_id``; None otherwise (unknown and not held look the same)."""
    found = svc.consents.person_of_patient(patient_id)
    if found is None or org not in found[1]:
        return None
    person, by_org = found
    return person, sorted(p for ids in by_org.values() for p in ids)


def recorded_by(actor: Actor) -> str:
    """Who recorded a change: the practitioner, or the client system acting alone."""
    return actor.practitioner or f"system/{actor.client_id}"


def record_directive(
    svc: Services,
    resource: Any,
    *,
    org: str,
    actor: Actor,
    holder_required: bool,
    purpose: Purpose | None,
    request_id: str | None = None,
) -> StoredConsent:
    """Check and store a new directive (a FHIR Consent) recorded by ``org``, then write
    its ``consent.change`` event; ``ConsentError`` lists every problem. If the audit
    log cannot take the event the directive is removed again and the error raised."""
    stored = svc.consents.create(
        resource,
        recorded_by_org=org,
        recorded_by=recorded_by(actor),
        known_orgs=[o["code"] for o in svc.registry.list_orgs()],
        known_agreements=svc.access.agreement_ids(),
        holder_required=holder_required,
    )
    _audit(svc, stored, actor, "created", purpose, request_id)
    return stored


def revoke_directive(
    svc: Services,
    consent_id: str,
    *,
    org: str,
    actor: Actor,
    purpose: Purpose | None,
    request_id: str | None = None,
) -> StoredConsent:
    """Withdraw a directive on behalf of ``org``, then write its ``consent.change``
    event (the withdrawal is reverted if the audit log cannot take it)."""
    stored = svc.consents.revoke(consent_id, by_org=org, by=recorded_by(actor))
    _audit(svc, stored, actor, "revoked", purpose, request_id)
    return stored


def _audit(svc: Services, stored: StoredConsent, actor: Actor, change: str,
           purpose: Purpose | None, request_id: str | None) -> None:
    svc.consents.audited(svc.audit.append, stored, change_event(
        stored, actor, change, purpose=purpose, request_id=request_id,
    ))
