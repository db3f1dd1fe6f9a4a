"""Reading events back: search, single events, and the reviews of break-glass events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, and_, func, select

from joinedup.audit.events import (
    AuditAction,
    AuditEvent,
    LoggedEvent,
    Outcome,
    Review,
    ReviewOutcome,
)
from joinedup.audit.models import events_table as E
from joinedup.audit.models import persons_table as P
from joinedup.audit.store import DB_ERRORS, unavailable
from joinedup.storage.engine import Database

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A filter over the log; every field narrows it. Times: since inclusive, until exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    person: str | None = None
    org: str | None = None
    practitioner: str | None = None
    actions: frozenset[AuditAction] = field(default_factory=frozenset)
    outcomes: frozenset[Outcome] = field(default_factory=frozenset)
    break_glass: bool | None = None
    before_seq: int | None = None
    """Paging cursor: only events older (lower seq) than this."""
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}")


def _where(query: EventQuery) -> list[Any]:
    clauses: list[Any] = []
    if query.since is not None:
        clauses.append(E.c.time >= query.since)
    if query.until is not None:
        clauses.append(E.c.time < query.until)
    if query.org is not None:
        clauses.append(E.c.org == query.org)
    if query.practitioner is not None:
        clauses.append(E.c.practitioner == query.practitioner)
    if query.actions:
        clauses.append(E.c.action.in_(sorted(a.value for a in query.actions)))
    if query.outcomes:
        clauses.append(E.c.outcome.in_(sorted(o.value for o in query.outcomes)))
    if query.break_glass is not None:
        clauses.append(E.c.break_glass.is_(query.break_glass))
    if query.person is not None:
        clauses.append(
            E.c.seq.in_(select(P.c.seq).where(P.c.person_id == query.person).scalar_subquery())
        )
    return clauses


def _logged(row: Any) -> LoggedEvent:
    event = AuditEvent.from_body(orjson.loads(row.body))
    return LoggedEvent(int(row.seq), str(row.prev_hash), str(row.hash), event)


def _select(query: EventQuery) -> Select[Any]:
    stmt = select(E.c.seq, E.c.prev_hash, E.c.hash, E.c.body).where(*_where(query))
    if query.before_seq is not None:
        stmt = stmt.where(E.c.seq < query.before_seq)
    return stmt


def find_events(db: Database, query: EventQuery) -> list[LoggedEvent]:
    """Matching events, newest first, at most ``query.limit``; break-glass ones carry their review."""
    stmt = _select(query).order_by(E.c.seq.desc()).limit(query.limit)
    try:
        with db.engine.connect() as conn:
            found = [_logged(row) for row in conn.execute(stmt)]
            return attach_reviews(conn, found)
    except DB_ERRORS as exc:
        raise unavailable(db, exc, "read") from exc


def count_events(db: Database, query: EventQuery) -> int:
    stmt = select(func.count()).select_from(E).where(*_where(query))
    try:
        with db.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    except DB_ERRORS as exc:
        raise unavailable(db, exc, "read") from exc


def iter_events(db: Database, query: EventQuery, batch: int = 1000) -> Iterator[LoggedEvent]:
    """Every matching event, oldest first, fetched in pages (memory flat; no limit)."""
    after = 0
    while True:
        stmt = (
            select(E.c.seq, E.c.prev_hash, E.c.hash, E.c.body)
            .where(*_where(query), E.c.seq > after)
            .order_by(E.c.seq)
            .limit(batch)
        )
        try:
            with db.engine.connect() as conn:
                page = [_logged(row) for row in conn.execute(stmt)]
                page = attach_reviews(conn, page)
        except DB_ERRORS as exc:
            raise unavailable(db, exc, "read") from exc
        yield from page
        if len(page) < batch:
            return
        after = page[-1].seq


def get_event(db: Database, seq: int) -> LoggedEvent | None:
    stmt = select(E.c.seq, E.c.prev_hash, E.c.hash, E.c.body).where(E.c.seq == seq)
    try:
        with db.engine.connect() as conn:
            row = conn.execute(stmt).first()
            if row is None:
                return None
            return attach_reviews(conn, [_logged(row)])[0]
    except DB_ERRORS as exc:
        raise unavailable(db, exc, "read") from exc


def attach_reviews(conn: Any, events: Sequence[LoggedEvent]) -> list[LoggedEvent]:
    """Give each break-glass event its review (the first recorded), if any."""
    wanted = [e.seq for e in events if e.event.action == AuditAction.BREAK_GLASS]
    if not wanted:
        return list(events)
    reviews = reviews_for(conn, wanted)
    return [
        LoggedEvent(e.seq, e.prev_hash, e.hash, e.event, reviews.get(e.seq)) if e.seq in reviews
        else e
        for e in events
    ]


def reviews_for(conn: Any, seqs: Iterable[int]) -> dict[int, Review]:
    found: dict[int, Review] = {}
    wanted = sorted(set(seqs))
    for i in range(0, len(wanted), 500):
        stmt = (
            select(E.c.seq, E.c.subject_seq, E.c.body)
            .where(and_(E.c.action == AuditAction.AUDIT_REVIEW.value,
                        # Spelt out so both planners match the partial index.
                        E.c.subject_seq.is_not(None),
                        E.c.subject_seq.in_(wanted[i : i + 500])))
            .order_by(E.c.seq)
        )
        for row in conn.execute(stmt):
            subject = int(row.subject_seq)
            if subject in found:
                continue
            event = AuditEvent.from_body(orjson.loads(row.body))
            note = event.detail.get("note")
            found[subject] = Review(
                outcome=ReviewOutcome(event.detail["outcome"]),
                reviewer=event.actor.practitioner,
                time=event.time,
                review_seq=int(row.seq),
                note=note if isinstance(note, str) else None,
            )
    return found
