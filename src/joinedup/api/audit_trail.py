"""Recording changes made through the admin API in the audit log.

Every successful write (organisations, feeds and batches, steward decisions)
appends one event naming the actor from the token, the action and ids only.
The change is already committed when its event is written; if the audit store
is down the caller gets 503 and the event is missing, which `audit verify`
cannot see, so operators alert on 503s from write routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from joinedup.audit.events import Actor, AuditAction, AuditEvent, Outcome
from joinedup.auth.tokens import AccessToken


def actor_of(token: AccessToken) -> Actor:
    return Actor(
        org=token.org, client_id=token.client_id, practitioner=token.practitioner, role=token.role
    )


def record_change(
    request: Request,
    token: AccessToken,
    action: AuditAction,
    *,
    persons: tuple[str, ...] = (),
    resources: tuple[str, ...] = (),
    outcome: Outcome = Outcome.SUCCESS,
    **detail: Any,
) -> None:
    request.app.state.services.audit.append(
        [
            AuditEvent(
                action=action,
                actor=actor_of(token),
                outcome=outcome,
                purpose=token.purpose,
                persons=persons,
                resources=resources,
                request_id=getattr(request.state, "request_id", None),
                detail={k: v for k, v in detail.items() if v is not None},
            )
        ]
    )
