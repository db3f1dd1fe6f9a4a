"""Reading the record store: read, vread, history, search, and a subject's records.

Everything the FHIR API, the person index and documents need from stored
records goes through :class:`RecordStore`. Every method takes an optional
:data:`~joinedup.records.search.Filter` (e.g. from the access decision's
permitted (organisation, category) pairs) applied in the SQL, so what is not
permitted is indistinguishable from what does not exist. Writes happen only
through batches (:mod:`joinedup.sources.batches`) and the writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, func, select, union_all

from joinedup.records.include import include_targets
from joinedup.records.params import table_rows
from joinedup.records.query import Query
from joinedup.records.search import Filter, order_by, where_clauses
from joinedup.records.tables import INDEX_TABLES, history, resources
from joinedup.records.writer import IndexBatch, bulk_insert
from joinedup.storage.engine import Database


@dataclass(frozen=True)
class StoredResource:
    """One stored version with its provenance and labels; ``resource`` is the FHIR JSON."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    org_code: str
    feed_id: str
    batch_id: str
    source_id: str
    category: str
    sensitivity: str
    active: bool
    subject_id: str | None
    body: str
    """The resource as stored: compact JSON text, servable as is."""

    @cached_property
    def resource(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.body)
        return data

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


@dataclass(frozen=True, slots=True)
class Page:
    total: int | None
    """How many match in all (None when not asked for)."""
    items: list[StoredResource]


_COLUMNS = (
    "resource_type",
    "id",
    "version_id",
    "last_updated",
    "org_code",
    "feed_id",
    "batch_id",
    "source_id",
    "category",
    "sensitivity",
    "active",
    "subject_id",
)


def _current_select() -> Any:
    r = resources.c
    return select(*(r[name] for name in _COLUMNS), r.body)


def _versions_select(
    resource_type: str, resource_id: str, where: Filter | None, version_id: int | None = None
) -> Any:
    """Every version of one resource: the current row (``resources``) and the earlier ones
    (``resource_history``), each through ``where`` (a past version's labels may differ)."""
    parts = []
    for table in (resources, history):
        c = table.c
        clauses = [c.resource_type == resource_type, c.id == resource_id]
        if version_id is not None:
            clauses.append(c.version_id == version_id)
        if where is not None:
            clauses.append(where(table))
        parts.append(select(*(c[name] for name in _COLUMNS), c.body).where(*clauses))
    return union_all(*parts).subquery("versions")


def _by_subject_select(*, typed: bool) -> Any:
    r = resources.c
    stmt = _current_select().where(r.subject_id.in_(bindparam("subjects", expanding=True)))
    if typed:
        stmt = stmt.where(r.resource_type.in_(bindparam("types", expanding=True)))
    return stmt.order_by(r.resource_type, r.id)


_BY_SUBJECT = _by_subject_select(typed=False)
_BY_SUBJECT_OF_TYPES = _by_subject_select(typed=True)
"""Built once (with the subjects, types and limit as parameters): building a
statement with a join costs about as much as running it."""
_STATEMENTS_KEPT = 1024
"""Statements :meth:`RecordStore.by_subject_on` keeps (one per shared filter in use);
a full set is emptied, not evicted piecemeal."""


def _by_subject(where: Filter | None, *, typed: bool, active_only: bool) -> Any:
    stmt = _BY_SUBJECT_OF_TYPES if typed else _BY_SUBJECT
    if active_only:
        stmt = stmt.where(resources.c.active.is_(True))
    if where is not None:
        stmt = stmt.where(where(resources))
    return stmt.limit(bindparam("limit"))


def _stored(row: Any) -> StoredResource:
    return StoredResource(
        resource_type=row[0],
        id=row[1],
        version_id=row[2],
        last_updated=row[3],
        org_code=row[4],
        feed_id=row[5],
        batch_id=row[6],
        source_id=row[7],
        category=row[8],
        sensitivity=row[9],
        active=bool(row[10]),
        subject_id=row[11],
        body=row[12],
    )


class RecordStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._statements: dict[tuple[int, bool, bool], tuple[Filter | None, Any]] = {}

    # -- one resource -----------------------------------------------------------------
    def read(
        self, resource_type: str, resource_id: str, *, where: Filter | None = None
    ) -> StoredResource | None:
        """The current version, or None (absent, or not permitted: the caller cannot tell)."""
        r = resources.c
        stmt = _current_select().where(r.resource_type == resource_type, r.id == resource_id)
        if where is not None:
            stmt = stmt.where(where(resources))
        with self._db.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _stored(row) if row is not None else None

    def vread(
        self, resource_type: str, resource_id: str, version_id: int, *, where: Filter | None = None
    ) -> StoredResource | None:
        stmt = select(_versions_select(resource_type, resource_id, where, version_id))
        with self._db.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _stored(row) if row is not None else None

    def history(
        self,
        resource_type: str,
        resource_id: str,
        *,
        where: Filter | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StoredResource]:
        """Versions, newest first (only those the filter permits)."""
        return self.history_page(
            resource_type, resource_id, where=where, limit=limit, offset=offset, total=False
        ).items

    def history_page(
        self,
        resource_type: str,
        resource_id: str,
        *,
        where: Filter | None = None,
        limit: int = 100,
        offset: int = 0,
        total: bool = True,
    ) -> Page:
        """A page of versions, newest first, and how many the filter permits in all."""
        versions = _versions_select(resource_type, resource_id, where)
        stmt = (
            select(versions).order_by(versions.c.version_id.desc()).limit(limit).offset(offset)
        )
        with self._db.engine.connect() as conn:
            items = [_stored(row) for row in conn.execute(stmt)] if limit else []
            count = None
            if total:
                count = int(conn.execute(
                    select(func.count()).select_from(versions)
                ).scalar_one())
        return Page(count, items)

    def get_many(
        self, keys: Iterable[tuple[str, str]], *, where: Filter | None = None
    ) -> list[StoredResource]:
        """Current versions of ``keys`` (for ``_include``), those that exist and are permitted."""
        by_type: dict[str, list[str]] = {}
        for rtype, rid in keys:
            by_type.setdefault(rtype, []).append(rid)
        r = resources.c
        out: list[StoredResource] = []
        with self._db.engine.connect() as conn:
            for rtype, ids in sorted(by_type.items()):
                for i in range(0, len(ids), 500):
                    stmt = _current_select().where(
                        r.resource_type == rtype, r.id.in_(sorted(set(ids[i : i + 500])))
                    )
                    if where is not None:
                        stmt = stmt.where(where(resources))
                    out.extend(_stored(row) for row in conn.execute(stmt.order_by(r.id)))
        return out

    def included(
        self, query: Query, items: Sequence[StoredResource], *, where: Filter | None = None
    ) -> list[StoredResource]:
        """What ``query.includes`` reach from ``items``, read through ``where``: a
        target the filter leaves out is not there, as if it did not exist."""
        if not query.includes or not items:
            return []
        keys = include_targets(query, ((s.resource, s.subject_id) for s in items))
        return self.get_many(sorted(keys), where=where) if keys else []

    # -- many -------------------------------------------------------------------------
    def search(self, query: Query, *, where: Filter | None = None, total: bool = True) -> Page:
        with self._db.engine.connect() as conn:
            return self.search_on(conn, query, where=where, total=total)

    def search_on(
        self, conn: Connection, query: Query, *, where: Filter | None = None, total: bool = True
    ) -> Page:
        """:meth:`search` inside the caller's connection/transaction."""
        clauses = where_clauses(query, where)
        stmt = (
            _current_select()
            .where(*clauses)
            .order_by(*order_by(query))
            .limit(query.count)
            .offset(query.offset)
        )
        items = [_stored(row) for row in conn.execute(stmt)] if query.count else []
        count = None
        if total:
            count = int(
                conn.execute(
                    select(func.count()).select_from(resources).where(*clauses)
                ).scalar_one()
            )
        return Page(count, items)

    def read_connection(self) -> Connection:
        """A pooled connection for several reads in one checkout (``Patient/$everything``:
        the person, the relationship evidence, the records), in autocommit: no BEGIN
        and ROLLBACK round trips. Each statement sees the data committed when it
        starts, as under READ COMMITTED (PostgreSQL's default) in a transaction, and
        as separate connections did. Use it as a context manager; reads only."""
        return self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def by_subject(
        self,
        patient_ids: Sequence[str],
        *,
        types: Sequence[str] | None = None,
        where: Filter | None = None,
        active_only: bool = False,
        limit: int = 10_000,
    ) -> list[StoredResource]:
        """Every current record about these Patients (their own Patient records included):
        the material of ``Patient/$everything`` once the person index has linked them."""
        if not patient_ids:
            return []
        with self._db.engine.connect() as conn:
            return self.by_subject_on(
                conn, patient_ids, types=types, where=where, active_only=active_only,
                limit=limit,
            )

    def by_subject_on(
        self,
        conn: Connection,
        patient_ids: Sequence[str],
        *,
        types: Sequence[str] | None = None,
        where: Filter | None = None,
        active_only: bool = False,
        limit: int = 10_000,
        shared_where: bool = False,
    ) -> list[StoredResource]:
        """:meth:`by_subject` inside the caller's connection (one statement).

        ``shared_where``: ``where`` is a long-lived object that answers the same
        condition on every call (the access decision cache's), so the statement
        built with it is kept and reused while the object lives: building a
        statement and its cache key costs more than running it."""
        if not patient_ids:
            return []
        params: dict[str, Any] = {"subjects": sorted(set(patient_ids)), "limit": limit}
        if types:
            params["types"] = sorted(set(types))
        if where is None or shared_where:
            key = (id(where), bool(types), active_only)
            kept = self._statements.get(key)
            if kept is None or kept[0] is not where:
                if len(self._statements) >= _STATEMENTS_KEPT:
                    self._statements.clear()
                # the filter is kept with its statement, so its id is not reused meanwhile
                kept = self._statements[key] = (
                    where, _by_subject(where, typed=bool(types), active_only=active_only))
            stmt = kept[1]
        else:
            stmt = _by_subject(where, typed=bool(types), active_only=active_only)
        return [_stored(row) for row in conn.execute(stmt, params)]


    def iter_current(
        self,
        resource_type: str,
        *,
        feed_id: str | None = None,
        where: Filter | None = None,
        page: int = 1000,
    ) -> Iterator[StoredResource]:
        """Every current resource of a type, a page at a time (person index re-linking)."""
        r = resources.c
        after = ""
        while True:
            stmt = _current_select().where(r.resource_type == resource_type, r.id > after)
            if feed_id is not None:
                stmt = stmt.where(r.feed_id == feed_id)
            if where is not None:
                stmt = stmt.where(where(resources))
            with self._db.engine.connect() as conn:
                rows = [_stored(row) for row in conn.execute(stmt.order_by(r.id).limit(page))]
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1].id

    def count(self, resource_type: str | None = None, *, feed_id: str | None = None) -> int:
        r = resources.c
        stmt = select(func.count()).select_from(resources)
        if resource_type is not None:
            stmt = stmt.where(r.resource_type == resource_type)
        if feed_id is not None:
            stmt = stmt.where(r.feed_id == feed_id)
        with self._db.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    # -- maintenance ------------------------------------------------------------------
    def reindex(self, page: int = 1000) -> int:
        """Rebuild every search index row from the current bodies.

        Needed after an upgrade changes which elements a search parameter reads:
        a changed resource's old rows are found by recomputing them, so they
        must have been computed by the same rules.
        """
        done = 0
        with self._db.engine.begin() as conn:
            for table in INDEX_TABLES:
                conn.execute(delete(table))
        for rtype in sorted(_types(self._db)):
            batch = IndexBatch()
            for stored in self.iter_current(rtype, page=page):
                batch.add(table_rows(stored.resource))
                done += 1
                if len(batch.tokens) + len(batch.strings) > 20 * page:
                    _write_index(self._db, batch)
                    batch = IndexBatch()
            _write_index(self._db, batch)
        return done


def _types(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return [t for (t,) in conn.execute(select(resources.c.resource_type).distinct())]


def _write_index(db: Database, batch: IndexBatch) -> None:
    with db.engine.begin() as conn:
        for table, columns, rows in batch.tables():
            bulk_insert(conn, table, columns, rows)
