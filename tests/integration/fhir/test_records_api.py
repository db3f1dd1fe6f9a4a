"""The partner FHIR API over the demo care system, on both databases: the joined-up
record for a practitioner in an agreement; for a practitioner outside every
agreement, exactly the answers an unknown person gets; minimisation; audit."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient

from joinedup.access.decisions import Decision
from joinedup.access.minimise import apply_decisions
from joinedup.access.purposes import Purpose
from joinedup.access.service import AccessService, PersonAccess, Served
from joinedup.access.world import (
    EVIDENCE_TYPES,
    Who,
    consents_for,
    relationships_from,
    requester_for,
)
from joinedup.api.app import create_app
from joinedup.api.fhir.records import _everything_answer
from joinedup.audit.config import keys_dir
from joinedup.audit.events import AuditAction
from joinedup.audit.keys import AuditKeyStore
from joinedup.audit.queries import EventQuery
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.config import Settings
from joinedup.demo import generate_to
from joinedup.demo.agreements import agreement_files
from joinedup.demo.area import build_area
from joinedup.demo.commands import ingest_exports
from joinedup.demo.load import load_area
from joinedup.errors import NotFound
from joinedup.labels import CATEGORY_SYSTEM, DataCategory, Sensitivity
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.records.store import StoredResource
from joinedup.records.writer import PreparedUnit, RecordWriter, WriteContext, prepare
from joinedup.services import Services, build
from joinedup.storage.engine import Database
from tests.conftest import _empty_all_tables
from tests.support import audit_store_refuses_writes

SEED, PEOPLE = 7, 40
MISSING = "00000000-0000-5000-8000-000000000000"
"""A Patient id no record has (the same length as the demo's)."""

MINIMISED = """\
id: fhir-test-minimised
version: 1
title: Test only - a narrow demographic slice for adult social care
status: active
parties: [J81001, WCCASC]
purposes: [care-coordination]
lawful_basis:
  article_6: public-task
  common_law: implied-consent
shares:
  J81001:
    max_sensitivity: N
    categories:
      - category: demographics
        roles: [social-worker]
        withhold_fields: [Patient.telecom]
conditions:
  relationship_required: false
start: 2026-04-01
end: 2028-03-31
review: 2027-03-31
dpia: DPIA-TEST
ig_contact: ig@example.org
"""


@dataclass
class Demo:
    svc: Services
    client: TestClient
    person: str
    patients: dict[str, list[str]]
    """org -> Patient ids of the chosen person."""
    insider: dict[str, str]
    outsider: dict[str, str]


def _headers(
    svc: Services,
    org: str,
    practitioner: str,
    role: str,
    purpose: Purpose = Purpose.DIRECT_CARE,
    team: str | None = None,
    reason: str | None = None,
) -> dict[str, str]:
    issued = svc.issuer.issue(
        org=org,
        client_id=f"{org.lower()}-app",
        purpose=purpose,
        scopes=frozenset({Permission.RECORDS_READ}),
        practitioner=practitioner,
        role=role,
        team=team,
        reason=reason,
    )
    return {"Authorization": f"Bearer {issued.access_token}"}


def _pick(svc: Services) -> tuple[str, dict[str, list[str]], str, str]:
    """A person with Patient records at RWC and another health organisation, and an
    open RWC episode: an RWC clinician then has a relationship and an agreement."""
    clinicians = [
        p
        for p in build_area(SEED).practitioners()
        if p.org_code == "RWC" and p.role.value in ("clinician", "nurse")
    ]
    for stored in svc.records.iter_current("EpisodeOfCare"):
        if stored.org_code != "RWC" or stored.resource.get("status") != "active":
            continue
        person = svc.people.person_of(f"Patient/{stored.subject_id}")
        records = svc.people.person(person).records
        if len(records) > 1 and not {"JHUB"} & set(records):
            patients = {org: [r.split("/", 1)[1] for r in refs] for org, refs in records.items()}
            return person, patients, clinicians[0].id, clinicians[0].team_code
    raise AssertionError("the demo has no person with an RWC episode and other records")


@pytest.fixture(scope="module")
def demo(migrated_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data = tmp_path_factory.mktemp("fhir-demo")
    settings = Settings(
        data_dir=data,
        issuer="http://testserver",
        database_url=migrated_db.engine.url.render_as_string(hide_password=False),
    )
    svc = build(settings, db=migrated_db)
    svc.keys.ensure()
    AuditKeyStore(keys_dir(settings)).init()
    agreements = settings.effective_agreements_dir
    agreements.mkdir()
    for path in agreement_files():
        shutil.copy(path, agreements / path.name)
    (agreements / "fhir-test-minimised.yaml").write_text(MINIMISED)
    load_area(svc, build_area(SEED), data / "clients")
    generate_to(data / "exports", seed=SEED, people=PEOPLE)
    ingest_exports(svc, data / "exports")
    person, patients, practitioner, team = _pick(svc)
    with TestClient(create_app(svc)) as client:
        yield Demo(
            svc,
            client,
            person,
            patients,
            insider=_headers(svc, "RWC", practitioner, "clinician", team=team),
            outsider=_headers(svc, "JHUB", "JHUB-P001", "clinician"),
        )
    svc.audit.close()
    _empty_all_tables(migrated_db)


def _other_org_patient(demo: Demo) -> tuple[str, str]:
    org = next(o for o in sorted(demo.patients) if o != "RWC")
    return org, demo.patients[org][0]


def _same(a: Any, b: Any, real: str, fake: str) -> None:
    assert a.status_code == b.status_code
    assert a.text.replace(real, fake) == b.text


# -- the joined-up record -----------------------------------------------------------


@pytest.mark.slow
def test_a_practitioner_in_an_agreement_sees_the_joined_up_record(demo: Demo) -> None:
    org, patient = _other_org_patient(demo)
    r = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=demo.insider)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    bundle = r.json()
    Bundle.model_validate(bundle)  # valid FHIR R4
    owners = {e["resource"]["meta"]["source"].split(":")[3].split("/")[0] for e in bundle["entry"]}
    assert {"RWC", org} <= owners  # records from more than one organisation
    assert bundle["total"] == len(bundle["entry"])

    read = demo.client.get(f"/fhir/Patient/{patient}", headers=demo.insider)
    assert read.status_code == 200
    Patient.model_validate(read.json())
    assert read.json()["id"] == patient


@pytest.mark.slow
def test_search_finds_the_person_by_nhs_number_and_their_records_by_patient(demo: Demo) -> None:
    _org, patient = _other_org_patient(demo)
    resource = demo.client.get(f"/fhir/Patient/{patient}", headers=demo.insider).json()
    nhs = next(i["value"] for i in resource["identifier"] if i["system"] == NHS_NUMBER_SYSTEM)
    r = demo.client.get(
        "/fhir/Patient", params={"identifier": f"{NHS_NUMBER_SYSTEM}|{nhs}"}, headers=demo.insider
    )
    assert r.status_code == 200
    found = {e["resource"]["id"] for e in r.json()["entry"]}
    assert patient in found
    assert r.json()["total"] == len(found)

    everything = demo.client.get(
        f"/fhir/Patient/{patient}/$everything", headers=demo.insider
    ).json()
    types = {
        e["resource"]["resourceType"]
        for e in everything["entry"]
        if e["resource"].get("subject", e["resource"].get("patient", {})).get("reference")
        == f"Patient/{patient}"
    }
    for rtype in sorted(types):
        page = demo.client.get(
            f"/fhir/{rtype}", params={"patient": patient, "_count": 1}, headers=demo.insider
        ).json()
        assert page["total"] >= 1, rtype
        assert len(page["entry"]) == 1, rtype
        if page["total"] > 1:
            assert any(link["relation"] == "next" for link in page["link"])


# -- outside every agreement: exactly what an unknown person gets --------------------


def test_links_use_the_public_base_url_when_one_is_set(demo: Demo) -> None:
    """Behind a proxy the URL a request came in on is not the one clients use: with
    ``public_base_url`` set, every ``fullUrl`` and paging link starts with it."""
    public = "https://care.example.org/shared"
    _, patient = _other_org_patient(demo)
    before = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=demo.insider)
    assert before.json()["entry"][0]["fullUrl"].startswith("http://testserver/fhir/")
    state = demo.client.app.state  # type: ignore[attr-defined]
    settings = demo.svc.settings.model_copy(update={"public_base_url": public + "/"})
    state.services = dataclasses.replace(demo.svc, settings=settings)
    try:
        everything = demo.client.get(f"/fhir/Patient/{patient}/$everything",
                                     headers=demo.insider)
        page = demo.client.get("/fhir/Patient", params={"_count": 1, "name": "a"},
                               headers=demo.insider).json()
    finally:
        state.services = demo.svc
    urls = [e["fullUrl"] for e in everything.json()["entry"]]
    assert urls
    assert all(u.startswith(f"{public}/fhir/") for u in urls)
    links = [link["url"] for link in page["link"]]
    assert [link["relation"] for link in page["link"]] == ["self", "next"]
    assert all(u.startswith(f"{public}/fhir/Patient?") for u in links)


def _postcode(resource: dict[str, Any]) -> str | None:
    """The Patient's first postcode, without spaces (so it appears so in URLs)."""
    for address in resource.get("address", []):
        if address.get("postalCode"):
            return str(address["postalCode"]).replace(" ", "")
    return None


def _requests(
    demo: Demo, patient: str, resource: dict[str, Any]
) -> list[tuple[str, dict[str, str]]]:
    name = resource["name"][0]
    nhs = next(
        (i["value"] for i in resource.get("identifier", []) if i["system"] == NHS_NUMBER_SYSTEM),
        None,
    )
    out = [
        (f"/fhir/Patient/{patient}", {}),
        (f"/fhir/Patient/{patient}/$everything", {}),
        ("/fhir/Patient", {"family": name["family"]}),
        ("/fhir/Patient", {"name": name["family"], "birthdate": resource["birthDate"]}),
        ("/fhir/Patient", {"_id": patient}),
    ]
    if nhs:
        out.append(("/fhir/Patient", {"identifier": f"{NHS_NUMBER_SYSTEM}|{nhs}"}))
    out += [
        (f"/fhir/Patient/{patient}/_history", {}),
        (f"/fhir/Patient/{patient}/_history/1", {}),
        (f"/fhir/Patient/{patient}/_history/2", {}),
        (f"/fhir/Patient/{patient}/_history/x", {}),
        (f"/fhir/Patient/{patient}/_history", {"_count": "1", "_offset": "1"}),
        (f"/fhir/Patient/{patient}/_history", {"_since": "2020"}),
        ("/fhir/Patient", {"family": name["family"], "_include": "Patient:general-practitioner"}),
        ("/fhir/Patient", {"address-postalcode": "ZZ99 9ZZ", "family": name["family"]}),
        ("/fhir/Patient", {"family": name["family"], "colour": "red"}),
    ]
    postcode = _postcode(resource)
    if postcode:
        out.append(("/fhir/Patient", {"address-postalcode": postcode, "family": name["family"]}))
    for rtype in ("Encounter", "Condition", "Observation", "EpisodeOfCare", "CareTeam"):
        out.append((f"/fhir/{rtype}", {"patient": patient}))
        out.append((f"/fhir/{rtype}", {"subject": f"Patient/{patient}", "_count": "5"}))
        out.append((f"/fhir/{rtype}", {"patient": patient, "_count": "1", "_offset": "1"}))
        out.append((f"/fhir/{rtype}", {"patient": patient, "_include": f"{rtype}:*"}))
        out.append((f"/fhir/{rtype}", {"patient": patient, "_include": "*:patient"}))
        out.append((f"/fhir/{rtype}", {"patient": patient, "_revinclude": "Flag:patient"}))
        out.append((f"/fhir/{rtype}", {"patient": patient, "bogus": "1", "_count": "x"}))
    for rtype, params in (
        ("Condition", {"code": "http://snomed.info/sct|44054006", "category": "problem-list-item"}),
        ("Condition", {"recorded-date": "ge2000-01-01", "_include": "Condition:encounter"}),
        ("Encounter", {"date": "ge2000-01-01", "identifier": "x", "_sort": "-_lastUpdated"}),
        ("Observation", {"code": "x", "date": "lt2100", "category": "vital-signs"}),
    ):
        out.append((f"/fhir/{rtype}", {"patient": patient, **params}))
    return out


@pytest.mark.slow
def test_outside_every_agreement_is_the_same_as_a_person_who_does_not_exist(
    demo: Demo,
) -> None:
    _org, patient = _other_org_patient(demo)
    resource = demo.client.get(f"/fhir/Patient/{patient}", headers=demo.insider).json()
    everything = demo.client.get(
        f"/fhir/Patient/{patient}/$everything", headers=demo.insider
    ).json()
    fakes = {
        patient: MISSING,
        resource["name"][0]["family"]: "Qqqzzx",
        resource["birthDate"]: "1800-01-01",
    }
    for i in resource.get("identifier", []):
        if i["system"] == NHS_NUMBER_SYSTEM:
            fakes[i["value"]] = "9999999999"
    postcode = _postcode(resource)
    if postcode:
        fakes[postcode] = "ZZ999ZZ"
    checked = 0
    for path, params in _requests(demo, patient, resource):

        def fake(text: str) -> str:
            for real, stand_in in fakes.items():
                text = text.replace(real, stand_in)
            return text

        real = demo.client.get(path, params=params, headers=demo.outsider)
        unknown = demo.client.get(
            fake(path), params={k: fake(v) for k, v in params.items()}, headers=demo.insider
        )
        assert real.status_code == unknown.status_code, (path, params)
        assert fake(real.text) == unknown.text, (path, params)
        checked += 1
    # and every other resource of the person, read by id, by version and its history
    for entry in everything["entry"]:
        rtype, rid = entry["resource"]["resourceType"], entry["resource"]["id"]
        for suffix in ("", "/_history", "/_history/1"):
            real = demo.client.get(f"/fhir/{rtype}/{rid}{suffix}", headers=demo.outsider)
            unknown = demo.client.get(f"/fhir/{rtype}/{MISSING}{suffix}", headers=demo.insider)
            assert real.status_code == unknown.status_code == 404
            assert real.text.replace(rid, MISSING) == unknown.text
            checked += 1
    assert checked > 60


# -- minimisation, audit, failing closed --------------------------------------------


@pytest.mark.slow
def test_withheld_fields_are_masked_and_marked_redacted(demo: Demo) -> None:
    social_worker = next(
        p
        for p in build_area(SEED).practitioners()
        if p.org_code == "WCCASC" and p.role.value == "social-worker"
    )
    headers = _headers(
        demo.svc, "WCCASC", social_worker.id, "social-worker", purpose=Purpose.CARE_COORDINATION
    )
    with_telecom = [
        s
        for s in demo.svc.records.iter_current("Patient")
        if s.org_code == "J81001" and s.sensitivity == "N" and s.resource.get("telecom")
    ]
    assert with_telecom
    r = demo.client.get(f"/fhir/Patient/{with_telecom[0].id}", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["telecom"] != with_telecom[0].resource["telecom"]
    assert body["telecom"][0]["extension"][0]["valueCode"] == "masked"
    assert {"code": "REDACTED"}.items() <= body["meta"]["security"][-1].items()
    assert body["name"] == with_telecom[0].resource["name"]  # the rest is as stored
    Patient.model_validate(body)


@pytest.mark.slow
def test_every_read_is_audited_and_break_glass_alerts(demo: Demo) -> None:
    org, patient = _other_org_patient(demo)
    log = demo.svc.audit
    before = log.count(EventQuery())
    demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=demo.insider)
    demo.client.get(f"/fhir/Patient/{patient}", headers=demo.outsider)
    events = [e.event for e in log.search(EventQuery(limit=10))][:2]
    assert log.count(EventQuery()) == before + 2
    denial, read = events  # newest first
    assert read.action is AuditAction.RECORD_READ
    assert read.persons == (demo.person,)
    assert any(ref.startswith(f"Patient/{patient}") for ref in read.resources)
    assert "agreement" in read.reasons
    assert denial.action is AuditAction.ACCESS_DECISION
    assert denial.outcome.value == "deny"
    assert denial.actor.org == "JHUB"

    clinician = next(
        p
        for p in build_area(SEED).practitioners()
        if p.org_code == "RWX" and p.role.value == "clinician"
    )
    glass = _headers(
        demo.svc,
        "RWX",
        clinician.id,
        "clinician",
        purpose=Purpose.EMERGENCY,
        reason="unconscious in ED, no history available",
    )
    r = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=glass)
    assert r.status_code == 200
    latest = [e.event for e in log.search(EventQuery(limit=2))]
    kinds = {e.action for e in latest}
    assert kinds == {AuditAction.BREAK_GLASS, AuditAction.RECORD_READ}
    bg = next(e for e in latest if e.action is AuditAction.BREAK_GLASS)
    assert bg.break_glass
    assert bg.break_glass_reason
    assert {a["to_org"] for a in bg.obligations["alerts"]} >= {org}
    assert log.verify().ok


def test_the_access_report_by_patient_id_shows_who_looked_and_the_break_glass(demo: Demo) -> None:
    _, patient = _other_org_patient(demo)
    clinician = next(
        p
        for p in build_area(SEED).practitioners()
        if p.org_code == "RWX" and p.role.value == "clinician"
    )
    glass = _headers(
        demo.svc,
        "RWX",
        clinician.id,
        "clinician",
        purpose=Purpose.EMERGENCY,
        reason="collapsed in clinic",
    )
    assert demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=glass).status_code == 200
    ig = demo.svc.issuer.issue(
        org="JHUB",
        client_id="jhub-console",
        purpose=Purpose.GOVERNANCE,
        scopes=frozenset({Permission.AUDIT_READ}),
        practitioner="JHUB-P001",
        role="ig-lead",
    )
    r = demo.client.get(
        f"/fhir/Patient/{patient}/$access-report",
        headers={"Authorization": f"Bearer {ig.access_token}"},
    )
    assert r.status_code == 200, r.text
    text = r.text
    assert "collapsed in clinic" in text
    assert "RWX" in text
    assert clinician.id not in text, "staff names are withheld by default"
    # A partner's IG lead: only for a person its organisation holds a record of.
    people = demo.svc.people
    holders = set(people.person(people.person_of(f"Patient/{patient}")).records)
    outsiders = sorted(o["code"] for o in demo.svc.registry.list_orgs()
                       if o["code"] not in holders and not demo.svc.registry.is_hub(o["code"]))
    assert holders
    assert outsiders

    def partner_ig(org: str) -> dict[str, str]:
        issued = demo.svc.issuer.issue(
            org=org, client_id=f"{org.lower()}-ig", purpose=Purpose.GOVERNANCE,
            scopes=frozenset({Permission.AUDIT_READ}), practitioner=f"{org}-IG", role="ig-lead")
        return {"Authorization": f"Bearer {issued.access_token}"}

    holder = partner_ig(sorted(holders)[0])
    assert demo.client.get(f"/fhir/Patient/{patient}/$access-report",
                           headers=holder).status_code == 200
    outsider = partner_ig(outsiders[0])
    hidden = demo.client.get(f"/fhir/Patient/{patient}/$access-report", headers=outsider)
    absent = demo.client.get("/fhir/Patient/no-such-patient/$access-report", headers=outsider)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.text.replace(patient, "X") == absent.text.replace("no-such-patient", "X")
    # A records:read token without audit:read gets the same 404 as for an unknown patient.
    denied = demo.client.get(f"/fhir/Patient/{patient}/$access-report", headers=demo.insider)
    unknown = demo.client.get("/fhir/Patient/no-such-patient/$access-report", headers=demo.insider)
    assert denied.status_code == unknown.status_code == 404


@pytest.mark.slow
def test_no_read_is_served_when_the_audit_log_cannot_be_written(demo: Demo) -> None:
    _org, patient = _other_org_patient(demo)
    with audit_store_refuses_writes(demo.svc.db):
        for path in (
            f"/fhir/Patient/{patient}",
            f"/fhir/Patient/{patient}/$everything",
            f"/fhir/Condition?patient={patient}",
        ):
            r = demo.client.get(path, headers=demo.insider)
            assert r.status_code == 503, path
            assert r.json()["resourceType"] == "OperationOutcome"
            assert patient not in r.text
    assert demo.client.get(f"/fhir/Patient/{patient}", headers=demo.insider).status_code == 200


def test_record_routes_need_records_read_and_a_practitioner(demo: Demo) -> None:
    issued = demo.svc.issuer.issue(
        org="RWC",
        client_id="rwc-app",
        purpose=Purpose.DIRECT_CARE,
        scopes=frozenset({Permission.RECORDS_READ}),
    )
    r = demo.client.get(
        f"/fhir/Patient/{MISSING}", headers={"Authorization": f"Bearer {issued.access_token}"}
    )
    assert r.status_code == 403
    r = demo.client.get("/fhir/Observation", headers=demo.insider)
    assert r.status_code == 400
    assert "patient" in r.text
    r = demo.client.get("/fhir/Spaceship/1", headers=demo.insider)
    assert r.status_code == 404


# -- the $everything fast path answers what the plain path answers -------------------


def _plain_everything(demo: Demo, headers: dict[str, str], patient: str) -> dict[str, Any] | None:
    """$everything's entries the straightforward way: the person from the person
    index, every decision made afresh (no cache), the filter built afresh, each
    resource parsed, minimised and copied. None for the 404."""
    verifier = demo.client.app.state.verifier  # type: ignore[attr-defined]
    token = verifier.verify(headers["Authorization"].split(" ", 1)[1])
    svc = demo.svc
    try:
        view = svc.people.person(svc.people.person_of(f"Patient/{patient}"))
    except NotFound:
        return None
    patients = tuple(sorted(r.split("/", 1)[1] for refs in view.records.values()
                            for r in refs if r.startswith("Patient/")))
    point = svc.access.point()
    requester = requester_for(org=token.org, practitioner=token.practitioner or "",
                              role=token.role or "", purpose=token.purpose,
                              person=view.person_id, reason=token.reason)
    evidence = svc.records.by_subject(patients, types=EVIDENCE_TYPES)
    relationships = relationships_from((s.resource for s in evidence),
                                       Who(token.org, token.practitioner, token.team), point.today)
    decisions = point.decide_for_person(requester, consents_for(view.person_id), relationships)
    access = PersonAccess(view.person_id, patients, decisions)
    entries = []
    for stored in svc.records.by_subject(patients, where=access.where()):
        owner = stored.org_code

        def decide(c: DataCategory, s: Sensitivity, owner: str = owner) -> Decision:
            return decisions.decision(owner, c, s)

        result = apply_decisions(stored.resource, decide)
        if result is not None:
            entries.append({"fullUrl": f"http://testserver/fhir/{stored.reference}",
                            "resource": result, "search": {"mode": "match"}})
    return {"total": len(entries), "entry": entries} if entries else None


@pytest.mark.slow
def test_everything_answers_what_deciding_afresh_and_minimising_answers(demo: Demo) -> None:
    """The route reuses cached decision tables and filters and splices stored JSON
    text into the Bundle; for every requester here and every Patient of several
    persons, its answer must equal the plain computation's, 404s included."""
    area = build_area(SEED)

    def first(org: str, role: str) -> Any:
        return next(p for p in area.practitioners() if p.org_code == org and p.role.value == role)

    social = first("WCCASC", "social-worker")
    rwx = first("RWX", "clinician")
    gp = first("J81001", "clinician") if any(
        p.org_code == "J81001" and p.role.value == "clinician" for p in area.practitioners()
    ) else rwx
    requesters = [
        demo.insider,
        demo.outsider,
        _headers(demo.svc, "WCCASC", social.id, "social-worker",
                 purpose=Purpose.CARE_COORDINATION),
        _headers(demo.svc, rwx.org_code, rwx.id, "clinician", team=rwx.team_code),
        _headers(demo.svc, gp.org_code, gp.id, "clinician", team=gp.team_code),
        _headers(demo.svc, rwx.org_code, rwx.id, "clinician", purpose=Purpose.EMERGENCY,
                 reason="unconscious in ED"),
    ]
    patients = sorted(s.id for s in demo.svc.records.iter_current("Patient"))[:12]
    patients += [p for ps in demo.patients.values() for p in ps] + [MISSING]
    served = masked = 0
    for headers in requesters:
        for patient in patients:
            for _ in range(2):  # the second time from the decision cache
                r = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=headers)
                want = _plain_everything(demo, headers, patient)
                if want is None:
                    assert r.status_code == 404, (patient, r.text)
                    continue
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["total"] == want["total"]
                assert body["entry"] == want["entry"]
                served += 1
                masked += sum("REDACTED" in str(e["resource"]["meta"]) for e in body["entry"])
    assert served > 10
    assert masked > 0, "no minimised resource was compared"


def _verified(demo: Demo, headers: dict[str, str]) -> AccessToken:
    return demo.svc.verifier().verify(headers["Authorization"].removeprefix("Bearer "))


def test_an_answers_audit_events_are_those_of_its_decisions_summarised_afresh(
    demo: Demo,
) -> None:
    """A prepared answer (what the read cache keeps) carries its decisions' summary;
    the events built from it must equal those built by summarising the decisions
    on the request, break-glass (alerts, elevated audit level) included."""
    base = "http://testserver/fhir"
    insider = _verified(demo, demo.insider)
    assert insider.practitioner is not None
    requesters = [
        demo.insider,
        _headers(demo.svc, "RWC", insider.practitioner, "clinician", purpose=Purpose.EMERGENCY,
                 reason="unconscious in ED"),
    ]
    compared = glass = 0
    for headers in requesters:
        token = _verified(demo, headers)
        for patient in [p for ps in demo.patients.values() for p in ps]:
            found = demo.svc.access.everything(
                token, patient, lambda a, f: _everything_answer(a, f, base), base)
            if found is None or not found[1].resources:
                continue
            person, answer = found
            prepared = Served(token, AuditAction.RECORD_READ, "req-1", f"Patient/{patient}")
            prepared.add_answer(person, answer.resources, answer.decisions, answer.redacted,
                                answer.summary)
            afresh = Served(token, AuditAction.RECORD_READ, "req-1", f"Patient/{patient}")
            afresh.persons.add(person)
            afresh.resources.extend(answer.resources)
            afresh.decisions.update(answer.decisions)
            afresh.redacted += answer.redacted
            assert prepared.summary is not None
            assert afresh.summary is None
            got, want = prepared.events(), afresh.events()
            assert [e.body(1) | {"time": None} for e in got] == [
                e.body(1) | {"time": None} for e in want]
            compared += 1
            glass += len(got) > 1
    assert compared > 1
    assert glass > 0


@pytest.mark.slow
def test_everything_follows_a_merge_and_its_undoing(demo: Demo) -> None:
    """The person and their Patient records come from one query of the person
    index's tables: a merge joins two persons' records, an unmerge parts them."""
    _org, patient = _other_org_patient(demo)
    survivor = demo.svc.people.person_of(f"Patient/{patient}")
    other_patient = next(
        s.id for s in demo.svc.records.iter_current("Patient")
        if s.org_code == "RWC" and demo.svc.people.person_of(f"Patient/{s.id}") != survivor
    )
    other = demo.svc.people.person_of(f"Patient/{other_patient}")
    url = f"/fhir/Patient/{patient}/$everything"

    def ids() -> set[str]:
        r = demo.client.get(url, headers=demo.insider)
        assert r.status_code == 200
        return {e["resource"]["id"] for e in r.json()["entry"]}

    before = ids()
    assert other_patient not in before
    merge = demo.svc.people.merge(survivor, other, by="test", reason="same person")
    try:
        merged = ids()
        assert other_patient in merged
        assert before < merged
        want = _plain_everything(demo, demo.insider, patient)
        assert want is not None
        assert {e["resource"]["id"] for e in want["entry"]} == merged
    finally:
        demo.svc.people.unmerge(merge, by="test")
    assert ids() == before


# -- versions: vread and _history ----------------------------------------------------
# (last in the module: they write new versions of the demo's records)


def _write_version(demo: Demo, stored: StoredResource, **changes: Any) -> int:
    """A new version of ``stored`` through the store's writer, with ``category``
    relabelled and/or top-level elements replaced; returns its version id."""
    resource = copy.deepcopy(stored.resource)
    category = changes.pop("category", None)
    if category is not None:
        for coding in resource["meta"]["security"]:
            if coding["system"] == CATEGORY_SYSTEM:
                coding["code"] = category
    resource.update(changes)
    when = datetime.now(UTC)
    with demo.svc.db.engine.begin() as conn:
        writer = RecordWriter(conn, WriteContext(stored.org_code, stored.feed_id, "test", when))
        prepared, problems = prepare(resource, allowed_categories=None)
        assert prepared is not None, problems
        writer.write([PreparedUnit(1, stored.source_id, (prepared,))])
    now = demo.svc.records.read(stored.resource_type, stored.id)
    assert now is not None
    return now.version_id


def _owner_headers(demo: Demo, org: str) -> dict[str, str]:
    staff = next(p for p in build_area(SEED).practitioners() if p.org_code == org)
    return _headers(demo.svc, org, staff.id, staff.role.value, team=staff.team_code)


def _versions(demo: Demo, headers: dict[str, str], ref: str) -> list[str]:
    r = demo.client.get(f"/fhir/{ref}/_history", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    Bundle.model_validate(body)
    assert body["type"] == "history"
    assert body["total"] == len(body["entry"])
    return [e["resource"]["meta"]["versionId"] for e in body["entry"]]


@pytest.mark.slow
def test_past_versions_are_served_only_where_both_they_and_the_current_one_may_be_seen(
    demo: Demo,
) -> None:
    """The rule: a version is served when the caller may see the current version and
    that version, each by its own labels. Anything else answers exactly as a version
    that does not exist."""
    _org, patient = _other_org_patient(demo)
    everything = demo.client.get(
        f"/fhir/Patient/{patient}/$everything", headers=demo.insider
    ).json()
    shown = [
        e["resource"] for e in everything["entry"]
        if e["resource"]["resourceType"] == "Condition"
        and "REDACTED" not in str(e["resource"]["meta"])
    ]
    stored = next(
        s for s in (demo.svc.records.read("Condition", r["id"]) for r in shown)
        if s is not None and s.org_code != "RWC"  # a record another organisation owns
    )
    ref = stored.reference
    owner = _owner_headers(demo, stored.org_code)
    sealed = _write_version(demo, stored, category="sexual-health")
    assert sealed == stored.version_id + 1
    again = demo.svc.records.read("Condition", stored.id)
    assert again is not None
    back = _write_version(demo, again, category=stored.category)
    v1, v2, v3 = str(stored.version_id), str(sealed), str(back)

    assert _versions(demo, demo.insider, ref) == [v3, v1]  # the sealed version is not there
    assert _versions(demo, owner, ref) == [v3, v2, v1]  # its owner sees them all
    ok = demo.client.get(f"/fhir/{ref}/_history/{v1}", headers=demo.insider)
    assert ok.status_code == 200
    assert ok.json()["meta"]["versionId"] == v1
    assert ok.headers["content-type"].startswith("application/fhir+json")

    def looks_missing(path: str, headers: dict[str, str]) -> None:
        real = demo.client.get(path, headers=headers)
        unknown = demo.client.get(path.replace(stored.id, MISSING), headers=demo.insider)
        assert real.status_code == unknown.status_code == 404, path
        assert real.text.replace(stored.id, MISSING) == unknown.text

    looks_missing(f"/fhir/{ref}/_history/{v2}", demo.insider)
    looks_missing(f"/fhir/{ref}/_history/99", demo.insider)
    page = demo.client.get(f"/fhir/{ref}/_history", params={"_count": 1}, headers=owner).json()
    assert page["total"] == 3
    assert len(page["entry"]) == 1
    assert [link["relation"] for link in page["link"]] == ["self", "next"]

    # Now the current version is sealed: no version is served, not even those
    # the caller could see before.
    final = demo.svc.records.read("Condition", stored.id)
    assert final is not None
    _write_version(demo, final, category="sexual-health")
    for path in (f"/fhir/{ref}", f"/fhir/{ref}/_history", f"/fhir/{ref}/_history/{v1}"):
        looks_missing(path, demo.insider)
        assert demo.client.get(path, headers=owner).status_code == 200

    events = [e.event for e in demo.svc.audit.search(EventQuery(limit=30))]
    reads = [e for e in events if e.action is AuditAction.RECORD_READ and e.actor.org == "RWC"]
    assert any(f"{ref}/_history/{v1}" in e.resources for e in reads)
    assert any({f"{ref}/_history/{v3}", f"{ref}/_history/{v1}"} <= set(e.resources)
               for e in reads)


@pytest.mark.slow
def test_include_follows_references_only_to_what_the_caller_may_see_of_that_person(
    demo: Demo,
) -> None:
    _org, patient = _other_org_patient(demo)
    r = demo.client.get(
        "/fhir/Encounter",
        params={"patient": patient, "_include": "Encounter:patient"},
        headers=demo.insider,
    )
    assert r.status_code == 200, r.text
    bundle = r.json()
    Bundle.model_validate(bundle)
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert matches
    assert bundle["total"] == len(matches)  # includes are not counted
    assert [(x["resourceType"], x["id"]) for x in included] == [("Patient", patient)]

    # A Condition of this person made to point at an Encounter of someone else that
    # the caller may read on its own: the include does not follow it.
    mine = {p for ps in demo.patients.values() for p in ps}
    theirs = next(
        s for s in demo.svc.records.iter_current("Encounter")
        if s.org_code == "RWC" and s.subject_id not in mine
    )
    assert demo.client.get(f"/fhir/{theirs.reference}", headers=demo.insider).status_code == 200
    condition = next(
        s for s in demo.svc.records.by_subject([patient], types=["Condition"])
        if demo.client.get(f"/fhir/{s.reference}", headers=demo.insider).status_code == 200
    )
    pointed = _write_version(demo, condition, encounter={"reference": theirs.reference})
    r = demo.client.get(
        "/fhir/Condition",
        params={"patient": patient, "_include": "Condition:encounter", "_id": condition.id},
        headers=demo.insider,
    )
    assert r.status_code == 200
    assert [e["search"]["mode"] for e in r.json()["entry"]] == ["match"]
    # The answer is the one a reference to an Encounter that does not exist gets.
    now = demo.svc.records.read("Condition", condition.id)
    assert now is not None
    _write_version(demo, now, encounter={"reference": f"Encounter/{MISSING}"})
    missing = demo.client.get(str(r.request.url), headers=demo.insider)
    assert missing.json()["entry"][0]["resource"]["encounter"] == {
        "reference": f"Encounter/{MISSING}"
    }
    assert r.text.replace(theirs.id, MISSING).replace(
        f'"versionId":"{pointed}"', f'"versionId":"{pointed + 1}"') \
        == missing.text.replace(missing.json()["entry"][0]["resource"]["meta"]["lastUpdated"],
                                r.json()["entry"][0]["resource"]["meta"]["lastUpdated"])


def test_an_agreement_that_ends_while_the_service_runs_only_stops_granting(
    demo: Demo, capsys: pytest.CaptureFixture[str],
) -> None:
    """Two demo agreements end on 2028-03-31. The day after, the service still compiles
    the others (an ended agreement is refused by ``joinedup agreements check``, not at
    midnight by every read), the ended ones grant nothing, and the operator is told."""
    svc = demo.svc
    days = {d: date.fromisoformat(d) for d in ("2028-03-31", "2028-04-01")}

    def providers(day: date) -> dict[str, frozenset[str]]:
        service = AccessService(svc.access.agreements_dir, svc.registry, svc.records,
                                svc.people, today=lambda: day)
        point = service.point()  # raised Unavailable for every read before the fix
        assert point.today == day
        return {o["code"]: point.providers_to(o["code"]) for o in svc.registry.list_orgs()}

    last, after = (providers(d) for d in days.values())
    lost = {org for org in last if after[org] < last[org]}
    assert lost, "the ended agreements granted nothing the day before"
    assert all(after[org] <= last[org] for org in last)  # nothing new from an ending
    assert after["RWC"], "the agreements still in force grant nothing"
    captured = capsys.readouterr()
    assert "agreements_ended" in captured.out + captured.err
