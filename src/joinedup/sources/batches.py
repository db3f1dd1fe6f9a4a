"""Batches: one file of one feed, loaded atomically and idempotently, with a report.

The loader consumes an adapter's stream of ``Accepted`` / ``Rejected`` (one per
unit read) in chunks, inside **one transaction**:

* every chunk is checked (store rules, duplicate source ids, ids owned by
  another feed), its rejections quarantined and its accepted units written;
  memory is bounded by the chunk, never the file;
* the same content makes no new version (content hashes), so re-ingesting a
  file changes nothing; a file already loaded (same sha256, same feed
  revision) is recognised up front and reported as a duplicate;
* on an **all-or-nothing** feed accepted units are spooled in the database
  and written only if the whole file had no rejection; otherwise the batch is
  *refused*: nothing written, rejections kept in quarantine;
* a **full refresh** with ``mark-inactive`` withdraws the feed's records whose
  source ids the file no longer holds (rejected rows count as present);
* ``read == accepted + rejected`` is asserted and stored under a CHECK constraint.

Any exception rolls the whole batch back; the batch row then says ``failed``.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    and_,
    delete,
    exists,
    insert,
    select,
    update,
)

from joinedup.errors import Conflict, InvalidInput, NotFound, Problem, UserError
from joinedup.records.tables import resources
from joinedup.records.writer import (
    PreparedUnit,
    RecordWriter,
    State,
    WriteContext,
    Written,
    bulk_insert,
    prepare,
    refresh_statistics,
    select_in,
    write_transaction,
)
from joinedup.sources.contract import Outcome, Warning_
from joinedup.sources.feeds import (
    AdapterFactory,
    Feed,
    FeedAdapter,
    FeedRegistry,
    adapter_for_feed,
    sha256_file,
)
from joinedup.sources.quality import Quality, scrub
from joinedup.sources.quarantine import (
    CANONICAL,
    OPEN,
    RESOLVED,
    Quarantine,
    QuarantinedUnit,
    canonical_reparse,
)
from joinedup.sources.staging import (
    StageContext,
    Staged,
    StagedInWorker,
    fewer_collections,
    stage,
)
from joinedup.sources.tables import (
    BatchRow,
    FeedRow,
    batches_table,
    quarantine_table,
    seen_table,
    spool_table,
)
from joinedup.storage.base import utcnow
from joinedup.storage.engine import Database

CHUNK_UNITS = 1000
"""Units per chunk: large enough for efficient executemany, small enough to bound memory."""
WORKER_MIN_BYTES = 1 << 20
"""Files from this size are staged in a worker process: below it, starting one costs more
than the second core saves."""
REPORT_DETAIL_LIMIT = 200
"""Problems and warnings listed one by one in a report; the rest are counted by field."""


class BatchStatus(StrEnum):
    RUNNING = "running"
    COMMITTED = "committed"
    REFUSED = "refused"
    """All-or-nothing feed with a rejected unit: nothing written, rejections quarantined."""
    FAILED = "failed"
    """An error stopped the batch: rolled back, nothing written."""
    DUPLICATE = "duplicate"
    """The same file was already loaded under this feed revision: not loaded again."""


class BatchKind(StrEnum):
    FILE = "file"
    REPROCESS = "reprocess"


# -- values ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SourceFile:
    """The file a batch reads, identified by content so a re-sent file is recognised."""

    name: str
    sha256: str
    size: int

    @classmethod
    def from_path(cls, path: Path, name: str | None = None) -> SourceFile:
        return cls(name or path.name, sha256_file(path), path.stat().st_size)


@dataclass(slots=True)
class Counts:
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    warnings: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    withdrawn: int = 0


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch did: returned to the caller, and the payload of its audit event."""

    batch_id: str
    feed_id: str
    org: str
    kind: str
    status: BatchStatus
    counts: dict[str, int]
    report: dict[str, Any]
    duplicate_of: str | None = None

    def event(self) -> dict[str, Any]:
        """The audit event's details: ids and counts only, no personal data."""
        return {
            "action": f"batch.{self.kind}",
            "batch": self.batch_id,
            "feed": self.feed_id,
            "org": self.org,
            "status": self.status.value,
            "duplicate_of": self.duplicate_of,
            **self.counts,
        }

    def view(self) -> dict[str, Any]:
        return {
            "id": self.batch_id,
            "feed": self.feed_id,
            "org": self.org,
            "kind": self.kind,
            "status": self.status.value,
            "counts": self.counts,
            "duplicate_of": self.duplicate_of,
            "report": self.report,
        }


ChunkObserver = Callable[[Connection, Sequence[Written]], None]
"""Told, inside the batch transaction, of each chunk's new versions (person index, events)."""
Progress = Callable[[int], None]
"""Told the number of units read so far, after each chunk."""

_UNIT_PREFIX = re.compile(r"\b(?:row|unit|line|entry|message|record)\s+\d+\s*[,:]?\s*", re.I)


def new_batch_id(now: datetime) -> str:
    """Sortable by start time, unguessable suffix: ``b20261122T101500-3f2a9c``."""
    return f"b{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


class _Report:
    """Problems and warnings, the first few in full and all counted by field."""

    def __init__(self) -> None:
        self.problems: list[dict[str, Any]] = []
        self.warnings: list[dict[str, Any]] = []
        self.problems_by_field: dict[str, int] = {}
        self.warnings_by_field: dict[str, int] = {}
        self.notes: list[str] = []

    @staticmethod
    def _add(
        items: list[dict[str, Any]],
        by_field: dict[str, int],
        unit: int,
        location: str,
        message: str,
    ) -> None:
        location, message = scrub(location), scrub(message)
        key = _UNIT_PREFIX.sub("", location).strip() or "(unit)"
        by_field[key] = by_field.get(key, 0) + 1
        if len(items) < REPORT_DETAIL_LIMIT:
            items.append({"unit": unit, "location": location, "message": message})

    def problem(self, unit: int, p: Problem) -> None:
        self._add(self.problems, self.problems_by_field, unit, p.location, p.message)

    def warning(self, unit: int, location: str, message: str) -> None:
        self._add(self.warnings, self.warnings_by_field, unit, location, message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "problems_listed": len(self.problems),
            "problems_by_field": dict(sorted(self.problems_by_field.items())),
            "warnings": self.warnings,
            "warnings_listed": len(self.warnings),
            "warnings_by_field": dict(sorted(self.warnings_by_field.items())),
            "notes": self.notes,
        }


@dataclass(slots=True)
class _Item:
    staged: Staged
    qunit: QuarantinedUnit | None = None


class _Run:
    """One batch in progress on one connection inside its transaction."""

    def __init__(
        self,
        loader: BatchLoader,
        conn: Connection,
        feed: Feed,
        batch_id: str,
        kind: BatchKind,
        when: datetime,
    ) -> None:
        self.loader = loader
        self.conn = conn
        self.feed = feed
        self.batch_id = batch_id
        self.kind = kind
        self.when = when
        self.today = when.date()
        self.writer = RecordWriter(conn, WriteContext(feed.org, feed.id, batch_id, when))
        self.counts = Counts()
        self.quality = Quality()
        self.report = _Report()
        self.allowed = frozenset(c.value for c in feed.categories)
        self.buffer: list[_Item] = []
        self.spool_seq = 0
        self.rejected_without_id = 0
        self.progress: Progress | None = None
        self._state: State = {}
        self.chunks = 0
        self.stage_context = StageContext(
            self.allowed,
            self.today,
            self.writer.last_updated,
            self.writer.source_prefix,
            batch_id,
        )

    @property
    def refused(self) -> bool:
        return self.feed.all_or_nothing and self.counts.rejected > 0

    # -- reading --------------------------------------------------------------------
    def add(self, item: _Item) -> None:
        self.buffer.append(item)
        if len(self.buffer) >= self.loader.chunk_units:
            self.flush()

    def flush(self) -> None:
        items, self.buffer = self.buffer, []
        if not items:
            return
        for item in items:
            if item.staged.rejected is not None and not item.staged.source_id:
                self.rejected_without_id += 1
        self._duplicates(items)
        self._conflicts(items)
        accepted: list[_Item] = []
        for item in items:
            self.counts.read += 1
            if item.staged.prepared is not None:
                self.counts.accepted += 1
                self._warnings(item)
                accepted.append(item)
            else:
                self.counts.rejected += 1
                self._reject(item)
        if self.feed.all_or_nothing:
            if not self.refused:
                self._spool(accepted)
        else:
            self._write(accepted)
        self.chunks += 1
        if self.chunks & (self.chunks - 1) == 0:  # after chunks 1, 2, 4, 8...: tables doubled
            refresh_statistics(self.conn, (resources, seen_table))
        if self.progress is not None:
            self.progress(self.counts.read)

    def _duplicates(self, items: list[_Item]) -> None:
        ids = {sid for it in items if (sid := it.staged.source_id)}
        if not ids:
            return
        earlier: dict[str, int] = {}
        for part in _parts(sorted(ids), 500):
            rows = select_in(self.conn, _SEEN_SQL, (self.batch_id,), part)
            earlier.update((sid, unit) for sid, unit in rows)
        fresh: list[tuple[Any, ...]] = []
        for it in items:
            st = it.staged
            sid = st.source_id
            if not sid:
                continue
            first = earlier.get(sid)
            if first is None:
                earlier[sid] = st.unit
                fresh.append((self.batch_id, sid, st.unit))
                continue
            self.quality.duplicate_source_ids += 1
            st.refuse(
                [
                    Problem(
                        f"duplicate source id: the same id was first read at unit {first}",
                        "source id",
                    )
                ]
            )
        bulk_insert(self.conn, seen_table, ("batch_id", "source_id", "unit"), fresh)

    def _conflicts(self, items: list[_Item]) -> None:
        candidates = [it.staged for it in items if it.staged.prepared is not None]
        if not candidates:
            return
        units = [st.prepared for st in candidates if st.prepared is not None]
        self._state = self.writer.lookup(p.key for u in units for p in u.resources)
        for pos, problems in self.writer.conflicts(units, self._state).items():
            candidates[pos].refuse(problems)

    def _warnings(self, item: _Item) -> None:
        st = item.staged
        for location, message in st.warnings:
            self.report.warning(st.unit, location, message)
        self.counts.warnings += len(st.warnings)
        if st.quality is not None:
            self.quality.add(st.quality)

    # -- rejections -----------------------------------------------------------------
    def _reject(self, item: _Item) -> None:
        st = item.staged
        for p in st.problems:
            self.report.problem(st.unit, p)
        problems = [
            {"location": scrub(p.location), "message": scrub(p.message)} for p in st.problems
        ]
        now = utcnow()
        if item.qunit is not None:
            self.conn.execute(
                update(quarantine_table)
                .where(quarantine_table.c.id == item.qunit.id)
                .values(problems=problems, attempts=item.qunit.attempts + 1, updated_at=now)
            )
            return
        if st.rejected is not None:
            raw, extra = st.rejected.raw, dict(st.rejected.extra)
        else:
            raw = st.canonical_json()
            extra = {"raw_kind": CANONICAL}
        self.conn.execute(
            insert(quarantine_table),
            {
                "batch_id": self.batch_id,
                "feed_id": self.feed.id,
                "org_code": self.feed.org,
                "unit": st.unit,
                "source_id": st.source_id,
                "raw": raw,
                "problems": problems,
                "extra": extra,
                "status": OPEN,
                "attempts": 0,
                "resolved_batch_id": None,
                "created_at": now,
                "updated_at": now,
            },
        )

    # -- writing --------------------------------------------------------------------
    def _write(self, items: list[_Item]) -> None:
        units = [it.staged.prepared for it in items if it.staged.prepared is not None]
        if not units:
            return
        result = self.writer.write(units, self._state)
        self.counts.created += result.created
        self.counts.updated += result.updated
        self.counts.unchanged += result.unchanged
        for observer in self.loader.observers:
            observer(self.conn, result.written)
        resolved = [it.qunit.id for it in items if it.qunit is not None]
        if resolved:
            self._resolve(resolved)

    def _resolve(self, quarantine_ids: list[int]) -> None:
        self.conn.execute(
            update(quarantine_table)
            .where(quarantine_table.c.id.in_(quarantine_ids))
            .values(status=RESOLVED, resolved_batch_id=self.batch_id, updated_at=utcnow())
        )

    def _spool(self, items: list[_Item]) -> None:
        rows = []
        for it in items:
            st = it.staged
            self.spool_seq += 1
            rows.append(
                {
                    "batch_id": self.batch_id,
                    "seq": self.spool_seq,
                    "unit": st.unit,
                    "source_id": st.source_id,
                    "origin_batch": it.qunit.batch_id if it.qunit else None,
                    "quarantine_id": it.qunit.id if it.qunit else None,
                    "resources": st.canonical_json(),
                }
            )
        if rows:
            self.conn.execute(insert(spool_table), rows)

    def _unspool(self) -> None:
        """Write an all-or-nothing batch's spooled units now the file is known clean."""
        c = spool_table.c
        after = 0
        while True:
            rows = self.conn.execute(
                select(c.seq, c.unit, c.source_id, c.origin_batch, c.quarantine_id, c.resources)
                .where(c.batch_id == self.batch_id, c.seq > after)
                .order_by(c.seq)
                .limit(self.loader.chunk_units)
            ).all()
            if not rows:
                return
            after = rows[-1].seq
            units: list[PreparedUnit] = []
            resolved: list[int] = []
            for row in rows:
                prepared = []
                for resource in orjson.loads(row.resources):
                    p, _ = prepare(resource, allowed_categories=self.allowed)
                    assert p is not None, "spooled units were checked when read"
                    prepared.append(p)
                units.append(
                    PreparedUnit(row.unit, row.source_id, tuple(prepared), row.origin_batch)
                )
                if row.quarantine_id is not None:
                    resolved.append(row.quarantine_id)
            state = self.writer.lookup(p.key for u in units for p in u.resources)
            if self.writer.conflicts(units, state):
                raise Conflict(
                    "another batch wrote the same resources meanwhile; send the file again"
                )
            result = self.writer.write(units, state)
            self.counts.created += result.created
            self.counts.updated += result.updated
            self.counts.unchanged += result.unchanged
            for observer in self.loader.observers:
                observer(self.conn, result.written)
            if resolved:
                self._resolve(resolved)

    def _withdraw_missing(self) -> None:
        if self.rejected_without_id:
            self.report.notes.append(
                f"{self.rejected_without_id} rejected unit(s) had no readable source id, so "
                "missing-record handling was skipped: no record was marked inactive"
            )
            return
        c, s = resources.c, seen_table.c
        present = exists().where(and_(s.batch_id == self.batch_id, s.source_id == c.source_id))
        while True:
            keys = self.conn.execute(
                select(c.resource_type, c.id)
                .where(c.feed_id == self.feed.id, c.active.is_(True), ~present)
                .limit(500)
            ).all()
            if not keys:
                return
            written = self.writer.withdraw([(k.resource_type, k.id) for k in keys])
            self.counts.withdrawn += len(written)
            for observer in self.loader.observers:
                observer(self.conn, written)

    # -- end --------------------------------------------------------------------------
    def finish(self) -> BatchStatus:
        self.flush()
        if self.feed.all_or_nothing and not self.refused:
            self._unspool()
        if self.feed.withdraws_missing and not self.refused and self.kind is BatchKind.FILE:
            self._withdraw_missing()
        self.conn.execute(delete(spool_table).where(spool_table.c.batch_id == self.batch_id))
        self.conn.execute(delete(seen_table).where(seen_table.c.batch_id == self.batch_id))
        if self.refused:
            self.report.notes.append(
                f"refused: the feed is all-or-nothing and {self.counts.rejected} unit(s) were "
                "rejected; nothing was written, the rejected units are in quarantine"
            )
        c = self.counts
        if c.read != c.accepted + c.rejected:  # pragma: no cover - guarded by construction
            raise AssertionError("read != accepted + rejected")
        return BatchStatus.REFUSED if self.refused else BatchStatus.COMMITTED


_SEEN_SQL = f"SELECT source_id, unit FROM {seen_table.name} WHERE batch_id = ? AND source_id IN {{}}"
"""The units of this batch already read with any of some source ids."""


def _parts(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# -- the loader ---------------------------------------------------------------------
class BatchLoader:
    """Loads batches for registered feeds; lists them and their reports."""

    def __init__(
        self,
        db: Database,
        feeds: FeedRegistry,
        *,
        observers: Sequence[ChunkObserver] = (),
        chunk_units: int = CHUNK_UNITS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._feeds = feeds
        self.observers = tuple(observers)
        self.chunk_units = chunk_units
        self._clock = clock

    # -- writes ---------------------------------------------------------------------
    def ingest(
        self,
        feed_id: str,
        outcomes: Iterable[Outcome],
        *,
        source: SourceFile | None = None,
        force: bool = False,
        progress: Progress | None = None,
        file_warnings: Callable[[], Sequence[Warning_]] | None = None,
    ) -> BatchResult:
        """Load one file's outcomes as a batch of ``feed_id``; see the module docstring.

        ``file_warnings`` is asked, once the file is read, for warnings about the
        file as a whole (an adapter's extra columns...); they go in the report.
        """
        return self.ingest_staged(
            feed_id,
            lambda ctx: (stage(o, ctx) for o in outcomes),
            source=source,
            force=force,
            progress=progress,
            file_warnings=file_warnings,
        )

    def ingest_staged(
        self,
        feed_id: str,
        staging: Callable[[StageContext], Iterable[Staged]],
        *,
        source: SourceFile | None = None,
        force: bool = False,
        progress: Progress | None = None,
        file_warnings: Callable[[], Sequence[Warning_]] | None = None,
    ) -> BatchResult:
        """:meth:`ingest`, for units staged by the caller (e.g. in a worker process):
        ``staging`` is called once, with the batch's context, after the
        duplicate-file check, and its units are loaded in order."""
        feed = self._feeds.get(feed_id)
        if not feed.active:
            raise InvalidInput(f"feed {feed_id!r} is not active")
        if source is not None and not force:
            earlier = self._loaded_already(feed, source)
            if earlier is not None:
                return self._record_duplicate(feed, source, earlier)
        return self._run(
            feed,
            lambda ctx: (_Item(st) for st in staging(ctx)),
            BatchKind.FILE,
            source,
            progress,
            file_warnings,
        )

    def run_reprocess(
        self,
        feed_id: str,
        items: Iterable[tuple[Outcome, QuarantinedUnit]],
        *,
        progress: Progress | None = None,
    ) -> BatchResult:
        feed = self._feeds.get(feed_id)
        return self._run(
            feed,
            lambda ctx: (_Item(stage(o, ctx, q.batch_id), q) for o, q in items),
            BatchKind.REPROCESS,
            None,
            progress,
        )

    def _run(
        self,
        feed: Feed,
        items: Callable[[StageContext], Iterable[_Item]],
        kind: BatchKind,
        source: SourceFile | None,
        progress: Progress | None,
        file_warnings: Callable[[], Sequence[Warning_]] | None = None,
    ) -> BatchResult:
        when = self._clock()
        batch_id = new_batch_id(when)
        started = time.perf_counter()
        with self._db.engine.begin() as conn:
            conn.execute(insert(batches_table), _new_row(batch_id, feed, kind, source, when))
        try:
            with fewer_collections(), write_transaction(self._db) as conn:
                conn.execute(select(FeedRow.id).where(FeedRow.id == feed.id).with_for_update())
                run = _Run(self, conn, feed, batch_id, kind, when)
                run.progress = progress
                for item in items(run.stage_context):
                    run.add(item)
                for w in file_warnings() if file_warnings is not None else ():
                    run.report.warning(0, w.location, w.message)
                    run.counts.warnings += 1
                status = run.finish()
                seconds = time.perf_counter() - started
                report = _final_report(run, feed, source, when, seconds)
                conn.execute(
                    update(batches_table)
                    .where(batches_table.c.id == batch_id)
                    .values(
                        status=status.value,
                        finished_at=self._clock(),
                        report=report,
                        units_read=run.counts.read,
                        **{k: v for k, v in asdict(run.counts).items() if k != "read"},
                    )
                )
        except BaseException as exc:
            self._record_failure(batch_id, exc)
            raise
        return BatchResult(
            batch_id, feed.id, feed.org, kind.value, status, asdict(run.counts), report
        )

    def _loaded_already(self, feed: Feed, source: SourceFile) -> str | None:
        c = batches_table.c
        with self._db.engine.connect() as conn:
            found = conn.execute(
                select(c.id)
                .where(
                    c.feed_id == feed.id,
                    c.file_sha256 == source.sha256,
                    c.feed_revision == feed.revision,
                    c.status == BatchStatus.COMMITTED.value,
                )
                .order_by(c.started_at)
                .limit(1)
            ).scalar_one_or_none()
        return str(found) if found is not None else None

    def _record_duplicate(self, feed: Feed, source: SourceFile, earlier: str) -> BatchResult:
        when = self._clock()
        batch_id = new_batch_id(when)
        report = {
            "notes": [
                f"this file (sha256 {source.sha256[:12]}…) was already loaded as batch {earlier} "
                f"under feed revision {feed.revision}; nothing was read or written"
            ],
            "file": asdict(source),
        }
        row = _new_row(batch_id, feed, BatchKind.FILE, source, when)
        row.update(
            status=BatchStatus.DUPLICATE.value,
            finished_at=when,
            duplicate_of=earlier,
            report=report,
        )
        with self._db.engine.begin() as conn:
            conn.execute(insert(batches_table), row)
        return BatchResult(
            batch_id,
            feed.id,
            feed.org,
            BatchKind.FILE.value,
            BatchStatus.DUPLICATE,
            asdict(Counts()),
            report,
            duplicate_of=earlier,
        )

    def _record_failure(self, batch_id: str, exc: BaseException) -> None:
        # The message of a UserError is written for users; anything else may quote
        # data (a driver error echoes parameters), so only its type is kept.
        reason = (
            exc.detail if isinstance(exc, UserError) else f"internal error ({type(exc).__name__})"
        )
        with self._db.engine.begin() as conn:
            conn.execute(
                update(batches_table)
                .where(batches_table.c.id == batch_id)
                .values(
                    status=BatchStatus.FAILED.value, finished_at=self._clock(), error=reason[:1000]
                )
            )

    # -- reads ----------------------------------------------------------------------
    def get(self, batch_id: str) -> BatchResult:
        with self._db.engine.connect() as conn:
            row = conn.execute(
                select(batches_table).where(batches_table.c.id == batch_id)
            ).one_or_none()
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        return _result(row)

    def list(self, feed_id: str | None = None, limit: int = 50) -> list[BatchResult]:
        c = batches_table.c
        stmt = select(batches_table).order_by(c.started_at.desc(), c.id.desc()).limit(limit)
        if feed_id is not None:
            stmt = stmt.where(c.feed_id == feed_id)
        with self._db.engine.connect() as conn:
            return [_result(r) for r in conn.execute(stmt)]

    def feed_quality(self, feed_id: str, *, today: date | None = None) -> dict[str, Any]:
        """Quality of what a feed holds now (its current records), and of its recent batches."""
        from joinedup.sources.quality import measure

        self._feeds.get(feed_id)
        r = resources.c
        current = select(r.body).where(r.feed_id == feed_id).execution_options(yield_per=1000)
        with self._db.engine.connect() as conn:
            bodies = conn.execute(current).scalars()
            quality = measure((orjson.loads(b) for b in bodies), today or self._clock().date())
        recent = [
            {"batch": b.batch_id, "status": b.status.value, "quality": b.report.get("quality")}
            for b in self.list(feed_id, limit=10)
        ]
        return {"feed": feed_id, "current": quality.as_dict(), "recent_batches": recent}


class Ingestion:
    """Feeds, batches and quarantine together: what the CLI, the admin API and the lead's
    ``Services`` use. Files are read by the feed's adapter (built from its mapping)."""

    def __init__(
        self,
        db: Database,
        *,
        observers: Sequence[ChunkObserver] = (),
        adapters: AdapterFactory = adapter_for_feed,
        chunk_units: int = CHUNK_UNITS,
        worker_min_bytes: int | None = WORKER_MIN_BYTES,
    ) -> None:
        self.feeds = FeedRegistry(db)
        self.worker_min_bytes = worker_min_bytes
        """Files at least this big are read and staged in a worker process (None: never)."""
        self.loader = BatchLoader(db, self.feeds, observers=observers, chunk_units=chunk_units)
        self.quarantine = Quarantine(db)
        self._adapters = adapters

    def _current_feed(self, feed_id: str) -> Feed:
        """The feed, re-registered first if its mapping file changed since (new revision),
        so a file loaded before the fix is not mistaken for one loaded after it."""
        feed = self.feeds.get(feed_id)
        path = feed.mapping_path
        if path is not None and path.exists() and sha256_file(path) != feed.mapping_sha256:
            feed = self.feeds.refresh_mapping(feed_id)
        return feed

    def ingest_file(
        self,
        feed_id: str,
        path: Path,
        *,
        name: str | None = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> BatchResult:
        """Read ``path`` with the feed's adapter and load it as one batch."""
        feed = self._current_feed(feed_id)
        adapter = self._adapters(feed)
        source = SourceFile.from_path(path, name)
        if self._use_worker(source):
            return self._ingest_in_worker(feed, adapter, path, source, force, progress)
        reading = adapter.read(path)
        try:
            return self.loader.ingest(
                feed.id,
                reading,
                source=source,
                force=force,
                progress=progress,
                file_warnings=lambda: list(getattr(reading, "warnings", ())),
            )
        finally:
            close = getattr(reading, "close", None)
            if close is not None:
                close()

    def _use_worker(self, source: SourceFile) -> bool:
        return (
            self.worker_min_bytes is not None
            and source.size >= self.worker_min_bytes
            and (os.cpu_count() or 1) > 1
            and "fork" in multiprocessing.get_all_start_methods()
        )

    def _ingest_in_worker(
        self,
        feed: Feed,
        adapter: FeedAdapter,
        path: Path,
        source: SourceFile,
        force: bool,
        progress: Progress | None,
    ) -> BatchResult:
        """:meth:`ingest_file` with the file read, mapped and staged on another core."""
        workers: list[StagedInWorker] = []

        def staging(ctx: StageContext) -> StagedInWorker:
            workers.append(StagedInWorker(lambda: adapter.read(path), ctx))
            return workers[-1]

        try:
            return self.loader.ingest_staged(
                feed.id,
                staging,
                source=source,
                force=force,
                progress=progress,
                file_warnings=lambda: workers[0].warnings if workers else [],
            )
        finally:
            for worker in workers:
                worker.close()

    def reprocess(
        self, feed_id: str, *, batch_id: str | None = None, progress: Progress | None = None
    ) -> BatchResult:
        """Re-map every open quarantined unit of a feed with its current mapping."""
        feed = self._current_feed(feed_id)
        adapter = self._adapters(feed) if feed.mapping_path is not None else None

        def reparse(unit: QuarantinedUnit) -> Outcome:
            if unit.is_canonical or adapter is None:
                return canonical_reparse(unit)
            return adapter.reprocess(unit.raw, unit.unit, unit.extra)

        return self.quarantine.reprocess(
            self.loader, feed_id, reparse, batch_id=batch_id, progress=progress
        )


def _new_row(
    batch_id: str, feed: Feed, kind: BatchKind, source: SourceFile | None, when: datetime
) -> dict[str, Any]:
    return {
        "id": batch_id,
        "feed_id": feed.id,
        "org_code": feed.org,
        "kind": kind.value,
        "status": BatchStatus.RUNNING.value,
        "file_name": source.name[:300] if source else None,
        "file_sha256": source.sha256 if source else None,
        "file_size": source.size if source else None,
        "feed_revision": feed.revision,
        "started_at": when,
        "finished_at": None,
        "units_read": 0,
        "accepted": 0,
        "rejected": 0,
        "warnings": 0,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "withdrawn": 0,
        "duplicate_of": None,
        "error": None,
        "report": {},
    }


def _final_report(
    run: _Run, feed: Feed, source: SourceFile | None, when: datetime, seconds: float
) -> dict[str, Any]:
    counts = asdict(run.counts)
    return {
        "feed": feed.id,
        "org": feed.org,
        "feed_revision": feed.revision,
        "kind": run.kind.value,
        "file": asdict(source) if source else None,
        "counts": counts,
        "read_equals_accepted_plus_rejected": run.counts.read
        == run.counts.accepted + run.counts.rejected,
        **run.report.as_dict(),
        "quality": run.quality.as_dict(),
        "timing": {
            "started_at": when.astimezone(UTC).isoformat(),
            "seconds": round(seconds, 3),
            "units_per_second": round(run.counts.read / seconds, 1) if seconds > 0 else None,
        },
    }


_COUNT_COLUMNS = (
    "accepted",
    "rejected",
    "warnings",
    "created",
    "updated",
    "unchanged",
    "withdrawn",
)


def _result(row: Any) -> BatchResult:
    counts = {"read": row.units_read, **{k: getattr(row, k) for k in _COUNT_COLUMNS}}
    report = dict(row.report or {})
    if row.error:
        report.setdefault("error", row.error)
    return BatchResult(
        row.id,
        row.feed_id,
        row.org_code,
        row.kind,
        BatchStatus(row.status),
        counts,
        report,
        duplicate_of=row.duplicate_of,
    )


__all__ = [
    "CHUNK_UNITS",
    "BatchKind",
    "BatchLoader",
    "BatchResult",
    "BatchRow",
    "BatchStatus",
    "ChunkObserver",
    "Counts",
    "Ingestion",
    "Progress",
    "SourceFile",
]
