"""The MHD document registry: DocumentReference metadata beside the encrypted content.

Publishing (ITI-65) keeps "no content without metadata, no metadata without
content" across a crash with the content store's two phases
(``docs/reference/document-store.md``):

1. the bundle is checked whole (``submission.parse_submission``, then the
   subject and any ``replaces`` target here): any problem refuses it all,
   before a byte is stored;
2. every document's content is staged (invisible; refused and aborted on a
   size or hash mismatch);
3. one database transaction writes the SubmissionSet and every
   DocumentReference row as ``pending`` with its staging token (if it fails,
   the staged content is aborted);
4. the content is committed, then one transaction marks the rows
   ``available`` and the documents they replace ``superseded``.

A crash after 3 leaves pending rows: ``recover`` commits their content again
(idempotent) and finishes step 4, or deletes the row when the staged content
is gone; either way nothing had been acknowledged. Reads and searches only
ever see available rows.

The registry decides nothing about access: callers pass a ``Filter`` (the
access decisions as one SQL condition on ``subject_id``, ``org_code``,
``category``, ``sensitivity``) and a ``Resolver`` for the publish checks
that need the records and the person index.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from joinedup.documents.content import ContentStore
from joinedup.documents.errors import StagingGone
from joinedup.documents.info import StagedBlob
from joinedup.documents.models import documents, submission_sets
from joinedup.documents.reader import ContentReader
from joinedup.documents.submission import (
    DEFAULT_CONTENT_TYPES,
    DocumentEntry,
    SubjectRef,
    Submission,
    parse_submission,
)
from joinedup.errors import Conflict, InvalidInput, Problem
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM
from joinedup.storage.engine import Database

PENDING, AVAILABLE = "pending", "available"
CURRENT, SUPERSEDED = "current", "superseded"
STATUSES = ("current", "superseded", "entered-in-error")
Filter = Callable[[Table], Any]
"""An access condition on the documents table (as ``joinedup.records.search.Filter``)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DocumentView:
    """One available DocumentReference: its access columns and content facts."""

    id: str
    status: str
    subject_id: str
    org_code: str
    category: str
    sensitivity: str
    content_id: str
    content_type: str
    size: int
    sha1: str
    date: datetime
    created_at: datetime
    replaces_id: str | None
    body: str = field(repr=False)

    @property
    def resource(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.body)
        return data

    @property
    def reference(self) -> str:
        return f"DocumentReference/{self.id}"

    @classmethod
    def of(cls, row: RowMapping) -> DocumentView:
        return cls(
            row["id"], row["status"], row["subject_id"], row["org_code"], row["category"],
            row["sensitivity"], row["content_id"], row["content_type"], row["size"],
            row["sha1"], row["date"], row["created_at"], row["replaces_id"], row["body"],
        )


class Resolver(Protocol):
    """What a publish needs to know that only the records and access can say."""

    def patient(self, subject: SubjectRef) -> str | None:
        """The Patient id of a known person, or None."""

    def may_replace(self, patient_id: str, target: DocumentView) -> bool:
        """Whether a document about ``patient_id`` may replace ``target``: the same
        person's document, which the submitter may see."""


@dataclass(frozen=True)
class Published:
    submission_set_id: str
    documents: tuple[DocumentView, ...]


@dataclass(frozen=True)
class DocumentQuery:
    """A Find Document References (ITI-67) query beyond the person."""

    statuses: tuple[str, ...] = (CURRENT,)
    types: tuple[str, ...] = ()
    """``system|code`` or ``code``; any may match."""
    categories: tuple[str, ...] = ()
    date_from: datetime | None = None
    date_to: datetime | None = None
    count: int = 50
    offset: int = 0


def _token_condition(system_col: Any, code_col: Any, values: Sequence[str]) -> Any:
    parts = []
    for value in values:
        system, bar, code = value.rpartition("|")
        if bar and system:
            parts.append(and_(system_col == system, code_col == code))
        else:
            parts.append(code_col == code)
    return or_(*parts)


class DocumentRegistry:
    def __init__(
        self,
        db: Database,
        content: Callable[[], ContentStore],
        *,
        content_types: Collection[str] = DEFAULT_CONTENT_TYPES,
        max_bytes: int = 1024**3,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        self._content_factory = content
        self._content: ContentStore | None = None
        self._lock = threading.Lock()
        self.content_types = frozenset(content_types)
        self.max_bytes = max_bytes
        self._clock = clock

    @property
    def content(self) -> ContentStore:
        """The content store, opened on first use: the service runs without a
        document master key until a document route is used."""
        if self._content is None:
            with self._lock:
                if self._content is None:
                    self._content = self._content_factory()
        return self._content

    # -- publish (ITI-65) -----------------------------------------------------------
    def publish(self, bundle: Any, *, org: str, resolver: Resolver) -> Published:
        """Accept the whole bundle or refuse it whole (``InvalidInput`` with every problem)."""
        now = self._clock()
        submission = parse_submission(
            bundle, submitter_org=org, content_types=self.content_types,
            max_bytes=min(self.max_bytes, self.content.max_bytes), now=now,
        )
        subjects = self._check(submission, resolver)
        store = self.content
        staged: list[StagedBlob] = []
        try:
            for doc in submission.documents:
                staged.append(store.stage(
                    doc.data, expected_size=len(doc.data),
                    expected_sha1=doc.sha1,
                ))
            set_id, rows = self._write_pending(submission, subjects, staged, org, now)
        except BaseException:
            for blob in staged:
                store.abort(blob)
            raise
        for blob in staged:
            store.commit(blob)
        self._make_available([r["id"] for r in rows])
        return Published(set_id, tuple(v for v in (self.get(r["id"]) for r in rows) if v))

    def _check(self, submission: Submission, resolver: Resolver) -> list[str]:
        problems: list[Problem] = []
        subjects: list[str] = []
        masters = [d.master_identifier for d in submission.documents]
        with self._db.engine.connect() as conn:
            taken = set(conn.execute(
                select(documents.c.master_identifier).where(
                    documents.c.master_identifier.in_(masters))
            ).scalars())
        for n, doc in enumerate(submission.documents):
            where = f"DocumentReference[{n}]"
            patient = resolver.patient(doc.subject)
            if patient is None:
                problems.append(Problem("the subject is not a known person", f"{where}.subject"))
            subjects.append(patient or "")
            if doc.master_identifier in taken:
                problems.append(Problem("a document with this masterIdentifier exists",
                                        f"{where}.masterIdentifier"))
            if doc.replaces is not None:
                target = self.get(doc.replaces)
                unknown = target is None or patient is None or not resolver.may_replace(
                    patient, target)
                if unknown:  # another person's, not visible, or absent: told apart by no one
                    problems.append(Problem(f"DocumentReference/{doc.replaces} is not known",
                                            f"{where}.relatesTo"))
                elif target is not None and target.status != CURRENT:
                    problems.append(Problem(f"DocumentReference/{doc.replaces} is not current",
                                            f"{where}.relatesTo"))
        if problems:
            raise InvalidInput("the document bundle cannot be accepted", problems)
        return subjects

    def _write_pending(
        self,
        submission: Submission,
        subjects: list[str],
        staged: list[StagedBlob],
        org: str,
        now: datetime,
    ) -> tuple[str, list[dict[str, Any]]]:
        set_id = str(uuid.uuid4())
        ids = {d.full_url: str(uuid.uuid4()) for d in submission.documents}
        rows = [
            _row(doc, ids[doc.full_url], subject, blob, set_id, org, now)
            for doc, subject, blob in zip(submission.documents, subjects, staged, strict=True)
        ]
        listed = copy.deepcopy(dict(submission.submission_set))
        listed["id"] = set_id
        for entry in listed.get("entry", []):
            item = entry.get("item") if isinstance(entry, dict) else None
            if isinstance(item, dict) and item.get("reference") in ids:
                item["reference"] = f"DocumentReference/{ids[item['reference']]}"
        try:
            with self._db.engine.begin() as conn:
                conn.execute(insert(submission_sets).values(
                    id=set_id, subject_id=subjects[0], org_code=org, created_at=now,
                    body=orjson.dumps(listed).decode(),
                ))
                conn.execute(insert(documents), rows)
        except IntegrityError:
            raise Conflict("a document with one of these masterIdentifiers was just published",
                           [Problem("retry with new identifiers", "masterIdentifier")]) from None
        return set_id, rows

    def _make_available(self, ids: Sequence[str]) -> None:
        c = documents.c
        now = self._clock()
        with self._db.engine.begin() as conn:
            rows = conn.execute(select(c.id, c.replaces_id).where(c.id.in_(ids))).all()
            conn.execute(update(documents).where(c.id.in_(ids)).values(
                availability=AVAILABLE, staging_token=None, updated_at=now))
            for _, replaces in rows:
                if replaces is not None:
                    _set_status(conn, replaces, SUPERSEDED, now)

    def recover(self) -> tuple[int, int]:
        """Finish or undo publishes a crash interrupted: (made available, removed)."""
        c = documents.c
        with self._db.engine.connect() as conn:
            pending = conn.execute(
                select(c.id, c.staging_token).where(c.availability == PENDING)).all()
        done: list[str] = []
        gone: list[str] = []
        for doc_id, token in pending:
            try:
                self.content.commit(token)
                done.append(doc_id)
            except StagingGone:
                gone.append(doc_id)
        if done:
            self._make_available(done)
        if gone:
            with self._db.engine.begin() as conn:
                conn.execute(delete(documents).where(c.id.in_(gone), c.availability == PENDING))
        return len(done), len(gone)

    # -- read (ITI-67, ITI-68) ------------------------------------------------------
    def get(self, doc_id: str, *, where: Filter | None = None) -> DocumentView | None:
        return self._one(documents.c.id == doc_id, where)

    def by_content(self, content_id: str, *, where: Filter | None = None) -> DocumentView | None:
        return self._one(documents.c.content_id == content_id, where)

    def _one(self, condition: Any, where: Filter | None) -> DocumentView | None:
        stmt = select(documents).where(condition, documents.c.availability == AVAILABLE)
        if where is not None:
            stmt = stmt.where(where(documents))
        with self._db.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return DocumentView.of(row) if row is not None else None

    def find(self, query: DocumentQuery, *, where: Filter) -> tuple[list[DocumentView], int]:
        """One page of the documents ``where`` lets through, newest first, and the total."""
        c = documents.c
        conditions = [c.availability == AVAILABLE, where(documents)]
        if query.statuses:
            conditions.append(c.status.in_(query.statuses))
        if query.types:
            conditions.append(_token_condition(c.type_system, c.type_code, query.types))
        if query.categories:
            conditions.append(_token_condition(c.class_system, c.class_code, query.categories))
        if query.date_from is not None:
            conditions.append(c.date >= query.date_from)
        if query.date_to is not None:
            conditions.append(c.date <= query.date_to)
        stmt = select(documents).where(*conditions)
        with self._db.engine.connect() as conn:
            total = conn.execute(
                select(func.count()).select_from(documents).where(*conditions)).scalar_one()
            rows = conn.execute(
                stmt.order_by(c.date.desc(), c.id).limit(query.count).offset(query.offset)
            ).mappings().all()
        return [DocumentView.of(r) for r in rows], int(total)

    def open(self, view: DocumentView, start: int = 0, stop: int | None = None) -> ContentReader:
        return self.content.open(view.content_id, start, stop)

    def counts(self) -> dict[str, int]:
        """Rows by availability (tests and operators: nothing pending after a clean run)."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(documents.c.availability, func.count()).group_by(
                    documents.c.availability)).all()
        return {str(a): int(n) for a, n in rows}


def _set_status(conn: Connection, doc_id: str, status: str, now: datetime) -> None:
    c = documents.c
    body = conn.execute(select(c.body).where(c.id == doc_id)).scalar_one_or_none()
    if body is None:
        return
    resource = orjson.loads(body)
    resource["status"] = status
    conn.execute(update(documents).where(c.id == doc_id).values(
        status=status, updated_at=now, body=orjson.dumps(resource).decode()))


def _row(
    doc: DocumentEntry,
    doc_id: str,
    subject: str,
    blob: StagedBlob,
    set_id: str,
    org: str,
    now: datetime,
) -> dict[str, Any]:
    resource = copy.deepcopy(dict(doc.resource))
    resource["id"] = doc_id
    resource["status"] = CURRENT
    resource["meta"] = {  # labelled like every record, so the minimiser reads them alike
        "lastUpdated": now.isoformat(),
        "security": [
            {"system": CATEGORY_SYSTEM, "code": doc.category.value},
            {"system": CONFIDENTIALITY_SYSTEM, "code": doc.sensitivity.value},
        ],
    }
    resource["subject"] = {**resource["subject"], "reference": f"Patient/{subject}"}
    attachment = resource["content"][0]["attachment"]
    attachment.update(url=f"Binary/{blob.content_id}", size=blob.size, hash=blob.sha1_b64)
    if doc.replaces is not None:
        resource["relatesTo"] = [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{doc.replaces}"}}
        ]
    return {
        "id": doc_id,
        "master_identifier": doc.master_identifier,
        "status": CURRENT,
        "availability": PENDING,
        "subject_id": subject,
        "org_code": org,
        "category": doc.category.value,
        "sensitivity": doc.sensitivity.value,
        "type_system": doc.type.system,
        "type_code": doc.type.code,
        "class_system": doc.class_.system,
        "class_code": doc.class_.code,
        "date": doc.date,
        "content_id": blob.content_id,
        "content_type": doc.content_type,
        "size": blob.size,
        "sha1": blob.sha1_b64,
        "staging_token": blob.token,
        "submission_set_id": set_id,
        "replaces_id": doc.replaces,
        "created_at": now,
        "updated_at": now,
        "body": orjson.dumps(resource).decode(),
    }
