"""Which committed changes touch which persons, for caches kept in a worker process.

On PostgreSQL, triggers (migration 0013) send ``pg_notify('joinedup_read_cache',
'<key> <key> ...')`` (``*`` for everything) from every transaction that changes
a table the ``Patient/$everything`` read cache holds. :class:`ChangeListener`
is one thread per worker with its own connection that ``LISTEN`` s and hands
each notification's keys to a sink; when its connection is lost it tells the
sink so (the sink then serves nothing from memory) until it listens again.

It also proves, continually, that notifications reach it: a second thread sends
``hb:<nonce>:<n>`` every ``heartbeat_seconds`` through a connection of its own
to the database URL the application writes through (never the listening
session, so a transaction-pooling proxy or a half-open connection stops them
coming back), and each of its own heartbeats that arrives is handed to the
sink's ``heartbeat`` with the time it was sent. The sink serves only while a
recent one has come back (a lease); heartbeats invalidate nothing, and other
listeners' (another nonce) are ignored.

:func:`watch_local_writes` covers this process's own writes without waiting for
the notification: a write to one of those tables through this engine tells the
sink at once, before its commit and again when the connection goes back to the
pool (after the commit), so a caller that wrote and then reads sees its write.
A write those hooks cannot see (``COPY`` on the driver's own cursor) is marked
with :func:`wrote_directly`.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, event

from joinedup.logs import get_logger

log = get_logger("joinedup.read_cache")

CHANNEL = "joinedup_read_cache"
EVERYTHING = "*"
WATCHED_TABLES = (
    "resources", "persons", "person_records", "consent_directives", "declared_relationships",
)
"""The tables migration 0013 puts triggers on."""
_SYNC = "sync:"
_HEARTBEAT = "hb:"


class ChangeSink(Protocol):
    def changed(self, keys: Iterable[str]) -> None:
        """These keys (person or Patient ids, or ``*``) changed in a committed write."""

    def listening(self, up: bool) -> None:
        """The listener has (again) run LISTEN, or has lost its connection."""

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
    ) -> None:
        """``engine``: the application's; heartbeats go to its URL, as writes do."""
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._sink = sink
        self._heartbeat = heartbeat_seconds
        self._poll = min(poll_seconds, heartbeat_seconds)
        self._check_every = check_every_seconds
        self._retry = retry_seconds
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
        self.heartbeats_sent = 0
        self.heartbeats_back = 0
        # test seams: a listener whose notifications stop arriving, a sender that stalls
        self._deafen = threading.Event()
        self._hold = threading.Event()

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
        marker arrives the ones before it have. False if it did not arrive in time."""
        import psycopg

        token = uuid.uuid4().hex
        arrived = threading.Event()
        with self._lock:
            self._syncs[token] = arrived
        try:
            with psycopg.connect(self._conninfo, autocommit=True) as conn:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, _SYNC + token))
            return arrived.wait(timeout)
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
                    # anything sent before LISTEN took effect was missed: the sink drops all
                    self._sink.listening(True)
                    self._beat_now.set()  # the first heartbeat now, not an interval later
                    self._listen(conn)
            except Exception as exc:  # any failure: notifications may be lost
                if not self._stop.is_set():
                    log.warning("read cache listener lost its connection", error=type(exc).__name__)
            finally:
                self._conn = None
                self._sink.listening(False)
            self._stop.wait(self._retry)

    def _listen(self, conn: Any) -> None:
        checked = time.monotonic()
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()
        while not self._stop.is_set():
            if self._deafen.is_set():
                conn.execute("UNLISTEN *")
                self._deafen.clear()
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
        """Send ``hb:<nonce>:<n>`` every interval, through a connection of its own."""
        import psycopg

        n = 0
        conn: Any = None
        failing = False
        while not self._stop.is_set():
            self._beat_now.wait(self._heartbeat)
            self._beat_now.clear()
            if self._stop.is_set() or self._hold.is_set():
                continue
            n += 1
            with self._lock:
                self._sent[n] = time.monotonic()
                for old in [k for k in self._sent if k <= n - 100]:
                    del self._sent[old]
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(
                        self._conninfo, application_name="joinedup read cache heartbeat",
                        **_CONNECT,
                    )
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

    def _deliver(self, payload: str) -> None:
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
        self._sink.changed(payload.split())


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
