"""Admin routes for data stewards: the person index, its review queue, merges and history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from joinedup.api.audit_trail import record_change
from joinedup.api.deps import Token, require, services
from joinedup.audit.events import AuditAction
from joinedup.auth.permissions import Permission
from joinedup.errors import InvalidInput, Problem
from joinedup.people.index import PersonIndex
from joinedup.services import Services

router = APIRouter(prefix="/people", tags=["admin: person index"])
Steward = Depends(require(Permission.PEOPLE_REVIEW))


def index(svc: Annotated[Services, Depends(services)]) -> PersonIndex:
    return svc.people


Index = Annotated[PersonIndex, Depends(index)]


def _actor(token: Token) -> str:
    return token.practitioner or f"system/{token.client_id}"


@router.get("/review", dependencies=[Steward], summary="Uncertain pairs, evidence side by side")
def review_queue(
    people: Index,
    status: Annotated[str, Query(pattern="^(open|accepted|rejected)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    return people.review_queue(status=status, limit=limit)


@router.get("/review/{pair_id}", dependencies=[Steward], summary="One review pair")
def review_pair(people: Index, pair_id: int) -> dict[str, Any]:
    return people.pair(pair_id)


@router.post(
    "/review/{pair_id}/accept", dependencies=[Steward], summary="Same person: merge the two persons"
)
def accept(people: Index, token: Token, pair_id: int, request: Request) -> dict[str, Any]:
    merge = people.accept(pair_id, by=_actor(token))
    record_change(
        request,
        token,
        AuditAction.PERSON_MERGE,
        review_pair=pair_id,
        decision="accepted",
        merge=merge or None,
    )
    return {"pair": pair_id, "status": "accepted", "merge": merge or None}


@router.post(
    "/review/{pair_id}/reject",
    dependencies=[Steward],
    summary="Different people: never propose this pair again on the same evidence",
)
def reject(people: Index, token: Token, pair_id: int, request: Request) -> dict[str, Any]:
    people.reject(pair_id, by=_actor(token))
    record_change(request, token, AuditAction.PERSON_LINK, review_pair=pair_id, decision="rejected")
    return {"pair": pair_id, "status": "rejected"}


@router.post("/merges", dependencies=[Steward], status_code=201, summary="Merge two persons")
def merge(
    people: Index, token: Token, body: Annotated[dict[str, Any], Body()], request: Request
) -> dict[str, Any]:
    problems = [
        Problem("required", f)
        for f in ("survivor", "merged", "reason")
        if not isinstance(body.get(f), str)
    ]
    if problems:
        raise InvalidInput("invalid merge", problems)
    merge_id = people.merge(
        body["survivor"], body["merged"], by=_actor(token), reason=body["reason"]
    )
    record_change(
        request,
        token,
        AuditAction.PERSON_MERGE,
        persons=(body["survivor"], body["merged"]),
        merge=merge_id,
    )
    return {"merge": merge_id}


@router.post(
    "/merges/{merge_id}/undo",
    dependencies=[Steward],
    summary="Unmerge: restore exactly the state before the merge",
)
def unmerge(people: Index, token: Token, merge_id: int, request: Request) -> dict[str, Any]:
    people.unmerge(merge_id, by=_actor(token))
    record_change(request, token, AuditAction.PERSON_UNMERGE, merge=merge_id)
    return {"merge": merge_id, "undone": True}


@router.get(
    "/{person_id}", dependencies=[Steward], summary="A person's linked records by organisation"
)
def person(people: Index, person_id: str) -> dict[str, Any]:
    view = people.person(person_id)
    return {
        "id": view.person_id,
        "state": view.state,
        "flagged": view.flagged,
        "records": view.records,
    }


@router.get("/{person_id}/history", dependencies=[Steward], summary="Who linked what, when, how")
def history(people: Index, person_id: str) -> list[dict[str, Any]]:
    return people.history(person_id)
