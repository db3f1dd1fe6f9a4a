"""FHIR routes of the audit log: the person's access report, and AuditEvent search.

* ``GET /fhir/Patient/{id}/$access-report``: a collection Bundle of
  AuditEvent, one per read of the person's record (organisation, role,
  purpose, time, break-glass). For the person themself (a person-scoped
  token for this id with purpose ``transparency``) and for IG leads
  (``audit:read``). Anyone else gets exactly the 404 a patient that does not
  exist gets.
* ``GET /fhir/AuditEvent``: search for IG leads (``audit:read``) by ``date``
  (prefixes ge, gt, le, lt, eq), ``patient``, ``agent`` (Organization/CODE,
  Practitioner/ID), ``subtype`` (a joinedup action code), ``outcome``
  (0, 4, 8), newest first, paged with ``_count`` and the ``next`` link; ``total``
  only with ``_total=accurate``.

Mount with ``protected.include_router(router)`` in ``joinedup.api.fhir``
(the router also declares authentication itself). Every answer is audited
(``audit.query``) before it is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from joinedup.access.purposes import Purpose
from joinedup.api.admin.audit import Log, area_wide, record_query
from joinedup.api.deps import Token, authenticated, public_url, require
from joinedup.audit.events import AuditAction, Outcome
from joinedup.audit.fhir import ACTION_SYSTEM, access_report_bundle, audit_event, search_bundle
from joinedup.audit.queries import MAX_PAGE, EventQuery
from joinedup.auth.permissions import Permission
from joinedup.errors import NotFound, Problem, UserError

router = APIRouter(tags=["fhir: audit"], dependencies=[Depends(authenticated)])

FHIR_JSON = "application/fhir+json"
DEFAULT_COUNT = 50
SEARCH_PARAMS = {
    "date",
    "patient",
    "agent",
    "subtype",
    "outcome",
    "_count",
    "_page",
    "_total",
    "_format",
}
_OUTCOMES = {"0": {Outcome.PERMIT, Outcome.SUCCESS}, "4": {Outcome.DENY}, "8": {Outcome.FAILURE}}


def _fhir(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, media_type=FHIR_JSON)


def _person_exists(request: Request, log: Any) -> Callable[[str], bool]:
    """The person index's existence check if the app wires one, else 'the log mentions them'."""
    check = getattr(request.app.state, "person_exists", None)
    if callable(check):
        return check  # type: ignore[no-any-return]
    return log.mentions  # type: ignore[no-any-return]


def _person_id(request: Request, patient_id: str) -> str:
    """The person behind a Patient record id; a person index id is accepted as it is."""
    people = getattr(request.app.state.services, "people", None)
    if people is None:
        return patient_id
    try:
        return str(people.person_of(f"Patient/{patient_id}"))
    except NotFound:
        return patient_id


@router.get("/Patient/{id}/$access-report", summary="Who looked at this person's record")
def access_report(id: str, request: Request, token: Token, log: Log) -> JSONResponse:
    not_found = NotFound(f"Patient/{id} is not known")
    id = _person_id(request, id)
    own = token.person == id and token.purpose is Purpose.TRANSPARENCY
    if not (own or token.has(Permission.AUDIT_READ)):
        raise not_found
    if not own and not _person_exists(request, log)(id):
        raise not_found
    if not own and not area_wide(request, token) and not _holds_record(request, token.org, id):
        raise not_found  # a partner's IG lead: only persons its organisation holds a record of
    report = log.access_report(id)
    record_query(log, token, request, "access-report", persons=(id,))
    return _fhir(access_report_bundle(report, self_url=public_url(request)))


def _holds_record(request: Request, org: str, person_id: str) -> bool:
    people = getattr(request.app.state.services, "people", None)
    if people is None:
        return False
    try:
        return org in people.person(person_id).records
    except NotFound:
        return False


def _date_bounds(values: list[str]) -> tuple[datetime | None, datetime | None, list[Problem]]:
    """FHIR ``date`` parameters as [since, until). A date covers its whole UTC day."""
    since: datetime | None = None
    until: datetime | None = None
    problems = []
    for raw in values:
        prefix, text = (
            (raw[:2], raw[2:]) if raw[:2] in {"ge", "gt", "le", "lt", "eq"} else ("eq", raw)
        )
        try:
            if len(text) == 10:
                start = datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
                after = start + timedelta(days=1)
            else:
                start = datetime.fromisoformat(text)
                if start.tzinfo is None:
                    raise ValueError("no zone")
                after = start + timedelta(microseconds=1)
        except ValueError:
            problems.append(
                Problem(f"{raw!r} is not a date (YYYY-MM-DD) or a date-time with a zone", "date")
            )
            continue
        low = {"ge": start, "eq": start, "gt": after}.get(prefix)
        high = {"le": after, "eq": after, "lt": start}.get(prefix)
        if low is not None:
            since = low if since is None else max(since, low)
        if high is not None:
            until = high if until is None else min(until, high)
    return since, until, problems


def _reference(value: str, kind: str) -> str:
    return value.split("/", 1)[1] if value.startswith(f"{kind}/") else value


def _query(request: Request) -> tuple[EventQuery, int]:
    params = request.query_params
    problems = [
        Problem("unknown search parameter", name) for name in sorted(set(params) - SEARCH_PARAMS)
    ]
    since, until, date_problems = _date_bounds(params.getlist("date"))
    problems += date_problems
    org = practitioner = None
    for agent in params.getlist("agent"):
        if agent.startswith("Practitioner/"):
            practitioner = _reference(agent, "Practitioner")
        else:
            org = _reference(agent, "Organization")
    actions: set[AuditAction] = set()
    for token in ",".join(params.getlist("subtype")).split(","):
        if not token:
            continue
        code = token.split("|", 1)[1] if "|" in token else token
        if "|" in token and token.split("|", 1)[0] not in {ACTION_SYSTEM, ""}:
            problems.append(Problem(f"unknown system in {token!r}", "subtype"))
        elif code in AuditAction._value2member_map_:
            actions.add(AuditAction(code))
        else:
            problems.append(Problem(f"unknown action code {code!r}", "subtype"))
    outcomes: set[Outcome] = set()
    for code in ",".join(params.getlist("outcome")).split(","):
        if code:
            if code in _OUTCOMES:
                outcomes |= _OUTCOMES[code]
            else:
                problems.append(Problem("must be 0, 4 or 8", "outcome"))
    count, before = DEFAULT_COUNT, None
    try:
        count = int(params.get("_count", DEFAULT_COUNT))
        before = int(params["_page"]) if "_page" in params else None
        if not 1 <= count <= MAX_PAGE:
            raise ValueError
    except ValueError:
        problems.append(Problem(f"_count must be 1..{MAX_PAGE}; _page a number", "_count"))
    if problems:
        raise UserError("the AuditEvent search is not valid", problems)  # 400, as FHIR expects
    patient = params.get("patient")
    query = EventQuery(
        since=since,
        until=until,
        person=_reference(patient, "Patient") if patient else None,
        org=org,
        practitioner=practitioner,
        actions=frozenset(actions),
        outcomes=frozenset(outcomes),
        before_seq=before,
        limit=count,
    )
    return query, count


@router.get(
    "/AuditEvent",
    dependencies=[Depends(require(Permission.AUDIT_READ))],
    summary="Search the audit log as FHIR AuditEvent",
)
def search(request: Request, token: Token, log: Log) -> JSONResponse:
    query, count = _query(request)
    # A partner's IG lead searches only its own organisation's events; asking for
    # another organisation's finds nothing, as a search for an unknown one does.
    nothing = False
    if not area_wide(request, token):
        nothing = query.org not in (None, token.org)
        query = replace(query, org=token.org)
    found = [] if nothing else log.search(query)
    # A count scans every match: only when asked for (FHIR ``_total=accurate``).
    total = (
        (0 if nothing else log.count(replace(query, before_seq=None)))
        if request.query_params.get("_total") == "accurate"
        else None
    )
    # Audited before it is answered (and after it ran, so it does not find itself).
    record_query(
        log, token, request, "AuditEvent-search", persons=(query.person,) if query.person else ()
    )
    next_url = None
    if len(found) == count:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "_page"]
        params.append(("_page", str(found[-1].seq)))
        next_url = public_url(request, request.url.replace(query=urlencode(params)))
    resources = [audit_event(e) for e in found]
    return _fhir(
        search_bundle(resources, self_url=public_url(request), next_url=next_url, total=total)
    )

