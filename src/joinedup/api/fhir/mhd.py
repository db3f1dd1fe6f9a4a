"""IHE MHD on the partner API: publish (ITI-65), find (ITI-67) and retrieve (ITI-68).

* ``POST /fhir`` with a transaction Bundle (SubmissionSet List,
  DocumentReferences, a Binary each): accepted whole or refused whole with an
  OperationOutcome listing every problem (``documents:publish``).
* ``GET /fhir/DocumentReference?patient=|patient.identifier=&status=&type=&category=&date=``
  and ``GET /fhir/DocumentReference/{id}`` (``documents:read``).
* ``GET /fhir/Binary/{id}``: the content, streamed, with its content type,
  ``ETag`` (the SHA-1) and single ``Range`` requests (206).

Access is decided exactly as for records (``joinedup.access.service``): the
decisions about the person the document is about, by the document's owner
(the publishing organisation), data category and confidentiality from its
``securityLabel``, become one SQL condition on the registry's rows. Only
*permitted* documents are served (a document is not redacted into a stub);
what is not permitted answers exactly as what does not exist. Every read is
audited before it is answered, and fails with 503 if the audit log cannot
take it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import ColumnElement, Table, and_, false, or_

from joinedup.access.decisions import Action
from joinedup.access.service import PersonAccess, Served, requester_identity
from joinedup.api.deps import Token, authenticated, require, services
from joinedup.audit.events import Actor, AuditAction, AuditEvent, Outcome
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.documents.ranges import content_range, parse_range
from joinedup.documents.registry import STATUSES, DocumentQuery, DocumentView
from joinedup.documents.submission import SubjectRef
from joinedup.errors import InvalidInput, NotFound, Problem, UserError
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.records.query import parse_query
from joinedup.records.search import Filter
from joinedup.records.store import StoredResource
from joinedup.services import Services

router = APIRouter(tags=["fhir: documents (IHE MHD)"], dependencies=[Depends(authenticated)])
"""Mounted on the /fhir router before the records router, whose ``/{type}`` would
otherwise answer ``/DocumentReference``; auth is declared here once."""

FHIR_JSON = "application/fhir+json"
Svc = Annotated[Services, Depends(services)]
MAX_COUNT = 1000
_IGNORED = frozenset({"_format", "_pretty", "_summary", "_total"})
_SEARCH = frozenset({"patient", "patient.identifier", "status", "type", "category", "date",
                     "_count", "_offset"})


def _practitioner(token: Token) -> None:
    requester_identity(token)


_reader = [Depends(require(Permission.DOCUMENTS_READ)), Depends(_practitioner)]


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


def _stored(view: DocumentView) -> StoredResource:
    """The document as the access service's minimiser and audit record see a resource."""
    return StoredResource(
        "DocumentReference", view.id, 1, view.created_at, view.org_code, "mhd", "", view.id,
        view.category, view.sensitivity, True, view.subject_id, view.body,
    )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _absolute(base: str, resource: dict[str, Any]) -> dict[str, Any]:
    for content in resource.get("content", []):
        attachment = content.get("attachment", {})
        url = attachment.get("url")
        if isinstance(url, str) and url.startswith("Binary/"):
            attachment["url"] = f"{base}/{url}"
    return resource


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _not_found(what: str) -> NotFound:
    return NotFound(f"{what} is not known")


# -- publish (ITI-65) ----------------------------------------------------------------


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


async def publish(request: Request, token: Token, svc: Svc) -> JSONResponse:
    try:
        bundle = json.loads(await request.body())
    except ValueError:
        raise InvalidInput("the body is not JSON", [Problem("expected a Bundle", "body")]) from None
    resolver = _Resolver(svc, token)
    published = svc.documents.publish(bundle, org=token.org, resolver=resolver)
    persons = sorted({p for p in map(resolver.person, [d.subject_id for d in published.documents])
                      if p})
    resources = [f"List/{published.submission_set_id}",
                 *(d.reference for d in published.documents)]
    svc.audit.append([AuditEvent(
        action=AuditAction.DOCUMENT_PUBLISH, outcome=Outcome.SUCCESS,
        actor=Actor(token.org, token.client_id, token.practitioner, token.role),
        purpose=token.purpose, persons=tuple(persons), resources=tuple(resources),
        request_id=_request_id(request), detail={"documents": len(published.documents)},
    )])
    entries = [{"response": {"status": "201 Created",
                             "location": f"List/{published.submission_set_id}"}}]
    for doc in published.documents:
        entries.append({"response": {"status": "201 Created", "location": doc.reference,
                                     "etag": 'W/"1"'}})
        entries.append({"response": {"status": "201 Created",
                                     "location": f"Binary/{doc.content_id}"}})
    body = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    return JSONResponse(body, media_type=FHIR_JSON)


def mount(fhir: APIRouter) -> None:
    """Add the MHD routes to the /fhir router, before the records router.

    ITI-65 is ``POST`` on the FHIR base itself, a path FastAPI will not take from
    an included router (an empty prefix and path), so it is added directly,
    with the same authentication every other route here declares once."""
    fhir.include_router(router)
    fhir.add_api_route(
        "",
        publish,
        methods=["POST"],
        summary="ITI-65 Provide Document Bundle",
        tags=["fhir: documents (IHE MHD)"],
        dependencies=[Depends(authenticated), Depends(require(Permission.DOCUMENTS_PUBLISH))],
    )


# -- find (ITI-67) and read ------------------------------------------------------------


def _dates(values: list[str]) -> tuple[datetime | None, datetime | None, list[Problem]]:
    low = high = None
    problems: list[Problem] = []
    for value in values:
        prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            problems.append(Problem("must be a date, optionally prefixed ge/le/gt/lt", "date"))
            continue
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if prefix in ("ge", "gt", "eq"):
            low = when
        if prefix in ("le", "lt", "eq"):
            high = when if len(text) > 10 else when.replace(hour=23, minute=59, second=59)
        if prefix not in ("ge", "gt", "le", "lt", "eq"):
            problems.append(Problem(f"unsupported prefix {prefix!r}", "date"))
    return low, high, problems


def _split(values: list[str]) -> tuple[str, ...]:
    return tuple(v for value in values for v in value.split(",") if v)


def _int(value: str | None, default: int, name: str, problems: list[Problem]) -> int:
    if value is None:
        return default
    if not value.isdigit():
        problems.append(Problem("must be a whole number", name))
        return default
    return int(value)


def _parse_find(request: Request) -> tuple[list[str], list[str], DocumentQuery]:
    params: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        if k not in _IGNORED:
            params.setdefault(k, []).append(v)
    problems = [Problem("not a supported search parameter", k)
                for k in sorted(params) if k not in _SEARCH]
    patients = [v.removeprefix("Patient/") for v in params.get("patient", [])]
    identifiers = params.get("patient.identifier", [])
    if len(patients) + len(identifiers) != 1:
        problems.append(Problem("give exactly one patient or patient.identifier", "patient"))
    statuses = _split(params.get("status", [])) or ("current",)
    problems += [Problem(f"unknown status {s!r}", "status") for s in statuses if s not in STATUSES]
    low, high, date_problems = _dates(params.get("date", []))
    problems += date_problems
    count = min(_int(params.get("_count", [None])[-1], 50, "_count", problems), MAX_COUNT)
    offset = _int(params.get("_offset", [None])[-1], 0, "_offset", problems)
    if problems:
        raise UserError("the DocumentReference search cannot be run", problems)
    query = DocumentQuery(statuses, _split(params.get("type", [])),
                          _split(params.get("category", [])), low, high, count, offset)
    return patients, identifiers, query


def _accesses(svc: Services, token: AccessToken, patients: list[str],
              identifiers: list[str]) -> list[PersonAccess]:
    if patients:
        found = svc.access.for_patient(token, patients[0], Action.SEARCH)
        return [found] if found is not None else []
    query = parse_query("Patient", [("identifier", identifiers[0])])
    ids = [s.id for s in svc.records.search(query, total=False).items]
    return svc.access.for_patients(token, ids, Action.SEARCH)


def _union(accesses: list[PersonAccess]) -> Filter:
    filters = [permitted(a) for a in accesses]

    def condition(table: Table) -> ColumnElement[bool]:
        return or_(*(f(table) for f in filters)) if filters else false()

    return condition


@router.get("/DocumentReference", summary="ITI-67 Find Document References", dependencies=_reader)
def find(request: Request, token: Token, svc: Svc) -> JSONResponse:
    patients, identifiers, query = _parse_find(request)
    served = Served(token, AuditAction.RECORD_SEARCH, _request_id(request), "DocumentReference?")
    accesses = _accesses(svc, token, patients, identifiers)
    served.considered.update(a.person_id for a in accesses)
    views, total = svc.documents.find(query, where=_union(accesses))
    by_subject = {pid: a for a in accesses for pid in a.patient_ids}
    base = _base(request)
    entries = []
    for view in views:
        access = by_subject[view.subject_id]
        stored = _stored(view)
        result = access.minimise(stored)
        if result is not None:
            served.add(access, stored, result)
            entries.append({"fullUrl": f"{base}/{view.reference}",
                            "resource": _absolute(base, result), "search": {"mode": "match"}})
    svc.audit.append(served.events())
    body = {"resourceType": "Bundle", "type": "searchset", "total": total,
            "link": [{"relation": "self", "url": str(request.url)}], "entry": entries}
    return JSONResponse(body, media_type=FHIR_JSON)


def _visible(
    svc: Services, token: AccessToken, view: DocumentView | None, served: Served
) -> tuple[DocumentView, PersonAccess] | None:
    """The document again, through the caller's decisions about its person."""
    if view is None:
        return None
    access = svc.access.for_patient(token, view.subject_id, Action.READ)
    if access is None:
        return None
    served.considered.add(access.person_id)
    seen = svc.documents.get(view.id, where=permitted(access))
    return (seen, access) if seen is not None else None


@router.get("/DocumentReference/{id}", summary="Read a DocumentReference", dependencies=_reader)
def read(id: str, request: Request, token: Token, svc: Svc) -> JSONResponse:
    served = Served(token, AuditAction.DOCUMENT_READ, _request_id(request),
                    f"DocumentReference/{id}")
    found = _visible(svc, token, svc.documents.get(id), served)
    result = None
    if found is not None:
        view, access = found
        stored = _stored(view)
        result = access.minimise(stored)
        if result is not None:
            served.add(access, stored, result)
    svc.audit.append(served.events())
    if result is None:
        raise _not_found(f"DocumentReference/{id}")
    return JSONResponse(_absolute(_base(request), result), media_type=FHIR_JSON)


# -- retrieve (ITI-68) -----------------------------------------------------------------


@router.get("/Binary/{id}", summary="ITI-68 Retrieve Document", dependencies=_reader)
def retrieve(id: str, request: Request, token: Token, svc: Svc) -> Response:
    served = Served(token, AuditAction.DOCUMENT_READ, _request_id(request), f"Binary/{id}")
    found = _visible(svc, token, svc.documents.by_content(id), served)
    if found is None:
        svc.audit.append(served.events())
        raise _not_found(f"Binary/{id}")
    view, access = found
    stored = _stored(view)
    served.add(access, stored, stored.resource)
    served.resources.append(f"Binary/{id}")
    rng = parse_range(request.headers.get("range"), view.size)
    reader = svc.documents.open(view, *(rng or (0, None)))
    try:
        svc.audit.append(served.events())
    except BaseException:
        reader.close()
        raise
    headers = {"ETag": f'"{reader.info.sha1_hex}"', "Accept-Ranges": "bytes",
               "Content-Length": str(reader.length)}
    if rng:
        headers["Content-Range"] = content_range(reader.start, reader.stop, reader.size)

    def body() -> Iterator[bytes]:
        with reader:
            yield from reader

    return StreamingResponse(body(), status_code=206 if rng else 200, headers=headers,
                             media_type=view.content_type)
