"""``POST /admin/access/explain`` (``audit:read``): what a token's requester may see of a
person, and why, as JSON: one entry per (owner organisation, data category,
sensitivities) with the decision, reason codes, agreement, consent directive and
obligations, and the reason codes' meanings. The body is
``{"token": "<access token>", "person": "<person id or Patient id>"}``; the token
is verified as the API would verify it. Audited (``access.explain``) before the
answer; an unknown person is 404.

The hub's IG staff explain anyone's access to anyone. A partner organisation's
IG lead (``audit:read``) explains only its own organisation's tokens, about a
person it holds a record of: the answer names every organisation holding a
record of the person and all their directives, which is not a partner's to
learn about persons it does not care for. Anything else is answered as an
unknown person.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from joinedup.access.explain import explain_event
from joinedup.access.purposes import Purpose
from joinedup.access.service import requester_identity
from joinedup.api.audit_trail import actor_of
from joinedup.api.deps import Token, require, services
from joinedup.auth.permissions import Permission
from joinedup.errors import Forbidden, InvalidInput, NotFound, Problem, Unauthenticated
from joinedup.services import Services

router = APIRouter(prefix="/access", tags=["admin: access"],
                   dependencies=[Depends(require(Permission.AUDIT_READ))])
Svc = Annotated[Services, Depends(services)]


@router.post("/explain", summary="Every decision a token's requester gets about a person")
def explain(request: Request, token: Token, svc: Svc,
            body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    problems = [Problem("required (a string)", f) for f in ("token", "person")
                if not isinstance(body.get(f), str) or not body[f]]
    if problems:
        raise InvalidInput("say whose access to explain, about whom", problems)
    try:
        explained = svc.verifier().verify(body["token"])
    except Unauthenticated as exc:  # the body's token, not the caller's: 422, not 401
        raise InvalidInput("the token to explain is not valid",
                           [Problem(exc.detail, "token")]) from None
    request_id = getattr(request.state, "request_id", None)
    purpose = token.purpose if token.purpose is not None else Purpose.GOVERNANCE
    try:  # before the person is looked up, so the refusal says nothing about them
        requester_identity(explained)
    except Forbidden as exc:  # the explained token reads no care records at all
        raise InvalidInput("the token to explain cannot read care records",
                           [Problem(exc.detail, "token")]) from None
    try:
        found = svc.access.explain(explained, body["person"])
        if not svc.registry.is_hub(token.org) and (
                explained.org != token.org or token.org not in found.owners):
            raise NotFound(f"no person or Patient {body['person']!r} is known")
    except NotFound:
        svc.audit.append([explain_event(actor_of(token), explained, person=None,
                                        purpose=purpose, request_id=request_id)])
        raise
    svc.audit.append([explain_event(actor_of(token), explained, person=found.person,
                                    purpose=purpose, request_id=request_id)])
    return found.as_dict()
