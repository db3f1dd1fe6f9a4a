"""Self-declared relationships over the demo care system, on both databases: a declaration
with a reason makes the decision point count a relationship where an agreement accepts
that; reads on it are audited at the raised level with an alert to the data owner's IG
lead and reported in the IG lead's self-declared report; a declaration that would show
nothing is not kept and answers what an unknown Patient answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from joinedup.access.purposes import Purpose
from joinedup.audit.events import AuditAction
from joinedup.audit.queries import EventQuery
from joinedup.auth.permissions import Permission
from joinedup.demo.area import build_area
from tests.integration.fhir import test_records_api
from tests.integration.fhir.test_records_api import MISSING, SEED, Demo

demo = test_records_api.demo
"""The records API tests' demo area fixture (module scope: built again for this module)."""

pytestmark = pytest.mark.slow

DIRECT_CARE_PARTIES = ("RWX", "RWM", "RWC", "J81001", "J81002")
"""wessex-direct-care: relationship required, self-declared relationships accepted."""


def _declare(reason: str | None, hours: int | None = None) -> dict[str, Any]:
    params: list[dict[str, Any]] = []
    if reason is not None:
        params.append({"name": "reason", "valueString": reason})
    if hours is not None:
        params.append({"name": "hours", "valueInteger": hours})
    return {"resourceType": "Parameters", "parameter": params}


def _stranger(demo: Demo) -> tuple[str, dict[str, str]]:
    """A clinician of a direct-care party that holds no record of the person and has
    no relationship with them in the records (so sees nothing yet)."""
    patient = demo.patients["RWC"][0]
    for p in build_area(SEED).practitioners():
        if p.org_code not in DIRECT_CARE_PARTIES or p.org_code in demo.patients:
            continue
        if p.role.value != "clinician":
            continue
        issued = demo.svc.issuer.issue(
            org=p.org_code, client_id=f"{p.org_code.lower()}-app", purpose=Purpose.DIRECT_CARE,
            scopes=frozenset({Permission.RECORDS_READ}), practitioner=p.id, role="clinician",
            team=p.team_code)
        headers = {"Authorization": f"Bearer {issued.access_token}"}
        r = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=headers)
        if r.status_code == 404:
            return p.org_code, headers
    pytest.skip("every direct-care party already has a relationship with the demo person")


def test_a_declared_relationship_counts_where_an_agreement_accepts_it(demo: Demo) -> None:
    org, headers = _stranger(demo)
    patient = demo.patients["RWC"][0]
    r = demo.client.post(f"/fhir/Patient/{patient}/$declare-relationship",
                         json=_declare("Seeing them at home for a new wound", 4),
                         headers=headers)
    assert r.status_code == 201, r.text
    answer = {p["name"]: p.get("valueString") or p.get("valueDateTime")
              for p in r.json()["parameter"]}
    expires = datetime.fromisoformat(answer["expires"])
    assert timedelta(hours=3) < expires - datetime.now(UTC) <= timedelta(hours=4)

    seen = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=headers)
    assert seen.status_code == 200
    assert seen.json()["total"] >= 1

    reads = demo.svc.audit.search(EventQuery(actions=frozenset({AuditAction.RECORD_READ}),
                                             person=demo.person, org=org))
    read = reads[0].event
    assert "self-declared-relationship" in read.reasons
    assert read.obligations["audit_level"] == "elevated"
    assert {"kind": "self-declared-relationship", "to_org": "RWC"} in read.obligations["alerts"]
    declared = demo.svc.audit.search(EventQuery(
        actions=frozenset({AuditAction.RELATIONSHIP_DECLARE}), person=demo.person, org=org))
    assert declared[0].event.detail["relationship_reason"] == "Seeing them at home for a new wound"

    day = datetime.now(UTC)
    report = demo.svc.audit.report("self-declared", day - timedelta(hours=1),
                                   day + timedelta(hours=1))
    mine = [row for row in report.rows if row["org"] == org]
    assert {row["action"] for row in mine} >= {"relationship.declare", "record.read"}


def test_a_declaration_that_shows_nothing_is_not_kept_and_looks_like_an_unknown_patient(
    demo: Demo,
) -> None:
    patient = demo.patients["RWC"][0]
    issued = demo.svc.issuer.issue(
        org="JHUB", client_id="jhub-app", purpose=Purpose.DIRECT_CARE,
        scopes=frozenset({Permission.RECORDS_READ}), practitioner="JHUB-P001", role="clinician")
    outsider = {"Authorization": f"Bearer {issued.access_token}"}
    real = demo.client.post(f"/fhir/Patient/{patient}/$declare-relationship",
                            json=_declare("just curious"), headers=outsider)
    fake = demo.client.post(f"/fhir/Patient/{MISSING}/$declare-relationship",
                            json=_declare("just curious"), headers=outsider)
    assert real.status_code == fake.status_code == 404
    assert real.text.replace(patient, MISSING) == fake.text
    after = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=outsider)
    assert after.status_code == 404
    denied = demo.svc.audit.search(EventQuery(
        actions=frozenset({AuditAction.RELATIONSHIP_DECLARE}), org="JHUB"))
    assert {e.event.outcome.value for e in denied} == {"deny"}


def test_a_declaration_needs_a_reason_without_nhs_numbers(demo: Demo) -> None:
    patient = demo.patients["RWC"][0]
    for body, where in (
        (_declare(None, 9999), {"reason", "hours"}),  # every problem at once
        (_declare("x" * 1001, 0), {"reason", "hours"}),
        ({"resourceType": "Parameters", "parameter": [
            {"name": "reason", "valueString": "visit"}, {"name": "hours", "valueInteger": True}]},
         {"parameter[1]"}),
        (_declare("NHS 943 476 5919 asked", None), {"reason"}),
        ({"resourceType": "Parameters", "parameter": [{"name": "why", "valueString": "x"}]},
         {"parameter[0]", "reason"}),
    ):
        r = demo.client.post(f"/fhir/Patient/{patient}/$declare-relationship", json=body,
                             headers=demo.insider)
        assert r.status_code == 400, r.text
        assert {e for i in r.json()["issue"] for e in i.get("expression", [])} == where
    r = demo.client.post(f"/fhir/Patient/{patient}/$declare-relationship",
                         json=_declare("reason", 9999), headers=demo.insider)
    assert r.status_code == 400
    emergency = demo.svc.issuer.issue(
        org="RWC", client_id="rwc-app", purpose=Purpose.EMERGENCY, reason="collapse",
        scopes=frozenset({Permission.RECORDS_READ}), practitioner="RWC-P001", role="clinician")
    r = demo.client.post(f"/fhir/Patient/{patient}/$declare-relationship",
                         json=_declare("reason"),
                         headers={"Authorization": f"Bearer {emergency.access_token}"})
    assert r.status_code == 403


def test_no_declaration_stands_when_its_audit_event_cannot_be_written(demo: Demo) -> None:
    from tests.support import audit_store_refuses_writes

    _org, headers = _stranger(demo)
    patient = demo.patients["RWC"][0]
    with audit_store_refuses_writes(demo.svc.db):
        r = demo.client.post(f"/fhir/Patient/{patient}/$declare-relationship",
                             json=_declare("visiting today"), headers=headers)
        assert r.status_code == 503
    assert demo.client.get(f"/fhir/Patient/{patient}/$everything",
                           headers=headers).status_code == 404


def test_a_declaration_that_opens_nothing_new_is_not_kept(demo: Demo) -> None:
    """The insider (RWC, with an open episode) already sees the person: declaring adds
    nothing, so nothing is kept or reported as a successful declaration."""
    patient = demo.patients["RWC"][0]
    before = len(demo.svc.audit.search(EventQuery(
        actions=frozenset({AuditAction.RELATIONSHIP_DECLARE}), org="RWC")))
    r = demo.client.post(f"/fhir/Patient/{patient}/$declare-relationship",
                         json=_declare("already on the ward"), headers=demo.insider)
    assert r.status_code == 400, r.text
    assert {e for i in r.json()["issue"] for e in i.get("expression", [])} == {"reason"}
    events = demo.svc.audit.search(EventQuery(
        actions=frozenset({AuditAction.RELATIONSHIP_DECLARE}), org="RWC"))
    assert len(events) == before + 1
    assert {e.event.outcome.value for e in events} == {"deny"}
    from joinedup.access.models import DeclaredRelationshipRow

    with demo.svc.db.session() as s:
        assert s.query(DeclaredRelationshipRow).filter_by(org_code="RWC").count() == 0


def test_a_refused_declaration_writes_nothing_so_it_does_what_an_unknown_patient_does(
    demo: Demo,
) -> None:
    """No insert-then-delete for an existing Patient (two commits an unknown Patient's
    refusal does not make, so a timing would tell them apart): the declaration is
    decided in memory first and written only when it opens something."""
    from sqlalchemy import event

    issued = demo.svc.issuer.issue(
        org="JHUB", client_id="jhub-app", purpose=Purpose.DIRECT_CARE,
        scopes=frozenset({Permission.RECORDS_READ}), practitioner="JHUB-P001", role="clinician")
    outsider = {"Authorization": f"Bearer {issued.access_token}"}
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "declared_relationships" in statement and not statement.lstrip().upper(
        ).startswith("SELECT"):
            statements.append(statement.split()[0].upper())

    engine = demo.svc.db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for patient in (demo.patients["RWC"][0], MISSING):
            r = demo.client.post(f"/fhir/Patient/{patient}/$declare-relationship",
                                 json=_declare("curious"), headers=outsider)
            assert r.status_code == 404
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements == []
