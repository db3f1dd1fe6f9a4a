"""Admin routes for the audit log (IG leads): verify, reports, break-glass reviews, exports.

Mounted under the admin router (``/admin/audit``), so every route needs a
token; each declares the permission it needs. Reading the audit log is
itself audited (``audit.query``), and fails closed like any read.

The log names people and what was read about them, so who may read which part
of it is decided here, not only by the ``audit:read`` scope: the hub's IG (the
area's Caldicott function) reads the whole log; a partner organisation's IG
lead reads only the events its own organisation's staff and systems caused.
Area-wide reports and break-glass reviews are the hub's. Verification and the
checkpoint export carry no personal data and are open to any ``audit:read``
holder, so that a third party can check the log.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from joinedup.api.audit_trail import actor_of
from joinedup.api.deps import Token, require
from joinedup.audit.events import AuditAction, AuditEvent, Outcome
from joinedup.audit.export import export_lines
from joinedup.audit.reports import REPORTS, report_json
from joinedup.audit.service import AuditLog
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.errors import Forbidden, InvalidInput, NotFound, Problem

router = APIRouter(prefix="/audit", tags=["admin: audit"])

Read = Depends(require(Permission.AUDIT_READ))
ReviewPermission = Depends(require(Permission.AUDIT_REVIEW))


def audit_log(request: Request) -> AuditLog:
    """The process's AuditLog: ``Services.audit`` once wired, else ``app.state.audit``."""
    log = getattr(request.app.state.services, "audit", None) or getattr(
        request.app.state, "audit", None
    )
    assert isinstance(log, AuditLog), "the app has no AuditLog: wire Services.audit"
    return log


Log = Annotated[AuditLog, Depends(audit_log)]


def area_wide(request: Request, token: AccessToken) -> bool:
    """Whether the caller reads the whole area's log (the hub), not only its own
    organisation's events. Without a registry to ask, no one does."""
    registry = getattr(request.app.state.services, "registry", None)
    return registry is not None and registry.is_hub(token.org)


def _hub_only(request: Request, token: AccessToken, what: str) -> None:
    if not area_wide(request, token):
        raise Forbidden(f"{what} cover the whole area: they are for the hub's IG team")


def _request_id(request: Request) -> str | None:
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else None


def record_query(
    log: AuditLog,
    token: AccessToken,
    request: Request,
    operation: str,
    persons: tuple[str, ...] = (),
    **detail: Any,
) -> None:
    """Audit a read of the audit log before answering it."""
    log.append(
        [
            AuditEvent(
                action=AuditAction.AUDIT_QUERY,
                actor=actor_of(token),
                outcome=Outcome.SUCCESS,
                purpose=token.purpose,
                persons=persons,
                request_id=_request_id(request),
                detail={"operation": operation, **detail},
            )
        ]
    )


def parse_instant(value: str, name: str, *, end: bool = False) -> datetime:
    """A date (UTC day; as an end, the whole day is included) or a datetime with zone."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, time(), tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            "the date range is not valid",
            [Problem("expected YYYY-MM-DD or an ISO 8601 date-time with a zone", name)],
        ) from None
    if parsed.tzinfo is None:
        raise InvalidInput(
            "the date range is not valid", [Problem("a date-time needs a zone (e.g. Z)", name)]
        )
    return parsed.astimezone(UTC)


@router.get("/verify", dependencies=[Read], summary="Verify the whole chain and its checkpoints")
def verify(log: Log, token: Token, request: Request) -> dict[str, Any]:
    record_query(log, token, request, "verify")
    return log.verify().as_dict()


@router.get(
    "/reports/{name}",
    dependencies=[Read],
    summary="An IG report by date range",
    responses={200: {"content": {"text/csv": {}}}},
)
def report(
    log: Log,
    token: Token,
    request: Request,
    name: Literal["break-glass", "denials", "self-declared", "volume"],
    from_: Annotated[str, Query(alias="from", description="YYYY-MM-DD or date-time with zone")],
    to: Annotated[str, Query(description="YYYY-MM-DD (inclusive) or date-time (exclusive)")],
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    assert name in REPORTS
    _hub_only(request, token, "IG reports")
    since, until = parse_instant(from_, "from"), parse_instant(to, "to", end=True)
    record_query(log, token, request, f"report:{name}")
    result = log.report(name, since, until)
    if format == "csv":
        return Response(
            result.to_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="audit-{name}.csv"'},
        )
    return Response(report_json(result), media_type="application/json")


@router.get("/events/{seq}", dependencies=[Read], summary="One audit event")
def event(log: Log, token: Token, request: Request, seq: int) -> dict[str, Any]:
    found = log.get(seq)
    if found is not None and found.event.actor.org != token.org and not area_wide(request, token):
        found = None  # another organisation's event: answered as if there were none
    record_query(
        log, token, request, "event", persons=() if found is None else found.event.persons, seq=seq
    )
    if found is None:
        raise NotFound(f"no audit event with seq {seq}")
    return found.as_dict()


@router.post(
    "/break-glass/{seq}/review",
    dependencies=[ReviewPermission],
    status_code=201,
    summary="Record the review of a break-glass event",
)
def review(
    log: Log,
    token: Token,
    request: Request,
    seq: int,
    body: Annotated[dict[str, Any], Body(examples=[{"outcome": "appropriate", "note": "A&E"}])],
) -> dict[str, Any]:
    _hub_only(request, token, "break-glass reviews")
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise InvalidInput("the review is not valid", [Problem("must be text", "note")])
    reviewed = log.review(
        seq,
        outcome=str(body.get("outcome", "")),
        reviewer=actor_of(token),
        note=note,
        request_id=_request_id(request),
    )
    return reviewed.as_dict()


@router.get(
    "/checkpoints/export",
    dependencies=[Read],
    summary="Signed checkpoints and public keys, as JSON lines, for a third party to keep",
    response_class=StreamingResponse,
)
def export(log: Log, token: Token, request: Request) -> StreamingResponse:
    record_query(log, token, request, "export-checkpoints")
    lines: Iterator[bytes] = export_lines(log.db, log.keys)
    first = next(lines)  # errors (empty log, store down) surface before the response starts
    return StreamingResponse(
        itertools.chain([first], lines),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit-checkpoints.jsonl"'},
    )


@router.get("/keys", dependencies=[Read], summary="The audit signing keys (public JWK Set)")
def keys(log: Log) -> dict[str, Any]:
    return log.keys.public_jwks()
