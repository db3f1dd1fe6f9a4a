"""Which committed changes touch which persons, for caches kept in a worker process.

On PostgreSQL, triggers (migration 0013) send ``pg_notify('joinedup_read_cache',
'<key> <key> ...')`` (``*`` for everything) from every transaction that changes
a table the ``Patient/$everything`` read cache holds. :class:`ChangeListener`
is one thread per worker with its own connection that ``LISTEN`` s and hands
each notification's keys to a sink; when its connection is lost it tells the
sink so (the sink then serves nothing from memory) until it listens again.

:func:`watch_local_writes` covers this process's own writes without waiting for
the notification: a write to one of those tables through this engine tells the
sink at once, before its commit and again when the connection goes back to the
pool (after the commit), so a caller that wrote and then reads sees its write.
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

from joinedup.logs import get_logger

log = get_logger("joinedup.read_cache")

CHANNEL = "joinedup_read_cache"
EVERYTHING = "*"
WATCHED_TABLES = (
    "resources", "persons", "person_records", "consent_directives", "declared_relationships",
)
"""The tables migration 0013 puts triggers on."""
_SYNC = "sync:"


class ChangeSink(Protocol):
    def changed(self, keys: Iterable[str]) -> None:
        """These keys (person or Patient ids, or ``*``) changed in a committed write."""

    def listening(self, up: bool) -> None:
        """The listener is (again) receiving every notification, or has lost them."""


class ChangeListener:
    """One thread, one connection, ``LISTEN joinedup_read_cache``."""

    def __init__(
        self,
        url: URL,
        sink: ChangeSink,
        *,
        poll_seconds: float = 0.5,
        check_every_seconds: float = 5.0,
        retry_seconds: float = 1.0,
    ) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._sink = sink
        self._poll = poll_seconds
        self._check_every = check_every_seconds
        self._retry = retry_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._syncs: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="joinedup-read-cache-listener", daemon=True)
                self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def stop(self, wait: float = 0.0) -> None:
        """Stop listening; the thread ends (closing its connection) within a poll."""
        self._stop.set()
        self._sink.listening(False)
        thread = self._thread
        if thread is not None and wait > 0:
            thread.join(timeout=wait)

    def drop_connection(self) -> None:
        """Close the listening connection under the thread (tests: a lost listener)."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):  # already gone is what we want
                conn.pgconn.finish()

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
                    self._conninfo, autocommit=True, keepalives=1, keepalives_idle=5,
                    keepalives_interval=2, keepalives_count=2,
                    application_name="joinedup read cache listener",
                ) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {CHANNEL}")
                    # anything sent before LISTEN took effect was missed: the sink drops all
                    self._sink.listening(True)
                    self._listen(conn)
            except Exception as exc:  # any failure: notifications may be lost
                if not self._stop.is_set():
                    log.warning("read cache listener lost its connection", error=type(exc).__name__)
            finally:
                self._conn = None
                self._sink.listening(False)
            self._stop.wait(self._retry)

    def _listen(self, conn: Any) -> None:
        import time

        checked = time.monotonic()
        while not self._stop.is_set():
            for note in conn.notifies(timeout=self._poll):
                self._deliver(note.payload)
                if self._stop.is_set():
                    return
            if time.monotonic() - checked >= self._check_every:
                conn.execute("SELECT 1")  # a dead connection raises here
                checked = time.monotonic()

    def _deliver(self, payload: str) -> None:
        if payload.startswith(_SYNC):
            with self._lock:
                arrived = self._syncs.get(payload[len(_SYNC):])
            if arrived is not None:
                arrived.set()
            return
        self._sink.changed(payload.split())


_TARGET = re.compile(
    r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO|COPY)\s+(?:ONLY\s+)?\"?(\w+)",
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
