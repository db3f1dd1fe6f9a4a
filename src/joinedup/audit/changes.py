"""Audit events for changes made outside a partner request: ingest batches from the CLI
or the demo loader, and the shape every batch event shares."""

from __future__ import annotations

from typing import Any

from joinedup.access.purposes import Purpose
from joinedup.audit.events import Actor, AuditAction, AuditEvent, Outcome

LOCAL_CLIENT = "joinedup-cli"
"""The client id recorded for changes made with the `joinedup` command on the server."""


def local_actor(org: str | None) -> Actor:
    return Actor(org=org, client_id=LOCAL_CLIENT)


def batch_event(
    event: dict[str, Any],
    actor: Actor,
    *,
    purpose: Purpose | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """The audit event for a batch, from ``BatchResult.event()`` (ids and counts only)."""
    failed = event.get("status") in {"failed", "refused"}
    return AuditEvent(
        action=AuditAction.INGEST_BATCH,
        actor=actor,
        outcome=Outcome.FAILURE if failed else Outcome.SUCCESS,
        purpose=purpose,
        request_id=request_id,
        detail={k: v for k, v in event.items() if v is not None},
    )
