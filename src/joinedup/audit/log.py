"""The audit log's write path: durable group commit, failing closed.

``append`` returns only once its events are committed; it raises
``Unavailable`` (HTTP 503) if they cannot be, so a caller that audits before
answering never serves anything unaudited.

Group commit: callers hand their events to one writer thread per process,
which takes everything waiting (up to ``max_batch_events``) and commits it
in one transaction (one fsync) while the next batch gathers. Across
processes the chain stays one sequence because each batch runs with the
chain head locked (see ``joinedup.audit.store``): read head, assign seqs and
hashes, insert, move the head, commit. A checkpoint is signed inside the
same transaction when one is due, so checkpoints land on batch boundaries
and never race.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from joinedup.audit.config import AuditConfig
from joinedup.audit.events import AuditEvent
from joinedup.audit.keys import AuditKeyStore
from joinedup.audit.statements import Checkpoint
from joinedup.audit.store import ChainStore, Head
from joinedup.errors import ConfigError, Unavailable
from joinedup.logs import get_logger
from joinedup.storage.engine import Database

log = get_logger("joinedup.audit")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Submission:
    """One caller's events, and how to tell the caller they are committed."""

    __slots__ = ("error", "events", "first_seq", "future", "lock", "loop")

    def __init__(self, events: list[AuditEvent]) -> None:
        self.events = events
        self.first_seq = 0
        self.error: BaseException | None = None
        self.lock: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: asyncio.Future[list[int]] | None = None

    def seqs(self) -> list[int]:
        return list(range(self.first_seq, self.first_seq + len(self.events)))


_STOP = object()


def _resolve(subs: list[_Submission]) -> None:
    """Runs on each waiting caller's event loop."""
    for sub in subs:
        fut = sub.future
        if fut is None or fut.done():
            continue
        if sub.error is not None:
            fut.set_exception(_caller_error(sub.error))
        else:
            fut.set_result(sub.seqs())


def _expire(future: asyncio.Future[list[int]], timeout: float) -> None:
    if not future.done():
        future.set_exception(Unavailable(
            f"the audit store did not commit within {timeout:g}s; nothing is served unaudited"
        ))


class _Watch:
    """Fails ``append_async`` calls that outlive the timeout, with one timer per event
    loop rather than one per call (``asyncio.wait_for`` or a timer per call would cost
    more than the rest of an append). Used only from its loop's thread."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.pending: collections.deque[tuple[float, asyncio.Future[list[int]]]] = (
            collections.deque()
        )
        self.armed = False

    def add(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[list[int]]) -> None:
        self.pending.append((time.monotonic() + self.timeout, future))
        if not self.armed:
            self.armed = True
            loop.call_later(min(1.0, self.timeout), self.check, loop)

    def check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        pending = self.pending
        # Deadlines grow in arrival order, so only the head can have expired.
        while pending and (pending[0][1].done() or pending[0][0] <= now):
            _, future = pending.popleft()
            _expire(future, self.timeout)
        if pending:
            loop.call_later(min(1.0, self.timeout), self.check, loop)
        else:
            self.armed = False


def _caller_error(error: BaseException) -> BaseException:
    """A fresh exception per caller (one object must not be raised in many threads)."""
    if isinstance(error, Unavailable):
        fresh = Unavailable(error.detail)
    else:
        fresh = Unavailable("the audit writer failed; nothing is served unaudited")
    fresh.__cause__ = error
    return fresh


class _Linger:
    """How long the writer waits for callers it expects before committing a batch.

    Callers that were just answered usually come straight back with their next event
    (a busy server's threads, a benchmark's loops), but need a moment to be scheduled,
    so a writer that commits whatever is queued the instant it is free commits about
    half of them each time, paying a durable commit per half. After each commit the
    writer expects as many callers as it just answered plus those already queued, and
    waits up to ``seconds`` for them. Waits that do not fill the batch halve the wait
    (down to none); waits that do restore it, and a zero wait is retried now and then,
    so callers that do not come back cost little latency."""

    MAX_SECONDS = 0.002
    RETRY_EVERY = 64

    def __init__(self) -> None:
        self.seconds = self.MAX_SECONDS
        self.expected = 1
        self._since_retry = 0

    def expect(self, callers: int) -> None:
        self.expected = max(1, callers)

    def gathered(self, callers: int, *, waited: bool) -> None:
        if not waited:
            return
        if callers >= self.expected:
            self.seconds = self.MAX_SECONDS
        elif self.seconds > self.MAX_SECONDS / 16:
            self.seconds /= 2
        else:
            self.seconds = 0.0
        if self.seconds == 0.0:
            self._since_retry += 1
            if self._since_retry >= self.RETRY_EVERY:
                self._since_retry = 0
                self.seconds = self.MAX_SECONDS / 16


class AuditWriter:
    """Appends events to the chain with durable group commit."""

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
        self._store = ChainStore(db)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._closed = False
        self._dirty = False
        self._warned_no_key = False
        self._watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = (
            weakref.WeakKeyDictionary()
        )
        self.batches = 0
        """Transactions committed by this process (for benchmarks and tests)."""

    # -- callers -------------------------------------------------------------------
    def append(self, events: Iterable[AuditEvent]) -> list[int]:
        """Commit ``events`` durably, in order, and return their seqs.

        Blocks until committed; raises ``Unavailable`` if they cannot be
        (store down, timeout, log closed). Safe to call from many threads.
        """
        batch = list(events)
        if not batch:
            return []
        sub = _Submission(batch)
        sub.lock = threading.Lock()
        sub.lock.acquire()
        self._submit(sub)
        if not sub.lock.acquire(timeout=self.config.append_timeout_seconds):
            raise Unavailable(
                f"the audit store did not commit within {self.config.append_timeout_seconds:g}s; "
                "nothing is served unaudited"
            )
        if sub.error is not None:
            raise _caller_error(sub.error)
        return sub.seqs()

    async def append_async(self, events: Iterable[AuditEvent]) -> list[int]:
        """``append`` for coroutines: waits without holding a thread."""
        batch = list(events)
        if not batch:
            return []
        loop = asyncio.get_running_loop()
        sub = _Submission(batch)
        sub.loop = loop
        sub.future = loop.create_future()
        self._submit(sub)
        watch = self._watches.get(loop)
        if watch is None:
            watch = self._watches[loop] = _Watch(self.config.append_timeout_seconds)
        watch.add(loop, sub.future)
        return await sub.future

    def _submit(self, sub: _Submission) -> None:
        if self._closed:
            raise Unavailable("the audit log is closed; nothing is served unaudited")
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            self._start()
        self._queue.put(sub)

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise Unavailable("the audit log is closed; nothing is served unaudited")
            thread = self._thread
            if thread is not None and self._pid == os.getpid() and thread.is_alive():
                return
            if self._pid != os.getpid():
                self._queue = queue.SimpleQueue()  # a forked child starts clean
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="joinedup-audit-writer", daemon=True
            )
            self._thread.start()

    # -- the writer thread -------------------------------------------------------
    def _run(self) -> None:
        q = self._queue
        limit = self.config.max_batch_events
        linger = _Linger()
        stopping = False
        while not stopping:
            try:
                first = q.get(timeout=self.config.checkpoint_every_seconds)
            except queue.Empty:
                self._idle_checkpoint()
                continue
            if first is _STOP:
                break
            assert isinstance(first, _Submission)
            batch = [first]
            size = len(first.events)
            deadline = 0.0
            while size < limit:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    if len(batch) >= linger.expected:
                        break
                    now = time.monotonic()
                    deadline = deadline or now + linger.seconds
                    if now >= deadline:
                        break
                    try:
                        item = q.get(timeout=deadline - now)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Submission)
                batch.append(item)
                size += len(item.events)
            linger.gathered(len(batch), waited=deadline > 0)
            self._commit(batch)
            linger.expect(len(batch) + q.qsize())
        self._store.release_held()
        self._fail_leftovers(q)

    def _fail_leftovers(self, q: queue.SimpleQueue[object]) -> None:
        closed = Unavailable("the audit log is closed; nothing is served unaudited")
        leftovers = []
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Submission):
                leftovers.append(item)
        if leftovers:
            self._settle(leftovers, closed)

    def _commit(self, batch: list[_Submission]) -> None:
        error: BaseException | None = None
        try:
            self._write(batch)
            self.batches += 1
            self._dirty = True
        except Unavailable as exc:
            log.error("audit_write_failed", events=sum(len(s.events) for s in batch))
            error = exc
        except Exception as exc:  # a bug: still fail the callers closed
            log.error("audit_writer_bug", exc_info=exc)
            error = exc
        self._settle(batch, error)

    def _write(self, batch: Sequence[_Submission]) -> None:
        sha256 = hashlib.sha256
        event_row = self._store.event_row
        with self._store.write(held=True) as txn:
            head = txn.head()
            seq, prev_hex = head.seq, head.hash
            prev = bytes.fromhex(prev_hex)
            rows: list[tuple[Any, ...]] = []
            persons: list[tuple[int, str]] = []
            for sub in batch:
                sub.first_seq = seq + 1
                for event in sub.events:
                    seq += 1
                    body = event.canonical(seq)
                    digest = sha256(prev + body).digest()
                    hash_ = digest.hex()
                    rows.append(event_row(seq, prev_hex, hash_, body, event))
                    for person in event.persons:
                        persons.append((seq, person))
                    prev, prev_hex = digest, hash_
            checkpoint = self._due_checkpoint(head, seq, prev_hex)
            txn.append(rows, persons, seq, prev_hex, checkpoint)
        if checkpoint is not None:
            self._dirty = False

    def _due_checkpoint(self, head: Head, seq: int, hash_: str) -> Checkpoint | None:
        if seq <= head.checkpoint_seq:
            return None
        now = self._clock()
        cfg = self.config
        due = (
            seq - head.checkpoint_seq >= cfg.checkpoint_every_events
            or head.checkpoint_at is None
            or now - head.checkpoint_at >= timedelta(seconds=cfg.checkpoint_every_seconds)
        )
        if not due:
            return None
        key = self.keys.active_or_none()
        if key is None:
            if not self._warned_no_key:
                log.warning("audit_checkpoint_skipped", reason="no audit signing key")
                self._warned_no_key = True
            return None
        return Checkpoint.make(log_id=head.log_id, seq=seq, hash=hash_, time=now, key=key)

    def _settle(self, batch: list[_Submission], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Submission]] = {}
        for sub in batch:
            if error is not None:
                sub.error = error
            if sub.lock is not None:
                sub.lock.release()
            elif sub.loop is not None:
                by_loop.setdefault(sub.loop, []).append(sub)
        for loop, subs in by_loop.items():
            # RuntimeError: the caller's loop has closed, so nobody is waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, subs)

    def _idle_checkpoint(self) -> None:
        if not self._dirty:
            return
        try:
            self.checkpoint()
        except (Unavailable, ConfigError) as exc:
            log.warning("audit_checkpoint_failed", reason=type(exc).__name__)

    # -- checkpoints and shutdown ------------------------------------------------
    def checkpoint(self) -> Checkpoint | None:
        """Sign a checkpoint of the current head now, unless one already covers it."""
        key = self.keys.active()
        with self._store.write() as txn:
            head = txn.head()
            if head.seq == 0 or head.seq <= head.checkpoint_seq:
                self._dirty = False
                return None
            checkpoint = Checkpoint.make(
                log_id=head.log_id, seq=head.seq, hash=head.hash, time=self._clock(), key=key
            )
            txn.set_head(head.seq, head.hash, checkpoint)
        self._dirty = False
        return checkpoint

    def close(self, *, checkpoint: bool = True) -> None:
        """Commit what is queued, stop the writer, and sign a final checkpoint."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            self._queue.put(_STOP)
            thread.join(timeout=self.config.append_timeout_seconds)
        if checkpoint and self.keys.active_or_none() is not None:
            try:
                self.checkpoint()
            except Unavailable as exc:
                log.warning("audit_checkpoint_failed", reason=type(exc).__name__)
