"""Small builders for audit events, chains and clocks, shared by the audit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from joinedup.audit.events import (
    GENESIS_HASH,
    Actor,
    AuditAction,
    AuditEvent,
    Outcome,
    chain_hash,
)
from joinedup.audit.store import Head

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class FixedClock:
    """A clock tests move by hand; also the default ``time`` of events they build."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def read(
    person: str = "P-1",
    *,
    org: str = "RWX",
    practitioner: str | None = "RWX-P1",
    role: str = "clinician",
    time: datetime = T0,
    **kwargs: Any,
) -> AuditEvent:
    """A permitted record read by a clinician."""
    fields: dict[str, Any] = {
        "action": AuditAction.RECORD_READ,
        "actor": Actor(org, f"{org.lower()}-epr", practitioner, role),
        "outcome": Outcome.PERMIT,
        "purpose": "direct-care",
        "persons": (person,),
        "resources": ("Observation/o1",),
        "reasons": ("agreement",),
        "request_id": "req-1",
        "time": time,
    }
    fields.update(kwargs)
    return AuditEvent(**fields)


def chain_rows(events: list[AuditEvent], *, start: tuple[int, str] = (0, GENESIS_HASH)) -> list[tuple[Any, ...]]:
    """Rows as ``ChainVerifier`` reads them (body-derived columns, ISO time text)."""
    seq, prev = start
    rows = []
    for event in events:
        seq += 1
        body = event.canonical(seq)
        hash_ = chain_hash(prev, body)
        rows.append(row_for(seq, prev, hash_, body, event))
        prev = hash_
    return rows


def row_for(seq: int, prev: str, hash_: str, body: bytes, event: AuditEvent) -> tuple[Any, ...]:
    from joinedup.audit.events import format_time

    a = event.actor
    return (
        seq, prev, hash_, body.decode(), format_time(event.time), event.action.value,
        event.outcome.value, a.org, a.client_id, a.practitioner, a.role,
        None if event.purpose is None else event.purpose.value, event.break_glass,
        event.subject_seq,
    )


def head_of(rows: list[tuple[Any, ...]], log_id: str = "log1") -> Head:
    if not rows:
        return Head(log_id, 0, GENESIS_HASH, 0, None)
    return Head(log_id, rows[-1][0], rows[-1][2], 0, None)
