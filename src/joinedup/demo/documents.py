"""The demo area's documents: what `joinedup demo up` publishes through IHE MHD.

* hospital discharge summaries (RWX, PDF, ``documents`` / N): shared for direct care;
* a council care and support plan (WCCASC, PDF, ``care-plans`` / N): shared with the
  hospital for discharge and care coordination;
* a child protection conference record (WCCCS, PDF, ``safeguarding`` / R): only the
  safeguarding partners see it, and only for the safeguarding purpose
  (``agreements/safeguarding.yaml``).

The PDFs are generated here (fpdf2), deterministically from the person's record,
so a re-run publishes nothing new: each document has a fixed masterIdentifier.
Everything goes through the same sharing service as the MHD API, so the
publishes are decided on, stored encrypted and audited like any other.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fpdf import FPDF
from sqlalchemy import func, select

from joinedup.access.purposes import Purpose
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.config import Settings
from joinedup.demo.area import Area
from joinedup.documents.cli import document_bundle
from joinedup.documents.keyring import KEY_SUFFIX, create_master_key
from joinedup.documents.models import documents
from joinedup.documents.sharing import DocumentSharing
from joinedup.people.models import PersonRecord
from joinedup.services import Services

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
MASTER = "urn:joinedup:demo:document:"
DISCHARGES = 3
FIXED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
"""Dates in the documents are counted back from here, so the bytes never change."""


def ensure_document_key(settings: Settings) -> str | None:
    """Create the document master key if there is none (never shipped: made here, 0600).
    Returns the new key's id, or None if one existed."""
    folder = settings.effective_document_keys_dir
    if folder.is_dir() and any(folder.glob("*" + KEY_SUFFIX)):
        return None
    return create_master_key(folder).kid


@dataclass(frozen=True)
class DocumentKind:
    """One kind of demo document: who writes it, how it is coded and labelled."""

    key: str
    org: str
    author: str
    title: str
    type_: dict[str, str]
    class_: dict[str, str]
    category: str
    confidentiality: str
    about: str
    """The heading of the first paragraph, the one that names the person."""


@dataclass(frozen=True)
class DemoDocument:
    kind: DocumentKind
    patient: str
    pdf: bytes
    date: datetime

    @property
    def key(self) -> str:
        return f"{self.kind.key}:{self.patient}"

    @property
    def org(self) -> str:
        return self.kind.org

    @property
    def title(self) -> str:
        return self.kind.title


def render_pdf(title: str, author: str, lines: list[tuple[str, str]]) -> bytes:
    """A one- or two-page PDF: a title, the author organisation, then headed paragraphs."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(FIXED)
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_creator("joinedup demo")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 6, author, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    for heading, text in lines:
        pdf.set_font("Helvetica", "B", 11)
        pdf.multi_cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(0, 5, "Synthetic demo document: every person and detail in it is invented.",
                   new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _person(resource: dict[str, Any]) -> tuple[str, str, str]:
    name = (resource.get("name") or [{}])[0]
    full = " ".join([*name.get("given", []), name.get("family", "")]).strip() or "Unknown"
    nhs = next((i.get("value", "") for i in resource.get("identifier", [])
                if "nhs-number" in i.get("system", "")), "not recorded")
    return full, str(resource.get("birthDate", "unknown")), nhs


Body = tuple[list[tuple[str, str]], datetime]
"""A document's headed paragraphs after the one naming the person, and its date."""

DISCHARGE = DocumentKind(
    "discharge", "RWX", "Wessex Hospitals NHS Trust (RWX)", "Hospital discharge summary",
    {"system": LOINC, "code": "18842-5", "display": "Discharge summary"},
    {"system": SNOMED, "code": "373942005", "display": "Discharge summary"},
    "documents", "N", "Patient")
CARE_PLAN = DocumentKind(
    "care-plan", "WCCASC", "Wessex County Council Adult Social Care (WCCASC)",
    "Care and support plan",
    {"system": SNOMED, "code": "734163000", "display": "Care plan"},
    {"system": SNOMED, "code": "734163000", "display": "Care plan"},
    "care-plans", "N", "Person")
CONFERENCE = DocumentKind(
    "conference", "WCCCS", "Wessex County Council Children's Services (WCCCS)",
    "Child protection conference record",
    {"system": SNOMED, "code": "371531000", "display": "Report of clinical encounter"},
    {"system": SNOMED, "code": "225337009", "display": "Child protection"},
    "safeguarding", "R", "Child")


def _discharge(rng: random.Random, n: int) -> Body:
    admitted = FIXED - timedelta(days=rng.randint(8, 40))
    discharged = admitted + timedelta(days=rng.randint(2, 9))
    reason, plan = rng.choice([
        ("Community-acquired pneumonia", "Complete 5 days of amoxicillin 500 mg three times "
         "daily. Chest X-ray in 6 weeks."),
        ("Fall at home with fractured neck of femur (right), hemiarthroplasty",
         "Mobilising with a frame. Reablement referral made to adult social care."),
        ("Exacerbation of heart failure", "Furosemide increased to 80 mg in the morning. "
         "Daily weights; GP review of renal function in one week."),
        ("Urinary tract infection with delirium", "Delirium resolved. Nitrofurantoin "
         "completed. Memory assessment to be considered by the GP."),
    ])
    return [
        ("Admission", f"Admitted {admitted:%d %B %Y} via the Emergency Department; "
                      f"discharged {discharged:%d %B %Y} to usual residence."),
        ("Diagnosis", reason),
        ("Plan and follow-up", plan),
        ("Information for the GP", "Please review medicines at the next appointment. "
                                   "A copy of this summary has been given to the patient."),
    ], discharged + timedelta(hours=5, minutes=10 * n)


def _care_plan(rng: random.Random, n: int) -> Body:
    reviewed = FIXED - timedelta(days=rng.randint(3, 20))
    return [
        ("What matters to me", "Staying in my own home, seeing my grandchildren on Sundays, "
                               "and getting to the lunch club on Wednesdays."),
        ("Eligible needs (Care Act 2014)", "Managing and maintaining nutrition; maintaining "
         "personal hygiene; being able to make use of the home safely."),
        ("Support agreed", "Home care twice daily (morning and tea-time), 45 minutes each; "
                           "pendant alarm; weekly shopping delivery."),
        ("Carer", "Daughter visits three times a week; a carer's assessment has been offered."),
        ("Review", f"Agreed {reviewed:%d %B %Y}. Next review in 6 weeks, sooner if needs change."),
    ], reviewed


def _conference(rng: random.Random, n: int) -> Body:
    held = FIXED - timedelta(days=rng.randint(5, 25))
    return [
        ("Conference", f"Initial child protection conference held {held:%d %B %Y}. Present: "
                       "social worker, police, health visitor, school, GP report received."),
        ("Decision", "The child is to be subject to a child protection plan under the "
                     "category of neglect."),
        ("Plan", "Core group to meet within 10 working days; weekly visits by the social "
                 "worker; health visitor to review development and attendance at appointments."),
        ("Sharing", "Restricted: shared only between safeguarding partners for the purpose "
                    "of safeguarding."),
    ], held


def _document(kind: DocumentKind, patient: str, resource: dict[str, Any], body: Body) -> DemoDocument:
    name, born, nhs = _person(resource)
    lines, date = body
    lines = [(kind.about, f"{name}, born {born}, NHS number {nhs}"), *lines]
    return DemoDocument(kind, patient, render_pdf(kind.title, kind.author, lines), date)


def _patients(svc: Services, org: str, limit: int, prefer: set[str] | None = None) -> list[str]:
    """Patient ids of ``org``'s records: people ``prefer``red first, then people also known
    to other organisations (whose records are joined up), then anyone."""
    with svc.db.session() as s:
        orgs = func.count(func.distinct(PersonRecord.org_code))
        spread = {p: n for p, n in s.execute(
            select(PersonRecord.person_id, orgs).group_by(PersonRecord.person_id))}
        rows = s.execute(select(PersonRecord.record_id, PersonRecord.person_id).where(
            PersonRecord.org_code == org).order_by(PersonRecord.person_id)).all()
    wanted = prefer or set()
    rows = sorted(rows, key=lambda r: (r[1] not in wanted, spread.get(r[1], 1) < 2, r[1]))
    one_each = {person: record for record, person in reversed(rows)}  # a person once
    chosen = [r for r, p in rows if one_each[p] == r]
    return [r.removeprefix("Patient/") for r in chosen[:limit]]


def _persons(svc: Services, patients: list[str]) -> set[str]:
    with svc.db.session() as s:
        return set(s.scalars(select(PersonRecord.person_id).where(
            PersonRecord.record_id.in_([f"Patient/{p}" for p in patients]))))


def demo_documents(svc: Services) -> list[DemoDocument]:
    rng = random.Random(7)
    planned: list[DemoDocument] = []
    discharges = _patients(svc, DISCHARGE.org, DISCHARGES)
    plans = _patients(svc, CARE_PLAN.org, 1, prefer=_persons(svc, discharges))
    children = _patients(svc, CONFERENCE.org, 1)
    kinds: list[tuple[DocumentKind, list[str], Callable[[random.Random, int], Body]]] = [
        (DISCHARGE, discharges, _discharge),
        (CARE_PLAN, plans, _care_plan),
        (CONFERENCE, children, _conference),
    ]
    for kind, patients, body in kinds:  # in this order: they draw on the one rng in turn
        for n, patient in enumerate(patients):
            found = svc.records.read("Patient", patient)
            if found is not None:
                planned.append(_document(kind, patient, found.resource, body(rng, n)))
    return planned


def _token(svc: Services, area: Area, org: str) -> AccessToken:
    issued = svc.issuer.issue(
        org=org, client_id=area.org(org).system.client_id, purpose=Purpose.DIRECT_CARE,
        scopes=frozenset({Permission.DOCUMENTS_PUBLISH, Permission.DOCUMENTS_READ}))
    return svc.verifier().verify(issued.access_token)


def publish_demo_documents(svc: Services, area: Area) -> list[tuple[DemoDocument, str]]:
    """Publish each demo document not yet published; returns (document, DocumentReference id)."""
    sharing = DocumentSharing(svc)
    done: list[tuple[DemoDocument, str]] = []
    for doc in demo_documents(svc):
        master = MASTER + doc.key
        with svc.db.engine.connect() as conn:
            existing = conn.execute(select(documents.c.id).where(
                documents.c.master_identifier == master)).scalar_one_or_none()
        if existing is not None:
            done.append((doc, existing))
            continue
        token = _token(svc, area, doc.org)
        sha1 = hashlib.sha1(doc.pdf).digest()  # noqa: S324 - FHIR R4 Attachment.hash
        upload = sharing.upload(token, doc.pdf, content_type="application/pdf",
                                expected_size=len(doc.pdf), request_id=None)
        bundle = document_bundle(
            subject={"reference": f"Patient/{doc.patient}"}, org=doc.org, type_=doc.kind.type_,
            class_=doc.kind.class_, category=doc.kind.category,
            confidentiality=doc.kind.confidentiality,
            content_type="application/pdf", size=len(doc.pdf), sha1=sha1,
            upload=upload.content_id, title=f"{doc.title}.pdf", replaces=None,
            date=doc.date.isoformat(), master=master)
        bundle["entry"][1]["resource"]["description"] = doc.title
        published = sharing.publish(token, bundle, request_id=None)
        done.append((doc, published.documents[0].id))
    return done

