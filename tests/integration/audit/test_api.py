"""HTTP: the access report, AuditEvent search and the admin audit routes (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from joinedup.access.purposes import Purpose
from joinedup.api.admin import audit as admin_audit
from joinedup.api.app import create_app
from joinedup.api.deps import authenticated
from joinedup.api.fhir import audit as fhir_audit
from joinedup.audit import AuditAction, AuditKeyStore, AuditLog, EventQuery, Outcome
from joinedup.auth.permissions import Permission
from joinedup.orgs.specs import OrgSpec
from joinedup.orgs.vocab import OrgKind
from joinedup.services import Services
from tests.support import audit_store_refuses_writes
from tests.unit.audit.factory import T0, read


@pytest.fixture
def log(services: Services, tmp_path: Path) -> Iterator[AuditLog]:
    keys = AuditKeyStore(tmp_path / "audit-keys")
    keys.init()
    audit = AuditLog(services.db, keys)
    yield audit
    audit.close()


@pytest.fixture
def api(services: Services, log: AuditLog) -> Iterator[TestClient]:
    services.registry.add_org(OrgSpec(code="JHUB", name="Wessex hub", kind=OrgKind.HUB))
    app = create_app(services)
    app.state.audit = log
    app.include_router(admin_audit.router, prefix="/admin", dependencies=[Depends(authenticated)])
    app.include_router(fhir_audit.router, prefix="/fhir")
    with TestClient(app) as client:
        yield client


def _token(services: Services, *, purpose: Purpose, scopes: set[Permission] = frozenset(),  # type: ignore[assignment]
           person: str | None = None, practitioner: str | None = None,
           org: str = "RWX") -> dict[str, str]:
    issued = services.issuer.issue(
        org=org, client_id=f"{org.lower()}-app", purpose=purpose, scopes=frozenset(scopes),
        practitioner=practitioner, role="ig-lead" if practitioner else None, person=person,
    )
    return {"Authorization": f"Bearer {issued.access_token}"}


def ig_lead(services: Services) -> dict[str, str]:
    """The hub's IG lead: the area's, who reads the whole log."""
    return _token(services, purpose=Purpose.GOVERNANCE, practitioner="JHUB-IG1", org="JHUB",
                  scopes={Permission.AUDIT_READ, Permission.AUDIT_REVIEW})


def partner_ig_lead(services: Services) -> dict[str, str]:
    """A partner organisation's IG lead: reads only its own organisation's events."""
    return _token(services, purpose=Purpose.GOVERNANCE, practitioner="RWX-IG1",
                  scopes={Permission.AUDIT_READ, Permission.AUDIT_REVIEW})


def person(services: Services, person_id: str) -> dict[str, str]:
    return _token(services, purpose=Purpose.TRANSPARENCY, person=person_id, org="JHUB")


def _activity(log: AuditLog) -> None:
    log.append([
        read("P-100", time=T0),
        read("P-100", org="WCCASC", practitioner="WCCASC-SW1", role="social-worker", time=T0),
        read("P-100", action=AuditAction.BREAK_GLASS, org="RWM", practitioner="RWM-P1",
             purpose="emergency", break_glass=True, break_glass_reason="unconscious in ED",
             time=T0),
        read("P-200", action=AuditAction.ACCESS_DECISION, outcome=Outcome.DENY, org="WCCASC",
             reasons=("no-agreement",), time=T0),
        read("P-200", time=T0),
    ])


def _fhir_json(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    return body


def test_the_person_sees_who_looked_and_that_the_glass_was_broken(
    api: TestClient, services: Services, log: AuditLog
) -> None:
    _activity(log)
    r = api.get("/fhir/Patient/P-100/$access-report", headers=person(services, "P-100"))
    assert r.status_code == 200, r.text
    bundle = _fhir_json(r)
    Bundle.model_validate(bundle)
    resources = [e["resource"] for e in bundle["entry"]]
    assert len(resources) == 3
    orgs = [a["who"]["identifier"]["value"] for res in resources for a in res["agent"]
            if a["who"].get("identifier", {}).get("system", "").endswith("ods-organization-code")]
    assert sorted(orgs) == ["RWM", "RWX", "WCCASC"]
    glass = next(res for res in resources
                 if any(c["coding"][0]["code"] == "BTG" for c in res.get("purposeOfEvent", [])))
    assert "unconscious in ED" in str(glass)
    assert "RWM-P1" not in r.text  # staff names withheld by default
    looked = log.search(EventQuery(actions=frozenset({AuditAction.AUDIT_QUERY}), person="P-100"))
    assert [e.event.detail["operation"] for e in looked] == ["access-report"]


def test_anyone_else_gets_the_same_404_as_for_a_patient_that_does_not_exist(
    api: TestClient, services: Services, log: AuditLog
) -> None:
    _activity(log)
    clinician = _token(services, purpose=Purpose.DIRECT_CARE, practitioner="RWX-P1",
                       scopes={Permission.RECORDS_READ})
    wrong_person = person(services, "P-200")
    not_transparency = _token(services, purpose=Purpose.DIRECT_CARE, person="P-100", org="JHUB")
    unknown = api.get("/fhir/Patient/P-999/$access-report", headers=ig_lead(services))
    assert unknown.status_code == 404
    for headers in (clinician, wrong_person, not_transparency):
        for pid in ("P-100", "P-999"):
            r = api.get(f"/fhir/Patient/{pid}/$access-report", headers=headers)
            assert r.status_code == 404
            assert r.text.replace(pid, "X") == unknown.text.replace("P-999", "X")
            OperationOutcome.model_validate(r.json())


def test_ig_leads_may_read_any_persons_access_report(
    api: TestClient, services: Services, log: AuditLog
) -> None:
    _activity(log)
    r = api.get("/fhir/Patient/P-200/$access-report", headers=ig_lead(services))
    assert r.status_code == 200
    assert len(r.json()["entry"]) == 1  # the denial is not a look at the record


def test_audit_event_search_with_paging(api: TestClient, services: Services, log: AuditLog) -> None:
    _activity(log)
    headers = ig_lead(services)
    r = api.get("/fhir/AuditEvent",
                params={"patient": "Patient/P-100", "_count": 2, "_total": "accurate"},
                headers=headers)
    assert r.status_code == 200, r.text
    page1 = _fhir_json(r)
    Bundle.model_validate(page1)
    assert page1["total"] == 3
    assert [e["resource"]["id"] for e in page1["entry"]] == ["3", "2"]
    next_url = next(link["url"] for link in page1["link"] if link["relation"] == "next")
    page2 = api.get(next_url, headers=headers).json()
    assert [e["resource"]["id"] for e in page2["entry"]] == ["1"]
    assert "total" in page2  # the next link keeps the parameters
    assert "total" not in api.get("/fhir/AuditEvent", headers=headers).json()
    assert not [link for link in page2["link"] if link["relation"] == "next"]


@pytest.mark.parametrize(("params", "ids"), [
    ({"subtype": "break-glass"}, ["3"]),
    ({"subtype": "https://joinedup.dev/fhir/CodeSystem/audit-action|access.decision"}, ["4"]),
    ({"outcome": "4"}, ["4"]),
    ({"agent": "Organization/WCCASC"}, ["4", "2"]),
    ({"agent": "Practitioner/RWM-P1"}, ["3"]),
    ({"date": ["ge2026-03-01", "lt2026-03-02"], "patient": "P-200"}, ["5", "4"]),
    ({"date": "2026-03-02"}, []),
])
def test_audit_event_search_parameters(
    api: TestClient, services: Services, log: AuditLog, params: dict[str, Any], ids: list[str]
) -> None:
    _activity(log)
    r = api.get("/fhir/AuditEvent", params=params, headers=ig_lead(services))
    assert r.status_code == 200, r.text
    found = [e["resource"]["id"] for e in r.json()["entry"]
             if e["resource"]["subtype"][-1]["code"] != "audit.query"]
    assert found == ids


def test_bad_search_parameters_are_all_reported(api: TestClient, services: Services) -> None:
    r = api.get("/fhir/AuditEvent", params={"date": "yesterday", "subtype": "nope",
                                            "outcome": "2", "colour": "red"},
                headers=ig_lead(services))
    assert r.status_code == 400
    outcome = _fhir_json(r)
    OperationOutcome.model_validate(outcome)
    where = {i["expression"][0] for i in outcome["issue"] if "expression" in i}
    assert where == {"date", "subtype", "outcome", "colour"}


def test_audit_event_search_needs_audit_read(api: TestClient, services: Services) -> None:
    r = api.get("/fhir/AuditEvent", headers=_token(
        services, purpose=Purpose.DIRECT_CARE, scopes={Permission.RECORDS_READ}))
    assert r.status_code == 403
    assert r.json()["resourceType"] == "OperationOutcome"


def test_an_unwritable_audit_store_answers_503(
    api: TestClient, services: Services, log: AuditLog
) -> None:
    _activity(log)
    with audit_store_refuses_writes(log.db):
        r = api.get("/fhir/Patient/P-100/$access-report", headers=person(services, "P-100"))
    assert r.status_code == 503
    assert r.json()["issue"][0]["code"] == "transient"


def test_admin_verify_reports_review_and_export(
    api: TestClient, services: Services, log: AuditLog
) -> None:
    _activity(log)
    headers = ig_lead(services)
    assert api.get("/admin/audit/verify", headers=headers).json()["ok"] is True
    r = api.get("/admin/audit/reports/break-glass",
                params={"from": "2026-03-01", "to": "2026-03-01", "format": "csv"},
                headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "unconscious in ED" in r.text
    assert ",pending," in r.text
    r = api.post("/admin/audit/break-glass/3/review", json={"outcome": "appropriate"},
                 headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["review"]["reviewer"] == "JHUB-IG1"
    assert api.post("/admin/audit/break-glass/3/review", json={"outcome": "appropriate"},
                    headers=headers).status_code == 409
    assert api.post("/admin/audit/break-glass/1/review", json={"outcome": "appropriate"},
                    headers=headers).status_code == 404
    bad = api.get("/admin/audit/reports/denials", params={"from": "2026-03-02", "to": "x"},
                  headers=headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    export = api.get("/admin/audit/checkpoints/export", headers=headers)
    lines = [orjson.loads(line) for line in export.content.splitlines()]
    assert lines[0]["type"] == "audit-log"
    assert lines[0]["keys"] == api.get("/admin/audit/keys", headers=headers).json()
    assert {line["type"] for line in lines[1:]} == {"checkpoint"}
    assert api.get("/admin/audit/events/3", headers=headers).json()["break_glass"] == {
        "reason": "unconscious in ED"}


def test_reviewing_needs_audit_review(api: TestClient, services: Services, log: AuditLog) -> None:
    _activity(log)
    reader = _token(services, purpose=Purpose.GOVERNANCE, practitioner="RWX-IG2",
                    scopes={Permission.AUDIT_READ})
    r = api.post("/admin/audit/break-glass/3/review", json={"outcome": "appropriate"},
                 headers=reader)
    assert r.status_code == 403


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json().get("entry", [])
            if e["resource"]["subtype"][-1]["code"] != "audit.query"]


def test_a_partners_ig_lead_searches_only_its_own_organisations_events(
    api: TestClient, services: Services, log: AuditLog
) -> None:
    _activity(log)
    partner = partner_ig_lead(services)
    assert _ids(api.get("/fhir/AuditEvent", headers=partner)) == ["5", "1"]
    assert _ids(api.get("/fhir/AuditEvent", params={"patient": "P-100"}, headers=partner)) == ["1"]
    # Another organisation's events answer exactly as an organisation with none.
    other = api.get("/fhir/AuditEvent", params={"agent": "Organization/WCCASC",
                                                "_total": "accurate"}, headers=partner)
    none = api.get("/fhir/AuditEvent", params={"agent": "Organization/NOPE",
                                               "_total": "accurate"}, headers=partner)
    assert _ids(other) == _ids(none) == []
    assert other.json()["total"] == none.json()["total"] == 0
    # The hub's IG lead sees them all.
    assert _ids(api.get("/fhir/AuditEvent", headers=ig_lead(services))) == ["5", "4", "3", "2", "1"]


def test_a_partners_ig_lead_gets_no_other_organisations_event_reports_or_reviews(
    api: TestClient, services: Services, log: AuditLog
) -> None:
    _activity(log)
    partner = partner_ig_lead(services)
    own = api.get("/admin/audit/events/1", headers=partner)
    assert own.status_code == 200
    others = api.get("/admin/audit/events/2", headers=partner)
    missing = api.get("/admin/audit/events/999", headers=partner)
    assert others.status_code == missing.status_code == 404
    def shape(r: Any, seq: str) -> dict[str, Any]:
        body: dict[str, Any] = r.json()
        body.pop("instance", None)  # the request id
        return {**body, "detail": body["detail"].replace(seq, "N")}
    assert shape(others, "2") == shape(missing, "999")
    report = api.get("/admin/audit/reports/break-glass",
                     params={"from": "2026-03-01", "to": "2026-03-01"}, headers=partner)
    assert report.status_code == 403
    review = api.post("/admin/audit/break-glass/3/review", json={"outcome": "appropriate"},
                      headers=partner)
    assert review.status_code == 403
    reviewed = log.get(3)
    assert reviewed is not None
    assert reviewed.review is None
    # Verification and the checkpoint export carry no personal data: open to any IG lead.
    assert api.get("/admin/audit/verify", headers=partner).json()["ok"] is True


def test_a_partners_ig_lead_gets_404_for_a_person_its_organisation_holds_no_record_of(
    api: TestClient, services: Services, log: AuditLog
) -> None:
    _activity(log)
    partner = partner_ig_lead(services)
    known = api.get("/fhir/Patient/P-100/$access-report", headers=partner)
    unknown = api.get("/fhir/Patient/P-999/$access-report", headers=partner)
    assert known.status_code == unknown.status_code == 404
    assert known.text.replace("P-100", "X") == unknown.text.replace("P-999", "X")
