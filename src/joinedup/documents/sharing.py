"""Document sharing for a requester: MHD's transactions with access decisions and audit.

One place for what the partner API (``joinedup.api.fhir.mhd``) and the CLI
(``joinedup documents``) both do: decide, filter in SQL, minimise, audit
before answering. Access is decided exactly as for records
(``joinedup.access.service``): the decisions about the person a document is
about, by the document's owner (the publishing organisation), data category
and confidentiality from its ``securityLabel``, become one SQL condition on
the registry's rows. Only *permitted* documents are served (never a redacted
stub); what is not permitted answers exactly as what does not exist.

Rules of the lifecycle that concern who sees what:

* searches return ``current`` documents unless ``status`` asks for others;
* a ``superseded`` document (replaced or deprecated) is still found (with
  ``status=superseded``), read and retrieved by those permitted;
* an ``entered-in-error`` document's metadata stays readable (so a reader
  learns it was withdrawn, and why not), but its content is retrievable only
  by the organisation that published it: for everyone else it is 404.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Table, and_, false, or_

from joinedup.access.decisions import Action
from joinedup.access.service import PersonAccess, Served, requester_identity
from joinedup.audit.events import Actor, AuditAction, AuditEvent, Outcome
from joinedup.auth.tokens import AccessToken
from joinedup.documents.blobs import BinarySource, iter_source
from joinedup.documents.info import StagedBlob
from joinedup.documents.query import DocumentSearch, ListSearch, Patient
from joinedup.documents.reader import ContentReader
from joinedup.documents.registry import (
    ENTERED_IN_ERROR,
    DocumentView,
    Filter,
    ListView,
    Published,
    UploadView,
)
from joinedup.documents.stager import Stager
from joinedup.documents.submission import SubjectRef
from joinedup.errors import NotFound
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.records.query import parse_query
from joinedup.records.store import StoredResource

if TYPE_CHECKING:
    from joinedup.services import Services

UPLOAD_BLOCK = 1024 * 1024


def permitted(access: PersonAccess | None) -> Filter:
    """The documents the decisions *permit* (never a withheld stub), as one SQL condition."""
    allowed: dict[str, set[tuple[str, str]]] = {}
    if access is not None:
        for (owner, category, sensitivity), d in access.decisions.decisions.items():
            if d.permitted:
                allowed.setdefault(owner, set()).add((category.value, sensitivity.value))
    patients = sorted(access.patient_ids) if access is not None else []

    def condition(table: Table) -> ColumnElement[bool]:
        c = table.c
        if not allowed or not patients:
            return false()
        return and_(c.subject_id.in_(patients), or_(*(
            and_(c.org_code == owner, or_(*(
                and_(c.category == cat, c.sensitivity == level) for cat, level in sorted(pairs)
            )))
            for owner, pairs in sorted(allowed.items())
        )))

    return condition


def union(accesses: Iterable[PersonAccess]) -> Filter:
    filters = [permitted(a) for a in accesses]

    def condition(table: Table) -> ColumnElement[bool]:
        return or_(*(f(table) for f in filters)) if filters else false()

    return condition


def stored(view: DocumentView) -> StoredResource:
    """The document as the access service's minimiser and audit record see a resource."""
    return StoredResource(
        "DocumentReference", view.id, view.version, view.created_at, view.org_code, "mhd", "",
        view.id, view.category, view.sensitivity, True, view.subject_id, view.body,
    )


def _serve(served: Served, access: PersonAccess, view: DocumentView) -> dict[str, Any] | None:
    """``view`` minimised by the decisions about its person, and counted in ``served``;
    None where nothing of it may be served."""
    resource = stored(view)
    result = access.minimise(resource)
    if result is not None:
        served.add(access, resource, result)
    return result


def not_found(what: str) -> NotFound:
    return NotFound(f"{what} is not known")


def _actor(token: AccessToken) -> Actor:
    return Actor(token.org, token.client_id, token.practitioner, token.role)


@dataclass(frozen=True)
class Found:
    """One page of a search: what was served (minimised) and the total permitted."""

    items: list[tuple[DocumentView, dict[str, Any]]]
    total: int


@dataclass(frozen=True)
class FoundLists:
    items: list[tuple[ListView, dict[str, Any]]]
    total: int


class _Resolver:
    """The registry's questions about people, answered from the records, the person
    index and the submitter's own access decisions."""

    def __init__(self, svc: Services, token: AccessToken) -> None:
        self._svc = svc
        self._token = token

    def person(self, patient_id: str) -> str | None:
        try:
            return self._svc.people.person_of(f"Patient/{patient_id}")
        except NotFound:
            return None

    def patient(self, subject: SubjectRef) -> str | None:
        records = self._svc.records
        if subject.patient_id is not None:
            found = records.read("Patient", subject.patient_id)
            ok = found is not None and self.person(subject.patient_id) is not None
            return subject.patient_id if ok else None
        query = parse_query("Patient", [("identifier", f"{NHS_NUMBER_SYSTEM}|{subject.nhs_number}")])
        matches = [s for s in records.search(query, total=False).items if self.person(s.id)]
        own = [s for s in matches if s.org_code == self._token.org]
        chosen = (own or matches)[:1]
        return chosen[0].id if chosen else None

    def may_replace(self, patient_id: str, target: DocumentView) -> bool:
        person = self.person(patient_id)
        if person is None or person != self.person(target.subject_id):
            return False
        if not self._token.practitioner:  # a system acting for its organisation
            return target.org_code == self._token.org
        access = self._svc.access.for_patient(self._token, patient_id, Action.READ)
        return self._svc.documents.get(target.id, where=permitted(access)) is not None


class DocumentSharing:
    """MHD for one configured service: every method takes the requester's token."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc

    @property
    def registry(self) -> Any:
        return self._svc.documents

    # -- publish --------------------------------------------------------------------
    def upload(self, token: AccessToken, source: BinarySource, *, content_type: str,
               expected_size: int | None, request_id: str | None) -> UploadView:
        """Stream content in ahead of its bundle (see ``DocumentRegistry.upload``)."""
        stager = self.begin_upload(token, content_type=content_type,
                                   expected_size=expected_size)
        with stager:
            for block in iter_source(source, UPLOAD_BLOCK):
                stager.write(block)
            staged = stager.finish()
        return self.finish_upload(token, staged, content_type=content_type,
                                  request_id=request_id)

    def begin_upload(self, token: AccessToken, *, content_type: str,
                     expected_size: int | None) -> Stager:
        stager: Stager = self._svc.documents.begin_upload(
            content_type=content_type, expected_size=expected_size)
        return stager

    def finish_upload(self, token: AccessToken, staged: StagedBlob, *, content_type: str,
                      request_id: str | None) -> UploadView:
        view: UploadView = self._svc.documents.record_upload(staged, token.org, content_type)
        self._svc.audit.append([AuditEvent(
            action=AuditAction.DOCUMENT_PUBLISH, outcome=Outcome.SUCCESS, actor=_actor(token),
            purpose=token.purpose, resources=(f"Binary/{view.content_id}",),
            request_id=request_id, detail={"staged": True, "size": view.size},
        )])
        return view

    def publish(self, token: AccessToken, bundle: Any, *, request_id: str | None) -> Published:
        resolver = _Resolver(self._svc, token)
        published: Published = self._svc.documents.publish(
            bundle, org=token.org, resolver=resolver)
        persons = sorted({p for p in map(resolver.person,
                                         [d.subject_id for d in published.documents]) if p})
        resources = [f"List/{published.submission_set_id}",
                     *(f"List/{f}" for f in published.folder_ids),
                     *(d.reference for d in published.documents)]
        replaced = [f"DocumentReference/{d.replaces_id}" for d in published.documents
                    if d.replaces_id]
        self._svc.audit.append([AuditEvent(
            action=AuditAction.DOCUMENT_PUBLISH, outcome=Outcome.SUCCESS, actor=_actor(token),
            purpose=token.purpose, persons=tuple(persons), resources=tuple(resources),
            request_id=request_id,
            detail={"documents": len(published.documents), "superseded": replaced},
        )])
        return published

    # -- lifecycle --------------------------------------------------------------------
    def change_status(self, token: AccessToken, doc_id: str, status: str, reason: str, *,
                      request_id: str | None) -> DocumentView:
        """Deprecate or withdraw: the authoring organisation only; audited.

        A document the caller may not read is 404 (as one that does not exist);
        the author's own systems may act without a practitioner."""
        view = self._svc.documents.get(doc_id)
        where: Filter | None = None
        if view is not None and view.org_code != token.org:
            access = (self._svc.access.for_patient(token, view.subject_id, Action.READ)
                      if token.practitioner and token.role else None)
            where = permitted(access)
        changed: DocumentView = self._svc.documents.change_status(
            doc_id, status, reason, org=token.org, where=where)
        person = _Resolver(self._svc, token).person(changed.subject_id)
        self._svc.audit.append([AuditEvent(
            action=AuditAction.DOCUMENT_UPDATE, outcome=Outcome.SUCCESS, actor=_actor(token),
            purpose=token.purpose, persons=(person,) if person else (),
            resources=(changed.reference,), request_id=request_id,
            detail={"status": status, "version": changed.version},
        )])
        return changed

    # -- find (ITI-67) ----------------------------------------------------------------
    def accesses(self, token: AccessToken, patient: Patient) -> list[PersonAccess]:
        requester_identity(token)
        if patient.kind == "id":
            found = self._svc.access.for_patient(token, patient.value, Action.SEARCH)
            return [found] if found is not None else []
        query = parse_query("Patient", [("identifier", patient.value)])
        ids = [s.id for s in self._svc.records.search(query, total=False).items]
        return self._svc.access.for_patients(token, ids, Action.SEARCH)

    def find(self, token: AccessToken, search: DocumentSearch, *, request_id: str | None
             ) -> Found:
        served = Served(token, AuditAction.RECORD_SEARCH, request_id, "DocumentReference?")
        accesses = self.accesses(token, search.patient)
        served.considered.update(a.person_id for a in accesses)
        views, total = self._svc.documents.find(search, where=union(accesses))
        by_subject = {pid: a for a in accesses for pid in a.patient_ids}
        items = []
        for view in views:
            result = _serve(served, by_subject[view.subject_id], view)
            if result is not None:
                items.append((view, result))
        self._svc.audit.append(served.events())
        return Found(items, total)

    def find_lists(self, token: AccessToken, search: ListSearch, *, request_id: str | None
                   ) -> FoundLists:
        served = Served(token, AuditAction.RECORD_SEARCH, request_id, "List?")
        accesses = self.accesses(token, search.patient)
        served.considered.update(a.person_id for a in accesses)
        patients = sorted({p for a in accesses for p in a.patient_ids})
        views, total, shown = self._svc.documents.find_lists(
            search, patients, where=union(accesses))
        by_subject = {pid: a for a in accesses for pid in a.patient_ids}
        items = []
        for view in views:
            served.persons.add(by_subject[view.subject_id].person_id)
            served.resources.append(f"List/{view.id}")
            items.append((view, view.resource(shown)))
        self._svc.audit.append(served.events())
        return FoundLists(items, total)

    # -- read and retrieve ------------------------------------------------------------
    def _visible(self, token: AccessToken, view: DocumentView | None, served: Served
                 ) -> tuple[DocumentView, PersonAccess] | None:
        """The document again, through the caller's decisions about its person."""
        requester_identity(token)
        if view is None:
            return None
        access = self._svc.access.for_patient(token, view.subject_id, Action.READ)
        if access is None:
            return None
        served.considered.add(access.person_id)
        seen = self._svc.documents.get(view.id, where=permitted(access))
        return (seen, access) if seen is not None else None

    def read(self, token: AccessToken, doc_id: str, *, version: int | None = None,
             request_id: str | None) -> dict[str, Any]:
        """The DocumentReference (or one version of it), minimised; audited; else NotFound."""
        asked = f"DocumentReference/{doc_id}" + (f"/_history/{version}" if version else "")
        served = Served(token, AuditAction.DOCUMENT_READ, request_id, asked)
        found = self._visible(token, self._svc.documents.get(doc_id), served)
        result = None
        if found is not None:
            current, access = found
            view = current if version is None else self._svc.documents.version(doc_id, version)
            if view is not None:
                result = _serve(served, access, view)
        self._svc.audit.append(served.events())
        if result is None:
            raise not_found(asked)
        return result

    def history(self, token: AccessToken, doc_id: str, *, request_id: str | None
                ) -> list[tuple[DocumentView, dict[str, Any]]]:
        asked = f"DocumentReference/{doc_id}/_history"
        served = Served(token, AuditAction.DOCUMENT_READ, request_id, asked)
        found = self._visible(token, self._svc.documents.get(doc_id), served)
        items = []
        if found is not None:
            _, access = found
            for view in self._svc.documents.history(doc_id):
                result = _serve(served, access, view)
                if result is not None:
                    items.append((view, result))
        self._svc.audit.append(served.events())
        if not items:
            raise not_found(f"DocumentReference/{doc_id}")
        return items

    def open(self, token: AccessToken, content_id: str, rng: tuple[int, int] | None = None,
             *, request_id: str | None, range_of: Any = None
             ) -> tuple[DocumentView, ContentReader]:
        """The content, verified as it streams; audited before the first byte. ``range_of``
        turns the document's size into the range (so a bad range is only told to those
        permitted)."""
        asked = f"Binary/{content_id}"
        served = Served(token, AuditAction.DOCUMENT_READ, request_id, asked)
        found = self._visible(token, self._svc.documents.by_content(content_id), served)
        if found is not None and found[0].status == ENTERED_IN_ERROR and (
                found[0].org_code != token.org):
            found = None  # withdrawn: only its author may still retrieve the content
        if found is None:
            self._svc.audit.append(served.events())
            raise not_found(asked)
        view, access = found
        resource = stored(view)
        served.add(access, resource, resource.resource)
        served.resources.append(asked)
        if range_of is not None:
            rng = range_of(view.size)
        reader = self._svc.documents.open(view, *(rng or (0, None)))
        try:
            self._svc.audit.append(served.events())
        except BaseException:
            reader.close()
            raise
        return view, reader
