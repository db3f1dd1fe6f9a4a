"""Audit events rendered as FHIR R4 AuditEvent: valid by fhir.resources' R4B models."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent
from fhir.resources.R4B.bundle import Bundle

from joinedup.audit.events import (
    Actor,
    AuditAction,
    AuditEvent,
    LoggedEvent,
    Outcome,
    Review,
    ReviewOutcome,
)
from joinedup.audit.fhir import (
    ACTION_SYSTEM,
    access_report_bundle,
    audit_event,
    search_bundle,
)
from joinedup.audit.transparency import AccessEntry, AccessReport
from tests.unit.audit.factory import T0, read


def _event(action: AuditAction) -> AuditEvent:
    if action == AuditAction.BREAK_GLASS:
        return read(action=action, break_glass=True, break_glass_reason="unconscious in ED",
                    purpose="emergency")
    if action == AuditAction.AUDIT_REVIEW:
        return read(action=action, outcome=Outcome.SUCCESS,
                    detail={"reviewed_seq": 1, "outcome": "appropriate"})
    return read(action=action, outcome=Outcome.DENY if action == AuditAction.ACCESS_DECISION
                else Outcome.PERMIT)


@pytest.mark.parametrize("action", list(AuditAction))
def test_every_action_renders_as_a_valid_r4_audit_event(action: AuditAction) -> None:
    resource = audit_event(LoggedEvent(7, "0" * 64, "a" * 64, _event(action)),
                           org_names={"RWX": "Wessex University Hospitals"})
    FhirAuditEvent.model_validate(resource)
    assert resource["id"] == "7"
    assert {"system": ACTION_SYSTEM, "code": action.value} in resource["subtype"]
    assert resource["entity"][0]["what"] == {"reference": "Patient/P-1"}


def test_reads_follow_the_balp_rest_pattern() -> None:
    resource = audit_event(LoggedEvent(1, "0" * 64, "a" * 64, read()))
    assert resource["type"]["code"] == "rest"
    assert resource["subtype"][0] == {"system": "http://hl7.org/fhir/restful-interaction",
                                      "code": "read"}
    assert resource["action"] == "R"
    assert resource["outcome"] == "0"
    user = resource["agent"][0]
    assert user["requestor"] is True
    assert user["type"]["coding"][0]["code"] == "humanuser"
    kinds = {e["type"]["code"] for e in resource["entity"]}
    assert {"1", "2", "XrequestId"} <= kinds


def test_denials_and_break_glass_are_marked() -> None:
    denied = audit_event(LoggedEvent(1, "0" * 64, "a" * 64, read(outcome=Outcome.DENY,
                                                    reasons=("no-agreement",))))
    assert denied["outcome"] == "4"
    assert denied["outcomeDesc"] == "no-agreement"
    glass = LoggedEvent(2, "0" * 64, "a" * 64, _event(AuditAction.BREAK_GLASS),
                        Review(ReviewOutcome.APPROPRIATE, "JHUB-IG1", T0, 9))
    resource = audit_event(glass)
    codes = {c["coding"][0]["code"] for c in resource["purposeOfEvent"]}
    assert {"emergency", "ETREAT", "BTG"} <= codes
    review = next(x for x in resource["extension"] if x["url"].endswith("break-glass-review"))
    assert {"url": "outcome", "valueCode": "appropriate"} in review["extension"]


def test_without_staff_names_the_organisation_is_the_requestor() -> None:
    resource = audit_event(LoggedEvent(1, "0" * 64, "a" * 64, read()), show_practitioner=False)
    FhirAuditEvent.model_validate(resource)
    assert "RWX-P1" not in str(resource)
    org = resource["agent"][0]
    assert org["who"]["identifier"]["value"] == "RWX"
    assert org["requestor"] is True
    assert org["role"][0]["coding"][0]["code"] == "clinician"


def test_search_bundle_and_access_report_bundle_are_valid() -> None:
    bundle = search_bundle([audit_event(LoggedEvent(1, "0" * 64, "a" * 64, read()))],
                           self_url="http://x/fhir/AuditEvent", next_url="http://x/next", total=3)
    Bundle.model_validate(bundle)
    report = AccessReport("P-1", (
        AccessEntry(5, T0, AuditAction.RECORD_READ, "RWX", "Wessex University Hospitals",
                    "clinician", "direct-care", False, None),
        AccessEntry(6, T0, AuditAction.BREAK_GLASS, "RWM", None, "nurse", "emergency", True,
                    "unconscious"),
    ), staff_names_shown=False)
    rendered = access_report_bundle(report, self_url="http://x/fhir/Patient/P-1/$access-report")
    Bundle.model_validate(rendered)
    assert [e["resource"]["id"] for e in rendered["entry"]] == ["5", "6"]
    assert "extension" not in rendered["entry"][1]["resource"]


def test_actor_without_org_renders() -> None:
    event = AuditEvent(action=AuditAction.KEY_CHANGE, actor=Actor(None, "joinedup-cli"),
                       outcome=Outcome.SUCCESS, time=T0)
    resource = audit_event(LoggedEvent(1, "0" * 64, "a" * 64, event))
    FhirAuditEvent.model_validate(resource)
    assert resource["agent"][0]["requestor"] is True
