"""Which committed changes touch which persons, for caches kept in a worker process.

On PostgreSQL, triggers (migrations 0013 and 0014) send
``pg_notify('joinedup_read_cache_keyed', '<digest> <digest> ...')`` (``*`` for
everything) from every transaction that changes a table the
``Patient/$everything`` read cache holds. A digest is :class:`KeyDigest` of a
person or Patient id: the first 16 hex digits of SHA-256 over a per-deployment
random salt (table ``read_cache_key``, made by migration 0014) and the id, so a
payload, visible to any session that listens and to whatever logs it, names no
one. :class:`ChangeListener` is one thread per worker with its own connection
that reads the salt once, ``LISTEN`` s and hands each notification's digests to
a sink; when its connection is lost it tells the sink so (the sink then serves
nothing from memory) until it listens again.

It also proves, continually, that notifications reach it: a second thread sends
``hb:<nonce>:<n>`` every ``heartbeat_seconds`` through a connection of its own
to the database URL the application writes through (never the listening
session, so a transaction-pooling proxy or a half-open connection stops them
coming back), and each of its own heartbeats that arrives is handed to the
sink's ``heartbeat`` with the time it was sent. The sink serves only while a
recent one has come back (a lease); heartbeats invalidate nothing, and other
listeners' (another nonce) are ignored. Before each heartbeat the sender reads
``pg_notification_queue_usage()`` (:attr:`ChangeListener.queue_usage`, a gauge
with :func:`register_queue_gauge`), logs a warning while the queue is past
``warn_queue_usage`` and sends no heartbeat while it is past
``offline_queue_usage`` (so the lease runs out and reads go to the database:
near a full queue notifications may fail); it sends none either once the salt's
row (``key_id``) is not the one the listener read (a downgrade, a new salt), and
makes the listener reconnect and read the salt again. A change to that row also
notifies :data:`REKEY` (in commit order, before any digest made with the new
salt): the listener empties the sink at once and reconnects.

:func:`watch_local_writes` covers this process's own writes without waiting for
the notification: a write to one of those tables through this engine tells the
sink at once, before its commit and again when the connection goes back to the
pool (after the commit), so a caller that wrote and then reads sees its write.
A write those hooks cannot see (``COPY`` on the driver's own cursor) is marked
with :func:`wrote_directly`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, event

from joinedup.logs import get_logger

log = get_logger("joinedup.read_cache")

CHANNEL = "joinedup_read_cache_keyed"
"""Where the triggers send digests (migration 0014) and the listener its heartbeats."""
LEGACY_CHANNEL = "joinedup_read_cache"
"""Migration 0013's channel (ids in clear): since 0014 the triggers send only ``*``
there, once per transaction, so a worker still running the code before 0014 during a
rolling upgrade drops its cache on every change instead of missing them."""
EVERYTHING = "*"
WATCHED_TABLES = (
    "resources", "persons", "person_records", "consent_directives", "declared_relationships",
)
"""The tables migration 0013 puts triggers on (0014 replaces their functions)."""
DIGEST_CHARS = 16
"""Hex digits of SHA-256 kept per key (64 bits): a collision only drops an entry more."""
_SYNC = "sync:"
_HEARTBEAT = "hb:"
REKEY = "key:changed"
"""Sent by migration 0014's trigger on ``read_cache_key`` when the salt's row changes."""


class KeyDigest:
    """What the triggers notify instead of a person or Patient id: the first
    :data:`DIGEST_CHARS` hex digits of ``sha256(salt || utf8(id))``, as migration 0014's
    ``joinedup_read_cache_notify`` computes it. Keyed by the salt, which only the
    application's role can read, so a listener without it cannot test a guessed id
    against a payload."""

    __slots__ = ("_salt", "fingerprint", "key_id")

    def __init__(self, salt: bytes, key_id: str) -> None:
        if len(salt) < 16:
            raise ValueError("the read cache's salt is too short")
        self._salt = bytes(salt)
        self.key_id = key_id
        """Names the salt (the ``read_cache_key`` row's ``key_id``)."""
        self.fingerprint = hashlib.sha256(self._salt).digest()
        """SHA-256 of the salt: the heartbeat checks the row still holds these bytes."""

    def __call__(self, key: str) -> str:
        return hashlib.sha256(self._salt + key.encode("utf-8")).hexdigest()[:DIGEST_CHARS]

    def __repr__(self) -> str:  # never the salt
        return f"KeyDigest(key_id={self.key_id!r})"


_READ_KEY = "SELECT salt, key_id FROM read_cache_key WHERE id = 1"


def read_key_digest(conn: Any) -> KeyDigest:
    """The deployment's :class:`KeyDigest`, read from ``read_cache_key`` on a psycopg
    connection. Raises if the row is missing (the cache then stays offline)."""
    row = conn.execute(_READ_KEY).fetchone()
    if row is None:
        raise LookupError("read_cache_key has no row (run `joinedup db upgrade`)")
    return KeyDigest(bytes(row[0]), str(row[1]))


class ChangeSink(Protocol):
    def changed(self, keys: Iterable[str]) -> None:
        """These digests (:class:`KeyDigest` of person or Patient ids, or ``*``) changed
        in a committed write."""

    def listening(self, up: bool, digest: KeyDigest | None = None) -> None:
        """The listener has (again) run LISTEN (``digest``: how its keys are notified),
        or has lost its connection."""

    def heartbeat(self, sent_at: float) -> None:
        """A heartbeat this listener sent at ``sent_at`` (``time.monotonic()``) came back:
        every notification committed before it has been handed to :meth:`changed`."""


class ChangeListener:
    """One thread, one connection, ``LISTEN joinedup_read_cache``; one more thread and
    connection sending its heartbeats."""

    def __init__(
        self,
        engine: Engine,
        sink: ChangeSink,
        *,
        heartbeat_seconds: float = 1.0,
        poll_seconds: float = 0.5,
        check_every_seconds: float = 5.0,
        retry_seconds: float = 1.0,
        warn_queue_usage: float = 0.5,
        offline_queue_usage: float = 0.9,
    ) -> None:
        """``engine``: the application's; heartbeats go to its URL, as writes do.
        ``warn_queue_usage`` / ``offline_queue_usage``: the fraction of PostgreSQL's
        notification queue in use past which the heartbeat logs a warning / sends no
        heartbeat (the cache goes offline)."""
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._sink = sink
        self._heartbeat = heartbeat_seconds
        self._poll = min(poll_seconds, heartbeat_seconds)
        self._check_every = check_every_seconds
        self._retry = retry_seconds
        self._warn_usage = warn_queue_usage
        self._offline_usage = offline_queue_usage
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._syncs: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None
        self._beater: threading.Thread | None = None
        self._conn: Any = None
        self._nonce = uuid.uuid4().hex
        """Tells this listener's heartbeats from other workers'."""
        self._sent: dict[int, float] = {}
        """Heartbeat number -> ``time.monotonic()`` just before it was sent."""
        self._beat_now = threading.Event()
        self._digest: KeyDigest | None = None
        """The salt's digest the listening connection read (None: not listening)."""
        self.heartbeats_sent = 0
        self.heartbeats_back = 0
        self.queue_usage: float | None = None
        """``pg_notification_queue_usage()`` at the last heartbeat (None: not read yet)."""
        self.queue_reads = 0
        self._queue_full = False
        """The queue was past ``offline_queue_usage`` at the last heartbeat."""
        self._queue_warned = False
        # test seams: a listener whose notifications stop arriving, a sender that stalls
        self._deafen = threading.Event()
        self._hold = threading.Event()
        self._rekey = threading.Event()
        """The heartbeat found another salt: the listener reconnects to read it."""

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="joinedup-read-cache-listener", daemon=True)
                self._beater = threading.Thread(
                    target=self._beat, name="joinedup-read-cache-heartbeat", daemon=True)
                self._thread.start()
                self._beater.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def stop(self, wait: float = 0.0) -> None:
        """Stop listening; the thread ends (closing its connection) within a poll."""
        self._stop.set()
        self._beat_now.set()
        self._sink.listening(False)
        for thread in (self._thread, self._beater):
            if thread is not None and wait > 0:
                thread.join(timeout=wait)

    def drop_connection(self) -> None:
        """Close the listening connection under the thread (tests: a lost listener)."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):  # already gone is what we want
                conn.pgconn.finish()

    def stop_receiving(self) -> None:
        """Tests: the listening session runs ``UNLISTEN`` and stays connected, as behind a
        transaction-pooling proxy (nothing arrives, every statement succeeds)."""
        self._deafen.set()

    def hold_heartbeats(self, held: bool = True) -> None:
        """Tests: the heartbeat sender stops sending (as when its connection hangs)."""
        if held:
            self._hold.set()
        else:
            self._hold.clear()
            self._beat_now.set()

    def sync(self, timeout: float = 10.0) -> bool:
        """Wait until every notification committed before this call has been handed to
        the sink: PostgreSQL delivers notifications in commit order, so once our own
        marker arrives the ones before it have. The marker is sent again each second
        until it arrives (one sent while the listener was reconnecting is lost; after a
        reconnect the sink started empty, which serves the same). False if none arrived
        in time."""
        import psycopg

        token = uuid.uuid4().hex
        arrived = threading.Event()
        with self._lock:
            self._syncs[token] = arrived
        deadline = time.monotonic() + timeout
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                while True:
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, _SYNC + token))
                    left = deadline - time.monotonic()
                    if arrived.wait(max(0.0, min(1.0, left))):
                        return True
                    if time.monotonic() >= deadline:
                        return False
        finally:
            with self._lock:
                self._syncs.pop(token, None)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo, application_name="joinedup read cache listener",
                    **_CONNECT,
                ) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {CHANNEL}")
                    # the salt after LISTEN: a change to it from now on notifies REKEY
                    digest = read_key_digest(conn)
                    # anything sent before LISTEN took effect was missed: the sink drops all
                    self._sink.listening(True, digest)
                    self._digest = digest
                    self._beat_now.set()  # the first heartbeat now, not an interval later
                    self._listen(conn)
            except Exception as exc:  # any failure: notifications may be lost
                if not self._stop.is_set():
                    log.warning("read cache listener lost its connection", error=type(exc).__name__)
            finally:
                self._conn = None
                self._digest = None
                self._sink.listening(False)
            self._stop.wait(self._retry)

    def _listen(self, conn: Any) -> None:
        checked = time.monotonic()
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        while not self._stop.is_set():
            if self._deafen.is_set():
                conn.execute("UNLISTEN *")
                self._deafen.clear()
            if self._rekey.is_set():
                self._rekey.clear()
                raise LookupError("the read cache's salt changed: reading it again")
            for note in conn.notifies(timeout=self._poll):
                self._deliver(note.payload)
                if self._stop.is_set():
                    return
            if time.monotonic() - checked >= self._check_every:
                # a dead connection raises here (tcp_user_timeout: within seconds); another
                # server session behind the same client one is a transaction-pooling proxy
                if conn.execute("SELECT pg_backend_pid()").fetchone() != backend:
                    raise RuntimeError("listener's server session changed (transaction pooling?)")
                checked = time.monotonic()

    def _beat(self) -> None:
        """Send ``hb:<nonce>:<n>`` every interval, through a connection of its own, if
        the notification queue is not near full and the salt is still the listener's."""
        import psycopg

        n = 0
        conn: Any = None
        failing = False
        while not self._stop.is_set():
            self._beat_now.wait(self._heartbeat)
            self._beat_now.clear()
            digest = self._digest
            if self._stop.is_set() or self._hold.is_set() or digest is None:
                continue
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(
                        self._conninfo, application_name="joinedup read cache heartbeat",
                        **_CONNECT,
                    )
                row = conn.execute(_QUEUE_AND_KEY,
                                   (digest.key_id, digest.fingerprint)).fetchone()
                if row is None:  # the salt changed or went: what is notified is unknown
                    self._rekey.set()
                    raise LookupError("read_cache_key is not the row the listener read")
                if not self._queue_ok(float(row[0])):
                    continue
                n += 1
                with self._lock:
                    self._sent[n] = time.monotonic()
                    for old in [k for k in self._sent if k <= n - 100]:
                        del self._sent[old]
                conn.execute("SELECT pg_notify(%s, %s)",
                             (CHANNEL, f"{_HEARTBEAT}{self._nonce}:{n}"))
                self.heartbeats_sent += 1
                failing = False
            except Exception as exc:  # the lease runs out: the cache stops serving
                if not failing and not self._stop.is_set():
                    log.warning("read cache heartbeat failed", error=type(exc).__name__)
                failing = True
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
                self._stop.wait(self._retry)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _queue_ok(self, usage: float) -> bool:
        """Record the queue's usage; False (no heartbeat: the lease runs out) while it is
        past ``offline_queue_usage``. Logs crossing the thresholds once each way (a
        fraction, nothing else)."""
        self.queue_usage = usage
        self.queue_reads += 1
        if usage >= self._warn_usage and not self._queue_warned:
            log.warning("read cache: PostgreSQL's notification queue is filling",
                        queue_usage=round(usage, 4), warn_at=self._warn_usage,
                        offline_at=self._offline_usage)
            self._queue_warned = True
        elif usage < self._warn_usage and self._queue_warned:
            log.info("read cache: PostgreSQL's notification queue is back to normal",
                     queue_usage=round(usage, 4))
            self._queue_warned = False
        full = usage >= self._offline_usage
        if full and not self._queue_full:
            log.warning("read cache offline: PostgreSQL's notification queue is near full",
                        queue_usage=round(usage, 4), offline_at=self._offline_usage)
        self._queue_full = full
        return not full

    def _deliver(self, payload: str) -> None:
        if payload == REKEY:  # later digests use a salt this listener does not hold
            self._sink.listening(False)
            raise LookupError("the read cache's salt changed: reading it again")
        if payload.startswith(_HEARTBEAT):  # never an invalidation, whoever sent it
            nonce, _, number = payload[len(_HEARTBEAT):].partition(":")
            if nonce != self._nonce or not number.isdigit():
                return
            with self._lock:
                sent_at = self._sent.get(int(number))
            if sent_at is not None:
                self.heartbeats_back += 1
                self._sink.heartbeat(sent_at)
            return
        if payload.startswith(_SYNC):
            with self._lock:
                arrived = self._syncs.get(payload[len(_SYNC):])
            if arrived is not None:
                arrived.set()
            return
        self._sink.changed(_digests(payload, self._digest))


_QUEUE_AND_KEY = (
    "SELECT pg_notification_queue_usage() FROM read_cache_key "
    "WHERE id = 1 AND key_id = %s AND sha256(salt) = %s"
)
"""One round trip per heartbeat: the queue's usage, and no row if the salt changed
(its name or, written with the triggers disabled, only its bytes)."""

_KEYED = "k:"


def _digests(payload: str, digest: KeyDigest | None) -> list[str]:
    """The digests a payload names, or ``[*]`` (everything) unless it is ``k:<key_id>``
    of the salt this listener holds followed by digests: a payload made with another
    salt (a trigger ran before a salt change, its transaction committed after) or in
    another form must drop everything, never nothing."""
    parts = payload.split()
    if parts and digest is not None and parts[0] == _KEYED + digest.key_id:
        return parts[1:]
    return [EVERYTHING]


def register_queue_gauge(registry: Any, listener: ChangeListener) -> Any:
    """A Prometheus gauge ``joinedup_read_cache_notify_queue_usage`` in ``registry``
    (a ``prometheus_client.CollectorRegistry``) reading ``listener.queue_usage`` at each
    scrape (NaN until the first heartbeat has read it). For the application's
    metrics: the listener has no registry of its own."""
    from prometheus_client import Gauge

    gauge = Gauge(
        "joinedup_read_cache_notify_queue_usage",
        "Fraction of PostgreSQL's notification queue in use, read with the read cache's "
        "heartbeat (the cache goes offline near full)",
        registry=registry,
    )
    gauge.set_function(
        lambda: float("nan") if listener.queue_usage is None else listener.queue_usage)
    return gauge


_CONNECT: dict[str, Any] = {
    "autocommit": True, "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
    "keepalives_count": 2, "tcp_user_timeout": 5000, "connect_timeout": 10,
}
"""The listener's and heartbeat sender's connections: a silently dead peer fails a
read within ~15 s and a write within 5 s instead of after ``tcp_retries2``."""

_TARGET = re.compile(
    r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO|COPY)\s+(?:ONLY\s+)?"
    r"(?:\"?\w+\"?\s*\.\s*)?\"?(\w+)",
    re.IGNORECASE,
)
_BULK = re.compile(r"\s*(?:TRUNCATE|WITH)\b", re.IGNORECASE)
_TABLES = re.compile(r"\b(?:" + "|".join(WATCHED_TABLES) + r")\b", re.IGNORECASE)
_WATCHED = frozenset(WATCHED_TABLES)


def writes_watched_table(statement: str) -> bool:
    """Whether a statement may write a watched table: its target is one, or it is a
    TRUNCATE or a WITH statement that names one anywhere (erring towards yes)."""
    target = _TARGET.match(statement)
    if target is not None:
        return target.group(1).lower() in _WATCHED
    return _BULK.match(statement) is not None and _TABLES.search(statement) is not None


_DIRTY = "joinedup_read_cache_dirty"


def wrote_directly(conn: Connection, table: str) -> None:
    """``conn`` wrote ``table`` past SQLAlchemy (``COPY`` on the driver's cursor, which
    :func:`watch_local_writes`' statement hook never sees): if it is watched, empty this
    process's read cache at the commit and the check-in as for any other write."""
    if table.lower() in _WATCHED:
        conn.info[_DIRTY] = True


def watch_local_writes(engine: Engine, changed_everything: Callable[[], None]) -> Callable[[], None]:
    """Call ``changed_everything`` when this process writes to a watched table: on the
    statement, before its commit and after it (the connection's check-in). Returns the
    function that removes the hooks."""

    def after_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if writes_watched_table(statement):
            conn.info[_DIRTY] = True
            changed_everything()

    def before_commit(conn: Any) -> None:
        if conn.info.get(_DIRTY):
            changed_everything()

    def checkin(dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(_DIRTY, False):
            changed_everything()

    event.listen(engine, "after_cursor_execute", after_execute)
    event.listen(engine, "commit", before_commit)
    event.listen(engine, "checkin", checkin)

    def remove() -> None:
        event.remove(engine, "after_cursor_execute", after_execute)
        event.remove(engine, "commit", before_commit)
        event.remove(engine, "checkin", checkin)

    return remove
