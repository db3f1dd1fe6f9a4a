"""A small world for the MHD tests: a GP practice (J81001) that publishes, a community
trust (RWC) that shares its documents under an agreement, and the hub (JHUB), in no
agreement. One person has a Patient record at each of J81001 and RWC (linked by NHS
number); another exists only at J81001."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from joinedup.access.purposes import Purpose
from joinedup.auth.permissions import Permission
from joinedup.documents.keyring import create_master_key
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM
from joinedup.orgs.vocab import OrgKind
from joinedup.services import Services
from joinedup.sources.feeds import FeedSpec
from tests.integration.records.records_helpers import accepted, nhs_number, patient
from tests.support import add_org

AGREEMENT = """\
id: mhd-test-direct-care
version: 1
title: Test only - the practice shares documents with the community trust
status: active
parties: [J81001, RWC]
purposes: [direct-care]
lawful_basis:
  article_6: public-task
  article_9: health-or-social-care
  common_law: implied-consent
roles: [clinician]
shares:
  J81001:
    max_sensitivity: R
    categories: [demographics, documents]
conditions:
  relationship_required: false
start: 2026-01-01
end: 2030-12-31
review: 2029-03-31
dpia: DPIA-TEST
ig_contact: ig@example.org
"""

SUBMISSION_SET = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
LOINC = "http://loinc.org"


@dataclass
class World:
    svc: Services
    patient: str
    """J81001's Patient record of the shared person."""
    rwc_patient: str
    other_patient: str
    """A second person, known only to J81001."""
    nhs: str
    publisher: dict[str, str]
    insider: dict[str, str]
    outsider: dict[str, str]


def headers(svc: Services, org: str, practitioner: str, *scopes: Permission) -> dict[str, str]:
    issued = svc.issuer.issue(
        org=org, client_id=f"{org.lower()}-app", purpose=Purpose.DIRECT_CARE,
        scopes=frozenset(scopes), practitioner=practitioner, role="clinician",
    )
    return {"Authorization": f"Bearer {issued.access_token}"}


def build_world(svc: Services) -> World:
    create_master_key(svc.settings.effective_document_keys_dir)
    agreements = svc.settings.effective_agreements_dir
    agreements.mkdir(parents=True, exist_ok=True)
    (agreements / "mhd-test.yaml").write_text(AGREEMENT)
    for code, kind in [("J81001", OrgKind.GP_PRACTICE), ("RWC", OrgKind.COMMUNITY_TRUST),
                       ("JHUB", OrgKind.HUB)]:
        add_org(svc, code, kind)  # with a team, practitioner <code>-P1 and a client system
    nhs, other_nhs = nhs_number(1), nhs_number(2)
    for org, records in [
        ("J81001", [patient("gp-1", nhs=nhs), patient("gp-2", family="Jones", nhs=other_nhs)]),
        ("RWC", [patient("rwc-1", nhs=nhs)]),
    ]:
        feed = f"{org.lower()}-fhir"
        svc.ingestion.feeds.register(FeedSpec.model_validate(
            {"id": feed, "org": org, "format": "fhir", "categories": ["demographics"]}))
        svc.ingestion.loader.ingest(feed, [accepted(i + 1, r) for i, r in enumerate(records)])
    read, publish = Permission.DOCUMENTS_READ, Permission.DOCUMENTS_PUBLISH
    return World(
        svc, "gp-1", "rwc-1", "gp-2", nhs,
        publisher=headers(svc, "J81001", "J81001-P001", read, publish),
        insider=headers(svc, "RWC", "RWC-P001", read),
        outsider=headers(svc, "JHUB", "JHUB-P001", read, publish),
    )


def publish(api: TestClient, world: World, body: dict[str, Any]) -> str:
    """Publish ``body`` (ITI-65) as the practice; the new DocumentReference's id."""
    r = api.post("/fhir", json=body, headers=world.publisher)
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "transaction-response"
    return str(r.json()["entry"][1]["response"]["location"]).split("/")[1]


def stored_files(world: World) -> list[Path]:
    """Every file in the local document store."""
    root = world.svc.settings.effective_document_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def bundle(
    data: bytes = b"%PDF-1.4 discharge summary\n",
    *,
    subject: dict[str, Any] | None = None,
    author: str = "J81001",
    content_type: str = "application/pdf",
    size: int | None = None,
    digest: str | None = None,
    master: str = "urn:oid:1.2.3.1",
    replaces: str | None = None,
    category: str = "documents",
    sensitivity: str = "N",
) -> dict[str, Any]:
    """An ITI-65 Provide Document Bundle with one document."""
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": master},
        "status": "current",
        "subject": subject or {"reference": "Patient/gp-1"},
        "type": {"coding": [{"system": LOINC, "code": "18842-5", "display": "Discharge summary"}]},
        "category": [{"coding": [{"system": LOINC, "code": "47039-3"}]}],
        "author": [{"reference": f"Organization/{author}"}],
        "date": "2026-11-20T10:00:00Z",
        "securityLabel": [
            {"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": sensitivity}]},
            {"coding": [{"system": CATEGORY_SYSTEM, "code": category}]},
        ],
        "content": [{"attachment": {
            "contentType": content_type, "language": "en-GB", "url": "urn:uuid:binary-1",
            "size": len(data) if size is None else size,
            "hash": sha1_b64(data) if digest is None else digest,
        }}],
    }
    if replaces is not None:
        doc["relatesTo"] = [{"code": "replaces",
                             "target": {"reference": f"DocumentReference/{replaces}"}}]
    submission = {
        "resourceType": "List", "status": "current", "mode": "working",
        "code": {"coding": [{"system": SUBMISSION_SET, "code": "submissionset"}]},
        "subject": doc["subject"],
        "entry": [{"item": {"reference": "urn:uuid:doc-1"}}],
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:set-1", "resource": submission,
             "request": {"method": "POST", "url": "List"}},
            {"fullUrl": "urn:uuid:doc-1", "resource": doc,
             "request": {"method": "POST", "url": "DocumentReference"}},
            {"fullUrl": "urn:uuid:binary-1",
             "resource": {"resourceType": "Binary", "contentType": content_type,
                          "data": base64.b64encode(data).decode()},
             "request": {"method": "POST", "url": "Binary"}},
        ],
    }
