"""Reports for IG leads, by date range, as JSON or CSV.

* **break-glass**: every emergency access in the range, with its reason and
  review state (pending, or the outcome, reviewer and time).
* **denials**: denied decisions counted by requesting organisation and the
  reason that decided (the first reason code).
* **self-declared**: accesses permitted on a relationship the practitioner
  declared themself, and the declarations, with the stated reason.
* **volume**: practitioners who, on some day in the range, read the records
  of unusually many distinct people. The rule: a (practitioner, day) is
  flagged when its count of distinct persons in reads served exceeds
  ``max(factor x median, floor)``, where ``median`` is the median of that
  practitioner's daily counts over the ``baseline_days`` before the range
  (days on which they read nothing are not counted, so part-time staff are
  not flagged for an ordinary day). A practitioner with no baseline is held
  to the floor alone.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select

from joinedup.audit.config import AuditConfig
from joinedup.audit.events import (
    READ_ACTIONS,
    SELF_DECLARED_REASON,
    AuditAction,
    LoggedEvent,
    Outcome,
    format_time,
)
from joinedup.audit.models import events_table as E
from joinedup.audit.models import persons_table as P
from joinedup.audit.queries import EventQuery, iter_events
from joinedup.audit.store import DB_ERRORS, unavailable
from joinedup.errors import InvalidInput, Problem
from joinedup.storage.engine import Database

REPORTS = ("break-glass", "denials", "self-declared", "volume")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Report:
    name: str
    since: datetime
    until: datetime
    columns: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]
    rule: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "from": format_time(self.since),
            "to": format_time(self.until),
            **({"rule": self.rule} if self.rule else {}),
            "columns": list(self.columns),
            "rows": [dict(r) for r in self.rows],
        }

    def to_csv(self) -> str:
        """CSV with a header row; text that a spreadsheet would run as a formula is quoted."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([_cell(row.get(c)) for c in self.columns])
        return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, list | tuple):
        value = ";".join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def check_range(since: datetime, until: datetime) -> None:
    problems = []
    for name, value in (("from", since), ("to", until)):
        if value.tzinfo is None:
            problems.append(Problem("must include a time zone (e.g. 2026-01-01T00:00:00Z)", name))
    if not problems and until <= since:
        problems.append(Problem("must be after 'from'", "to"))
    if problems:
        raise InvalidInput("the report's date range is not valid", problems)


def _events(db: Database, since: datetime, until: datetime, **filters: Any) -> Iterable[LoggedEvent]:
    return iter_events(db, EventQuery(since=since, until=until, **filters))


def break_glass(
    db: Database, since: datetime, until: datetime, *, pending_only: bool = False
) -> Report:
    rows = []
    for e in _events(db, since, until, actions=frozenset({AuditAction.BREAK_GLASS})):
        if pending_only and e.review is not None:
            continue
        ev, review = e.event, e.review
        rows.append({
            "seq": e.seq,
            "time": ev.time,
            "org": ev.actor.org,
            "practitioner": ev.actor.practitioner,
            "role": ev.actor.role,
            "persons": list(ev.persons),
            "outcome": ev.outcome.value,
            "reason": ev.break_glass_reason,
            "review": "pending" if review is None else "reviewed",
            "review_outcome": None if review is None else review.outcome.value,
            "reviewer": None if review is None else review.reviewer,
            "reviewed_at": None if review is None else review.time,
            "review_note": None if review is None else review.note,
        })
    return Report(
        "break-glass", since, until,
        ("seq", "time", "org", "practitioner", "role", "persons", "outcome", "reason",
         "review", "review_outcome", "reviewer", "reviewed_at", "review_note"),
        tuple(rows),
    )


def denials(db: Database, since: datetime, until: datetime) -> Report:
    counts: Counter[tuple[str, str]] = Counter()
    for e in _events(db, since, until, outcomes=frozenset({Outcome.DENY})):
        reason = e.event.reasons[0] if e.event.reasons else "unspecified"
        counts[(e.event.actor.org or "-", reason)] += 1
    rows = [
        {"org": org, "reason": reason, "denials": n}
        for (org, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return Report("denials", since, until, ("org", "reason", "denials"), tuple(rows))


def self_declared(db: Database, since: datetime, until: datetime) -> Report:
    actions = frozenset({AuditAction.RELATIONSHIP_DECLARE, AuditAction.ACCESS_DECISION, *READ_ACTIONS})
    rows = []
    for e in _events(db, since, until, actions=actions):
        ev = e.event
        if ev.action != AuditAction.RELATIONSHIP_DECLARE and SELF_DECLARED_REASON not in ev.reasons:
            continue
        stated = ev.detail.get("relationship_reason")
        rows.append({
            "seq": e.seq,
            "time": ev.time,
            "action": ev.action.value,
            "org": ev.actor.org,
            "practitioner": ev.actor.practitioner,
            "role": ev.actor.role,
            "persons": list(ev.persons),
            "purpose": None if ev.purpose is None else ev.purpose.value,
            "outcome": ev.outcome.value,
            "relationship_reason": stated if isinstance(stated, str) else None,
        })
    return Report(
        "self-declared", since, until,
        ("seq", "time", "action", "org", "practitioner", "role", "persons", "purpose",
         "outcome", "relationship_reason"),
        tuple(rows),
    )


def _daily_distinct(
    db: Database, since: datetime, until: datetime
) -> dict[tuple[str, str | None], dict[date, int]]:
    """Distinct persons in reads served, per (practitioner, org) and UTC day."""
    stmt = (
        select(E.c.practitioner, E.c.org, E.c.time, P.c.person_id)
        .join(P, P.c.seq == E.c.seq)
        .where(
            E.c.action.in_(sorted(a.value for a in READ_ACTIONS)),
            E.c.outcome.in_([Outcome.PERMIT.value, Outcome.SUCCESS.value]),
            E.c.practitioner.is_not(None),
            E.c.time >= since,
            E.c.time < until,
        )
    )
    seen: dict[tuple[str, str | None], dict[date, set[str]]] = defaultdict(lambda: defaultdict(set))
    try:
        with db.engine.connect() as conn:
            for practitioner, org, when, person in conn.execution_options(yield_per=5000).execute(stmt):
                seen[(practitioner, org)][when.date()].add(person)
    except DB_ERRORS as exc:
        raise unavailable(db, exc, "read") from exc
    return {who: {day: len(people) for day, people in days.items()} for who, days in seen.items()}


def volume(
    db: Database, since: datetime, until: datetime, config: AuditConfig | None = None
) -> Report:
    cfg = config or AuditConfig()
    baseline_start = since - timedelta(days=cfg.volume_baseline_days)
    baseline = _daily_distinct(db, baseline_start, since)
    current = _daily_distinct(db, since, until)
    rows = []
    for (practitioner, org), days in sorted(current.items(), key=lambda kv: kv[0][0]):
        history = list(baseline.get((practitioner, org), {}).values())
        median = statistics.median(history) if history else None
        threshold = max(cfg.volume_factor * median, cfg.volume_floor) if median else cfg.volume_floor
        for day, count in sorted(days.items()):
            if count > threshold:
                rows.append({
                    "practitioner": practitioner,
                    "org": org,
                    "day": day.isoformat(),
                    "distinct_persons": count,
                    "baseline_median": median,
                    "threshold": threshold,
                })
    rule = (
        f"flag a practitioner's day when distinct persons read > max({cfg.volume_factor:g} x "
        f"median daily count over the {cfg.volume_baseline_days} days before the range "
        f"(active days only), {cfg.volume_floor})"
    )
    return Report(
        "volume", since, until,
        ("practitioner", "org", "day", "distinct_persons", "baseline_median", "threshold"),
        tuple(rows), rule,
    )


def run_report(
    db: Database, name: str, since: datetime, until: datetime, config: AuditConfig | None = None
) -> Report:
    check_range(since, until)
    if name == "break-glass":
        return break_glass(db, since, until)
    if name == "denials":
        return denials(db, since, until)
    if name == "self-declared":
        return self_declared(db, since, until)
    if name == "volume":
        return volume(db, since, until, config)
    raise InvalidInput(
        f"unknown report {name!r}", [Problem("must be one of " + ", ".join(REPORTS), "report")]
    )


def report_json(report: Report) -> bytes:
    return orjson.dumps(report.as_dict(), default=str)
