"""The document lifecycle on both databases: deprecate and entered-in-error by the
authoring organisation only, with a reason, audited; searches default to current;
superseded documents stay retrievable; every version kept (_history, vread)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from joinedup.audit.events import AuditAction
from joinedup.audit.queries import EventQuery
from joinedup.auth.permissions import Permission
from tests.integration.mhd.world import World, bundle, headers, publish


def _status(api: TestClient, who: dict[str, str], doc: str, status: str,
            reason: str | None = "filed against the wrong episode") -> Any:
    parameters = [{"name": "status", "valueCode": status}]
    if reason is not None:
        parameters.append({"name": "reason", "valueString": reason})
    return api.post(f"/fhir/DocumentReference/{doc}/$status", headers=who,
                    json={"resourceType": "Parameters", "parameter": parameters})


def _ids(api: TestClient, who: dict[str, str], world: World, **params: str) -> list[str]:
    r = api.get("/fhir/DocumentReference", params={"patient": world.rwc_patient, **params},
                headers=who)
    assert r.status_code == 200, r.text
    return [e["resource"]["id"] for e in r.json()["entry"]]


def _binary(api: TestClient, who: dict[str, str], doc: str) -> Any:
    r = api.get(f"/fhir/DocumentReference/{doc}", headers=who)
    url = r.json()["content"][0]["attachment"]["url"]
    return api.get(url, headers=who)


def test_deprecate_keeps_the_document_retrievable_and_its_history(
    api: TestClient, world: World
) -> None:
    content = b"%PDF-1.4 plan\n"
    doc = publish(api, world, bundle(content))
    r = _status(api, world.publisher, doc, "superseded", "the plan ended")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "superseded"
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'

    assert _ids(api, world.insider, world) == []  # searches default to current
    assert _ids(api, world.insider, world, status="superseded") == [doc]
    assert _binary(api, world.insider, doc).content == content

    history = api.get(f"/fhir/DocumentReference/{doc}/_history", headers=world.insider).json()
    assert history["type"] == "history"
    assert [(e["resource"]["meta"]["versionId"], e["resource"]["status"])
            for e in history["entry"]] == [("2", "superseded"), ("1", "current")]
    first = api.get(f"/fhir/DocumentReference/{doc}/_history/1", headers=world.insider)
    assert first.status_code == 200
    assert first.json()["status"] == "current"
    missing = api.get(f"/fhir/DocumentReference/{doc}/_history/3", headers=world.insider)
    assert missing.status_code == 404

    [event] = [e.event for e in world.svc.audit.search(EventQuery(limit=1000))
               if e.event.action == AuditAction.DOCUMENT_UPDATE]
    assert event.actor.org == "J81001"
    assert event.resources == (f"DocumentReference/{doc}",)
    assert event.detail["status"] == "superseded"
    assert "the plan ended" not in str(event.detail)  # free text stays out of the audit log


def test_entered_in_error_withdraws_the_content_from_all_but_its_author(
    api: TestClient, world: World
) -> None:
    content = b"%PDF-1.4 wrong patient\n"
    doc = publish(api, world, bundle(content))
    assert _status(api, world.publisher, doc, "entered-in-error").status_code == 200
    assert _ids(api, world.insider, world) == []
    assert _ids(api, world.insider, world, status="entered-in-error") == [doc]
    read = api.get(f"/fhir/DocumentReference/{doc}", headers=world.insider)
    assert read.json()["status"] == "entered-in-error"
    assert _binary(api, world.insider, doc).status_code == 404
    assert _binary(api, world.publisher, doc).content == content
    # final: nothing follows entered-in-error
    again = _status(api, world.publisher, doc, "superseded")
    assert again.status_code == 409
    assert "entered-in-error cannot become superseded" in again.text


def test_only_the_authoring_organisation_may_change_a_status(
    api: TestClient, world: World
) -> None:
    doc = publish(api, world, bundle())
    trust = headers(world.svc, "RWC", "RWC-P001", Permission.DOCUMENTS_READ,
                    Permission.DOCUMENTS_PUBLISH)
    refused = _status(api, trust, doc, "entered-in-error")
    assert refused.status_code == 403  # it may see the document, so it is told why
    assert "only the organisation that published" in refused.text
    outsider = _status(api, world.outsider, doc, "entered-in-error")
    absent = _status(api, world.outsider, "nosuchdocument", "entered-in-error")
    assert outsider.status_code == absent.status_code == 404
    assert outsider.text.replace(doc, "X") == absent.text.replace("nosuchdocument", "X")
    assert api.get(f"/fhir/DocumentReference/{doc}", headers=world.insider).json()[
        "status"] == "current"
    for path in (f"{doc}/_history", f"{doc}/_history/1"):
        assert api.get(f"/fhir/DocumentReference/{path}", headers=world.outsider
                       ).status_code == 404


@pytest.mark.parametrize(
    ("status", "reason", "where"),
    [("superseded", None, "parameter.reason"), ("superseded", "  ", "reason"),
     ("current", "undo", "status"), ("deprecated", "x", "status")],
)
def test_a_status_change_needs_a_known_status_and_a_reason(
    api: TestClient, world: World, status: str, reason: str | None, where: str
) -> None:
    doc = publish(api, world, bundle())
    r = _status(api, world.publisher, doc, status, reason)
    assert r.status_code == 400, r.text
    assert any(where in " ".join(i.get("expression", [])) for i in r.json()["issue"])
    assert api.get(f"/fhir/DocumentReference/{doc}", headers=world.publisher).json()[
        "meta"]["versionId"] == "1"


def test_a_replacement_writes_the_superseded_version(api: TestClient, world: World) -> None:
    first = publish(api, world, bundle())
    second = publish(api, world, bundle(b"%PDF-1.4 v2\n", master="urn:oid:2", replaces=first))
    history = api.get(f"/fhir/DocumentReference/{first}/_history",
                      headers=world.insider).json()["entry"]
    assert [e["resource"]["status"] for e in history] == ["superseded", "current"]
    assert world.svc.documents.get(first).status_reason == (  # type: ignore[union-attr]
        f"replaced by DocumentReference/{second}")
    # a superseded document cannot be deprecated again, but may be withdrawn
    assert _status(api, world.publisher, first, "superseded").status_code == 409
    assert _status(api, world.publisher, first, "entered-in-error").status_code == 200
