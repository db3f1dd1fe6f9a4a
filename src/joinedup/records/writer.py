"""The record store's write path: a chunk of resources in, versions and index rows out.

Called by the batch loader inside the batch's one transaction, a chunk at a
time, so memory is bounded by the chunk, not the file. Per chunk: one query
for the current versions of the chunk's resources, then one bulk insert per
table (resources, four index tables) and, for changed resources, a copy of
the replaced row into history and an update. A new resource is one row in
``resources`` (body included) and none in history. A resource whose content hash equals the stored one is left
alone: that is what makes re-ingesting a file change nothing.

Bulk inserts bypass the ORM and SQLAlchemy's per-row parameter processing:
plain tuples to the driver's ``executemany`` on SQLite, ``COPY`` on
PostgreSQL, rows sorted by key so B-tree pages are filled in order. This is
the one place that needs to be fast; everything else uses SQLAlchemy Core.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, Table, and_, bindparam, select, tuple_, update

from joinedup.errors import Problem
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM
from joinedup.records.dates import instant
from joinedup.records.params import SUPPORTED_TYPES, TableRows, subject_id, table_rows
from joinedup.records.provenance import (
    ALL_LABELS,
    FHIR_ID,
    Labels,
    SourceRef,
    content_hash,
    read_labels,
    security_codings,
    withdrawn,
)
from joinedup.records.tables import (
    date_index,
    history,
    reference_index,
    resources,
    string_index,
    token_index,
)
from joinedup.storage.changes import wrote_directly
from joinedup.storage.engine import Database

Key = tuple[str, str]
"""(resource type, id)"""

SQLITE_BATCH_CACHE_KIB = 65536
"""Page cache for a batch's connection on SQLite (the default 2 MiB thrashes on big B-trees)."""


@dataclass(frozen=True, slots=True)
class FirstBody:
    """A resource's body as stored for version 1 with one ``lastUpdated`` and ``meta.source``.

    Built where the resource is prepared (in a worker process for a big file),
    so the writer, when the resource turns out to be new, only copies bytes.
    """

    last_updated: str
    source: str
    body: str

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # plain positional pickling: the slotted dataclass default (fields() per object)
        # costs more than the staging it ships between processes
        return (type(self), (self.last_updated, self.source, self.body))


@dataclass(frozen=True, slots=True)
class Prepared:
    """One resource of an accepted unit, checked, labelled, hashed and indexed, ready to write.

    Everything here is computed from the resource alone (no database), so it
    can be computed off the writer's process and shipped as plain values.
    """

    resource_type: str
    id: str
    labels: Labels
    content_hash: str
    active: bool
    subject_id: str | None
    index: TableRows
    resource_json: bytes | None
    """The resource as checked (labels normalised), compact JSON; None when ``first`` is
    given, which holds the same resource (stamped) and is all that is shipped."""
    first: FirstBody | None = None

    @property
    def key(self) -> Key:
        return (self.resource_type, self.id)

    @property
    def resource(self) -> dict[str, Any]:
        """The resource as checked: for quarantine, the all-or-nothing spool and later versions."""
        if self.resource_json is not None:
            data: dict[str, Any] = orjson.loads(self.resource_json)
            return data
        assert self.first is not None
        body: dict[str, Any] = orjson.loads(self.first.body)
        meta = body["meta"]  # prepared resources always have meta (their labels)
        for key in _STAMPED_META:
            meta.pop(key, None)
        return body

    def json(self) -> bytes:
        """:attr:`resource` as compact JSON."""
        return self.resource_json if self.resource_json is not None else orjson.dumps(self.resource)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (
            Prepared,
            (
                self.resource_type,
                self.id,
                self.labels,
                self.content_hash,
                self.active,
                self.subject_id,
                self.index,
                self.resource_json,
                self.first,
            ),
        )


@dataclass(frozen=True, slots=True)
class PreparedUnit:
    unit: int
    source_id: str
    resources: tuple[Prepared, ...]
    origin_batch: str | None = None
    """The batch whose file held the unit, when a later batch writes it (reprocessing)."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # plain positional pickling: the slotted dataclass default (fields() per object)
        # costs more than the staging it ships between processes
        return (type(self), (self.unit, self.source_id, self.resources, self.origin_batch))


def _is_label(coding: Any) -> bool:
    return isinstance(coding, dict) and coding.get("system") in {
        CATEGORY_SYSTEM,
        CONFIDENTIALITY_SYSTEM,
    }


_STAMPED_META = ("versionId", "lastUpdated", "source")

_CANONICAL_SECURITY = {labels: security_codings(labels) for labels in ALL_LABELS}
"""Each label pair's canonical codings, only ever compared with (never put in a resource)."""


def stamped(
    resource: dict[str, Any], version: int, last_updated: str, source: str
) -> dict[str, Any]:
    """The resource as stored: ``meta`` gets the version, time and source, after the sender's."""
    meta = {
        **(resource.get("meta") or {}),
        "versionId": str(version),
        "lastUpdated": last_updated,
        "source": source,
    }
    if "meta" in resource:  # keep the sender's element order
        return {**resource, "meta": meta}
    body = {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta}
    body.update((k, v) for k, v in resource.items() if k not in body)
    return body


def prepare(
    resource: dict[str, Any],
    *,
    allowed_categories: frozenset[str] | None,
    where: str = "",
    first: tuple[str, str] | None = None,
) -> tuple[Prepared | None, list[Problem]]:
    """Check one canonical resource for what the store needs; normalise its security labels.

    Problems here mean an adapter or mapping produced something the store
    cannot keep (no id, an unknown type, a category the feed does not provide).
    ``first`` (``lastUpdated``, ``meta.source``) also builds the version-1 body.
    """
    problems: list[Problem] = []
    rtype = resource.get("resourceType")
    rid = resource.get("id")
    if not isinstance(rtype, str) or rtype not in SUPPORTED_TYPES:
        problems.append(
            Problem(
                f"resource type {rtype!r} is not one the store holds: "
                + ", ".join(sorted(SUPPORTED_TYPES)),
                f"{where}resourceType",
            )
        )
    if not isinstance(rid, str) or not FHIR_ID.match(rid):
        problems.append(Problem("needs an id of 1-64 letters, digits, '-' or '.'", f"{where}id"))
    labels, label_problems = read_labels(resource, where)
    problems += label_problems
    if (
        labels is not None
        and allowed_categories is not None
        and labels.category.value not in allowed_categories
    ):
        problems.append(
            Problem(
                f"data category {labels.category.value!r} is not one this feed provides",
                f"{where}meta.security",
            )
        )
    if problems or labels is None:
        return None, problems
    assert isinstance(rtype, str)
    assert isinstance(rid, str)
    meta = resource.get("meta") or {}
    if meta.get("security") != _CANONICAL_SECURITY[labels]:  # as adapters write them: no copy
        others = [c for c in meta.get("security") or [] if not _is_label(c)]
        resource = {**resource, "meta": {**meta, "security": [*security_codings(labels), *others]}}
    body = None
    if first is not None:
        text = orjson.dumps(stamped(resource, 1, *first)).decode()
        body = FirstBody(first[0], first[1], text)
    return (
        Prepared(
            rtype,
            rid,
            labels,
            content_hash(resource),
            resource.get("active") is not False,
            subject_id(resource),
            table_rows(resource),
            None if body is not None else orjson.dumps(resource),
            body,
        ),
        [],
    )


@dataclass(frozen=True, slots=True)
class WriteContext:
    org_code: str
    feed_id: str
    batch_id: str
    when: datetime


@dataclass(slots=True)
class Current:
    """What the store holds for a key (or what this chunk has just given it)."""

    version_id: int
    content_hash: str
    feed_id: str
    active: bool
    in_db: bool


State = dict[Key, Current]


@dataclass(frozen=True, slots=True)
class Written:
    """A version the chunk wrote: what observers (person index, events) are told."""

    resource_type: str
    id: str
    version_id: int
    subject_id: str | None
    created: bool


@dataclass(slots=True)
class ChunkResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    written: list[Written] = field(default_factory=list)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


_HISTORY_COLUMNS = (
    "resource_type",
    "id",
    "version_id",
    "last_updated",
    "org_code",
    "feed_id",
    "batch_id",
    "source_id",
    "content_hash",
    "category",
    "sensitivity",
    "active",
    "subject_id",
    "body",
)
_RESOURCE_COLUMNS = _HISTORY_COLUMNS
"""The same columns: ``resources`` holds the current version, body included."""
_UPDATED_COLUMNS = _RESOURCE_COLUMNS[2:]
_TOKEN_COLUMNS = ("code", "system", "param", "resource_type", "resource_id")
_STRING_COLUMNS = ("resource_type", "param", "value", "resource_id")
_DATE_COLUMNS = ("resource_type", "param", "low", "high", "resource_id")
_REF_COLUMNS = ("target_id", "target_type", "param", "resource_type", "resource_id")


_LOOKUP_SQL = (
    "SELECT id, version_id, content_hash, feed_id, active FROM resources"
    " WHERE resource_type = ? AND id IN {}"
)
"""What :meth:`RecordWriter.lookup` needs of the stored resources of one type (by id)."""

_ARCHIVE = history.insert().from_select(
    list(_HISTORY_COLUMNS),
    select(*(resources.c[name] for name in _HISTORY_COLUMNS)).where(
        resources.c.resource_type == bindparam("k_type"), resources.c.id == bindparam("k_id")
    ),
)
"""The current row of one resource copied into history (executemany over keys)."""


@dataclass(slots=True)
class IndexBatch:
    tokens: list[tuple[Any, ...]] = field(default_factory=list)
    strings: list[tuple[Any, ...]] = field(default_factory=list)
    dates: list[tuple[Any, ...]] = field(default_factory=list)
    refs: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, idx: TableRows) -> None:
        self.tokens.extend(idx.tokens)
        self.strings.extend(idx.strings)
        self.dates.extend(idx.dates)
        self.refs.extend(idx.refs)

    def tables(self) -> Iterator[tuple[Table, tuple[str, ...], list[tuple[Any, ...]]]]:
        yield token_index, _TOKEN_COLUMNS, self.tokens
        yield string_index, _STRING_COLUMNS, self.strings
        yield date_index, _DATE_COLUMNS, self.dates
        yield reference_index, _REF_COLUMNS, self.refs


def bulk_insert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    key_len: int | None = None,
) -> None:
    """Insert plain tuples as fast as the backend allows, sorted on their first ``key_len`` values.

    Values must already be what the driver takes (``last_updated`` as given by
    :meth:`RecordWriter.driver_time`). The one dialect-specific write path.
    """
    if not rows:
        return
    if key_len is None:
        rows.sort()
    else:
        rows.sort(key=itemgetter(*range(key_len)))  # row[:key_len], computed in C
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        dbapi: Any = conn.connection.dbapi_connection  # psycopg.Connection: COPY support
        with dbapi.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        wrote_directly(conn, table.name)  # the read cache's statement hook never saw it
        return
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)


def select_in(
    conn: Connection, sql: str, params: Sequence[Any], values: Sequence[Any]
) -> Iterable[tuple[Any, ...]]:
    """Rows of ``sql`` (plain SQL ending in ``IN {}``, ``{}`` standing for ``values``).

    The per-chunk key lookups of a batch, sent as plain SQL to the driver: an
    expanding ``IN`` through SQLAlchemy compiles 500 bound parameters afresh
    for each of the hundreds of lookups a batch makes. ``params`` are the
    statement's other values, in order (``?`` on SQLite, ``%s`` on PostgreSQL).
    """
    if conn.dialect.name == "postgresql":  # one array parameter: = ANY(%s)
        text = sql.replace("?", "%s").replace("IN {}", "= ANY(%s)")
        return conn.exec_driver_sql(text, (*params, list(values)))
    marks = "(" + ",".join("?" * len(values)) + ")"
    return conn.exec_driver_sql(sql.replace("IN {}", "IN " + marks), (*params, *values))


def delete_keys(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Delete rows by their full primary key (executemany)."""
    if not rows:
        return
    c = table.c
    stmt = table.delete().where(and_(*(c[name] == bindparam(f"k_{name}") for name in columns)))
    conn.execute(stmt, [{f"k_{n}": v for n, v in zip(columns, row, strict=True)} for row in rows])


class RecordWriter:
    """Writes chunks within the caller's transaction on ``conn``."""

    LOOKUP_CHUNK = 500

    def __init__(self, conn: Connection, ctx: WriteContext) -> None:
        self._conn = conn
        self._ctx = ctx
        self._instant = instant(ctx.when)
        self._source_prefix = (
            SourceRef(ctx.org_code, ctx.feed_id, "", 0).uri.rsplit("/", 1)[0] + "/"
        )
        self._when = self.driver_time(conn, ctx.when)

    @staticmethod
    def driver_time(conn: Connection, when: datetime) -> Any:
        """``when`` as the driver takes it for a UTCDateTime column (bulk inserts skip SQLAlchemy)."""
        # dialect_impl: the TypeDecorator chained with the dialect's own DateTime processing
        process = history.c.last_updated.type.dialect_impl(conn.dialect).bind_processor(
            conn.dialect
        )
        return process(when) if process else when

    # -- reads -------------------------------------------------------------------
    def lookup(self, keys: Iterable[Key]) -> State:
        """The current version, hash and owner of each of ``keys`` that exists."""
        by_type: dict[str, set[str]] = defaultdict(set)
        for rtype, rid in keys:
            by_type[rtype].add(rid)
        found: State = {}
        for rtype, ids in by_type.items():
            for part in _chunks(sorted(ids), self.LOOKUP_CHUNK):
                rows = select_in(self._conn, _LOOKUP_SQL, (rtype,), part)
                for rid, version, digest, feed, active in rows:
                    found[(rtype, rid)] = Current(version, digest, feed, bool(active), True)
        return found

    def conflicts(self, units: Iterable[PreparedUnit], state: State) -> dict[int, list[Problem]]:
        """Units (by position) with a resource id that another feed already owns."""
        out: dict[int, list[Problem]] = {}
        for pos, u in enumerate(units):
            foreign = sorted(
                {state[p.key].feed_id for p in u.resources if p.key in state} - {self._ctx.feed_id}
            )
            if foreign:
                out[pos] = [
                    Problem(
                        f"resource id already belongs to feed {foreign[0]!r}; "
                        "ids must be derived from this feed's source ids",
                        "id",
                    )
                ]
        return out

    def _stored_bodies(self, keys: Sequence[Key]) -> list[dict[str, Any]]:
        """The current bodies of ``keys`` (before this chunk replaces them)."""
        c = resources.c
        bodies: list[dict[str, Any]] = []
        for part in _chunks(keys, self.LOOKUP_CHUNK):
            rows = self._conn.execute(
                select(c.body).where(tuple_(c.resource_type, c.id).in_(part))
            )
            bodies.extend(orjson.loads(b) for (b,) in rows)
        return bodies

    def _archive_current(self, keys: Sequence[Key]) -> None:
        """Copy the current rows of ``keys`` into history, before they are replaced."""
        if keys:
            self._conn.execute(_ARCHIVE, [{"k_type": t, "k_id": i} for t, i in keys])

    # -- writes ------------------------------------------------------------------
    def write(self, units: Sequence[PreparedUnit], state: State | None = None) -> ChunkResult:
        """Write ``units`` (already checked for conflicts) as new versions where changed."""
        result = ChunkResult()
        if state is None:
            state = self.lookup(p.key for u in units for p in u.resources)
        replaced: list[Key] = []
        final: dict[Key, tuple[Prepared, tuple[Any, ...]]] = {}
        versions: list[tuple[Any, ...]] = []
        feed_id = self._ctx.feed_id
        for u in units:
            for p in u.resources:
                key = (p.resource_type, p.id)
                cur = state.get(key)
                if cur is not None and cur.content_hash == p.content_hash:
                    result.unchanged += 1
                    continue
                if cur is not None and cur.feed_id != feed_id:
                    raise RuntimeError("write() given a unit that conflicts(): check first")
                version = 1 if cur is None else cur.version_id + 1
                row = self._row(p, version, u)
                versions.append(row)
                in_db = cur is not None and cur.in_db
                if in_db and key not in final:
                    replaced.append(key)
                final[key] = (p, row)
                if cur is None:
                    result.created += 1
                else:
                    result.updated += 1
                state[key] = Current(version, p.content_hash, feed_id, True, in_db)
                result.written.append(
                    Written(p.resource_type, p.id, version, p.subject_id, cur is None)
                )
        self._flush(final, versions, replaced, state)
        return result

    def source_uri(self, unit: PreparedUnit) -> str:
        """``meta.source`` of the unit's resources (``SourceRef(...).uri``)."""
        return f"{self._source_prefix}{unit.origin_batch or self._ctx.batch_id}#{unit.unit}"

    @property
    def source_prefix(self) -> str:
        """``meta.source`` up to the batch: ``urn:joinedup:source:{org}/{feed}/``."""
        return self._source_prefix

    @property
    def last_updated(self) -> str:
        """``meta.lastUpdated`` of every version this batch writes."""
        return self._instant

    def _row(self, p: Prepared, version: int, unit: PreparedUnit) -> tuple[Any, ...]:
        ctx = self._ctx
        source = self.source_uri(unit)
        first = p.first
        if (
            version == 1
            and first is not None
            and first.source == source
            and first.last_updated == self._instant
        ):
            text = first.body
        else:
            text = orjson.dumps(stamped(p.resource, version, self._instant, source)).decode()
        return (
            p.resource_type,
            p.id,
            version,
            self._when,
            ctx.org_code,
            ctx.feed_id,
            ctx.batch_id,
            unit.source_id,
            p.content_hash,
            p.labels.category.value,
            p.labels.sensitivity.value,
            p.active,
            p.subject_id,
            text,
        )

    def _flush(
        self,
        final: dict[Key, tuple[Prepared, tuple[Any, ...]]],
        versions: list[tuple[Any, ...]],
        replaced: list[Key],
        state: State,
    ) -> None:
        conn = self._conn
        if replaced:  # their current rows become history, their index rows go
            old = IndexBatch()
            for body in self._stored_bodies(replaced):
                old.add(table_rows(body))
            self._archive_current(replaced)
            for table, columns, rows in old.tables():
                delete_keys(conn, table, columns, rows)
        if len(versions) > len(final):  # a key written twice in one chunk: the earlier is history
            current = {id(row) for _, row in final.values()}
            earlier = [row for row in versions if id(row) not in current]
            bulk_insert(conn, history, _HISTORY_COLUMNS, earlier, key_len=3)
        inserts = [row for key, (_, row) in final.items() if not state[key].in_db]
        updates = [row for key, (_, row) in final.items() if state[key].in_db]
        bulk_insert(conn, resources, _RESOURCE_COLUMNS, inserts, key_len=2)
        if updates:
            self._update_rows(updates)
        new = IndexBatch()
        for p, _ in final.values():
            new.add(p.index)
        for table, columns, rows in new.tables():
            bulk_insert(conn, table, columns, rows)

    def _update_rows(self, rows: list[tuple[Any, ...]]) -> None:
        c = resources.c
        stmt = (
            update(resources)
            .where(and_(c.resource_type == bindparam("k_type"), c.id == bindparam("k_id")))
            .values({col: bindparam(f"v_{col}") for col in _UPDATED_COLUMNS})
        )
        params = []
        for row in rows:
            values = dict(zip(_RESOURCE_COLUMNS, row, strict=False))
            item = {f"v_{col}": values[col] for col in _UPDATED_COLUMNS}
            item["v_last_updated"] = self._ctx.when  # through SQLAlchemy: the aware datetime
            item["k_type"], item["k_id"] = row[0], row[1]
            params.append(item)
        self._conn.execute(stmt, params)

    # -- withdrawal -------------------------------------------------------------
    def withdraw(self, keys: Sequence[Key]) -> list[Written]:
        """New inactive versions of ``keys``: the source stopped sending them (full refresh).

        Index rows stay as they are: a withdrawn record is still found (and
        shown as inactive), so nobody mistakes "no longer sent" for "never existed".
        """
        r = resources.c
        written: list[Written] = []
        versions: list[tuple[Any, ...]] = []
        by_type: dict[str, list[str]] = defaultdict(list)
        for rtype, rid in keys:
            by_type[rtype].append(rid)
        for rtype, ids in by_type.items():
            for part in _chunks(ids, self.LOOKUP_CHUNK):
                rows = self._conn.execute(
                    select(r.id, r.version_id, r.source_id, r.body).where(
                        r.resource_type == rtype, r.id.in_(part)
                    )
                )
                for rid, version, source_id, body in rows:
                    resource = withdrawn(orjson.loads(body))
                    p, _ = prepare(resource, allowed_categories=None)
                    assert p is not None, "stored resources always carry labels"
                    # unit 0: the batch as a whole withdrew it, no one unit did
                    unit = PreparedUnit(0, source_id, ())
                    row = self._row(p, version + 1, unit)
                    row = (*row[:11], False, *row[12:])
                    versions.append(row)
                    written.append(Written(rtype, rid, version + 1, row[12], False))
        if versions:
            self._archive_current([(row[0], row[1]) for row in versions])
            self._update_rows(versions)
        return written


def refresh_statistics(conn: Connection, tables: Sequence[Table]) -> None:
    """Let PostgreSQL's planner see how big the tables have grown inside this transaction.

    A batch into an empty (or small) database grows its tables a hundredfold
    before committing; with the stale statistics, per-chunk lookups by key
    become scans of everything loaded so far. ANALYZE inside the transaction
    counts its own rows. SQLite plans key lookups without statistics.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE " + ", ".join(t.name for t in tables))


@contextmanager
def write_transaction(db: Database) -> Iterator[Connection]:
    """One transaction that takes the write lock at once; committed on success.

    On SQLite a deferred transaction that reads before it writes can find its
    snapshot stale when it comes to write; ``BEGIN IMMEDIATE`` takes the
    single writer lock up front so the batch's reads and writes see one state,
    and the connection gets a page cache big enough for bulk index inserts.
    (PostgreSQL serialises batches of one feed by locking the feed row.)
    """
    with db.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_BATCH_CACHE_KIB}")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            if sqlite:  # pooled connections go back with the default cache
                conn.exec_driver_sql("PRAGMA cache_size=-2000")
                conn.rollback()
