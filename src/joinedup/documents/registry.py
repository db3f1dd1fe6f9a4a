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

Lifecycle (``change_status``): only the authoring organisation may deprecate
a document (``superseded`` without a replacement) or mark it
``entered-in-error``, always with a reason; ``entered-in-error`` is final.
Every change (and every supersede by a new document) writes a new version:
``version`` and ``meta.versionId`` count up and ``document_reference_versions``
keeps every version's JSON for ``_history`` and vread.

The registry decides nothing about access: callers pass a ``Filter`` (the
access decisions as one SQL condition on ``subject_id``, ``org_code``,
``category``, ``sensitivity``) and a ``Resolver`` for the publish checks
that need the records and the person index.
"""

from __future__ import annotations

import base64
import copy
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from joinedup.documents.blobs import BinarySource, iter_source
from joinedup.documents.content import ContentStore
from joinedup.documents.errors import StagingGone
from joinedup.documents.index import document_tokens, list_source_id, list_tokens, period_of
from joinedup.documents.info import StagedBlob
from joinedup.documents.models import (
    documents,
    list_entries,
    search_tokens,
    submission_sets,
    uploads,
    versions,
)
from joinedup.documents.query import (
    STATUSES,
    DateMatch,
    DocumentSearch,
    ListSearch,
    TokenCriterion,
)
from joinedup.documents.reader import ContentReader
from joinedup.documents.stager import Stager
from joinedup.documents.submission import (
    DEFAULT_CONTENT_TYPES,
    DocumentEntry,
    SubjectRef,
    Submission,
    parse_submission,
)
from joinedup.errors import Conflict, Forbidden, InvalidInput, NotFound, Problem
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM
from joinedup.storage.engine import Database

PENDING, AVAILABLE = "pending", "available"
CURRENT, SUPERSEDED, ENTERED_IN_ERROR = "current", "superseded", "entered-in-error"
TRANSITIONS = {CURRENT: (SUPERSEDED, ENTERED_IN_ERROR), SUPERSEDED: (ENTERED_IN_ERROR,)}
"""Status changes ``change_status`` allows (``entered-in-error`` is final)."""
MAX_REASON = 1000
Filter = Callable[[Table], Any]
"""An access condition on the documents table (as ``joinedup.records.search.Filter``)."""

__all__ = ["STATUSES", "DocumentRegistry", "DocumentView", "Filter", "ListView", "Published",
           "Resolver", "UploadView"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DocumentView:
    """One available DocumentReference (or one version of it): access columns, content facts."""

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
    version: int = 1
    status_reason: str | None = None

    @property
    def resource(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.body)
        return data

    @property
    def reference(self) -> str:
        return f"DocumentReference/{self.id}"

    @property
    def sha1_raw(self) -> bytes:
        return base64.b64decode(self.sha1)

    @classmethod
    def of(cls, row: RowMapping) -> DocumentView:
        return cls(
            row["id"], row["status"], row["subject_id"], row["org_code"], row["category"],
            row["sensitivity"], row["content_id"], row["content_type"], row["size"],
            row["sha1"], row["date"], row["created_at"], row["replaces_id"], row["body"],
            row["version"], row["status_reason"],
        )


@dataclass(frozen=True)
class ListView:
    """A SubmissionSet or Folder List, with the ids of the documents it lists."""

    id: str
    code: str
    status: str
    subject_id: str
    org_code: str
    created_at: datetime
    body: str = field(repr=False)
    document_ids: tuple[str, ...] = ()

    def resource(self, visible: Collection[str]) -> dict[str, Any]:
        """The List as stored, listing only the documents in ``visible``."""
        data: dict[str, Any] = orjson.loads(self.body)
        data["entry"] = [
            e for e in data.get("entry", [])
            if str(e.get("item", {}).get("reference", "")).removeprefix("DocumentReference/")
            in visible
        ]
        return data


@dataclass(frozen=True)
class UploadView:
    content_id: str
    size: int
    sha1: str
    content_type: str


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
    folder_ids: tuple[str, ...] = ()


def _token_condition(criterion: TokenCriterion, id_column: Any) -> ColumnElement[bool]:
    name, matches = criterion
    t = search_tokens.c
    alternatives = []
    for m in matches:
        parts: list[ColumnElement[bool]] = []
        if m.system is not None:
            parts.append(t.system == m.system)
        if m.value is not None:
            if m.reference:  # a bare id: Type/<id> of any type, or the value itself
                escaped = m.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                parts.append(or_(t.value == m.value, t.value.like(f"%/{escaped}", escape="\\")))
            else:
                parts.append(t.value == m.value)
        alternatives.append(and_(true(), *parts))
    if not alternatives:
        return false()
    return exists().where(t.resource_id == id_column, t.name == name, or_(*alternatives))


def _date_condition(match: DateMatch, column: Any) -> ColumnElement[bool]:
    low, high = match.low, match.high
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": and_(column >= low, column < high),
        "ne": or_(column < low, column >= high),
        "gt": column >= high,
        "sa": column >= high,
        "ge": column >= low,
        "lt": column < low,
        "eb": column < low,
        "le": column < high,
    }
    return conditions[match.prefix]


def _period_condition(match: DateMatch) -> ColumnElement[bool]:
    """``context.period`` against the value's interval (an open end reaches infinity)."""
    start, end = documents.c.period_start, documents.c.period_end
    low, high = match.low, match.high
    starts_before_high = or_(start.is_(None), start < high)
    ends_after_low = or_(end.is_(None), end >= low)
    has_period = or_(start.is_not(None), end.is_not(None))
    # explicit IS NOT NULLs: NOT over a NULL comparison would be NULL, not true
    within = and_(start.is_not(None), start >= low, end.is_not(None), end < high)
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": within,
        "ne": not_(within),
        "gt": or_(end.is_(None), end >= high),
        "sa": start >= high,
        "ge": ends_after_low,
        "lt": or_(start.is_(None), start < low),
        "eb": and_(end.is_not(None), end < low),
        "le": starts_before_high,
    }
    return and_(has_period, conditions[match.prefix])


def _any(conditions: Iterable[ColumnElement[bool]]) -> ColumnElement[bool]:
    listed = list(conditions)
    return or_(*listed) if listed else false()


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

    def reset_content(self) -> None:
        """Open the content store afresh on next use (after a master key was added)."""
        with self._lock:
            self._content = None

    @property
    def limit(self) -> int:
        return min(self.max_bytes, self.content.max_bytes)

    # -- upload ahead (POST /fhir/Binary) ---------------------------------------------
    def upload(
        self,
        source: BinarySource,
        *,
        org: str,
        content_type: str,
        expected_size: int | None = None,
    ) -> UploadView:
        """Stream content into the store, staged (invisible) until an ITI-65 names it.

        Refused while streaming once over the size limit (or the declared size),
        with nothing left in the store."""
        with self.begin_upload(content_type=content_type, expected_size=expected_size) as stager:
            for block in iter_source(source, self.content.chunk_size):
                stager.write(block)
            staged = stager.finish()
        return self.record_upload(staged, org, content_type)

    def begin_upload(self, *, content_type: str, expected_size: int | None = None) -> Stager:
        """A push-style upload (``write`` blocks, ``finish``); then ``record_upload``."""
        if content_type not in self.content_types:
            raise InvalidInput(f"content type {content_type!r} is not accepted", [Problem(
                f"accepted: {', '.join(sorted(self.content_types))}", "Content-Type")])
        return self.content.begin(expected_size=expected_size, max_bytes=self.limit)

    def record_upload(self, staged: StagedBlob, org: str, content_type: str) -> UploadView:
        """Keep staged content for a bundle to claim (aborted if this cannot be written)."""
        try:
            with self._db.engine.begin() as conn:
                conn.execute(insert(uploads).values(
                    content_id=staged.content_id, org_code=org, content_type=content_type,
                    size=staged.size, sha1=staged.sha1_b64, staging_token=staged.token,
                    created_at=self._clock()))
        except BaseException:
            self.content.abort(staged)
            raise
        return UploadView(staged.content_id, staged.size, staged.sha1_b64, content_type)

    # -- publish (ITI-65) -----------------------------------------------------------
    def publish(self, bundle: Any, *, org: str, resolver: Resolver) -> Published:
        """Accept the whole bundle or refuse it whole (``InvalidInput`` with every problem)."""
        now = self._clock()
        submission = parse_submission(
            bundle, submitter_org=org, content_types=self.content_types,
            max_bytes=self.limit, now=now,
        )
        subjects, ahead = self._check(submission, resolver, org)
        store = self.content
        staged: list[StagedBlob] = []
        fresh: list[StagedBlob] = []
        try:
            for doc in submission.documents:
                if doc.upload is not None:
                    staged.append(ahead[doc.upload])
                    continue
                assert doc.data is not None
                blob = store.stage(doc.data, expected_size=doc.size, expected_sha1=doc.sha1)
                fresh.append(blob)
                staged.append(blob)
            set_id, folder_ids, rows = self._write_pending(
                submission, subjects, staged, org, now)
        except BaseException:
            for blob in fresh:
                store.abort(blob)
            raise
        for blob in staged:
            store.commit(blob)
        self._make_available([r["id"] for r in rows], org)
        views = tuple(v for v in (self.get(r["id"]) for r in rows) if v)
        return Published(set_id, views, folder_ids)

    def _check(
        self, submission: Submission, resolver: Resolver, org: str
    ) -> tuple[list[str], dict[str, StagedBlob]]:
        problems: list[Problem] = []
        subjects: list[str] = []
        masters = [d.master_identifier for d in submission.documents]
        wanted = [d.upload for d in submission.documents if d.upload]
        with self._db.engine.connect() as conn:
            taken = set(conn.execute(
                select(documents.c.master_identifier).where(
                    documents.c.master_identifier.in_(masters))
            ).scalars())
            found = {r["content_id"]: r for r in conn.execute(
                select(uploads).where(uploads.c.content_id.in_(wanted),
                                      uploads.c.org_code == org)).mappings()}
        ahead: dict[str, StagedBlob] = {}
        for n, doc in enumerate(submission.documents):
            where = f"DocumentReference[{n}]"
            patient = resolver.patient(doc.subject)
            if patient is None:
                problems.append(Problem("the subject is not a known person", f"{where}.subject"))
            subjects.append(patient or "")
            if doc.master_identifier in taken:
                problems.append(Problem("a document with this masterIdentifier exists",
                                        f"{where}.masterIdentifier"))
            if doc.upload is not None:
                problems += self._check_upload(doc, found.get(doc.upload), where, ahead)
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
        return subjects, ahead

    @staticmethod
    def _check_upload(doc: DocumentEntry, row: RowMapping | None, where: str,
                      ahead: dict[str, StagedBlob]) -> list[Problem]:
        at = f"{where}.content[0].attachment"
        if row is None:  # another organisation's upload looks like none at all
            return [Problem(f"Binary/{doc.upload} is not an upload of yours awaiting a bundle",
                            f"{at}.url")]
        problems = []
        if row["content_type"] != doc.content_type:
            problems.append(Problem(f"the upload's content type is {row['content_type']}",
                                    f"{at}.contentType"))
        if row["size"] != doc.size:
            problems.append(Problem(f"declared {doc.size} bytes, the upload has {row['size']}",
                                    f"{at}.size"))
        if row["sha1"] != base64.b64encode(doc.sha1).decode():
            problems.append(Problem("the SHA-1 hash does not match the upload", f"{at}.hash"))
        if not problems:
            ahead[str(doc.upload)] = StagedBlob.from_token(row["staging_token"])
        return problems

    def _write_pending(
        self,
        submission: Submission,
        subjects: list[str],
        staged: list[StagedBlob],
        org: str,
        now: datetime,
    ) -> tuple[str, tuple[str, ...], list[dict[str, Any]]]:
        set_id = str(uuid.uuid4())
        ids = {d.full_url: str(uuid.uuid4()) for d in submission.documents}
        folder_ids = {f.full_url: str(uuid.uuid4()) for f in submission.folders}
        rows = [
            _row(doc, ids[doc.full_url], subject, blob, set_id, org, now)
            for doc, subject, blob in zip(submission.documents, subjects, staged, strict=True)
        ]
        lists = [(set_id, "submissionset", submission.submission_set,
                  [d.full_url for d in submission.documents])]
        lists += [(folder_ids[f.full_url], "folder", f.resource, list(f.documents))
                  for f in submission.folders]
        set_rows, entry_rows, token_rows = [], [], []
        for list_id, code, resource, urls in lists:
            listed = _list_body(resource, list_id, ids, subjects[0], now)
            set_rows.append({
                "id": list_id, "subject_id": subjects[0], "org_code": org, "code": code,
                "status": str(listed.get("status", "current")), "date": now,
                "source_id": list_source_id(listed), "created_at": now,
                "body": orjson.dumps(listed).decode(),
            })
            entry_rows += [{"list_id": list_id, "document_id": ids[u]} for u in urls]
            token_rows += [{"resource_id": list_id, "name": n, "system": s, "value": v}
                           for n, s, v in list_tokens(listed)]
        for row in rows:
            token_rows += [{"resource_id": row["id"], "name": n, "system": s, "value": v}
                           for n, s, v in document_tokens(orjson.loads(row["body"]))]
        ahead = [d.upload for d in submission.documents if d.upload]
        try:
            with self._db.engine.begin() as conn:
                if ahead:  # claimed by this publish: gone from the uploads in the same commit
                    claimed = conn.execute(delete(uploads).where(
                        uploads.c.content_id.in_(ahead), uploads.c.org_code == org)).rowcount
                    if claimed != len(ahead):
                        raise Conflict("an uploaded Binary was just used by another bundle",
                                       [Problem("upload the content again", "attachment.url")])
                conn.execute(insert(submission_sets), set_rows)
                conn.execute(insert(documents), rows)
                conn.execute(insert(list_entries), entry_rows)
                conn.execute(insert(versions), [_version_row(r, org, None) for r in rows])
                if token_rows:
                    conn.execute(insert(search_tokens), token_rows)
        except IntegrityError:
            raise Conflict("a document with one of these masterIdentifiers was just published",
                           [Problem("retry with new identifiers", "masterIdentifier")]) from None
        return set_id, tuple(folder_ids.values()), rows

    def _make_available(self, ids: Sequence[str], org: str) -> None:
        c = documents.c
        now = self._clock()
        with self._db.engine.begin() as conn:
            rows = conn.execute(select(c.id, c.replaces_id).where(c.id.in_(ids))).all()
            conn.execute(update(documents).where(c.id.in_(ids)).values(
                availability=AVAILABLE, staging_token=None, updated_at=now))
            for doc_id, replaces in rows:
                if replaces is not None:
                    _set_status(conn, replaces, SUPERSEDED, now, org,
                                f"replaced by DocumentReference/{doc_id}")

    def recover(self) -> tuple[int, int]:
        """Finish or undo publishes a crash interrupted: (made available, removed)."""
        c = documents.c
        with self._db.engine.connect() as conn:
            pending = conn.execute(
                select(c.id, c.staging_token, c.org_code).where(c.availability == PENDING)).all()
        done: dict[str, list[str]] = {}
        gone: list[str] = []
        for doc_id, token, org in pending:
            try:
                self.content.commit(token)
                done.setdefault(org, []).append(doc_id)
            except StagingGone:
                gone.append(doc_id)
        for org, ids in done.items():
            self._make_available(ids, org)
        if gone:
            with self._db.engine.begin() as conn:
                still = list(conn.execute(select(c.id).where(
                    c.id.in_(gone), c.availability == PENDING)).scalars())
                conn.execute(delete(documents).where(c.id.in_(still)))
                conn.execute(delete(versions).where(versions.c.document_id.in_(still)))
                conn.execute(delete(search_tokens).where(search_tokens.c.resource_id.in_(still)))
                conn.execute(delete(list_entries).where(list_entries.c.document_id.in_(still)))
        return sum(map(len, done.values())), len(gone)

    def sweep(self) -> tuple[int, int]:
        """Drop uploads no bundle claimed within the grace period, then sweep the store:
        (uploads dropped, store items removed)."""
        store = self.content
        cutoff = self._clock() - store.staging_grace
        with self._db.engine.begin() as conn:
            stale = conn.execute(select(uploads.c.content_id, uploads.c.staging_token).where(
                uploads.c.created_at < cutoff)).all()
            conn.execute(delete(uploads).where(
                uploads.c.content_id.in_([s[0] for s in stale])))
        for _, token in stale:
            store.abort(token)
        return len(stale), store.sweep().total

    # -- lifecycle --------------------------------------------------------------------
    def change_status(
        self, doc_id: str, status: str, reason: str, *, org: str, where: Filter | None = None
    ) -> DocumentView:
        """Deprecate (``superseded``) or withdraw (``entered-in-error``) a document.

        Only its authoring organisation may; ``NotFound`` if it does not exist or
        ``where`` hides it; ``Forbidden`` if the caller may see it but did not author it.
        """
        problems = []
        if status not in (SUPERSEDED, ENTERED_IN_ERROR):
            problems.append(Problem("must be superseded (deprecate) or entered-in-error",
                                    "status"))
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON:
            problems.append(Problem(f"a reason (1 to {MAX_REASON} characters) is required",
                                    "reason"))
        if problems:
            raise InvalidInput("the status change cannot be made", problems)
        view = self.get(doc_id, where=where)
        if view is None:
            raise NotFound(f"DocumentReference/{doc_id} is not known")
        if view.org_code != org:
            raise Forbidden("only the organisation that published a document may change its "
                            "status", [Problem(f"published by {view.org_code}", "author")])
        if status not in TRANSITIONS.get(view.status, ()):
            raise Conflict(f"a document that is {view.status} cannot become {status}",
                           [Problem(f"allowed from {view.status}: "
                                    f"{', '.join(TRANSITIONS.get(view.status, ())) or 'none'}",
                                    "status")])
        with self._db.engine.begin() as conn:
            _set_status(conn, doc_id, status, self._clock(), org, reason, expect=view.version)
        changed = self.get(doc_id)
        assert changed is not None
        return changed

    # -- read (ITI-67, ITI-68, ITI-66) ----------------------------------------------
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

    def history(self, doc_id: str, *, where: Filter | None = None) -> list[DocumentView]:
        """Every version of a document ``where`` lets through, newest first."""
        current = self.get(doc_id, where=where)
        if current is None:
            return []
        with self._db.engine.connect() as conn:
            rows = conn.execute(select(versions).where(versions.c.document_id == doc_id)
                                .order_by(versions.c.version.desc())).mappings().all()
        return [_as_version(current, r) for r in rows]

    def version(self, doc_id: str, version: int, *, where: Filter | None = None
                ) -> DocumentView | None:
        current = self.get(doc_id, where=where)
        if current is None:
            return None
        with self._db.engine.connect() as conn:
            row = conn.execute(select(versions).where(
                versions.c.document_id == doc_id, versions.c.version == version)
            ).mappings().first()
        return _as_version(current, row) if row is not None else None

    def find(self, query: DocumentSearch, *, where: Filter) -> tuple[list[DocumentView], int]:
        """One page of the documents ``where`` lets through, newest first, and the total."""
        c = documents.c
        conditions = [c.availability == AVAILABLE, where(documents), c.status.in_(query.statuses)]
        conditions += [_token_condition(t, c.id) for t in query.tokens]
        conditions += [_any(_date_condition(m, c.date) for m in d) for d in query.dates]
        conditions += [_any(_period_condition(m) for m in p) for p in query.periods]
        stmt = select(documents).where(*conditions)
        with self._db.engine.connect() as conn:
            total = conn.execute(
                select(func.count()).select_from(documents).where(*conditions)).scalar_one()
            rows = conn.execute(
                stmt.order_by(c.date.desc(), c.id).limit(query.count).offset(query.offset)
            ).mappings().all()
        return [DocumentView.of(r) for r in rows], int(total)

    def find_lists(
        self, query: ListSearch, patients: Sequence[str], *, where: Filter
    ) -> tuple[list[ListView], int, set[str]]:
        """One page of the Lists about ``patients`` listing at least one document ``where``
        lets through, newest first; the total; and which listed documents it lets through."""
        s, d, e = submission_sets.c, documents.c, list_entries.c
        visible_entry = (
            select(literal(1))
            .select_from(list_entries.join(documents, d.id == e.document_id))
            .where(e.list_id == s.id, d.availability == AVAILABLE, where(documents))
            .exists()
        )
        conditions = [s.subject_id.in_(list(patients)), s.status.in_(query.statuses),
                      visible_entry]
        conditions += [_token_condition(t, s.id) for t in query.tokens]
        conditions += [_any(_date_condition(m, s.date) for m in dm) for dm in query.dates]
        conditions += [s.source_id.in_(list(ids)) for ids in query.source_ids]
        with self._db.engine.connect() as conn:
            total = conn.execute(
                select(func.count()).select_from(submission_sets).where(*conditions)
            ).scalar_one()
            rows = conn.execute(select(submission_sets).where(*conditions).order_by(
                s.created_at.desc(), s.id).limit(query.count).offset(query.offset)
            ).mappings().all()
            ids = [r["id"] for r in rows]
            listed = conn.execute(select(e.list_id, e.document_id).where(e.list_id.in_(ids))
                                  ).all()
            shown = set(conn.execute(select(d.id).where(
                d.id.in_([doc for _, doc in listed]), d.availability == AVAILABLE,
                where(documents))).scalars())
        by_list: dict[str, list[str]] = {}
        for list_id, doc in listed:
            by_list.setdefault(list_id, []).append(doc)
        views = [ListView(r["id"], r["code"], r["status"], r["subject_id"], r["org_code"],
                          r["created_at"], r["body"], tuple(by_list.get(r["id"], [])))
                 for r in rows]
        return views, int(total), shown

    def open(self, view: DocumentView, start: int = 0, stop: int | None = None) -> ContentReader:
        return self.content.open(view.content_id, start, stop)

    def counts(self) -> dict[str, int]:
        """Rows by availability (tests and operators: nothing pending after a clean run)."""
        with self._db.engine.connect() as conn:
            rows = conn.execute(
                select(documents.c.availability, func.count()).group_by(
                    documents.c.availability)).all()
        return {str(a): int(n) for a, n in rows}


def _list_body(resource: Any, list_id: str, ids: dict[str, str], subject: str,
               now: datetime) -> dict[str, Any]:
    listed = copy.deepcopy(dict(resource))
    listed["id"] = list_id
    listed.setdefault("status", "current")
    listed.setdefault("date", now.isoformat())
    listed["subject"] = {**(listed.get("subject") or {}), "reference": f"Patient/{subject}"}
    for entry in listed.get("entry", []):
        item = entry.get("item") if isinstance(entry, dict) else None
        if isinstance(item, dict) and item.get("reference") in ids:
            item["reference"] = f"DocumentReference/{ids[item['reference']]}"
    return listed


def _as_version(current: DocumentView, row: RowMapping) -> DocumentView:
    return DocumentView(
        current.id, row["status"], current.subject_id, current.org_code, current.category,
        current.sensitivity, current.content_id, current.content_type, current.size,
        current.sha1, current.date, current.created_at, current.replaces_id, row["body"],
        row["version"], row["reason"],
    )


def _version_row(row: dict[str, Any], org: str, reason: str | None) -> dict[str, Any]:
    return {"document_id": row["id"], "version": row["version"], "status": row["status"],
            "reason": reason, "changed_by": org, "recorded_at": row["updated_at"],
            "body": row["body"]}


def _set_status(conn: Connection, doc_id: str, status: str, now: datetime, org: str,
                reason: str, *, expect: int | None = None) -> None:
    """A new version with ``status``: the row, its JSON and the history, in ``conn``'s
    transaction. ``expect``: the version the change was decided on (else ``Conflict``)."""
    c = documents.c
    row = conn.execute(select(c.body, c.version).where(c.id == doc_id)).first()
    if row is None:
        return
    body, version = row
    if expect is not None and version != expect:
        raise Conflict("the document changed meanwhile", [Problem("try again", "status")])
    resource = orjson.loads(body)
    resource["status"] = status
    resource.setdefault("meta", {}).update(versionId=str(version + 1), lastUpdated=now.isoformat())
    text = orjson.dumps(resource).decode()
    changed = conn.execute(update(documents).where(c.id == doc_id, c.version == version).values(
        status=status, status_reason=reason, version=version + 1, updated_at=now, body=text))
    if changed.rowcount != 1:
        raise Conflict("the document changed meanwhile", [Problem("try again", "status")])
    conn.execute(insert(versions).values(
        document_id=doc_id, version=version + 1, status=status, reason=reason, changed_by=org,
        recorded_at=now, body=text))


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
        "versionId": "1",
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
    start, end = period_of(resource)
    return {
        "id": doc_id,
        "master_identifier": doc.master_identifier,
        "status": CURRENT,
        "status_reason": None,
        "version": 1,
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
        "period_start": start,
        "period_end": end,
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

