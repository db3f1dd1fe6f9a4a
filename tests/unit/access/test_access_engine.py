"""The decision point's interface: requests, compiling by day, bulk decisions.
(The rules themselves are in tests/spec/access; equivalence with the
reference model in tests/generative/access.)"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from joinedup.access.agreements import Status
from joinedup.access.consent import ConsentDirective, DirectiveKind, PersonConsents
from joinedup.access.decisions import (
    Action,
    AlertKind,
    Effect,
    ReasonCode,
    Request,
    Requester,
)
from joinedup.access.engine import DecisionPoint
from joinedup.access.relationships import Relationship, RelationshipKind, Relationships
from joinedup.demo.agreements import demo_organisations, load_demo_agreements
from joinedup.labels import DataCategory, Sensitivity

TODAY = date(2026, 11, 22)
AGREEMENTS = load_demo_agreements()
POINT = DecisionPoint(AGREEMENTS, demo_organisations(), TODAY)
CARE_TEAM = Relationships.of([Relationship(RelationshipKind.CARE_TEAM)])
GP = Requester("J81001", "J81001-P001", "clinician", "direct-care", "person-1")


def test_requests_coerce_and_refuse_a_reason_without_emergency() -> None:
    r = GP.asking("RWX", "medications", "R")  # type: ignore[arg-type]
    assert r.category is DataCategory.MEDICATIONS
    assert r.sensitivity_rank == 1
    assert r.action is Action.READ
    assert r.requester == GP
    with pytest.raises(ValueError, match="emergency"):
        Request("RWX", "p", "clinician", "direct-care", "x", "RWX", "conditions",  # type: ignore[arg-type]
                break_glass_reason="because")
    with pytest.raises(ValueError):
        Request("RWX", "p", "surgeon", "direct-care", "x", "RWX", "conditions")  # type: ignore[arg-type]


def test_consents_must_be_the_persons() -> None:
    with pytest.raises(ValueError, match="different person"):
        POINT.decide(GP.asking("RWX", DataCategory.MEDICATIONS),
                     PersonConsents.none("person-2"), CARE_TEAM)
    with pytest.raises(ValueError, match="different person"):
        POINT.decide_for_person(GP, PersonConsents.none("person-2"), CARE_TEAM)


def test_compiled_for_a_day() -> None:
    request = GP.asking("RWX", DataCategory.MEDICATIONS)
    consents = PersonConsents.none("person-1")
    assert POINT.decide(request, consents, CARE_TEAM).permitted
    before = DecisionPoint(AGREEMENTS, demo_organisations(), date(2026, 3, 31))
    after = DecisionPoint(AGREEMENTS, demo_organisations(), date(2029, 4, 1))
    suspended = DecisionPoint(
        [replace(a, status=Status.SUSPENDED) for a in AGREEMENTS], demo_organisations(), TODAY)
    for point in (before, after, suspended):
        assert point.decide(request, consents, CARE_TEAM).reasons == (ReasonCode.NO_AGREEMENT,)


def test_bulk_decisions_give_the_visible_filter_and_alerts() -> None:
    consents = PersonConsents.none("person-1")
    bulk = POINT.decide_for_person(GP, consents, CARE_TEAM)
    visible = bulk.visible()
    assert set(visible) == {"J81001", "J81002", "RWC", "RWM", "RWX"}
    assert visible["J81001"][DataCategory.ADOPTION] is Sensitivity.VERY_RESTRICTED  # own
    assert visible["RWX"][DataCategory.MEDICATIONS] is Sensitivity.RESTRICTED
    assert DataCategory.SEXUAL_HEALTH not in visible["RWX"]
    assert bulk.alerts() == frozenset()
    # an owner outside the enumerated set is still answered, from the rules
    assert bulk.decision("WPOLICE", DataCategory.SAFEGUARDING).reasons == (
        ReasonCode.NO_AGREEMENT,)


def test_bulk_break_glass_alerts_the_owners() -> None:
    er = Requester("RWX", "RWX-P001", "clinician", "emergency", "person-1",
                   break_glass_reason="unconscious")
    bulk = POINT.decide_for_person(er, PersonConsents.none("person-1"), Relationships.of(),
                                   owners=["RWM", "J81001"])
    assert {a.to_org for a in bulk.alerts()} == {"RWM", "J81001"}
    assert all(a.kind is AlertKind.BREAK_GLASS for a in bulk.alerts())


def test_decisions_are_shared_objects_on_the_common_path() -> None:
    consents = PersonConsents.none("person-1")
    a = POINT.decide(GP.asking("RWX", DataCategory.MEDICATIONS), consents, CARE_TEAM)
    b = POINT.decide(GP.asking("RWX", DataCategory.MEDICATIONS), consents, CARE_TEAM)
    assert a is b
    assert a.effect is Effect.PERMIT


def test_decision_as_dict_for_audit() -> None:
    opted = PersonConsents.of("person-1", [ConsentDirective(
        "c1", "person-1", DirectiveKind.NATIONAL_OPT_OUT, TODAY)], TODAY)
    steward = Requester("JHUB", "JHUB-P001", "data-steward", "planning", "person-1")
    d = POINT.decide(steward.asking("RWX", DataCategory.CONDITIONS), opted, Relationships.of())
    assert d.as_dict() == {
        "effect": "deny", "reasons": ["national-data-opt-out"],
        "agreement": {"id": "population-planning", "version": 1}, "consent": "c1",
        "obligations": {"withhold_fields": [], "alert": None, "audit_level": "standard",
                        "mark_withheld": False},
    }
