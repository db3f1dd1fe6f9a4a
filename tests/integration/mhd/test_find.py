"""ITI-67 with every MHD search parameter and ITI-66, GET and POST, on both databases.

Each parameter is checked three ways: it finds the document when it matches,
not when it does not, and a practitioner outside every agreement gets exactly
what a search about a patient who does not exist gets."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from joinedup.labels import CATEGORY_SYSTEM
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from tests.integration.mhd.world import SUBMISSION_SET, World, bundle, publish

SNOMED = "http://snomed.info/sct"
FORMAT = "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode"
LOINC = "http://loinc.org"


def rich_bundle() -> dict[str, Any]:
    """A document with every searchable element set, in a Folder."""
    body = bundle(b"%PDF-1.4 rich\n", master="urn:oid:rich")
    doc = body["entry"][1]["resource"]
    doc["identifier"] = [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:entry-rich"}]
    doc["date"] = "2026-11-20T10:00:00Z"
    doc["content"][0]["format"] = {"system": FORMAT, "code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"}
    doc["context"] = {
        "event": [{"coding": [{"system": SNOMED, "code": "308540004"}]}],
        "period": {"start": "2026-11-01T09:00:00Z", "end": "2026-11-19T17:00:00Z"},
        "facilityType": {"coding": [{"system": SNOMED, "code": "22232009"}]},
        "practiceSetting": {"coding": [{"system": SNOMED, "code": "394802001"}]},
        "related": [{"reference": "Encounter/enc-1"}],
    }
    submission = body["entry"][0]["resource"]
    submission["identifier"] = [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:set-rich"}]
    submission["extension"] = [
        {"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId",
         "valueIdentifier": {"value": "urn:oid:1.2.826.0.1.999"}},
        {"url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType",
         "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "371531000"}]}},
    ]
    body["entry"].append({"fullUrl": "urn:uuid:folder-1", "request": {"method": "POST",
                                                                       "url": "List"},
                          "resource": {
        "resourceType": "List", "status": "current", "mode": "working",
        "code": {"coding": [{"system": SUBMISSION_SET, "code": "folder"}]},
        "subject": doc["subject"], "entry": [{"item": {"reference": "urn:uuid:doc-1"}}]}})
    return body


def _search(api: TestClient, resource: str, who: dict[str, str], **params: str) -> Any:
    """A search that must succeed; the searchset Bundle."""
    r = api.get(f"/fhir/{resource}", params=params, headers=who)
    assert r.status_code == 200, r.text
    return r.json()


def _without_self(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "link"}


# each: a parameter and value that matches the rich document, and one that does not
MATCHING = [
    ("status", "current", "superseded"),
    ("date", "2026-11-20", "lt2026-11-20"),
    ("date", "ge2026-11-20T09:00:00Z", "gt2026-11-20"),
    ("period", "2026-11", "2026-11-10"),
    ("period", "ge2026-11-19", "ge2026-11-20"),
    ("period", "le2026-11-01", "lt2026-11-01T09:00:00Z"),
    ("type", f"{LOINC}|18842-5", f"{LOINC}|11488-4"),
    ("type", "18842-5", "|18842-5"),
    ("category", "47039-3", f"{SNOMED}|47039-3"),
    ("author", "Organization/J81001", "Organization/RWC"),
    ("author", "J81001", "RWC"),
    ("setting", f"{SNOMED}|394802001", "394803006"),
    ("facility", "22232009", "22232010"),
    ("event", f"{SNOMED}|308540004,{SNOMED}|1", f"{SNOMED}|1"),
    ("related", "Encounter/enc-1", "Encounter/enc-2"),
    ("related", "enc-1", "enc-2"),
    ("securityLabel", f"{CATEGORY_SYSTEM}|documents", f"{CATEGORY_SYSTEM}|safeguarding"),
    ("securityLabel", "N", "R"),
    ("format", f"{FORMAT}|urn:ihe:iti:xds:2017:mimeTypeSufficient", "urn:other"),
    ("identifier", "urn:oid:rich", "urn:oid:other"),
    ("identifier", "urn:ietf:rfc:3986|urn:uuid:entry-rich", "urn:uuid:entry-other"),
]


@pytest.mark.parametrize(("name", "hit", "miss"), MATCHING,
                         ids=[f"{n}={h}" for n, h, _ in MATCHING])
def test_each_parameter_finds_matches_and_leaks_nothing(
    api: TestClient, world: World, name: str, hit: str, miss: str
) -> None:
    doc = publish(api, world, rich_bundle())

    def find(who: dict[str, str], value: str, patient: str = world.rwc_patient) -> Any:
        return _search(api, "DocumentReference", who, patient=patient, **{name: value})

    assert [e["resource"]["id"] for e in find(world.insider, hit)["entry"]] == [doc]
    assert find(world.insider, miss)["total"] == 0
    # POST _search: the same answer from a form body
    posted = api.post("/fhir/DocumentReference/_search", headers=world.insider,
                      data={"patient": world.rwc_patient, name: hit})
    assert posted.status_code == 200, posted.text
    assert [e["resource"]["id"] for e in posted.json()["entry"]] == [doc]
    # an outsider gets exactly what a non-existent patient gets
    nobody = _without_self(find(world.insider, hit, patient="no-such-patient"))
    assert _without_self(find(world.outsider, hit)) == nobody
    assert nobody == {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}


def test_repeated_parameters_are_and_and_commas_are_or(api: TestClient, world: World) -> None:
    doc = publish(api, world, rich_bundle())
    params = [("patient", world.rwc_patient), ("date", "ge2026-11-01"), ("date", "le2026-11-30")]
    r = api.get("/fhir/DocumentReference", params=params, headers=world.insider)
    assert [e["resource"]["id"] for e in r.json()["entry"]] == [doc]
    params = [("patient", world.rwc_patient), ("date", "ge2026-11-21"), ("date", "le2026-11-30")]
    assert api.get("/fhir/DocumentReference", params=params, headers=world.insider
                   ).json()["total"] == 0
    either = {"patient": world.rwc_patient, "type": f"{LOINC}|nope,{LOINC}|18842-5"}
    assert api.get("/fhir/DocumentReference", params=either, headers=world.insider
                   ).json()["total"] == 1


BAD = [
    ({"colour": "red"}, "colour"),
    ({"date": "yesterday"}, "date"),
    ({"period": "ab2026"}, "period"),
    ({"type": "|"}, "type"),
    ({"status": "deprecated"}, "status"),
    ({"_count": "many"}, "_count"),
    ({"author": ""}, "author"),
]


@pytest.mark.parametrize(("params", "where"), BAD, ids=[w for _, w in BAD])
def test_a_bad_parameter_is_a_clear_outcome_the_same_for_everyone(
    api: TestClient, world: World, params: dict[str, str], where: str
) -> None:
    publish(api, world, rich_bundle())
    answers = []
    for who, patient in [(world.insider, world.rwc_patient), (world.outsider, world.rwc_patient),
                         (world.insider, "no-such-patient")]:
        r = api.get("/fhir/DocumentReference", params={"patient": patient, **params},
                    headers=who)
        assert r.status_code == 400, r.text
        outcome = r.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert [where] in [i.get("expression") for i in outcome["issue"]]
        answers.append(outcome)
    assert answers[0] == answers[1] == answers[2]


def test_every_bad_parameter_is_listed_at_once(api: TestClient, world: World) -> None:
    r = api.get("/fhir/DocumentReference", headers=world.insider,
                params={"date": "x", "colour": "red", "status": "nope"})
    expressions = {e for i in r.json()["issue"] for e in i.get("expression", [])}
    assert {"date", "colour", "status", "patient"} <= expressions


def test_find_by_nhs_number_and_paging(api: TestClient, world: World) -> None:
    ids = [publish(api, world, bundle(bytes([n]) * 10, master=f"urn:oid:{n}"))
           for n in range(3)]
    ident = f"{NHS_NUMBER_SYSTEM}|{world.nhs}"
    page = api.get("/fhir/DocumentReference", headers=world.insider,
                   params={"patient.identifier": ident, "_count": "2"}).json()
    assert page["total"] == 3
    assert len(page["entry"]) == 2
    rest = api.get("/fhir/DocumentReference", headers=world.insider,
                   params={"patient.identifier": ident, "_count": "2", "_offset": "2"}).json()
    assert {e["resource"]["id"] for e in page["entry"] + rest["entry"]} == set(ids)


# -- ITI-66 ------------------------------------------------------------------------


LIST_MATCHING = [
    ("code", f"{SUBMISSION_SET}|submissionset", "nothing"),
    ("status", "current", "retired"),
    ("date", "ge2020-01-01", "lt2020-01-01"),
    ("sourceId", "urn:oid:1.2.826.0.1.999", "urn:oid:1.2.3"),
    ("designationType", f"{SNOMED}|371531000", "1"),
    ("identifier", "urn:oid:set-rich", "urn:oid:set-other"),
]


@pytest.mark.parametrize(("name", "hit", "miss"), LIST_MATCHING,
                         ids=[f"{n}={h}" for n, h, _ in LIST_MATCHING])
def test_find_document_lists_by_each_parameter(
    api: TestClient, world: World, name: str, hit: str, miss: str
) -> None:
    doc = publish(api, world, rich_bundle())

    def lists(who: dict[str, str], value: str, patient: str = world.rwc_patient) -> Any:
        return _search(api, "List", who, patient=patient, **{name: value})

    found = lists(world.insider, hit)["entry"]
    assert found, f"{name}={hit} found no List"
    for entry in found:
        assert entry["resource"]["entry"] == [{"item": {"reference": f"DocumentReference/{doc}"}}]
        assert entry["resource"]["subject"]["reference"] == f"Patient/{world.patient}"
    assert lists(world.insider, miss)["total"] == 0
    nobody = _without_self(lists(world.insider, hit, patient="no-such-patient"))
    assert _without_self(lists(world.outsider, hit)) == nobody
    assert nobody["total"] == 0
    posted = api.post("/fhir/List/_search", headers=world.insider,
                      data={"patient": world.rwc_patient, name: hit})
    assert posted.json()["total"] == len(found)


def test_submission_sets_and_folders_are_both_found(api: TestClient, world: World) -> None:
    publish(api, world, rich_bundle())
    r = api.get("/fhir/List", params={"patient": world.rwc_patient}, headers=world.insider)
    codes = sorted(e["resource"]["code"]["coding"][0]["code"] for e in r.json()["entry"])
    assert codes == ["folder", "submissionset"]
    folders = api.get("/fhir/List", headers=world.insider,
                      params={"patient": world.rwc_patient, "code": "folder"}).json()
    assert folders["total"] == 1


def test_a_list_shows_only_the_documents_the_caller_may_see(
    api: TestClient, world: World
) -> None:
    body = rich_bundle()
    secret = bundle(b"%PDF-1.4 restricted\n", master="urn:oid:secret", sensitivity="V")
    secret_doc = secret["entry"][1]
    secret_doc["fullUrl"] = "urn:uuid:doc-2"
    secret_doc["resource"]["content"][0]["attachment"]["url"] = "urn:uuid:binary-2"
    secret_bin = secret["entry"][2]
    secret_bin["fullUrl"] = "urn:uuid:binary-2"
    body["entry"] += [secret_doc, secret_bin]
    body["entry"][0]["resource"]["entry"].append({"item": {"reference": "urn:uuid:doc-2"}})
    r = api.post("/fhir", json=body, headers=world.publisher)
    assert r.status_code == 200, r.text
    found = api.get("/fhir/List", params={"patient": world.rwc_patient, "code": "submissionset"},
                    headers=world.insider).json()
    [listed] = found["entry"]
    assert len(listed["resource"]["entry"]) == 1  # the very restricted one is left out
    own = api.get("/fhir/List", params={"patient": world.patient, "code": "submissionset"},
                  headers=world.publisher).json()
    assert len(own["entry"][0]["resource"]["entry"]) == 2


def test_list_search_parameters_are_checked(api: TestClient, world: World) -> None:
    r = api.get("/fhir/List", params={"patient": world.rwc_patient, "type": "x",
                                      "status": "gone"}, headers=world.insider)
    assert r.status_code == 400
    expressions = {e for i in r.json()["issue"] for e in i.get("expression", [])}
    assert {"type", "status"} <= expressions


def test_the_capability_statement_lists_every_mhd_parameter(api: TestClient) -> None:
    body = api.get("/fhir/metadata").json()
    assert "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder" in (
        body["instantiates"])
    resources = body["rest"][0]["resource"]
    [docs] = [r for r in resources if r["type"] == "DocumentReference"]
    names = {p["name"] for p in docs["searchParam"]}
    assert names == {"patient", "patient.identifier", "status", "date", "period", "type",
                     "category", "author", "setting", "facility", "event", "related",
                     "securityLabel", "format", "identifier"}
    [lists] = [r for r in resources if r["type"] == "List"]
    assert {"code", "designationType", "sourceId"} <= {p["name"] for p in lists["searchParam"]}
