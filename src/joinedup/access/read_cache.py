"""A worker's memory of what ``Patient/$everything`` reads from the database.

What a read of a person needs from the database (the person and their Patient
ids, the relationship evidence, the consent directives, the requester's
declarations, the records a decision lets through) changes far less often than
it is read. This cache keeps it per requested Patient id, with what was worked
out from it (relationships per requester, the served Bundle entries per
decision table), so a repeated read runs no SQL at all: the decision point
still decides every request, and every request is still audited.

**Invalidation** (ADR 0102, second amendment): every table the entries come
from has triggers (migrations 0013, 0014) that notify the keys a committed change
touches (person ids, Patient ids, or ``*``) as keyed digests
(``storage.changes.KeyDigest``: no id in clear); ``storage.changes.ChangeListener``
hands them to :meth:`ReadCache.changed`, which drops every entry holding a key
with one of those digests. Entries are indexed by their keys' digests, so a
collision (two ids, one digest) can only drop an entry more, never keep one.
A read takes a :meth:`ticket` *before* it reads the database and its result is
kept only if nothing it depends on was invalidated after the ticket, so a read
racing a change never stores what the change replaced.

**Lease**: the cache serves and stores only while its listener proves it is
receiving. The listener sends a heartbeat notification of its own through
another connection every ``lease_seconds / 3``; each of its own heartbeats that
comes back (notifications arrive in commit order, so every change committed
before it has arrived too) extends the lease to ``lease_seconds`` after that
heartbeat was sent. While there is no lease (not yet started, connection lost,
notifications not delivered, e.g. through a transaction-pooling proxy, or a
half-open connection) the cache is empty and stores nothing; when heartbeats
come back it starts empty (what was missed is unknown).

**Unknown ids**: a Patient id the person index does not know is remembered as
such (keyed on itself: linking a record ``Patient/<id>`` notifies ``<id>``), so
asking again for an unknown id runs no SQL, as asking again for a known one a
requester may not see runs none: the two cost alike (at most ``max_entries``
kept, apart from the persons so that many unknown ids do not evict them).

**Bounds**: at most ``max_entries`` persons and about ``max_bytes`` of stored
JSON and entries; the least recently read go first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from joinedup.access.consent import PersonConsents
from joinedup.access.decisions import Decision, DecisionSummary
from joinedup.access.relationships import Relationship
from joinedup.records.provenance import FHIR_ID
from joinedup.records.store import StoredResource

_EVERYTHING = "*"
_PER_PERSON = 32
"""Requester contexts, record sets and answers kept per person (each); a full set
is emptied, not evicted piecemeal."""
_OVERHEAD = 512
"""Bytes counted per kept object besides its JSON (a rough allowance)."""


@dataclass(frozen=True, slots=True)
class RequesterContext:
    """A requester's view of a person, from the person's directives and evidence and
    the requester's declarations: valid on ``today`` and before ``until``."""

    consents: PersonConsents
    declared: tuple[Relationship, ...]
    relationships: Any
    today: date
    until: datetime | None
    """When the earliest declaration in it expires (None: none does)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The Bundle entries served for one decision table, with what the audit event
    lists about them."""

    entries: tuple[bytes, ...]
    resources: tuple[str, ...]
    decisions: dict[tuple[str, str, str], Decision]
    redacted: int
    summary: DecisionSummary
    """``summarise(decisions)``, computed once for every request the answer serves."""


@dataclass(eq=False)
class PersonEntry:
    """What the database says about the person behind one Patient id."""

    patient_id: str
    person_id: str
    patients: tuple[str, ...]
    evidence: tuple[dict[str, Any], ...]
    contexts: dict[Hashable, RequesterContext] = field(default_factory=dict)
    records: dict[Hashable, tuple[StoredResource, ...]] = field(default_factory=dict)
    answers: dict[Hashable, Answer] = field(default_factory=dict)
    size: int = 0
    alive: bool = True
    digests: frozenset[str] = frozenset()
    """Its :attr:`keys`' digests, set when it is stored."""

    @property
    def keys(self) -> frozenset[str]:
        return frozenset((self.patient_id, self.person_id, *self.patients))


def size_of_records(found: Iterable[StoredResource]) -> int:
    return sum(len(s.body) + _OVERHEAD for s in found)


def size_of_answer(answer: Answer) -> int:
    return sum(len(e) + _OVERHEAD for e in answer.entries)


class ReadCache:
    """Thread-safe; one per worker process (``Services``)."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        start_listening: Callable[[], None] | None = None,
        lease_seconds: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: what heartbeats' send times are read on (``time.monotonic``)."""
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.lease_seconds = lease_seconds
        self._start = start_listening
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, PersonEntry] = OrderedDict()
        self._by_digest: dict[str, set[str]] = {}
        """digest of a key -> Patient ids of the entries holding a key with it."""
        self._unknown: OrderedDict[str, str] = OrderedDict()
        """Patient ids the person index did not know (-> their digest), least recently
        asked first."""
        self._unknown_by_digest: dict[str, set[str]] = {}
        self._digest: Callable[[str], str] | None = None
        """How the listener's notifications name keys (None: not listening)."""
        self._bytes = 0
        self._seq = 0
        """Counts invalidations; a ticket is its value when a read began."""
        self._floor = 0
        """Tickets older than this are refused (everything was dropped since)."""
        self._last: dict[str, int] = {}
        """digest -> ``_seq`` at its last invalidation (forgotten by raising ``_floor``)."""
        self._online = False
        """The listener has run ``LISTEN`` (and not lost its connection since)."""
        self._lease_until = 0.0
        """``clock()`` value until which the cache may serve and store (0: no lease)."""
        self._lapsed = True
        """Everything was dropped since the lease ran out (or there never was one)."""
        self.hits = 0
        self.misses = 0

    # -- the listener's side ---------------------------------------------------------
    def listening(self, up: bool, digest: Callable[[str], str] | None = None) -> None:
        """Up: start from nothing (what was missed is unknown) and wait for a heartbeat;
        ``digest`` is how notifications name keys (``storage.changes.KeyDigest``;
        required: without it nothing is kept). Down: drop everything and keep nothing
        until up again and a heartbeat is back."""
        with self._lock:
            self._drop_all()
            self._digest = digest if up else None
            self._online = up and digest is not None
            self._lease_until = 0.0
            self._lapsed = True

    def heartbeat(self, sent_at: float) -> None:
        """One of this cache's listener's own heartbeats, sent at ``sent_at`` (on
        ``clock``), came back: every change committed before then has been handed to
        :meth:`changed`. Extends the lease to ``lease_seconds`` after ``sent_at``; after
        a lapse the cache starts empty."""
        with self._lock:
            if not self._online:
                return
            until = sent_at + self.lease_seconds
            if self._clock() >= self._lease_until:  # no lease until now: start afresh
                self._drop_all()
                self._lease_until = until
            else:
                self._lease_until = max(self._lease_until, until)
            self._lapsed = self._clock() >= self._lease_until

    def _live(self) -> bool:
        """Under a lease (one clock read); once it has run out, drop everything."""
        if self._clock() < self._lease_until:
            return True
        if not self._lapsed:
            with self._lock:
                self._lapse()
        return False

    def _lapse(self) -> None:
        """(Under the lock.) The lease has run out: drop everything once."""
        if not self._lapsed and self._clock() >= self._lease_until:
            self._drop_all()
            self._lapsed = True

    def changed(self, digests: Iterable[str]) -> None:
        """Keys with these digests (or ``*``: every key) changed in a committed write."""
        with self._lock:
            self._seq += 1
            for digest in digests:
                if digest == _EVERYTHING:
                    self._drop_all()
                    return
                self._last[digest] = self._seq
                for patient_id in self._unknown_by_digest.pop(digest, ()):
                    self._unknown.pop(patient_id, None)
                for patient_id in tuple(self._by_digest.get(digest, ())):
                    self._drop(patient_id)
            if len(self._last) > 100_000:
                self._last.clear()
                self._floor = self._seq

    def changed_everything(self) -> None:
        with self._lock:
            self._drop_all()

    def _drop_all(self) -> None:
        self._seq += 1
        self._floor = self._seq
        self._last.clear()
        for entry in self._entries.values():
            entry.alive = False
        self._entries.clear()
        self._by_digest.clear()
        self._unknown.clear()
        self._unknown_by_digest.clear()
        self._bytes = 0

    def _drop(self, patient_id: str) -> None:
        entry = self._entries.pop(patient_id, None)
        if entry is None:
            return
        entry.alive = False
        self._bytes -= entry.size
        for digest in entry.digests:
            held = self._by_digest.get(digest)
            if held is not None:
                held.discard(patient_id)
                if not held:
                    del self._by_digest[digest]

    def _forget_unknown(self, patient_id: str) -> None:
        digest = self._unknown.pop(patient_id, None)
        if digest is None:
            return
        held = self._unknown_by_digest.get(digest)
        if held is not None:
            held.discard(patient_id)
            if not held:
                del self._unknown_by_digest[digest]

    # -- the reader's side -----------------------------------------------------------
    def ticket(self) -> int | None:
        """Taken before reading the database; None while nothing may be kept."""
        if not self._live():
            if self._start is not None:
                self._start()
            return None
        return self._seq

    def get(self, patient_id: str, *, count: bool = True) -> PersonEntry | None:
        """``count``: add to the hit or miss count (a probe that may fall back to a
        counted :meth:`get` does not)."""
        if not self._live():
            return None
        with self._lock:
            entry = self._entries.get(patient_id)
            if entry is not None:
                self._entries.move_to_end(patient_id)
            if count:
                if entry is not None:
                    self.hits += 1
                else:
                    self.misses += 1
            return entry

    def unknown(self, patient_id: str) -> bool:
        """Whether the person index was found not to know ``Patient/<patient_id>`` (and
        nothing linked it since)."""
        if not self._live():
            return False
        with self._lock:
            if patient_id not in self._unknown:
                return False
            self._unknown.move_to_end(patient_id)
            return True

    def put_unknown(self, ticket: int | None, patient_id: str) -> bool:
        """The person index did not know ``Patient/<patient_id>`` at a read begun at
        ``ticket``. An id that is not a FHIR id (``records.provenance.FHIR_ID``, which the
        record writer enforces) is not kept: no record can have it, and its bytes are
        not counted in ``max_bytes`` (review: 10,000 ids of ~80 kB each would pin
        ~800 MB)."""
        if self.max_entries <= 0 or not FHIR_ID.match(patient_id):
            return False
        with self._lock:
            digests = self._digests_of((patient_id,))
            if digests is None or not self._fresh(ticket, digests):
                return False
            (digest,) = digests
            self._forget_unknown(patient_id)
            self._unknown[patient_id] = digest
            self._unknown_by_digest.setdefault(digest, set()).add(patient_id)
            while len(self._unknown) > self.max_entries:
                self._forget_unknown(next(iter(self._unknown)))
            return True

    def hit(self) -> None:
        with self._lock:
            self.hits += 1

    def _digests_of(self, keys: Iterable[str]) -> frozenset[str] | None:
        """(Under the lock.) The keys' digests; None while not listening."""
        digest = self._digest
        if digest is None:
            return None
        return frozenset(digest(k) for k in keys)

    def _fresh(self, ticket: int | None, digests: Iterable[str]) -> bool:
        """Nothing with these digests changed since ``ticket`` (call under the lock)."""
        if ticket is None or ticket < self._floor:
            return False
        if self._clock() >= self._lease_until:
            self._lapse()
            return False
        last = self._last
        return all(last.get(d, -1) <= ticket for d in digests)

    def put(self, ticket: int | None, entry: PersonEntry) -> bool:
        if self.max_entries <= 0:
            return False
        with self._lock:
            digests = self._digests_of(entry.keys)
            if digests is None or not self._fresh(ticket, digests):
                return False
            self._drop(entry.patient_id)
            entry.digests = digests
            entry.size = _OVERHEAD + sum(len(str(e)) for e in entry.evidence)
            self._entries[entry.patient_id] = entry
            for digest in digests:
                self._by_digest.setdefault(digest, set()).add(entry.patient_id)
            self._bytes += entry.size
            self._evict()
            return True

    def add_context(
        self, ticket: int | None, entry: PersonEntry, key: Hashable, context: RequesterContext
    ) -> None:
        self._add(ticket, entry, entry.contexts, key, context, _OVERHEAD)

    def add_records(
        self, ticket: int | None, entry: PersonEntry, key: Hashable,
        found: tuple[StoredResource, ...],
    ) -> None:
        self._add(ticket, entry, entry.records, key, found, size_of_records(found))

    def add_answer(self, ticket: int | None, entry: PersonEntry, key: Hashable, answer: Answer) -> None:
        self._add(ticket, entry, entry.answers, key, answer, size_of_answer(answer))

    def _add(
        self, ticket: int | None, entry: PersonEntry, into: dict[Hashable, Any], key: Hashable,
        value: Any, size: int,
    ) -> None:
        with self._lock:
            if not entry.alive or self._entries.get(entry.patient_id) is not entry:
                return
            if not self._fresh(ticket, entry.digests):
                return
            if len(into) >= _PER_PERSON:
                into.clear()  # its bytes stay counted until the entry goes: a rough bound
            into[key] = value
            entry.size += size
            self._bytes += size
            self._evict()

    def _evict(self) -> None:
        while self._entries and (
            len(self._entries) > self.max_entries or self._bytes > self.max_bytes
        ):
            oldest = next(iter(self._entries))
            self._drop(oldest)

    # -- for operators and tests -----------------------------------------------------
    @property
    def online(self) -> bool:
        """Serving and storing: listening, with a lease from a recent heartbeat."""
        return self._live()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes,
                    "unknown": len(self._unknown), "hits": self.hits, "misses": self.misses}
