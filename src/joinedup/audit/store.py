"""The audit log's SQL: one locked-head transaction for writers, one snapshot for readers.

This is the hot path (tens of thousands of events a second), so it talks to
the DB-API driver directly rather than through the ORM, and it is the one
place in ``audit`` that knows the two backends apart:

* **SQLite**: ``BEGIN IMMEDIATE`` takes the database's single write lock,
  so writers in several processes on one file take turns; WAL with
  ``synchronous=FULL`` (set by ``joinedup.storage.engine``) makes COMMIT
  durable before it returns.
* **PostgreSQL**: ``SELECT ... FOR UPDATE`` on the one ``audit_chain_head``
  row serialises writers across workers; rows go in with ``COPY``.

Readers (``verify``, ``archive``) take one consistent snapshot (a deferred
read transaction on SQLite's WAL, REPEATABLE READ on PostgreSQL) and stream
rows through server-side cursors, so memory stays flat however long the log.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from joinedup.audit.events import GENESIS_HASH
from joinedup.audit.statements import Anchor, Checkpoint
from joinedup.errors import Unavailable
from joinedup.storage.engine import Database, safe_url

try:  # psycopg is a dependency, but keep the SQLite path importable without it
    import psycopg

    _PG_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error,)
except ImportError:  # pragma: no cover
    _PG_ERRORS = ()

DB_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    sqlite3.Error,
    OSError,
    *_PG_ERRORS,
)
"""What "the audit store cannot be written" looks like: answered with Unavailable."""

EVENT_COLUMNS = (
    "seq",
    "prev_hash",
    "hash",
    "body",
    "time",
    "action",
    "outcome",
    "org",
    "client_id",
    "practitioner",
    "role",
    "purpose",
    "break_glass",
    "subject_seq",
)
"""Column order of event rows, as written and as streamed to ``verify`` (which
indexes rows by position: seq 0, prev_hash 1, hash 2, body 3, time 4, ...)."""

_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")
"""What ``pg_export_snapshot()`` returns (e.g. ``00000003-0000001B-1``)."""

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
"""SQLAlchemy's SQLite DATETIME text, so ORM reads of these rows parse them."""


@dataclass(frozen=True, slots=True)
class Head:
    log_id: str
    seq: int
    hash: str
    checkpoint_seq: int
    checkpoint_at: datetime | None


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...


class _Dialect:
    """The few statements that differ between backends."""

    name: str
    mark: str

    def time_param(self, value: datetime) -> Any:
        raise NotImplementedError

    def time_column(self, iso: str) -> Any:
        """An event's canonical time text as this backend's column value."""
        raise NotImplementedError

    def time_value(self, raw: Any) -> datetime:
        raise NotImplementedError

    def begin_write(self, conn: Any) -> Any:
        raise NotImplementedError

    def lock_head_sql(self) -> str:
        raise NotImplementedError

    def insert_events(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def insert_persons(self, cur: Any, rows: list[tuple[int, str]]) -> None:
        raise NotImplementedError

    def commit(self, conn: Any) -> None:
        raise NotImplementedError

    def rollback(self, conn: Any) -> None:
        raise NotImplementedError

    def begin_read(self, conn: Any) -> None:
        raise NotImplementedError

    def stream(self, conn: Any, sql: str, params: Sequence[Any], name: str) -> Iterator[Any]:
        raise NotImplementedError

    def end_read(self, conn: Any) -> None:
        raise NotImplementedError

    def stream_all(self, conn: Any, sql: str, params: Sequence[Any]) -> Iterator[Any]:
        """Rows of one long query as the server sends them (no round trip per chunk);
        the connection is busy until the iterator ends."""
        return self.stream(conn, sql, params, "all")

    def export_snapshot(self, conn: Any) -> str | None:
        """An id other connections can read the same snapshot by (None: not needed)."""
        return None

    def join_snapshot(self, conn: Any, snapshot_id: str) -> None:
        raise NotImplementedError

    def verify_projection(self) -> str:
        """The SELECT list of ``Snapshot.verify_rows`` (the rows ``ChainVerifier`` reads)."""
        raise NotImplementedError

    def verify_from(self) -> str:
        return "audit_events e"

    def q(self, sql: str) -> str:
        """Write SQL with ``?`` marks; swap to the driver's."""
        return sql if self.mark == "?" else sql.replace("?", self.mark)


class _Sqlite(_Dialect):
    name = "sqlite"
    mark = "?"

    def time_param(self, value: datetime) -> str:
        return value.astimezone(UTC).strftime(_SQLITE_TIME)

    def time_column(self, iso: str) -> str:
        return iso[:10] + " " + iso[11:26]

    def time_value(self, raw: Any) -> datetime:
        return datetime.strptime(str(raw), _SQLITE_TIME).replace(tzinfo=UTC)

    def begin_write(self, conn: sqlite3.Connection) -> sqlite3.Cursor:
        conn.isolation_level = None  # we issue BEGIN ourselves
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        return cur

    def lock_head_sql(self) -> str:
        return (
            "SELECT log_id, seq, hash, checkpoint_seq, checkpoint_at "
            "FROM audit_chain_head WHERE id = 1"
        )

    def insert_events(self, cur: sqlite3.Cursor, rows: list[tuple[Any, ...]]) -> None:
        _insert_many(cur, "audit_events", EVENT_COLUMNS, rows)

    def insert_persons(self, cur: sqlite3.Cursor, rows: list[tuple[int, str]]) -> None:
        _insert_many(cur, "audit_event_persons", ("seq", "person_id"), rows)

    def commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    def rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def begin_read(self, conn: sqlite3.Connection) -> None:
        conn.isolation_level = None
        conn.execute("BEGIN")  # deferred: the first SELECT fixes the WAL snapshot

    def stream(
        self, conn: sqlite3.Connection, sql: str, params: Sequence[Any], name: str
    ) -> Iterator[Any]:
        cur = conn.cursor()
        cur.arraysize = 2000
        cur.execute(sql, tuple(params))
        while rows := cur.fetchmany():
            yield from rows
        cur.close()

    def end_read(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def verify_projection(self) -> str:
        return (
            "e.seq, e.prev_hash, e.hash, CAST(e.body AS BLOB), e.time, "
            "e.action, e.outcome, e.org, e.client_id, e.practitioner, e.role, e.purpose, "
            "e.break_glass, e.subject_seq, "
            "(SELECT group_concat(p.person_id, char(10)) FROM audit_event_persons p "
            "WHERE p.seq = e.seq)"
        )


_CHUNKS = (256, 64, 16, 4, 1)
"""Rows per multi-row INSERT: a few fixed shapes, so each statement is prepared once
(the driver caches them) and ``256 * 14`` parameters stay far below SQLite's limit."""


def _insert_many(
    cur: sqlite3.Cursor, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` with a few multi-row INSERTs rather than one statement per row.

    ``executemany`` runs one statement per row and the driver releases the GIL around
    each; with many threads waiting to run, the writer then queues for the GIL once a
    row. One statement for many rows releases it once for all of them (and binds
    faster)."""
    names = ", ".join(columns)
    one = "(" + ", ".join("?" * len(columns)) + ")"
    at, total = 0, len(rows)
    for size in _CHUNKS:
        if total - at < size:
            continue
        sql = f"INSERT INTO {table} ({names}) VALUES " + ", ".join([one] * size)
        while total - at >= size:
            chunk = rows[at : at + size]
            cur.execute(sql, [value for row in chunk for value in row])
            at += size


class _Postgres(_Dialect):
    name = "postgresql"
    mark = "%s"

    def time_param(self, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def time_column(self, iso: str) -> datetime:
        return datetime.fromisoformat(iso)

    def time_value(self, raw: Any) -> datetime:
        assert isinstance(raw, datetime)
        return raw.astimezone(UTC)

    def begin_write(self, conn: Any) -> Any:
        return conn.cursor()  # psycopg opens the transaction at the first statement

    def lock_head_sql(self) -> str:
        return (
            "SELECT log_id, seq, hash, checkpoint_seq, checkpoint_at "
            "FROM audit_chain_head WHERE id = 1 FOR UPDATE"
        )

    def insert_events(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        with cur.copy(f"COPY audit_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def insert_persons(self, cur: Any, rows: list[tuple[int, str]]) -> None:
        if rows:
            with cur.copy("COPY audit_event_persons (seq, person_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def append_and_move_head(
        self,
        cur: Any,
        rows: list[tuple[Any, ...]],
        persons: list[tuple[int, str]],
        seq: int,
        hash_: str,
    ) -> None:
        columns = [list(column) for column in zip(*rows, strict=True)]
        person_seqs = [p[0] for p in persons]
        person_ids = [p[1] for p in persons]
        cur.execute(_APPEND_SQL, (*columns, person_seqs, person_ids, seq, hash_))

    def commit(self, conn: Any) -> None:
        conn.commit()

    def rollback(self, conn: Any) -> None:
        conn.rollback()

    def begin_read(self, conn: Any) -> None:
        conn.rollback()
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # Streaming plans only (index scans, merge joins): whatever the statistics say,
        # a reader never sorts or hashes the whole log in server memory.
        conn.execute("SET LOCAL enable_sort = off")
        conn.execute("SET LOCAL enable_hashjoin = off")

    def stream(self, conn: Any, sql: str, params: Sequence[Any], name: str) -> Iterator[Any]:
        # Binary results: bytea arrives as bytes, numbers and flags without text parsing.
        with conn.cursor(name=f"audit_{name}_{uuid.uuid4().hex[:8]}", binary=True) as cur:
            cur.itersize = 5000
            cur.execute(sql, tuple(params))
            yield from cur

    def end_read(self, conn: Any) -> None:
        conn.rollback()

    def stream_all(self, conn: Any, sql: str, params: Sequence[Any]) -> Iterator[Any]:
        # Single-row mode: the server sends rows continuously while we verify the ones
        # already here (TCP back-pressure keeps memory flat), where a named cursor's
        # FETCH round trips leave the server idle while we work and us idle while it does.
        with conn.cursor(binary=True) as cur:
            yield from cur.stream(sql, tuple(params))

    def export_snapshot(self, conn: Any) -> str | None:
        return str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])

    def join_snapshot(self, conn: Any, snapshot_id: str) -> None:
        conn.rollback()
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        if not _SNAPSHOT_ID.fullmatch(snapshot_id):  # a literal: SET takes no parameters
            raise ValueError(f"not a snapshot id: {snapshot_id!r}")
        conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")

    def verify_projection(self) -> str:
        return (
            "e.seq, e.prev_hash, e.hash, convert_to(e.body, 'UTF8'), "
            """to_char(e.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), """
            "e.action, e.outcome, e.org, e.client_id, e.practitioner, e.role, e.purpose, "
            "e.break_glass, e.subject_seq, p.persons"
        )

    def verify_from(self) -> str:
        # A merge join of two index-ordered streams: half the server time of a correlated
        # subquery per row, and nothing sorted or hashed in memory (see begin_read).
        return (
            "audit_events e LEFT JOIN (SELECT seq, string_agg(person_id, E'\\n' "
            'ORDER BY person_id COLLATE "C") AS persons FROM audit_event_persons '
            "GROUP BY seq) p ON p.seq = e.seq"
        )


_EVENT_ARRAYS = (
    "bigint[]", "text[]", "text[]", "text[]", "timestamptz[]", "text[]", "text[]",
    "text[]", "text[]", "text[]", "text[]", "text[]", "boolean[]", "bigint[]",
)
"""The array type of each of ``EVENT_COLUMNS``, in order, for ``_APPEND_SQL``."""
assert len(_EVENT_ARRAYS) == len(EVENT_COLUMNS)

_APPEND_SQL = (
    f"WITH events AS (INSERT INTO audit_events ({', '.join(EVENT_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'%b::{t}' for t in _EVENT_ARRAYS)})), "
    "persons AS (INSERT INTO audit_event_persons (seq, person_id) "
    "SELECT * FROM unnest(%b::bigint[], %b::text[])) "
    "UPDATE audit_chain_head SET seq = %s, hash = %s WHERE id = 1"
)
"""A batch's events, their person rows and the head's move in one statement: the
writer's round trips with the chain head locked go from five (two COPYs of two each,
the UPDATE) to one. Every column is one array parameter, whatever the batch size, so
the statement text never changes and psycopg prepares it once. Arrays go in binary
(``%b``): psycopg's text form of an array escapes every quote of every JSON body in
Python, ~17 times slower for a batch of read events. The CTEs' inserts and
the UPDATE run in the one statement's snapshot and touch different tables, so their
order does not matter; a failure of any fails the whole statement."""


def dialect_for(db: Database) -> _Dialect:
    return _Postgres() if db.dialect == "postgresql" else _Sqlite()


def unavailable(db: Database, exc: BaseException, doing: str) -> Unavailable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Unavailable(
        f"the audit store at {safe_url(db.engine)} cannot be {doing} ({reason}); "
        "nothing is served unaudited"
    )


class WriteTxn:
    """One write transaction with the chain head locked."""

    def __init__(self, dialect: _Dialect, conn: Any, cur: Any) -> None:
        self.dialect = dialect
        self._conn = conn
        self._cur = cur

    def head(self) -> Head:
        d = self.dialect
        row = self._cur.execute(d.lock_head_sql()).fetchone()
        if row is None:
            # A new (or emptied) log: the first writer plants the genesis head.
            self._cur.execute(
                d.q(
                    "INSERT INTO audit_chain_head (id, log_id, seq, hash, checkpoint_seq) "
                    "VALUES (1, ?, 0, ?, 0)"
                )
                + (" ON CONFLICT (id) DO NOTHING" if d.name == "postgresql" else ""),
                (uuid.uuid4().hex, GENESIS_HASH),
            )
            row = self._cur.execute(d.lock_head_sql()).fetchone()
        log_id, seq, hash_, cp_seq, cp_at = row
        return Head(
            str(log_id), int(seq), str(hash_), int(cp_seq),
            None if cp_at is None else d.time_value(cp_at),
        )

    def insert_events(self, rows: list[tuple[Any, ...]], persons: list[tuple[int, str]]) -> None:
        self.dialect.insert_events(self._cur, rows)
        self.dialect.insert_persons(self._cur, persons)

    def append(
        self,
        rows: list[tuple[Any, ...]],
        persons: list[tuple[int, str]],
        seq: int,
        hash_: str,
        checkpoint: Checkpoint | None,
    ) -> None:
        """``insert_events`` then ``set_head``: on PostgreSQL, without a checkpoint, as
        one statement (one round trip with the head locked, instead of five)."""
        d = self.dialect
        if checkpoint is None and isinstance(d, _Postgres):
            d.append_and_move_head(self._cur, rows, persons, seq, hash_)
            return
        self.insert_events(rows, persons)
        self.set_head(seq, hash_, checkpoint)

    def set_head(self, seq: int, hash_: str, checkpoint: Checkpoint | None) -> None:
        d = self.dialect
        if checkpoint is None:
            self._cur.execute(
                d.q("UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1"), (seq, hash_)
            )
            return
        self._cur.execute(
            d.q(
                "INSERT INTO audit_checkpoints (seq, time, kid, hash, statement, signature) "
                "VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (
                checkpoint.seq,
                d.time_param(checkpoint.time),
                checkpoint.kid,
                checkpoint.hash,
                checkpoint.statement,
                checkpoint.signature,
            ),
        )
        self._cur.execute(
            d.q(
                "UPDATE audit_chain_head SET seq = ?, hash = ?, checkpoint_seq = ?, "
                "checkpoint_at = ? WHERE id = 1"
            ),
            (seq, hash_, checkpoint.seq, d.time_param(checkpoint.time)),
        )

    def latest_anchor_seq(self) -> int:
        row = self._cur.execute("SELECT MAX(last_seq) FROM audit_anchors").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def add_anchor(self, anchor: Anchor, archive_name: str) -> None:
        d = self.dialect
        self._cur.execute(
            d.q(
                "INSERT INTO audit_anchors (last_seq, first_seq, prev_hash, last_hash, "
                "archive_sha256, archive_name, time, kid, statement, signature) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            (
                anchor.last_seq,
                anchor.first_seq,
                anchor.prev_hash,
                anchor.last_hash,
                anchor.archive_sha256,
                archive_name,
                d.time_param(anchor.time),
                anchor.kid,
                anchor.statement,
                anchor.signature,
            ),
        )

    def delete_through(self, last_seq: int) -> None:
        """Remove archived rows (events, their person index, their checkpoints)."""
        q = self.dialect.q
        self._cur.execute(q("DELETE FROM audit_event_persons WHERE seq <= ?"), (last_seq,))
        self._cur.execute(q("DELETE FROM audit_checkpoints WHERE seq <= ?"), (last_seq,))
        self._cur.execute(q("DELETE FROM audit_events WHERE seq <= ?"), (last_seq,))


class ChainStore:
    """Transactions and snapshots on the audit tables of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = dialect_for(db)
        self._held: Any = None
        self._held_pid = 0
        self._held_saver: _IsolationSaver | None = None
        self._checkpointer: _WalCheckpointer | None = None

    def event_row(
        self, seq: int, prev_hash: str, hash_: str, body: bytes, event: Any
    ) -> tuple[Any, ...]:
        """The row for ``event`` at ``seq``, in ``EVENT_COLUMNS`` order."""
        columns = event.columns
        return (seq, prev_hash, hash_, body.decode(), self.dialect.time_column(columns[0]),
                *columns[1:])

    @contextmanager
    def write(self, *, held: bool = False) -> Iterator[WriteTxn]:
        """A transaction holding the chain head lock: committed (durably) on exit.

        ``held``: on the connection this store keeps for its one writer thread (no pool
        checkout or liveness ping per batch); only that thread may pass it."""
        d = self.dialect
        try:
            raw = self._held_connection() if held else self.db.engine.raw_connection()
        except DB_ERRORS as exc:
            raise unavailable(self.db, exc, "reached") from exc
        conn = raw.driver_connection
        saved = None if held else _IsolationSaver(conn)
        ok = False
        try:
            cur = d.begin_write(conn)
            yield WriteTxn(d, conn, cur)
            d.commit(conn)
            ok = True
        except DB_ERRORS as exc:
            raise unavailable(self.db, exc, "written") from exc
        finally:
            if not ok:
                try:
                    d.rollback(conn)
                except DB_ERRORS:
                    raw.invalidate()
            if saved is not None:
                saved.restore()
                raw.close()
            elif not ok:
                self.release_held()  # start afresh on the next batch
        if self._checkpointer is not None:
            self._checkpointer.kick()

    def _held_connection(self) -> Any:
        if self._held is not None and self._held_pid == os.getpid():
            return self._held
        self._held = None  # a forked child never touches its parent's connection
        raw = self.db.engine.raw_connection()
        self._held_saver = _IsolationSaver(raw.driver_connection)
        self._held, self._held_pid = raw, os.getpid()
        conn: Any = raw.driver_connection
        if self.dialect.name == "sqlite":
            # Checkpoints (copying the WAL into the database file, with its own fsync)
            # run beside the writer instead of inside its COMMITs; the writer's own
            # automatic checkpoint stays as a bound on the WAL if they fall behind.
            conn.execute(f"PRAGMA wal_autocheckpoint={_WRITER_AUTOCHECKPOINT}")
            self._checkpointer = _WalCheckpointer(self.db)
        return raw

    def release_held(self) -> None:
        """Give the writer thread's connection back (when it stops, or after an error)."""
        raw, self._held = self._held, None
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        if raw is None or self._held_pid != os.getpid():
            return
        conn: Any = raw.driver_connection
        try:
            if self.dialect.name == "sqlite":
                conn.execute(f"PRAGMA wal_autocheckpoint={_SQLITE_AUTOCHECKPOINT}")
            if self._held_saver is not None:
                self._held_saver.restore()
            raw.close()
        except DB_ERRORS:
            raw.invalidate()

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A consistent, read-only view of the log for streaming readers."""
        d = self.dialect
        try:
            raw = self.db.engine.raw_connection()
        except DB_ERRORS as exc:
            raise unavailable(self.db, exc, "reached") from exc
        conn = raw.driver_connection
        saved = _IsolationSaver(conn)
        snap: Snapshot | None = None
        try:
            d.begin_read(conn)
            snap = Snapshot(d, conn, self._side_opener(d.export_snapshot(conn)))
            yield snap
        except DB_ERRORS as exc:
            raise unavailable(self.db, exc, "read") from exc
        finally:
            if snap is not None:
                snap.close_side()
            try:
                d.end_read(conn)
            except DB_ERRORS:
                raw.invalidate()
            saved.restore()
            raw.close()

    def _side_opener(self, snapshot_id: str | None) -> Callable[[], Any] | None:
        """Opens a second pooled connection reading the same snapshot (PostgreSQL), for
        small reads while the first streams."""
        if snapshot_id is None:
            return None
        d = self.dialect

        def open_side() -> Any:
            raw = self.db.engine.raw_connection()
            try:
                d.join_snapshot(raw.driver_connection, snapshot_id)
            except BaseException:
                raw.invalidate()
                raise
            return raw

        return open_side


_SQLITE_AUTOCHECKPOINT = 1000
"""SQLite's default ``wal_autocheckpoint`` (pages), restored on a connection we hand back."""
_WRITER_AUTOCHECKPOINT = 20_000
"""The writer's own bound (80 MB of WAL with 4 KB pages) should the checkpointer lag."""
_CHECKPOINT_PAUSE = 0.05
"""Seconds between background checkpoints, so one copies the frames of many commits."""


class _WalCheckpointer:
    """Copies committed WAL frames into the SQLite database file in a thread of its own.

    Durability does not depend on it: a COMMIT is durable once the WAL is synced
    (``synchronous=FULL``). Left to the writer's connection, the checkpoint runs inside
    the COMMIT that crosses ``wal_autocheckpoint``, so the events waiting on that
    batch also wait for the database file to be written and synced. A PASSIVE
    checkpoint never blocks writers or readers."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="joinedup-audit-checkpointer", daemon=True
        )
        self._thread.start()

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        raw: Any = None
        try:
            while True:
                self._wake.wait()
                if self._stopping:
                    return
                self._wake.clear()
                try:
                    if raw is None:
                        raw = self._db.engine.raw_connection()
                    raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except DB_ERRORS:
                    if raw is not None:
                        raw.invalidate()
                        raw = None
                time.sleep(_CHECKPOINT_PAUSE)
        finally:
            if raw is not None:
                with suppress(*DB_ERRORS):
                    raw.close()


class _IsolationSaver:
    """The pysqlite connection goes back to the pool with the transaction mode it came with."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._saved = conn.isolation_level if isinstance(conn, sqlite3.Connection) else None
        self._sqlite = isinstance(conn, sqlite3.Connection)

    def restore(self) -> None:
        if self._sqlite:
            with suppress(sqlite3.Error):
                self._conn.isolation_level = self._saved


class Snapshot:
    """Reads within one snapshot; each ``*_stream`` is a server-side cursor."""

    def __init__(
        self, dialect: _Dialect, conn: Any, open_side: Callable[[], Any] | None = None
    ) -> None:
        self.dialect = dialect
        self._conn = conn
        self._open_side = open_side
        self._side: Any = None

    def _side_conn(self) -> Any:
        """Where the small streams (checkpoints) run while ``verify_rows`` holds the main
        connection: the main connection itself on SQLite (any number of cursors), a
        second connection on the same snapshot on PostgreSQL."""
        if self._open_side is None:
            return self._conn
        if self._side is None:
            self._side = self._open_side()
        return self._side.driver_connection

    def close_side(self) -> None:
        side, self._side = self._side, None
        if side is None:
            return
        try:
            self.dialect.end_read(side.driver_connection)
        except DB_ERRORS:
            side.invalidate()
        side.close()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self._conn.cursor()
        try:
            cur.execute(self.dialect.q(sql), tuple(params))
            return cur.fetchone()
        finally:
            cur.close()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cur = self._conn.cursor()
        try:
            cur.execute(self.dialect.q(sql), tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    def head(self) -> Head | None:
        row = self._one(
            "SELECT log_id, seq, hash, checkpoint_seq, checkpoint_at "
            "FROM audit_chain_head WHERE id = 1"
        )
        if row is None:
            return None
        return Head(
            str(row[0]), int(row[1]), str(row[2]), int(row[3]),
            None if row[4] is None else self.dialect.time_value(row[4]),
        )

    def anchors(self) -> list[tuple[Anchor | None, Any, str]]:
        """Every anchor, oldest first: (parsed or None if malformed, raw row, archive name)."""
        out: list[tuple[Anchor | None, Any, str]] = []
        for row in self._all(
            "SELECT statement, signature, archive_name, last_seq FROM audit_anchors "
            "ORDER BY last_seq"
        ):
            try:
                anchor: Anchor | None = Anchor.parse(row[0], row[1])
            except ValueError:
                anchor = None
            out.append((anchor, row, str(row[2])))
        return out

    def first_seq_at_or_after(self, after_seq: int, when: datetime) -> int | None:
        row = self._one(
            "SELECT MIN(seq) FROM audit_events WHERE seq > ? AND time >= ?",
            (after_seq, self.dialect.time_param(when)),
        )
        return None if row is None or row[0] is None else int(row[0])

    def events(self, after: int | None = None, through: int | None = None) -> Iterator[Any]:
        where, params = [], []
        if after is not None:
            where.append("seq > ?")
            params.append(after)
        if through is not None:
            where.append("seq <= ?")
            params.append(through)
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM audit_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        return self.dialect.stream(self._conn, self.dialect.q(sql), params, "events")

    def verify_rows(
        self, after: int | None = None, through: int | None = None
    ) -> Generator[Any, None, None]:
        """Events in seq order as ``ChainVerifier`` reads them: body as bytes, the time
        column, and the person index's ids for the event (one query, streamed). Close it
        (``contextlib.closing``) before using the snapshot's connection again."""
        d = self.dialect
        where, params = [], []
        if after is not None:
            where.append("e.seq > ?")
            params.append(after)
        if through is not None:
            where.append("e.seq <= ?")
            params.append(through)
        sql = f"SELECT {d.verify_projection()} FROM {d.verify_from()}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY e.seq"
        yield from d.stream_all(self._conn, d.q(sql), params)

    def seq_bounds(self) -> tuple[int | None, int | None]:
        row = self._one("SELECT MIN(seq), MAX(seq) FROM audit_events")
        return (None, None) if row is None else (row[0], row[1])

    def first_prev_hash(self, after: int) -> str | None:
        """The prev_hash of the first event after ``after`` (where a segment's walk starts)."""
        row = self._one(
            "SELECT prev_hash FROM audit_events WHERE seq > ? ORDER BY seq LIMIT 1", (after,)
        )
        return None if row is None else str(row[0])

    def checkpoints_through(self, seq: int) -> int:
        row = self._one("SELECT COUNT(*) FROM audit_checkpoints WHERE seq <= ?", (seq,))
        return 0 if row is None else int(row[0])

    def checkpoints(self, after: int | None = None, through: int | None = None) -> Iterator[Any]:
        where, params = [], []
        if after is not None:
            where.append("seq > ?")
            params.append(after)
        if through is not None:
            where.append("seq <= ?")
            params.append(through)
        sql = "SELECT seq, statement, signature FROM audit_checkpoints"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        return self.dialect.stream(self._side_conn(), self.dialect.q(sql), params, "checkpoints")
