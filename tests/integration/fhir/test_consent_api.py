"""FHIR Consent over the demo care system, on both databases: an organisation that holds
a record of the person records a directive; the decision point honours it on the very
next read (and stops when it is withdrawn); malformed consents list every problem;
outsiders get what an unknown patient gets; every change is audited."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.operationoutcome import OperationOutcome

from joinedup.access.consent_cli import consent_from_options
from joinedup.access.purposes import Purpose
from joinedup.audit.events import AuditAction
from joinedup.audit.queries import EventQuery
from joinedup.auth.permissions import Permission
from joinedup.services import Services
from tests.integration.fhir import test_records_api
from tests.integration.fhir.test_records_api import MISSING, Demo, _other_org_patient

demo = test_records_api.demo
"""The records API tests' demo area fixture (module scope: built again for this module)."""

pytestmark = pytest.mark.slow


def _token(svc: Services, org: str, practitioner: str, role: str, *scopes: Permission,
           purpose: Purpose = Purpose.DIRECT_CARE) -> dict[str, str]:
    issued = svc.issuer.issue(
        org=org, client_id=f"{org.lower()}-app", purpose=purpose,
        scopes=frozenset(scopes or {Permission.RECORDS_READ, Permission.CONSENTS_WRITE}),
        practitioner=practitioner, role=role,
    )
    return {"Authorization": f"Bearer {issued.access_token}"}


def _owners(demo: Demo, patient: str) -> set[str]:
    r = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=demo.insider)
    if r.status_code == 404:
        return set()
    return {e["resource"]["meta"]["source"].split(":")[3].split("/")[0] for e in r.json()["entry"]}


def _rwc_writer(demo: Demo) -> dict[str, str]:
    """An RWC practitioner recording for the person (RWC holds a record of them)."""
    return _token(demo.svc, "RWC", "RWC-P001", "clinician")


def _admin(demo: Demo) -> dict[str, str]:
    return _token(demo.svc, "JHUB", "JHUB-P001", "integration-engineer", Permission.CONSENTS_WRITE,
                  purpose=Purpose.ADMINISTRATION)


def test_a_new_objection_takes_effect_on_the_next_read_and_withdrawing_it_restores(
    demo: Demo,
) -> None:
    org, patient = _other_org_patient(demo)
    rwc_patient = demo.patients["RWC"][0]
    assert {"RWC", org} <= _owners(demo, patient)  # reads before: decisions cached
    assert {"RWC", org} <= _owners(demo, patient)

    objection = consent_from_options(rwc_patient, "objection", "RWC", None, None, None, None)
    r = demo.client.post("/fhir/Consent", json=objection, headers=_rwc_writer(demo))
    assert r.status_code == 201, r.text
    Consent.model_validate(r.json())
    consent_id = r.json()["id"]
    assert r.headers["location"].endswith(f"/fhir/Consent/{consent_id}")

    # The person objects to sharing with RWC: RWC sees only its own records now.
    assert _owners(demo, patient) == {"RWC"}

    r = demo.client.post(f"/admin/consents/{consent_id}/revoke", headers=_admin(demo))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "inactive"
    assert {"RWC", org} <= _owners(demo, patient)

    changes = [e for e in demo.svc.audit.search(EventQuery(
        actions=frozenset({AuditAction.CONSENT_CHANGE}), person=demo.person))
        if f"Consent/{consent_id}" in e.event.resources]
    kinds = [(e.event.detail["change"], e.event.actor.org) for e in changes]
    assert sorted(kinds) == [("created", "RWC"), ("revoked", "JHUB")]


def test_an_objection_to_a_category_withholds_that_category_only(demo: Demo) -> None:
    org, patient = _other_org_patient(demo)
    r = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=demo.insider)
    shared = [e["resource"] for e in r.json()["entry"]
              if e["resource"]["meta"]["source"].split(":")[3].split("/")[0] == org]
    categories = {s["code"] for res in shared for s in res["meta"].get("security", [])
                  if s["system"].endswith("data-category")}
    category = sorted(categories - {"demographics"})[0]
    made = demo.client.post("/fhir/Consent", json=consent_from_options(
        demo.patients["RWC"][0], "objection", None, category, None, None, None),
        headers=_rwc_writer(demo))
    assert made.status_code == 201, made.text
    after = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=demo.insider).json()
    left = {s["code"] for e in after["entry"]
            if e["resource"]["meta"]["source"].split(":")[3].split("/")[0] == org
            for s in e["resource"]["meta"].get("security", [])
            if s["system"].endswith("data-category")}
    assert category not in left
    assert left  # the other categories are still shared
    demo.client.post(f"/admin/consents/{made.json()['id']}/revoke", headers=_admin(demo))


def test_a_malformed_consent_is_refused_with_every_problem_listed(demo: Demo) -> None:
    bad: dict[str, Any] = consent_from_options(demo.patients["RWC"][0], "objection", "NOPE",
                                               None, None, None, None)
    bad["status"] = "draft"
    bad["provision"]["type"] = "permit"
    bad["provision"]["securityLabel"] = [
        {"system": "https://joinedup.dev/fhir/CodeSystem/data-category", "code": "gossip"}]
    r = demo.client.post("/fhir/Consent", json=bad, headers=_rwc_writer(demo))
    assert r.status_code == 400, r.text  # FHIR: 400 for a resource it cannot accept
    outcome = r.json()
    OperationOutcome.model_validate(outcome)
    where = {loc for issue in outcome["issue"] for loc in issue.get("expression", [])}
    assert {"status", "provision.securityLabel"} <= where, outcome
    assert len(outcome["issue"]) >= 3


def test_outsiders_get_what_an_unknown_patient_gets(demo: Demo) -> None:
    rwc_patient = demo.patients["RWC"][0]
    made = demo.client.post("/fhir/Consent", json=consent_from_options(
        rwc_patient, "national-opt-out", None, None, None, None, None), headers=_rwc_writer(demo))
    assert made.status_code == 201
    consent_id = made.json()["id"]
    outsider = _token(demo.svc, "JHUB", "JHUB-P001", "clinician")

    # Search and read: the insider sees it; the outsider sees what an unknown id gets.
    found = demo.client.get("/fhir/Consent", params={"patient": rwc_patient},
                            headers=demo.insider)
    assert found.status_code == 200
    Bundle.model_validate(found.json())
    assert consent_id in {e["resource"]["id"] for e in found.json()["entry"]}
    for path, params in ((f"/fhir/Consent/{consent_id}", {}),
                         ("/fhir/Consent", {"patient": rwc_patient})):
        real = demo.client.get(path, params=params, headers=outsider)
        fake = demo.client.get(path.replace(consent_id, MISSING),
                               params={k: v.replace(rwc_patient, MISSING)
                                       for k, v in params.items()},
                               headers=demo.insider)
        assert real.status_code == fake.status_code
        assert real.text.replace(consent_id, MISSING).replace(rwc_patient, MISSING) == fake.text

    # Recording: a Patient the organisation holds no record of is refused as an unknown one.
    def refusal(patient: str) -> tuple[int, str]:
        r = demo.client.post("/fhir/Consent", json=consent_from_options(
            patient, "national-opt-out", None, None, None, None, None), headers=_token(
            demo.svc, "JHUB", "JHUB-P001", "clinician"))
        return r.status_code, r.text.replace(patient, "X")

    assert refusal(rwc_patient) == refusal(MISSING)
    assert refusal(MISSING)[0] == 400
    demo.client.post(f"/admin/consents/{consent_id}/revoke", headers=_admin(demo))


def test_recording_needs_consents_write(demo: Demo) -> None:
    reader = _token(demo.svc, "RWC", "RWC-P001", "clinician", Permission.RECORDS_READ)
    r = demo.client.post("/fhir/Consent", json=consent_from_options(
        demo.patients["RWC"][0], "national-opt-out", None, None, None, None, None),
        headers=reader)
    assert r.status_code == 403
    listed = demo.client.get("/admin/consents", params={"person": demo.person},
                             headers=_admin(demo))
    assert listed.status_code == 200
    assert all(c["person"] == demo.person for c in listed.json())
    assert demo.client.get("/admin/consents", params={"person": MISSING},
                           headers=_admin(demo)).status_code == 404


def test_the_demo_records_its_directives_once(demo: Demo) -> None:
    from joinedup.demo.consents import DIRECTIVES, record_demo_consents

    made = record_demo_consents(demo.svc)
    try:
        assert len(made) == len(DIRECTIVES)
        assert len({s.person_id for s, _ in made}) == len(made)  # one person each
        kinds = sorted(s.directive.kind.value for s, _ in made)
        assert kinds == sorted(k for k, *_ in DIRECTIVES)
        for stored, org in made:  # recorded by an organisation holding a record of them
            assert org in demo.svc.consents.person_of_patient(stored.directive.person)[1]
        assert record_demo_consents(demo.svc) == []  # a later `demo up` adds nothing
    finally:
        for stored, _ in made:
            demo.svc.consents.revoke(stored.directive.id, by_org="JHUB", by="test")


def test_no_change_stands_when_its_audit_event_cannot_be_written(demo: Demo) -> None:
    from tests.support import audit_store_refuses_writes

    patients = [p for ids in demo.patients.values() for p in ids]
    before = [c.directive.id for c in demo.svc.consents.for_patients(patients)]
    made = demo.client.post("/fhir/Consent", json=consent_from_options(
        demo.patients["RWC"][0], "national-opt-out", None, None, None, None, None),
        headers=_rwc_writer(demo))
    assert made.status_code == 201
    with audit_store_refuses_writes(demo.svc.db):
        refused = demo.client.post("/fhir/Consent", json=consent_from_options(
            demo.patients["RWC"][0], "objection", "J81001", None, None, None, None),
            headers=_rwc_writer(demo))
        assert refused.status_code == 503
        assert refused.json()["resourceType"] == "OperationOutcome"
        revoke = demo.client.post(f"/admin/consents/{made.json()['id']}/revoke",
                                  headers=_admin(demo))
        assert revoke.status_code == 503
    after = demo.svc.consents.for_patients(patients)
    assert {c.directive.id for c in after} == {*before, made.json()["id"]}  # nothing new
    kept = demo.svc.consents.read(made.json()["id"])
    assert kept is not None
    assert kept.directive.status.value == "active"  # the withdrawal was undone
    assert kept.version == 1
    demo.client.post(f"/admin/consents/{made.json()['id']}/revoke", headers=_admin(demo))
