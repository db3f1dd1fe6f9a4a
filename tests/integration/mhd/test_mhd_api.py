"""IHE MHD on both databases: publish (ITI-65), find (ITI-67), retrieve (ITI-68) and
supersede, with a practitioner outside every agreement answered exactly as about
nothing at all; bad bundles refused whole with nothing stored."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.testclient import TestClient

from joinedup.audit.events import AuditAction
from joinedup.audit.queries import EventQuery
from joinedup.documents.models import documents
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from tests.integration.mhd.world import World, bundle, publish, stored_files
from tests.support import audit_store_refuses_writes


def _find(api: TestClient, headers: dict[str, str], **params: str) -> Any:
    return api.get("/fhir/DocumentReference", params=params, headers=headers)


def test_mhd_round_trip_with_an_outsider_refused_at_every_step(
    api: TestClient, world: World
) -> None:
    content = b"%PDF-1.4 first discharge summary\n"
    first = publish(api, world, bundle(content))

    # find: the trust's clinician sees it through the agreement; the hub sees nothing
    found = _find(api, world.insider, patient=world.rwc_patient)
    assert found.status_code == 200, found.text
    [entry] = found.json()["entry"]
    doc = entry["resource"]
    assert doc["id"] == first
    assert doc["status"] == "current"
    url = doc["content"][0]["attachment"]["url"]
    assert url.startswith("http://testserver/fhir/Binary/")
    binary = url.rsplit("/", 1)[1]
    assert _find(api, world.outsider, patient=world.rwc_patient).json()["total"] == 0
    by_nhs = _find(api, world.insider, **{"patient.identifier": f"{NHS_NUMBER_SYSTEM}|{world.nhs}"})
    assert [e["resource"]["id"] for e in by_nhs.json()["entry"]] == [first]

    # read and retrieve: the outsider's 404 is the one for a document that does not exist
    assert api.get(f"/fhir/DocumentReference/{first}", headers=world.insider).status_code == 200
    got = api.get(f"/fhir/Binary/{binary}", headers=world.insider)
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["content-type"] == "application/pdf"
    expected = base64.b64decode(doc["content"][0]["attachment"]["hash"]).hex()
    assert got.headers["etag"] == f'"{expected}"'
    for path, missing in [(f"DocumentReference/{first}", "DocumentReference/nosuchdocument"),
                          (f"Binary/{binary}", f"Binary/{'0' * 32}")]:
        outsider = api.get(f"/fhir/{path}", headers=world.outsider)
        absent = api.get(f"/fhir/{missing}", headers=world.insider)
        assert outsider.status_code == absent.status_code == 404
        assert outsider.text.replace(path, missing) == absent.text

    # supersede: the outsider may not replace it; the publisher may
    refused = api.post("/fhir", json=bundle(b"x", master="urn:oid:9", replaces=first),
                       headers=world.outsider)
    assert refused.status_code == 400
    second_content = b"%PDF-1.4 corrected discharge summary\n"
    second = publish(api, world, bundle(second_content, master="urn:oid:1.2.3.2",
                                         replaces=first))
    current = _find(api, world.insider, patient=world.rwc_patient).json()
    assert [e["resource"]["id"] for e in current["entry"]] == [second]
    assert current["entry"][0]["resource"]["relatesTo"][0]["target"]["reference"] == (
        f"DocumentReference/{first}")
    old = _find(api, world.insider, patient=world.rwc_patient, status="superseded").json()
    assert [e["resource"]["id"] for e in old["entry"]] == [first]
    assert old["entry"][0]["resource"]["status"] == "superseded"
    assert api.get(f"/fhir/Binary/{binary}", headers=world.insider).content == content
    assert _find(api, world.outsider, patient=world.rwc_patient, status="superseded,current"
                 ).json()["total"] == 0

    # every step was audited
    actions = [e.event.action for e in world.svc.audit.search(EventQuery(limit=1000))]
    assert actions.count(AuditAction.DOCUMENT_PUBLISH) == 2
    assert AuditAction.DOCUMENT_READ in actions


def test_a_range_request_gets_206_with_those_bytes(api: TestClient, world: World) -> None:
    content = bytes(range(256)) * 40
    publish(api, world, bundle(content, content_type="image/png"))
    [entry] = _find(api, world.publisher, patient=world.patient).json()["entry"]
    url = entry["resource"]["content"][0]["attachment"]["url"]
    r = api.get(url, headers={**world.publisher, "Range": "bytes=100-1099"})
    assert r.status_code == 206
    assert r.content == content[100:1100]
    assert r.headers["content-range"] == f"bytes 100-1099/{len(content)}"
    tail = api.get(url, headers={**world.publisher, "Range": "bytes=-10"})
    assert tail.content == content[-10:]
    past = api.get(url, headers={**world.publisher, "Range": f"bytes={len(content)}-"})
    assert past.status_code == 416


@pytest.mark.parametrize(
    ("label", "kwargs", "where"),
    [
        ("hash mismatch", {"digest": "2jmj7l5rSw0yVb/vlWAYkK/YBwk="}, "attachment.hash"),
        ("size mismatch", {"size": 3}, "attachment.size"),
        ("content type", {"content_type": "application/x-msdownload"}, "contentType"),
        ("author", {"author": "RWC"}, "author"),
        ("unknown subject", {"subject": {"reference": "Patient/nobody"}}, "subject"),
        ("unknown nhs number", {"subject": {"identifier": {
            "system": NHS_NUMBER_SYSTEM, "value": "9434765919"}}}, "subject"),
        ("no security label", {"category": "not-a-category"}, "securityLabel"),
    ],
)
def test_a_bad_bundle_is_refused_whole_and_nothing_is_stored(
    api: TestClient, world: World, label: str, kwargs: dict[str, Any], where: str
) -> None:
    r = api.post("/fhir", json=bundle(**kwargs), headers=world.publisher)
    assert r.status_code == 400, (label, r.text)
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(where in " ".join(i.get("expression", [])) for i in outcome["issue"]), outcome
    assert world.svc.documents.counts() == {}
    assert stored_files(world) == []


def test_every_problem_is_listed_at_once(api: TestClient, world: World) -> None:
    body = bundle(author="RWC", content_type="text/html", size=1, digest="AAAA")
    r = api.post("/fhir", json=body, headers=world.publisher)
    assert r.status_code == 400
    expressions = " ".join(e for i in r.json()["issue"] for e in i.get("expression", []))
    for where in ("author", "contentType", "attachment.size", "attachment.hash"):
        assert where in expressions


def test_publish_by_nhs_number_files_it_under_the_person(api: TestClient, world: World) -> None:
    subject = {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": world.nhs}}
    first = publish(api, world, bundle(subject=subject))
    found = _find(api, world.insider, patient=world.rwc_patient).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [first]
    assert found["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{world.patient}"


def test_replacing_another_persons_document_is_refused(api: TestClient, world: World) -> None:
    theirs = publish(api, world, bundle(subject={"reference": f"Patient/{world.other_patient}"}))
    r = api.post("/fhir", json=bundle(master="urn:oid:7", replaces=theirs),
                 headers=world.publisher)
    assert r.status_code == 400
    assert f"DocumentReference/{theirs} is not known" in r.text
    assert world.svc.documents.counts() == {"available": 1}


def test_permissions_are_needed(api: TestClient, world: World) -> None:
    reader_only = world.insider
    assert api.post("/fhir", json=bundle(), headers=reader_only).status_code == 403


def test_reads_fail_closed_when_the_audit_store_refuses(api: TestClient, world: World) -> None:
    publish(api, world, bundle())
    [entry] = _find(api, world.insider, patient=world.rwc_patient).json()["entry"]
    url = entry["resource"]["content"][0]["attachment"]["url"]
    with audit_store_refuses_writes(world.svc.db):
        assert api.get(url, headers=world.insider).status_code == 503
        assert _find(api, world.insider, patient=world.rwc_patient).status_code == 503


def test_a_publish_interrupted_after_the_pending_row_is_finished_by_recovery(
    api: TestClient, world: World
) -> None:
    registry = world.svc.documents
    first = publish(api, world, bundle())
    # a crash between the pending row and the content commit: replay steps 2-3 by hand
    store = registry.content
    staged = store.stage(b"replacement", expected_size=11)
    orphan = store.stage(b"lost", expected_size=4)
    with world.svc.db.engine.begin() as conn:
        row = dict(conn.execute(documents.select()).mappings().one())
        for doc_id, blob in (("crashed", staged), ("gone", orphan)):
            conn.execute(documents.insert().values({
                **row, "id": doc_id, "master_identifier": doc_id, "availability": "pending",
                "content_id": blob.content_id, "staging_token": blob.token,
                "replaces_id": first,
            }))
    store.abort(orphan)  # its staged bytes were lost in the crash
    assert _find(api, world.insider, patient=world.rwc_patient).json()["total"] == 1
    assert registry.recover() == (1, 1)
    assert registry.counts() == {"available": 2}
    current = _find(api, world.insider, patient=world.rwc_patient).json()
    assert [e["fullUrl"].rsplit("/", 1)[1] for e in current["entry"]] == ["crashed"]
    assert registry.get(first) is not None
    assert registry.get(first).status == "superseded"  # type: ignore[union-attr]
