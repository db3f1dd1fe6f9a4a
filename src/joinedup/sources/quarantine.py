"""Quarantine: every unit a batch could not accept, kept whole with its reasons.

A quarantined unit keeps the text exactly as read (a CSV line with its
header in ``extra``, a JSON entry, an ER7 message), so once the mapping or the
source is fixed it can be *reprocessed*: a re-parse function turns each open
unit into a new ``Accepted`` or ``Rejected``; accepted ones are written in a
new batch (kind ``reprocess``) and leave quarantine (status ``resolved``,
naming that batch); rejected ones stay, with the new reasons.

Units the loader itself refused after the adapter accepted them (a duplicate
source id, a resource the store cannot keep, an id owned by another feed)
have no source text to keep; they are stored as their canonical resources
(``extra.raw_kind = "canonical"``) and :func:`canonical_reparse` re-offers them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, select

from joinedup.errors import NotFound, Problem
from joinedup.sources.contract import Accepted, Outcome, Rejected
from joinedup.sources.tables import QuarantineRow
from joinedup.storage.engine import Database

if TYPE_CHECKING:
    from joinedup.sources.batches import BatchLoader, BatchResult

OPEN = "open"
RESOLVED = "resolved"
CANONICAL = "canonical"
"""``extra.raw_kind`` of a unit stored as its canonical resources (no source text)."""


@dataclass(frozen=True, slots=True)
class QuarantinedUnit:
    """One rejected unit as kept: what a re-parse function receives."""

    id: int
    batch_id: str
    feed_id: str
    org: str
    unit: int
    source_id: str | None
    raw: str
    problems: tuple[Problem, ...]
    extra: dict[str, Any]
    status: str
    attempts: int
    resolved_batch_id: str | None
    created_at: datetime

    @property
    def is_canonical(self) -> bool:
        return self.extra.get("raw_kind") == CANONICAL

    def view(self, *, include_raw: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "batch": self.batch_id,
            "feed": self.feed_id,
            "org": self.org,
            "unit": self.unit,
            "problems": [p.as_dict() for p in self.problems],
            "status": self.status,
            "attempts": self.attempts,
            "resolved_batch": self.resolved_batch_id,
            "created_at": self.created_at.isoformat(),
            "raw_kind": self.extra.get("raw_kind", "source"),
        }
        if include_raw:
            out["source_id"] = self.source_id
            out["raw"] = self.raw
            out["extra"] = self.extra
        return out


def _unit(row: QuarantineRow) -> QuarantinedUnit:
    return QuarantinedUnit(
        id=row.id,
        batch_id=row.batch_id,
        feed_id=row.feed_id,
        org=row.org_code,
        unit=row.unit,
        source_id=row.source_id,
        raw=row.raw,
        problems=tuple(Problem(p["message"], p.get("location", "")) for p in row.problems),
        extra=dict(row.extra or {}),
        status=row.status,
        attempts=row.attempts,
        resolved_batch_id=row.resolved_batch_id,
        created_at=row.created_at,
    )


Reparse = Callable[[QuarantinedUnit], Outcome]
"""Turns a quarantined unit into a new outcome, with the (fixed) mapping."""


def canonical_reparse(unit: QuarantinedUnit) -> Outcome:
    """Re-offer a unit the loader refused after mapping: its canonical resources, as they were."""
    if not unit.is_canonical:
        return Rejected(
            unit.unit,
            unit.raw,
            (Problem("needs the feed's adapter to re-parse its source text"),),
            unit.source_id,
            unit.extra,
        )
    resources = orjson.loads(unit.raw)
    return Accepted(unit.unit, unit.source_id or "", tuple(resources))


class Quarantine:
    """Lists quarantined units and reprocesses them through the batch loader."""

    PAGE = 500

    def __init__(self, db: Database) -> None:
        self._db = db

    def list(
        self,
        *,
        feed_id: str | None = None,
        batch_id: str | None = None,
        status: str | None = OPEN,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[QuarantinedUnit]:
        stmt = select(QuarantineRow).where(QuarantineRow.id > after_id)
        if feed_id is not None:
            stmt = stmt.where(QuarantineRow.feed_id == feed_id)
        if batch_id is not None:
            stmt = stmt.where(QuarantineRow.batch_id == batch_id)
        if status is not None:
            stmt = stmt.where(QuarantineRow.status == status)
        with self._db.session() as s:
            return [_unit(r) for r in s.scalars(stmt.order_by(QuarantineRow.id).limit(limit))]

    def count(self, *, feed_id: str | None = None, status: str | None = OPEN) -> int:
        stmt = select(func.count()).select_from(QuarantineRow)
        if feed_id is not None:
            stmt = stmt.where(QuarantineRow.feed_id == feed_id)
        if status is not None:
            stmt = stmt.where(QuarantineRow.status == status)
        with self._db.session() as s:
            return int(s.scalar(stmt) or 0)

    def get(self, quarantine_id: int) -> QuarantinedUnit:
        with self._db.session() as s:
            row = s.get(QuarantineRow, quarantine_id)
            if row is None:
                raise NotFound(f"no quarantined unit {quarantine_id}")
            return _unit(row)

    def open_units(self, feed_id: str, batch_id: str | None = None) -> Iterator[QuarantinedUnit]:
        """Every open unit of a feed, a page at a time (memory bounded by the page)."""
        after = 0
        while True:
            page = self.list(feed_id=feed_id, batch_id=batch_id, after_id=after, limit=self.PAGE)
            yield from page
            if len(page) < self.PAGE:
                return
            after = page[-1].id

    def reprocess(
        self,
        loader: BatchLoader,
        feed_id: str,
        reparse: Reparse,
        *,
        batch_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> BatchResult:
        """Re-parse every open unit of ``feed_id`` (or of one batch) and load the results.

        Runs as one batch of kind ``reprocess`` with the feed's policies: on an
        all-or-nothing feed, one unit still rejected keeps them all in quarantine.
        """
        items = ((reparse(u), u) for u in self.open_units(feed_id, batch_id))
        return loader.run_reprocess(feed_id, items, progress=progress)
