"""The person's access report: who looked at my record, when, why, and was the glass broken.

Built from the audit log's person index: every read served (record reads and
searches, document reads) and every permitted break-glass that concerned the
person. It names organisations and roles; individual staff only where the
area's policy says so (``show_staff_names``). Denied requests are not
listed: nobody saw anything. Reads of the audit log itself (an IG lead
running a report) are not record reads and are not listed either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select

from joinedup.audit.events import READ_ACTIONS, AuditAction, AuditEvent, Outcome, format_time
from joinedup.audit.models import events_table as E
from joinedup.audit.models import persons_table as P
from joinedup.audit.store import DB_ERRORS, unavailable
from joinedup.orgs.models import Organisation, Practitioner
from joinedup.storage.engine import Database

SHOWN_ACTIONS = frozenset({*READ_ACTIONS, AuditAction.BREAK_GLASS})
MAX_ENTRIES = 5000


@dataclass(frozen=True, slots=True)
class AccessEntry:
    seq: int
    time: datetime
    action: AuditAction
    organisation: str | None
    organisation_name: str | None
    role: str | None
    purpose: str | None
    break_glass: bool
    break_glass_reason: str | None
    practitioner: str | None = None
    """Only when the area's policy shows staff names."""
    practitioner_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": format_time(self.time),
            "action": self.action.value,
            "organisation": self.organisation,
            "organisation_name": self.organisation_name,
            "role": self.role,
            "purpose": self.purpose,
            "break_glass": self.break_glass,
            "break_glass_reason": self.break_glass_reason,
            **(
                {"practitioner": self.practitioner, "practitioner_name": self.practitioner_name}
                if self.practitioner is not None
                else {}
            ),
        }


@dataclass(frozen=True)
class AccessReport:
    person_id: str
    entries: tuple[AccessEntry, ...]
    staff_names_shown: bool
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "person": self.person_id,
            "staff_names_shown": self.staff_names_shown,
            "truncated": self.truncated,
            "entries": [e.as_dict() for e in self.entries],
        }


def _names(conn: Any, key: Any, name: Any, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = conn.execute(select(key, name).where(key.in_(wanted)))
    return {str(k): str(n) for k, n in rows}


def access_report(
    db: Database,
    person_id: str,
    *,
    show_staff_names: bool,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = MAX_ENTRIES,
) -> AccessReport:
    """Who looked at ``person_id``'s record, newest first."""
    stmt = (
        select(E.c.seq, E.c.body)
        .join(P, P.c.seq == E.c.seq)
        .where(
            P.c.person_id == person_id,
            E.c.action.in_(sorted(a.value for a in SHOWN_ACTIONS)),
            E.c.outcome.in_([Outcome.PERMIT.value, Outcome.SUCCESS.value]),
        )
        .order_by(E.c.seq.desc())
        .limit(limit + 1)
    )
    if since is not None:
        stmt = stmt.where(E.c.time >= since)
    if until is not None:
        stmt = stmt.where(E.c.time < until)
    try:
        with db.engine.connect() as conn:
            found = [(int(seq), AuditEvent.from_body(orjson.loads(body)))
                     for seq, body in conn.execute(stmt)]
            truncated = len(found) > limit
            found = found[:limit]
            orgs = _names(conn, Organisation.code, Organisation.name, (e.actor.org or "" for _, e in found))
            staff = (
                _names(conn, Practitioner.id, Practitioner.name, (e.actor.practitioner or "" for _, e in found))
                if show_staff_names
                else {}
            )
    except DB_ERRORS as exc:
        raise unavailable(db, exc, "read") from exc
    entries = tuple(
        AccessEntry(
            seq=seq,
            time=e.time,
            action=e.action,
            organisation=e.actor.org,
            organisation_name=orgs.get(e.actor.org or ""),
            role=e.actor.role,
            purpose=None if e.purpose is None else e.purpose.value,
            break_glass=e.break_glass,
            break_glass_reason=e.break_glass_reason,
            practitioner=e.actor.practitioner if show_staff_names else None,
            practitioner_name=staff.get(e.actor.practitioner or "") if show_staff_names else None,
        )
        for seq, e in found
    )
    return AccessReport(person_id, entries, show_staff_names, truncated)


def has_events(db: Database, person_id: str) -> bool:
    """Whether the log mentions the person at all (a fallback 'does this person exist')."""
    try:
        with db.engine.connect() as conn:
            row = conn.execute(select(P.c.seq).where(P.c.person_id == person_id).limit(1)).first()
    except DB_ERRORS as exc:
        raise unavailable(db, exc, "read") from exc
    return row is not None
