"""``AuditLog``: the audit service the API, CLI and other packages are handed.

One object per process, built at the entry point (``build_audit_log``) and
closed at shutdown (which commits what is queued and signs a checkpoint).
The write path is ``AuditWriter`` (group commit); the rest delegates to the
small modules beside this one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from joinedup.access.purposes import Purpose
from joinedup.audit import queries, reports, retention, transparency
from joinedup.audit.check import verify_log
from joinedup.audit.config import AuditConfig, keys_dir
from joinedup.audit.events import (
    Actor,
    AuditAction,
    AuditEvent,
    LoggedEvent,
    Outcome,
    ReviewOutcome,
)
from joinedup.audit.export import ExportedCheckpoints, export_checkpoints, read_export
from joinedup.audit.keys import AuditKeyStore
from joinedup.audit.log import AuditWriter
from joinedup.audit.queries import EventQuery
from joinedup.audit.reports import Report
from joinedup.audit.retention import ArchiveResult
from joinedup.audit.statements import Checkpoint
from joinedup.audit.transparency import AccessReport
from joinedup.audit.verify import VerifyReport
from joinedup.config import Settings
from joinedup.errors import Conflict, InvalidInput, NotFound, Problem
from joinedup.storage.engine import Database


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """Append-only, hash-chained, checkpointed audit log of one database."""

    def __init__(
        self,
        db: Database,
        keys: AuditKeyStore,
        config: AuditConfig | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.db = db
        self.keys = keys
        self.config = config or AuditConfig()
        self._clock = clock
        self.writer = AuditWriter(db, keys, self.config, clock=clock)

    # -- writing -----------------------------------------------------------------
    def append(self, events: Iterable[AuditEvent]) -> list[int]:
        """Commit ``events`` durably and return their seqs; ``Unavailable`` if not."""
        return self.writer.append(events)

    async def append_async(self, events: Iterable[AuditEvent]) -> list[int]:
        return await self.writer.append_async(events)

    def checkpoint(self) -> Checkpoint | None:
        return self.writer.checkpoint()

    def close(self, *, checkpoint: bool = True) -> None:
        """Commit what is queued, stop the writer, and (by default) sign a final checkpoint."""
        self.writer.close(checkpoint=checkpoint)

    # -- integrity ---------------------------------------------------------------
    def verify(
        self, *, against: Path | ExportedCheckpoints | None = None, jobs: int = 1
    ) -> VerifyReport:
        """Check the whole chain and every signed statement (``jobs`` > 1: long logs are
        first walked in parallel processes)."""
        exported = read_export(against) if isinstance(against, Path) else against
        return verify_log(self.db, self.keys.public_keys(), against=exported, jobs=jobs)

    def export_checkpoints(self, out: IO[bytes]) -> int:
        return export_checkpoints(self.db, self.keys, out)

    def archive(self, *, before: datetime, out: Path, actor: Actor) -> ArchiveResult | None:
        """Archive events before ``before`` to ``out`` and record that in the log."""
        result = retention.archive(self.db, self.keys, before=before, out=out, clock=self._clock)
        if result is not None:
            self.append([AuditEvent(
                action=AuditAction.AUDIT_ARCHIVE,
                actor=actor,
                outcome=Outcome.SUCCESS,
                purpose=Purpose.ADMINISTRATION,
                detail={
                    "first_seq": result.first_seq,
                    "last_seq": result.last_seq,
                    "last_hash": result.last_hash,
                    "archive_sha256": result.sha256,
                    "archive_name": out.name,
                },
                time=self._clock(),
            )])
        return result

    def retention_cutoff(self) -> datetime | None:
        days = self.config.retention_days
        return None if days is None else self._clock() - timedelta(days=days)

    # -- reading -----------------------------------------------------------------
    def search(self, query: EventQuery) -> list[LoggedEvent]:
        return queries.find_events(self.db, query)

    def count(self, query: EventQuery) -> int:
        return queries.count_events(self.db, query)

    def get(self, seq: int) -> LoggedEvent | None:
        return queries.get_event(self.db, seq)

    def report(self, name: str, since: datetime, until: datetime) -> Report:
        return reports.run_report(self.db, name, since, until, self.config)

    def access_report(
        self,
        person_id: str,
        *,
        show_staff_names: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AccessReport:
        """Who looked at the person's record; staff named only if the area's policy says so."""
        show = self.config.show_staff_names if show_staff_names is None else show_staff_names
        return transparency.access_report(
            self.db, person_id, show_staff_names=show, since=since, until=until
        )

    def mentions(self, person_id: str) -> bool:
        return transparency.has_events(self.db, person_id)

    # -- IG review ---------------------------------------------------------------
    def review(
        self,
        seq: int,
        *,
        outcome: ReviewOutcome | str,
        reviewer: Actor,
        note: str | None = None,
        request_id: str | None = None,
    ) -> LoggedEvent:
        """Record an IG lead's review of break-glass event ``seq`` (itself an audit event)."""
        problems = []
        try:
            outcome = ReviewOutcome(outcome)
        except ValueError:
            problems.append(Problem(
                "must be one of " + ", ".join(o.value for o in ReviewOutcome), "outcome"
            ))
        if not reviewer.practitioner:
            problems.append(Problem("the reviewer must be a named person", "by"))
        if note is not None and len(note) > 1000:
            problems.append(Problem("at most 1000 characters", "note"))
        if problems:
            raise InvalidInput("the review cannot be recorded", problems)
        target = self.get(seq)
        if target is None or target.event.action != AuditAction.BREAK_GLASS:
            raise NotFound(f"no break-glass event with seq {seq}")
        if target.review is not None:
            raise Conflict(
                f"break-glass event {seq} was already reviewed "
                f"({target.review.outcome.value}, event {target.review.review_seq})"
            )
        self.append([AuditEvent(
            action=AuditAction.AUDIT_REVIEW,
            actor=reviewer,
            outcome=Outcome.SUCCESS,
            purpose=Purpose.GOVERNANCE,
            persons=target.event.persons,
            detail={"reviewed_seq": seq, "outcome": ReviewOutcome(outcome).value,
                    **({"note": note} if note else {})},
            request_id=request_id,
            time=self._clock(),
        )])
        reviewed = self.get(seq)
        assert reviewed is not None
        return reviewed


def build_audit_log(settings: Settings, db: Database) -> AuditLog:
    """The audit service from settings: keys in ``<data_dir>/audit-keys``."""
    return AuditLog(db, AuditKeyStore(keys_dir(settings)), AuditConfig.from_settings(settings))
