"""Staging: everything about a unit that needs no database, done before the batch writes it.

For each outcome an adapter yields, :func:`stage` checks its resources for
the store (:func:`~joinedup.records.writer.prepare`: labels, content hash,
search index rows, the version-1 body as JSON) and measures its data
quality. What is left for the batch's transaction is what needs the
database: duplicate source ids, ids owned by another feed, versions, the
writes themselves.

Because staging is pure, a big file can be read, mapped and staged in a
worker process (:class:`StagedInWorker`) on the second core while the batch
process writes the previous chunk. The batch stays one transaction in one
process; the worker only computes, and its units arrive in file order, so
the result is the same as staging in the batch's own process (tested).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import date
from operator import attrgetter
from typing import Any

import orjson

from joinedup.errors import Problem, UserError
from joinedup.records.params import TableRows
from joinedup.records.writer import FirstBody, Prepared, PreparedUnit, prepare
from joinedup.sources.contract import Accepted, Outcome, Rejected, Warning_
from joinedup.sources.quality import Quality, check_resource


@dataclass(frozen=True, slots=True)
class StageContext:
    """What staging needs to know of the batch: the feed's categories, the day, the stamp."""

    allowed: frozenset[str]
    today: date
    last_updated: str
    """``meta.lastUpdated`` of every version the batch writes."""
    source_prefix: str
    """``meta.source`` up to the batch (``urn:joinedup:source:{org}/{feed}/``)."""
    batch_id: str


@dataclass(slots=True)
class Staged:
    """One unit, staged: either its prepared resources or the problems that reject it."""

    unit: int
    source_id: str | None
    prepared: PreparedUnit | None
    problems: list[Problem] = field(default_factory=list)
    rejected: Rejected | None = None
    """The adapter's rejection, kept whole for quarantine."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(location, message): the adapter's warnings, then quality findings."""
    quality: Quality | None = None
    """This unit's contribution to the batch's quality, counted if the batch accepts it."""
    canonical: bytes | None = None
    """The unit's resources as JSON, when staging rejected an adapter's accepted unit."""

    def canonical_json(self) -> str:
        """The unit's canonical resources as a JSON list (quarantine, all-or-nothing spool)."""
        if self.canonical is not None:
            return self.canonical.decode()
        assert self.prepared is not None
        return "[" + ",".join(p.json().decode() for p in self.prepared.resources) + "]"

    def refuse(self, problems: list[Problem]) -> None:
        """Reject a unit staging accepted (the batch found a duplicate or a foreign id)."""
        if self.prepared is not None:
            self.canonical = self.canonical_json().encode()
            self.prepared = None
        self.problems += problems

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # plain positional pickling: the slotted dataclass default (fields() per object)
        # costs more than the staging it ships between processes
        return (
            type(self),
            (
                self.unit,
                self.source_id,
                self.prepared,
                self.problems,
                self.rejected,
                self.warnings,
                self.quality,
                self.canonical,
            ),
        )


def stage(outcome: Outcome, ctx: StageContext, origin_batch: str | None = None) -> Staged:
    """``outcome`` made ready for the batch to write (pure: no database)."""
    o = outcome
    if isinstance(o, Rejected):
        problems = list(o.problems) or [Problem("rejected by the adapter", "")]
        return Staged(o.unit, o.source_id, None, problems, rejected=o)
    problems = []
    prepared = []
    many = len(o.resources) > 1
    first = (ctx.last_updated, f"{ctx.source_prefix}{origin_batch or ctx.batch_id}#{o.unit}")
    for i, resource in enumerate(o.resources):
        where = f"resources[{i}]." if many else ""
        p, found = prepare(resource, allowed_categories=ctx.allowed, where=where, first=first)
        problems += found
        if p is not None:
            prepared.append(p)
    if not o.resources:
        problems.append(Problem("the unit produced no resources", ""))
    if not o.source_id:
        problems.append(Problem("the unit has no source id", "source id"))
    if problems:
        return Staged(
            o.unit, o.source_id, None, problems, canonical=orjson.dumps(list(o.resources))
        )
    warnings = [(w.location, w.message) for w in o.warnings]
    quality = Quality()
    for resource in o.resources:
        warnings.extend(
            (f.location, f.message) for f in check_resource(resource, quality, ctx.today)
        )
    unit = PreparedUnit(o.unit, o.source_id, tuple(prepared), origin_batch)
    return Staged(o.unit, o.source_id, unit, warnings=warnings, quality=quality)


# -- garbage collection -----------------------------------------------------------------
BATCH_GC_THRESHOLD = 20_000
"""Allocations between young-generation collections during a batch (CPython's default: 700).

A batch allocates millions of short-lived objects (rows, dicts, tuples); with
the default, the collector runs thousands of times and each pass walks the
survivors, which costs a fifth of the batch's CPU. Reference counting still
frees everything acyclic at once, so memory stays bounded by the chunk."""


class _GcTuning:
    """Raises the collector's threshold while any batch runs in this process.

    The threshold is process-wide state, so batches in several threads share
    one counter: the first raises it, the last restores it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = gc.get_threshold()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = gc.get_threshold()
                gc.set_threshold(BATCH_GC_THRESHOLD, *self._saved[1:])
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    gc.set_threshold(*self._saved)


fewer_collections = _GcTuning()
"""``with fewer_collections(): ...`` around a batch (process-wide by nature, like gc itself)."""


# -- a worker process ------------------------------------------------------------------
_quality_counts = attrgetter(*(f.name for f in fields(Quality)))
"""A :class:`Quality`'s counts as a tuple in field order (``Quality(*counts)`` back)."""


def pack(st: Staged) -> Staged | tuple[Any, ...]:
    """``st`` as plain tuples for the queue, when it is the common case (accepted, new bodies).

    Pickling the staged objects one by one (a ``__reduce__`` call per object)
    cost the worker about a second per 100,000 rows; flat tuples of the same
    values pickle in less than half that. Anything else goes as it is.
    """
    u = st.prepared
    if u is None or st.problems or st.canonical is not None or u.origin_batch is not None:
        return st
    resources = []
    for p in u.resources:
        first = p.first
        if first is None or p.resource_json is not None:
            return st
        i = p.index
        resources.append(
            (p.resource_type, p.id, p.labels, p.content_hash, p.active, p.subject_id,
             i.tokens, i.strings, i.dates, i.refs, first.last_updated, first.source, first.body)
        )  # fmt: skip
    quality = None if st.quality is None else _quality_counts(st.quality)
    return (st.unit, st.source_id, resources, st.warnings, quality)


def unpack(item: Staged | tuple[Any, ...]) -> Staged:
    """The :class:`Staged` that :func:`pack` made ``item`` from."""
    if isinstance(item, Staged):
        return item
    unit, source_id, resources, warnings, quality = item
    prepared = tuple(
        Prepared(r[0], r[1], r[2], r[3], r[4], r[5], TableRows(r[6], r[7], r[8], r[9]), None,
                 FirstBody(r[10], r[11], r[12]))
        for r in resources
    )  # fmt: skip
    return Staged(
        unit,
        source_id,
        PreparedUnit(unit, source_id, prepared),
        warnings=warnings,
        quality=None if quality is None else Quality(*quality),
    )


class _WorkerFailed(Exception):
    """The worker process stopped without saying why (killed, out of memory)."""


def _send_error(send: Any, exc: BaseException) -> None:
    if isinstance(exc, UserError):  # rebuilt in the batch process with its problems
        send.put(("user-error", type(exc), exc.detail, list(exc.problems)))
    else:  # a bug: its type and message are enough to log (the traceback stays here)
        send.put(("error", type(exc).__name__, str(exc)[:2000]))


def _work(
    read: Callable[[], Iterator[Outcome]], ctx: StageContext, chunk: int, send: Any
) -> None:  # pragma: no cover - runs in the forked child (covered through StagedInWorker)
    code = 0
    gc.set_threshold(BATCH_GC_THRESHOLD, *gc.get_threshold()[1:])
    gc.freeze()  # what the child inherited is not its garbage: never walk it
    try:
        reading = read()
        buffer: list[Staged | tuple[Any, ...]] = []
        for outcome in reading:
            buffer.append(pack(stage(outcome, ctx)))
            if len(buffer) >= chunk:
                send.put(("chunk", buffer))
                buffer = []
        if buffer:
            send.put(("chunk", buffer))
        send.put(("done", list(getattr(reading, "warnings", ()))))
    except BaseException as exc:
        code = 1
        with contextlib.suppress(BaseException):  # else the parent sees the pipe close
            _send_error(send, exc)
    finally:
        send.close()
        send.join_thread()  # everything put is written before the process ends
        # No atexit handlers, finalisers or inherited connection pools: the
        # child only computed, and must not touch the parent's resources.
        os._exit(code)


class StagedInWorker(Iterator[Staged]):
    """Outcomes read and staged in a forked worker process, yielded here in file order.

    ``read`` (an adapter's ``read`` bound to the file) runs in the child. The
    queue between them holds a few chunks (``ahead``), so memory stays bounded:
    the worker waits when it is that far ahead of the batch. An error in the
    worker is raised here (a :class:`~joinedup.errors.UserError` as itself,
    with its problems), so the batch rolls back as if read in process.
    ``warnings`` are the file's warnings, known once every unit is yielded.
    """

    def __init__(
        self,
        read: Callable[[], Iterator[Outcome]],
        ctx: StageContext,
        chunk: int = 250,
        ahead: int = 8,
    ) -> None:
        mp = multiprocessing.get_context("fork")
        # A few chunks in flight: the worker stages ahead while the batch writes,
        # and memory stays bounded by them.
        self._queue: Any = mp.Queue(maxsize=ahead)
        self._proc = mp.Process(target=_work, args=(read, ctx, chunk, self._queue), daemon=True)
        self._proc.start()
        self.warnings: list[Warning_] = []
        self._items = self._receive()

    def __iter__(self) -> StagedInWorker:
        return self

    def __next__(self) -> Staged:
        return next(self._items)

    def _receive(self) -> Iterator[Staged]:
        while True:
            try:
                message = self._queue.get(timeout=1.0)
            except queue.Empty:
                if self._proc.is_alive():
                    continue
                self._proc.join()
                raise _WorkerFailed(
                    f"the staging worker stopped (exit code {self._proc.exitcode})"
                ) from None
            kind = message[0]
            if kind == "chunk":
                for item in message[1]:
                    yield unpack(item)
            elif kind == "done":
                self.warnings = message[1]
                return
            elif kind == "user-error":
                _, cls, detail, problems = message
                raise cls(detail, problems)
            else:
                raise _WorkerFailed(f"staging failed in the worker: {message[1]}: {message[2]}")

    def close(self) -> None:
        if self._proc.is_alive():  # the batch stopped early (an error): stop reading
            self._proc.terminate()
        self._proc.join()
        self._queue.close()


__all__ = ["Accepted", "StageContext", "Staged", "StagedInWorker", "stage"]
