"""Audit events as FHIR R4 AuditEvent, after the IHE Basic Audit Log Patterns (BALP).

Where BALP fits (reads and searches of records and documents) the event is
typed ``rest`` with the RESTful interaction as subtype, the patient as an
entity with role ``1`` (Patient), the X-Request-Id as a ``XrequestId``
entity, and agents for the user (``humanuser``), the client application
(DICOM ``110153`` Source Role ID) and the organisation. Everything else is
typed with joinedup's own action code system. Every event also carries its
action as a subtype in that system (so ``subtype`` search works uniformly)
and its place in the hash chain as an extension, so a FHIR consumer can
check an exported event against a checkpoint.

Pure: values in, dicts out; ``tests`` validate the output with
``fhir.resources``' R4B models (AuditEvent is unchanged from R4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from joinedup.access.purposes import PURPOSE_SYSTEM, Purpose
from joinedup.audit.events import Actor, AuditAction, AuditEvent, LoggedEvent, Outcome
from joinedup.audit.transparency import AccessReport

BASE = "https://joinedup.dev/fhir"
ACTION_SYSTEM = f"{BASE}/CodeSystem/audit-action"
ROLE_SYSTEM = f"{BASE}/CodeSystem/professional-role"
CLIENT_ID_SYSTEM = f"{BASE}/Id/client-id"
PRACTITIONER_ID_SYSTEM = f"{BASE}/Id/practitioner"
CHAIN_EXTENSION = f"{BASE}/StructureDefinition/audit-chain"
REVIEW_EXTENSION = f"{BASE}/StructureDefinition/break-glass-review"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
EVENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
ROLE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
DICOM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
OBJECT_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/object-role"
ENTITY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
BALP_ENTITY_TYPE_SYSTEM = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
ACT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SOURCE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/security-source-type"

OUTCOME_CODES = {
    Outcome.PERMIT: "0",
    Outcome.SUCCESS: "0",
    Outcome.DENY: "4",
    Outcome.FAILURE: "8",
}
"""FHIR AuditEvent.outcome: 0 success, 4 minor failure (a refusal), 8 serious failure."""

_INTERACTIONS = {
    AuditAction.RECORD_READ: ("read", "R"),
    AuditAction.DOCUMENT_READ: ("read", "R"),
    AuditAction.RECORD_SEARCH: ("search-type", "E"),
    AuditAction.RECORD_WRITE: ("update", "U"),
    AuditAction.DOCUMENT_PUBLISH: ("create", "C"),
    AuditAction.DOCUMENT_UPDATE: ("update", "U"),
}
_CRUDE = {
    AuditAction.INGEST_BATCH: "C",
    AuditAction.RELATIONSHIP_DECLARE: "C",
    AuditAction.AUDIT_REVIEW: "C",
    AuditAction.AGREEMENT_CHANGE: "U",
    AuditAction.CONSENT_CHANGE: "U",
    AuditAction.PERSON_LINK: "U",
    AuditAction.PERSON_MERGE: "U",
    AuditAction.PERSON_UNMERGE: "U",
    AuditAction.ORG_CHANGE: "U",
    AuditAction.KEY_CHANGE: "U",
    AuditAction.AUDIT_ARCHIVE: "D",
}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _purposes(event: AuditEvent) -> list[dict[str, Any]]:
    codings = []
    if event.purpose is not None:
        codings.append(_coding(PURPOSE_SYSTEM, event.purpose.value))
        if event.purpose is Purpose.EMERGENCY:
            codings.append(_coding(ACT_REASON_SYSTEM, "ETREAT", "emergency treatment"))
    if event.break_glass:
        codings.append(_coding(ACT_REASON_SYSTEM, "BTG", "break the glass"))
    return [{"coding": [c]} for c in codings]


def _agents(
    event: AuditEvent,
    *,
    org_names: Mapping[str, str],
    show_practitioner: bool,
    practitioner_names: Mapping[str, str],
) -> list[dict[str, Any]]:
    actor = event.actor
    purposes = _purposes(event)
    role = [{"coding": [_coding(ROLE_SYSTEM, actor.role)]}] if actor.role else []
    agents: list[dict[str, Any]] = []
    person_agent = actor.practitioner is not None and show_practitioner
    if person_agent:
        assert actor.practitioner is not None
        who: dict[str, Any] = {
            "identifier": {"system": PRACTITIONER_ID_SYSTEM, "value": actor.practitioner}
        }
        name = practitioner_names.get(actor.practitioner)
        if name:
            who["display"] = name
        agents.append({
            "type": {"coding": [_coding(ROLE_TYPE_SYSTEM, "humanuser", "human user")]},
            "who": who,
            **({"role": role} if role else {}),
            "requestor": True,
            **({"purposeOfUse": purposes} if purposes else {}),
        })
    if actor.org:
        org_who: dict[str, Any] = {"identifier": {"system": ODS_SYSTEM, "value": actor.org}}
        if org_names.get(actor.org):
            org_who["display"] = org_names[actor.org]
        agents.append({
            "type": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-RoleClass",
                                        "PROV", "healthcare provider")]},
            "who": org_who,
            # Without a named practitioner, the organisation (with the role) is the requestor.
            **({"role": role} if role and not person_agent else {}),
            "requestor": not person_agent,
            **({"purposeOfUse": purposes} if purposes and not person_agent else {}),
        })
    if actor.client_id:
        agents.append({
            "type": {"coding": [_coding(DICOM_SYSTEM, "110153", "Source Role ID")]},
            "who": {"identifier": {"system": CLIENT_ID_SYSTEM, "value": actor.client_id}},
            "requestor": not agents,
        })
    return agents


def _entities(event: AuditEvent) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": f"Patient/{person}"},
            "type": _coding(ENTITY_TYPE_SYSTEM, "1", "Person"),
            "role": _coding(OBJECT_ROLE_SYSTEM, "1", "Patient"),
        }
        for person in event.persons
    ]
    entities += [
        {"what": {"reference": ref}, "type": _coding(ENTITY_TYPE_SYSTEM, "2", "System Object")}
        for ref in event.resources
    ]
    if event.request_id:
        entities.append({
            "what": {"identifier": {"value": event.request_id}},
            "type": _coding(BALP_ENTITY_TYPE_SYSTEM, "XrequestId"),
        })
    if event.break_glass and event.break_glass_reason:
        entities.append({
            "type": _coding(ENTITY_TYPE_SYSTEM, "4", "Other"),
            "description": "break-glass reason",
            "detail": [{"type": "reason", "valueString": event.break_glass_reason}],
        })
    return entities


def audit_event(
    logged: LoggedEvent,
    *,
    org_names: Mapping[str, str] | None = None,
    show_practitioner: bool = True,
    practitioner_names: Mapping[str, str] | None = None,
    with_chain: bool = True,
) -> dict[str, Any]:
    """One logged event as an R4 AuditEvent resource (a dict)."""
    event = logged.event
    interaction = _INTERACTIONS.get(event.action)
    subtype = [_coding(ACTION_SYSTEM, event.action.value)]
    if interaction is not None:
        type_ = _coding(EVENT_TYPE_SYSTEM, "rest", "Restful Operation")
        subtype.insert(0, _coding(INTERACTION_SYSTEM, interaction[0]))
        action = interaction[1]
    else:
        type_ = _coding(ACTION_SYSTEM, event.action.value)
        action = _CRUDE.get(event.action, "E")
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(logged.seq),
        "type": type_,
        "subtype": subtype,
        "action": action,
        "recorded": event.time.isoformat().replace("+00:00", "Z"),
        "outcome": OUTCOME_CODES[event.outcome],
        "agent": _agents(
            event,
            org_names=org_names or {},
            show_practitioner=show_practitioner,
            practitioner_names=practitioner_names or {},
        ),
        "source": {
            "site": "joinedup",
            "observer": {"display": "joinedup audit log"},
            "type": [_coding(SOURCE_TYPE_SYSTEM, "4", "Application Server")],
        },
    }
    if event.reasons:
        resource["outcomeDesc"] = "; ".join(event.reasons)
    purposes = _purposes(event)
    if purposes:
        resource["purposeOfEvent"] = purposes
    entities = _entities(event)
    if entities:
        resource["entity"] = entities
    extensions = []
    if with_chain:
        extensions.append({
            "url": CHAIN_EXTENSION,
            "extension": [
                {"url": "seq", "valueInteger": logged.seq},
                {"url": "prevHash", "valueString": logged.prev_hash},
                {"url": "hash", "valueString": logged.hash},
            ],
        })
    if event.action == AuditAction.BREAK_GLASS:
        review = logged.review
        parts: list[dict[str, Any]] = [
            {"url": "state", "valueCode": "pending" if review is None else "reviewed"}
        ]
        if review is not None:
            parts.append({"url": "outcome", "valueCode": review.outcome.value})
            parts.append({"url": "reviewed", "valueDateTime": review.time.isoformat()})
            if review.reviewer:
                parts.append({"url": "reviewer", "valueString": review.reviewer})
        extensions.append({"url": REVIEW_EXTENSION, "extension": parts})
    if extensions:
        resource["extension"] = extensions
    return resource


def search_bundle(
    resources: Sequence[dict[str, Any]],
    *,
    self_url: str,
    next_url: str | None,
    total: int | None = None,
) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": "self", "url": self_url}]
    if next_url:
        bundle["link"].append({"relation": "next", "url": next_url})
    bundle["entry"] = [
        {"fullUrl": f"AuditEvent/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in resources
    ]
    return bundle


def access_report_bundle(report: AccessReport, *, self_url: str) -> dict[str, Any]:
    """The person's access report: a collection Bundle of AuditEvents (reads of their record)."""
    entries = []
    for e in report.entries:
        event = AuditEvent(
            action=e.action,
            actor=_report_actor(e.organisation, e.practitioner, e.role),
            outcome=Outcome.PERMIT,
            purpose=None if e.purpose is None else Purpose(e.purpose),
            persons=(report.person_id,),
            break_glass=e.break_glass,
            break_glass_reason=e.break_glass_reason,
            time=e.time,
        )
        resource = audit_event(
            LoggedEvent(e.seq, "", "", event),
            org_names={e.organisation: e.organisation_name}
            if e.organisation and e.organisation_name else {},
            show_practitioner=report.staff_names_shown,
            practitioner_names={e.practitioner: e.practitioner_name}
            if e.practitioner and e.practitioner_name else {},
            with_chain=False,
        )
        if e.action == AuditAction.BREAK_GLASS:
            resource.pop("extension", None)  # the IG review is internal to the organisations
        entries.append({"fullUrl": f"AuditEvent/{e.seq}", "resource": resource})
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "meta": {"tag": [_coding(f"{BASE}/CodeSystem/bundle-kind", "access-report")]},
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }


def _report_actor(org: str | None, practitioner: str | None, role: str | None) -> Actor:
    return Actor(org=org or "unknown", practitioner=practitioner, role=role)
