"""The demo's documents: a master key made when none exists, real PDFs, published once,
and the child protection record seen only by safeguarding partners for safeguarding."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from joinedup.access.purposes import Purpose
from joinedup.auth.permissions import Permission
from joinedup.demo import DEFAULT_SEED
from joinedup.demo.agreements import agreement_files
from joinedup.demo.area import build_area
from joinedup.demo.documents import ensure_document_key, publish_demo_documents, render_pdf
from joinedup.demo.load import load_area
from joinedup.documents.query import parse_document_search
from joinedup.documents.sharing import DocumentSharing
from joinedup.services import Services
from joinedup.sources.feeds import FeedSpec
from tests.integration.records.records_helpers import accepted, nhs_number, patient


def test_render_pdf_is_a_valid_deterministic_pdf() -> None:
    first = render_pdf("Hospital discharge summary", "Wessex Hospitals NHS Trust",
                       [("Diagnosis", "Community-acquired pneumonia " * 40)])
    assert first == render_pdf("Hospital discharge summary", "Wessex Hospitals NHS Trust",
                               [("Diagnosis", "Community-acquired pneumonia " * 40)])
    reader = PdfReader(io.BytesIO(first))
    text = "".join(page.extract_text() for page in reader.pages)
    assert "Hospital discharge summary" in text
    assert "pneumonia" in text
    assert reader.metadata is not None
    assert reader.metadata.title == "Hospital discharge summary"


def test_the_key_is_made_only_when_there_is_none(services: Services) -> None:
    folder = services.settings.effective_document_keys_dir
    assert not folder.exists()
    kid = ensure_document_key(services.settings)
    assert kid is not None
    [path] = folder.iterdir()
    assert path.stat().st_mode & 0o077 == 0
    assert ensure_document_key(services.settings) is None


@pytest.fixture
def demo(services: Services, tmp_path: Path) -> Services:
    area = build_area(DEFAULT_SEED)
    load_area(services, area, tmp_path / "clients")
    agreements = services.settings.effective_agreements_dir
    agreements.mkdir(parents=True, exist_ok=True)
    for path in agreement_files():
        shutil.copy(path, agreements / path.name)
    services.access.reload()
    records = {
        "RWX": [patient(f"rwx-{n}", nhs=nhs_number(n)) for n in range(1, 5)],
        "WCCASC": [patient("asc-1", nhs=nhs_number(1)), patient("asc-9", nhs=nhs_number(9))],
        "WCCCS": [patient("cs-5", given="Ava", nhs=nhs_number(5)),
                  patient("cs-6", given="Leo", nhs=nhs_number(6))],
        "J81001": [patient("gp-5", nhs=nhs_number(5)), patient("gp-6", nhs=nhs_number(6))],
    }
    for org, rows in records.items():
        feed = f"{org.lower()}-demo"
        services.ingestion.feeds.register(FeedSpec.model_validate(
            {"id": feed, "org": org, "format": "fhir", "categories": ["demographics"]}))
        services.ingestion.loader.ingest(feed, [accepted(i + 1, r) for i, r in enumerate(rows)])
    ensure_document_key(services.settings)
    return services


def _token(svc: Services, org: str, practitioner: str, purpose: Purpose):  # type: ignore[no-untyped-def]
    area = build_area(DEFAULT_SEED)
    role = next(p.role for p in area.org(org).practitioners if p.id == practitioner)
    issued = svc.issuer.issue(org=org, client_id=area.org(org).system.client_id,
                              purpose=purpose, scopes=frozenset({Permission.DOCUMENTS_READ}),
                              practitioner=practitioner, role=role.value)
    return svc.verifier().verify(issued.access_token)


def test_demo_documents_are_published_once_and_shared_as_agreed(demo: Services) -> None:
    area = build_area(DEFAULT_SEED)
    published = publish_demo_documents(demo, area)
    kinds = sorted(d.key.split(":")[0] for d, _ in published)
    assert kinds == ["care-plan", "conference", "discharge", "discharge", "discharge"]
    assert publish_demo_documents(demo, area) == published  # nothing new the second time
    assert demo.documents.counts() == {"available": 5}
    for doc, doc_id in published:
        view = demo.documents.get(doc_id)
        assert view is not None
        assert view.content_type == "application/pdf"
        with demo.documents.open(view) as reader:
            content = reader.read_all()
        assert content == doc.pdf
        assert PdfReader(io.BytesIO(content)).pages

    [(conference, conf_id)] = [(d, i) for d, i in published if d.key.startswith("conference")]
    sharing = DocumentSharing(demo)
    search = parse_document_search([("patient", conference.patient)])

    def found(org: str, practitioner: str, purpose: Purpose) -> list[str]:
        result = sharing.find(_token(demo, org, practitioner, purpose), search, request_id=None)
        return [v.id for v, _ in result.items]

    assert found("WPOLICE", "WPOLICE-P001", Purpose.SAFEGUARDING) == [conf_id]
    assert found("WCCCS", "WCCCS-P001", Purpose.SAFEGUARDING) == [conf_id]
    assert found("RWX", "RWX-P001", Purpose.DIRECT_CARE) == []  # not a safeguarding purpose
    assert found("WCCASC", "WCCASC-P001", Purpose.SAFEGUARDING) == []  # not a partner
