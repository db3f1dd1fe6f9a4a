"""MHD honours the person's consent directives, on both databases: an objection to the
reader's organisation hides the documents from find (with its total), read and
retrieve, answered exactly as documents that do not exist; withdrawing it shows them
again on the next request."""

from __future__ import annotations

from fastapi.testclient import TestClient

from joinedup.access.consent_cli import consent_from_options
from tests.integration.mhd.world import World, bundle


def test_an_objection_to_the_reader_hides_its_documents_everywhere(
    api: TestClient, world: World
) -> None:
    r = api.post("/fhir", json=bundle(b"%PDF-1.4 discharge summary\n"), headers=world.publisher)
    assert r.status_code == 200, r.text
    doc = str(r.json()["entry"][1]["response"]["location"]).split("/")[1]
    binary = str(r.json()["entry"][2]["response"]["location"]).split("/")[1]
    paths = {f"DocumentReference/{doc}": "DocumentReference/nosuchdocument",
             f"Binary/{binary}": f"Binary/{'0' * 32}"}
    for path in paths:
        assert api.get(f"/fhir/{path}", headers=world.insider).status_code == 200
    found = api.get("/fhir/DocumentReference", params={"patient": world.rwc_patient},
                    headers=world.insider)
    assert found.json()["total"] == 1

    objection = world.svc.consents.create(
        consent_from_options(world.patient, "objection", "RWC", None, None, None, None),
        recorded_by_org="J81001", recorded_by="J81001-P001", known_orgs=["J81001", "RWC", "JHUB"],
        known_agreements=[], holder_required=True)

    hidden = api.get("/fhir/DocumentReference", params={"patient": world.rwc_patient},
                     headers=world.insider)
    assert hidden.status_code == 200
    assert (hidden.json()["total"], hidden.json()["entry"]) == (0, [])
    for path, missing in paths.items():
        real = api.get(f"/fhir/{path}", headers=world.insider)
        fake = api.get(f"/fhir/{missing}", headers=world.insider)
        assert real.status_code == fake.status_code == 404
        assert real.text.replace(path, missing) == fake.text

    world.svc.consents.revoke(objection.directive.id, by_org="J81001", by="J81001-P001")
    for path in paths:
        assert api.get(f"/fhir/{path}", headers=world.insider).status_code == 200
