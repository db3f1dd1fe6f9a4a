"""The shared care record over FHIR R4: read, ``Patient/$everything`` and search.

Every answer comes from the caller's access decisions about the person the
data is about (``joinedup.access.service``), applied **in the SQL query**, so
what the caller may not see is indistinguishable from what does not exist:
the same 404 body, the same empty searchset, the same totals. What comes back
is minimised (withheld fields masked, over-sensitive records as REDACTED
stubs). Every request is audited before it is answered; if the audit log
cannot take the event the request fails with 503 and nothing is served.

* ``GET /fhir/{type}/{id}``: read the current version.
* ``GET /fhir/{type}/{id}/_history/{vid}`` (vread) and ``GET /fhir/{type}/{id}/_history``:
  past versions. A version is served only if the caller may see the resource's
  current version *and* that version, each by its own labels, and the version is
  about the same person; any other version does not exist for the caller.
* ``GET /fhir/Patient/{id}/$everything``: the person's joined-up record, every
  linked Patient record's resources across organisations, as a searchset.
* ``GET /fhir/Patient?identifier=|name=|family=|given=|birthdate=|...``
* ``GET /fhir/{type}?patient=<id>&...`` (``subject`` too) for the other types;
  they need exactly one patient.
* ``_count`` (default 50, at most 1000) and ``_offset`` paging with ``next``
  and ``previous`` links; ``total`` is always the number the caller may see.
* ``_include=<type>:<param>`` (``*`` for every reference parameter): the resources
  the matches reference, read through the same access filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from joinedup.access.decisions import Action, Decision, summarise
from joinedup.access.minimise import AsStored
from joinedup.access.read_cache import Answer
from joinedup.access.service import (
    AccessService,
    PersonAccess,
    Served,
    requester_identity,
    served_key,
    union_filter,
)
from joinedup.api.deps import (
    BEARER_OPENAPI,
    Token,
    authenticated_for,
    fhir_base,
    public_url,
    require,
    services,
)
from joinedup.audit.events import AuditAction
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.errors import InvalidInput, NotFound, Problem, UserError
from joinedup.records.params import SEARCH_PARAMS, Kind
from joinedup.records.query import MAX_COUNT, Query, ReferenceValue, parse_query
from joinedup.records.search import Filter
from joinedup.records.store import RecordStore, StoredResource
from joinedup.services import Services


async def _practitioner(token: Token) -> None:
    """Checked before anything is looked up, so the refusal says nothing about the data."""
    requester_identity(token)


_READER = [Depends(require(Permission.RECORDS_READ)), Depends(_practitioner)]
router = APIRouter(tags=["fhir: records"], dependencies=_READER)
everything_router = APIRouter(tags=["fhir: records"])
"""``Patient/$everything`` alone: the application matches it before every other route
(``joinedup.api.fhir.first``), since FastAPI tries routes one by one, nested routers
included, and reaching it after the admin and other FHIR routes cost more CPU than
its own SQL. No other route's path can match ``/fhir/Patient/{id}/$everything``."""

FHIR_JSON = "application/fhir+json"
MAX_CANDIDATES = 200
"""A Patient search decides for at most this many matching Patient records
(the first by id); a search matching more should be narrowed."""
_IGNORED = frozenset({"_format", "_pretty", "_summary", "_total", "_totalMethod"})
"""Accepted and ignored: formatting hints, and total modes (the total is always exact)."""
Svc = Annotated[Services, Depends(services)]


def _fhir(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, media_type=FHIR_JSON)


def _not_found(resource_type: str, resource_id: str) -> NotFound:
    """The one answer for absent and not permitted alike."""
    return NotFound(f"{resource_type}/{resource_id} is not known")


def _known_type(resource_type: str) -> None:
    if resource_type not in SEARCH_PARAMS:
        raise NotFound(f"this server holds no {resource_type} resources")


def _audited(svc: Services, served: Served) -> None:
    """Write the request's events; ``Unavailable`` (503) if the log cannot take them."""
    svc.audit.append(served.events())


def _served(token: AccessToken, request: Request, action: AuditAction, asked: str) -> Served:
    return Served(token, action, getattr(request.state, "request_id", None), asked)


def _entry(
    base: str, stored: StoredResource, resource: dict[str, Any], mode: str = "match"
) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{stored.resource_type}/{stored.id}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _bundle(
    request: Request,
    total: int,
    entries: list[dict[str, Any]],
    page: tuple[int, int] | None,
    kind: str = "searchset",
) -> dict[str, Any]:
    """A Bundle; ``page`` (offset, count) adds ``next``/``previous`` links, made of the
    caller's own parameters and an offset within the total the caller may see."""
    bundle = _searchset(public_url(request), total, entries, kind)
    links = bundle["link"]
    if page is not None:
        offset, count = page
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "_offset"]
        url = public_url(request, request.url.remove_query_params("_offset")).split("?")[0]
        if offset + count < total and count:
            nxt = urlencode([*params, ("_offset", str(offset + count))])
            links.append({"relation": "next", "url": f"{url}?{nxt}"})
        if offset > 0:
            prev = urlencode([*params, ("_offset", str(max(0, offset - count)))])
            links.append({"relation": "previous", "url": f"{url}?{prev}"})
    return bundle


def _searchset(
    self_url: str, total: int, entries: list[dict[str, Any]], kind: str = "searchset"
) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }


EVERYTHING_READER = authenticated_for(Permission.RECORDS_READ, requester_identity)
"""``authenticated`` and ``_READER``'s checks as the one dependency of the router that
holds ``$everything`` (``joinedup.api.fhir.first``); the token is on ``request.state``."""


@everything_router.get("/Patient/{id}/$everything", summary="The person's joined-up record",
                       openapi_extra=BEARER_OPENAPI)
async def everything(id: str, request: Request) -> Response:
    """An answer the worker's read cache holds whole is decided in the event loop (no
    I/O); otherwise the database work runs in one threadpool call on one connection.
    The wait for the audit commit holds no thread (``append_async``). A cache hit for a
    request nothing is unusual about is usually answered before FastAPI by
    ``joinedup.api.fast_lane``, with this route's functions (``everything_served``,
    ``everything_body``); this route answers everything else."""
    svc: Services = request.app.state.services
    token: AccessToken = request.state.token  # set by EVERYTHING_READER
    base = fhir_base(request)
    found = svc.access.everything_in_memory(token, id, base)  # the read cache: no I/O
    if found is None:
        found = await run_in_threadpool(
            svc.access.everything, token, id, lambda a, f: _everything_answer(a, f, base), base)
    served = everything_served(token, getattr(request.state, "request_id", None), id, found)
    await svc.audit.append_async(served.events())
    entries = found[1].entries if found is not None and found[1].resources else ()
    if not entries:  # nothing to see: the same answer as an unknown id
        raise _not_found("Patient", id)
    return Response(everything_body(public_url(request), entries), media_type=FHIR_JSON)


def everything_served(
    token: AccessToken, request_id: str | None, id: str, found: tuple[str, Answer] | None
) -> Served:
    """What a ``$everything`` answer served, for its audit events."""
    served = Served(token, AuditAction.RECORD_READ, request_id, f"Patient/{id}/$everything")
    if found is not None:
        person_id, answer = found
        served.considered.add(person_id)
        if answer.resources:
            served.add_answer(person_id, answer.resources, answer.decisions, answer.redacted,
                              answer.summary)
    return served


def everything_body(self_url: str, entries: Sequence[bytes]) -> bytes:
    """The searchset Bundle of a ``$everything`` answer (``self_url``: the request's
    ``public_url``): the same JSON as the other routes' ``_bundle``, with the entries
    (JSON text) spliced in."""
    head = orjson.dumps(_searchset(self_url, len(entries), []))
    return b"".join((head[: -len(_EMPTY_ENTRIES)], b',"entry":[', b",".join(entries), b"]}"))


_EMPTY_ENTRIES = b',"entry":[]}'


def _everything_answer(
    access: PersonAccess, found: Sequence[StoredResource], base: str
) -> Answer:
    """The Bundle entries as JSON text, and what the audit event lists of them. A
    resource served as it is stored is its stored text (no parse-copy-dump); a
    minimised one is dumped afresh."""
    entries: list[bytes] = []
    resources: list[str] = []
    decisions: dict[tuple[str, str, str], Decision] = {}
    redacted = 0
    for stored in found:
        plan = access.serve_plan(stored)
        if plan is None:
            continue
        resource = stored.body.encode() if isinstance(plan, AsStored) else orjson.dumps(plan)
        # what Served.add lists: the reference and the decision that served it
        resources.append(stored.reference)
        decision = access.decisions_for(stored)
        decisions[served_key(stored)] = decision
        if not decision.permitted:
            redacted += 1
        url = orjson.dumps(f"{base}/{stored.resource_type}/{stored.id}")
        entries.append(b"".join((b'{"fullUrl":', url, b',"resource":', resource,
                                 b',"search":{"mode":"match"}}')))
    summary = summarise(decisions.values())
    return Answer(tuple(entries), tuple(resources), decisions, redacted, summary)


@router.get("/{type}/{id}", summary="Read a resource")
def read(type: str, id: str, request: Request, token: Token, svc: Svc) -> JSONResponse:
    _known_type(type)
    served = _served(token, request, AuditAction.RECORD_READ, f"{type}/{id}")
    result = None
    found = _current(svc, token, type, id, served)
    if found is not None:
        access, stored = found
        result = access.minimise(stored)
        if result is not None:
            served.add(access, stored, result)
    _audited(svc, served)
    if result is None:
        raise _not_found(type, id)
    return _fhir(result)


def _current(
    svc: Services, token: AccessToken, type: str, id: str, served: Served
) -> tuple[PersonAccess, StoredResource] | None:
    """The caller's access to the person a resource is about, and the resource's
    current version if the caller may see it; None otherwise (absent alike)."""
    if type == "Patient":
        subject: str | None = id
    else:  # whose record is it? (an internal look, never shown)
        found = svc.records.read(type, id)
        subject = found.subject_id if found is not None else None
    if subject is None:
        return None
    access = svc.access.for_patient(token, subject, Action.READ)
    if access is None:
        return None
    served.considered.add(access.person_id)
    stored = svc.records.read(type, id, where=access.where())
    return (access, stored) if stored is not None else None


@router.get("/{type}/{id}/_history/{vid}", summary="Read one version of a resource (vread)")
def vread(
    type: str, id: str, vid: str, request: Request, token: Token, svc: Svc
) -> JSONResponse:
    """A past (or the current) version. The rule: served only when the caller may
    see the current version and this version (its own labels, the same person)."""
    _known_type(type)
    asked = f"{type}/{id}/_history/{vid}"
    served = _served(token, request, AuditAction.RECORD_READ, asked)
    result = None
    # versions are whole numbers: any other vid exists for no one, asked of anyone
    found = _current(svc, token, type, id, served) if vid.isdigit() else None
    if found is not None:
        access, _now = found
        version = svc.records.vread(type, id, int(vid), where=access.where())
        result = access.minimise(version) if version is not None else None
        if version is not None and result is not None:
            served.add(access, version, result, reference=asked)
    _audited(svc, served)
    if result is None:
        raise NotFound(f"{asked} is not known")
    return _fhir(result)


@router.get("/{type}/{id}/_history", summary="The versions of a resource the caller may see")
def history(type: str, id: str, request: Request, token: Token, svc: Svc) -> JSONResponse:
    """A ``history`` Bundle, newest first, of the versions :func:`vread` would serve."""
    _known_type(type)
    count, offset = _history_paging(request)
    served = _served(token, request, AuditAction.RECORD_READ, f"{type}/{id}/_history")
    found = _current(svc, token, type, id, served)
    entries: list[dict[str, Any]] = []
    total = 0
    if found is not None:
        access, _now = found
        page = svc.records.history_page(
            type, id, where=access.where(), limit=count, offset=offset
        )
        total = page.total or 0
        base = fhir_base(request)
        for version in page.items:
            result = access.minimise(version)
            if result is None:
                continue
            ref = f"{type}/{id}/_history/{version.version_id}"
            served.add(access, version, result, reference=ref)
            entries.append(_history_entry(base, version, result))
    _audited(svc, served)
    if found is None:
        raise _not_found(type, id)
    return _fhir(_bundle(request, total, entries, (offset, count), kind="history"))


def _history_entry(base: str, stored: StoredResource, resource: dict[str, Any]) -> dict[str, Any]:
    created = stored.version_id == 1
    return {
        "fullUrl": f"{base}/{stored.resource_type}/{stored.id}",
        "resource": resource,
        "request": {
            "method": "POST" if created else "PUT",
            "url": stored.resource_type if created else stored.reference,
        },
        "response": {
            "status": "201" if created else "200",
            "etag": f'W/"{stored.version_id}"',
            "lastModified": stored.last_updated.isoformat().replace("+00:00", "Z"),
        },
    }


def _history_paging(request: Request) -> tuple[int, int]:
    """``_count`` and ``_offset`` of a history request; anything else is refused
    (``_since``/``_at`` are not supported), every problem at once."""
    count, offset = 100, 0
    problems: list[Problem] = []
    for name, raw in _search_params(request):
        if name in ("_count", "_offset"):
            if not raw.isdigit():
                problems.append(Problem("must be a whole number", name))
            elif name == "_count":
                count = int(raw)
                if count > MAX_COUNT:
                    problems.append(Problem(f"must be between 0 and {MAX_COUNT}", name))
            else:
                offset = int(raw)
        else:
            problems.append(Problem("is not supported on _history (only _count, _offset)", name))
    if problems:
        raise UserError("invalid history request", problems)
    return count, offset


def _search_params(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k not in _IGNORED]


def _patient_of(query: Query) -> str:
    """The one Patient a non-Patient search is about."""
    subjects = [c for c in query.criteria if query.param(c.param).kind is Kind.SUBJECT]
    values = [v for c in subjects for v in c.values]
    if len(values) != 1 or not isinstance(values[0], ReferenceValue):
        raise UserError(  # 400, as FHIR expects of a search it cannot run
            f"a {query.resource_type} search needs exactly one patient",
            [Problem("give exactly one patient=<Patient id>", "patient")],
        )
    return values[0].id


def _candidates(store: RecordStore, query: Query) -> list[str]:
    """Patient ids the criteria match, before access: only to know whose decisions
    to make. Never counted or shown."""
    probe = Query(
        query.resource_type,
        query.criteria,
        query.ids,
        query.last_updated,
        query.active_only,
        count=MAX_CANDIDATES,
    )
    return [s.id for s in store.search(probe, total=False).items]


@router.get("/{type}", summary="Search")
def search(type: str, request: Request, token: Token, svc: Svc) -> JSONResponse:
    _known_type(type)
    try:
        query = parse_query(type, _search_params(request))
    except InvalidInput as exc:  # FHIR answers a search it cannot run with 400
        raise UserError(exc.detail, exc.problems) from None
    served = _served(token, request, AuditAction.RECORD_SEARCH, f"{type}?")
    access_svc: AccessService = svc.access
    if type == "Patient":
        accesses = access_svc.for_patients(token, _candidates(svc.records, query))
    else:
        found = access_svc.for_patient(token, _patient_of(query), Action.SEARCH)
        accesses = [found] if found is not None else []
    served.considered.update(a.person_id for a in accesses)
    where: Filter = union_filter(accesses)
    page = svc.records.search(query, where=where)
    included = svc.records.included(query, page.items, where=where)
    by_subject = {pid: a for a in accesses for pid in a.patient_ids}
    base = fhir_base(request)
    entries = []
    for stored, mode in [*((s, "match") for s in page.items),
                         *((s, "include") for s in included)]:
        access: PersonAccess | None = by_subject.get(stored.subject_id or "")
        result = access.minimise(stored) if access is not None else None
        if access is not None and result is not None:
            served.add(access, stored, result)
            entries.append(_entry(base, stored, result, mode))
    _audited(svc, served)
    return _fhir(_bundle(request, page.total or 0, entries, (query.offset, query.count)))
