"""The person index: every source Patient record linked to exactly one person.

Linking runs as a record is ingested, in the ingest transaction:

1. a valid NHS number already in the index links to that record's person
   (deterministic); two different valid NHS numbers never link automatically;
2. otherwise candidates sharing a blocking key are scored by the model; the
   best at or above the auto-link threshold links (if it has evidence beyond
   a name), one at or above the review threshold creates a new person and a
   review pair for a data steward, anything lower creates a new person.

Concurrent linkers are serialised on the keys they touch (PostgreSQL advisory
locks; SQLite's single writer via a lock row), so the same new person
arriving from two feeds at once ends as one person.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from joinedup.errors import Conflict, InvalidInput, NotFound, Problem
from joinedup.people.matcher import Matcher, PairScore, features_from_json, features_to_json
from joinedup.people.matching.decision import Outcome, decide, has_non_name_evidence
from joinedup.people.matching.normalise import MatchFeatures
from joinedup.people.models import (
    LinkLock,
    Merge,
    Person,
    PersonEvent,
    PersonKey,
    ReviewPair,
)
from joinedup.people.models import PersonRecord as LinkedRecord
from joinedup.storage.engine import Database

SYSTEM = "system"
MAX_CANDIDATES = 200
"""Candidates scored per arriving record; keys shared by more records are too common to help."""


@dataclass(frozen=True)
class LinkResult:
    record_id: str
    person_id: str
    rule: str
    probability: float | None
    review_pair: int | None = None
    created_person: bool = False


@dataclass
class PersonView:
    """A person's linked source records, grouped by organisation, for the access layer."""

    person_id: str
    state: str
    flagged: bool
    records: dict[str, list[str]] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC)


def _evidence_hash(left: MatchFeatures, right: MatchFeatures) -> str:
    payload = json.dumps(
        sorted([features_to_json(left), features_to_json(right)], key=lambda d: d["unique_id"]),
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class PersonIndex:
    def __init__(self, db: Database, matcher: Matcher) -> None:
        self._db = db
        self._matcher = matcher

    # -- linking ---------------------------------------------------------------
    def link(
        self,
        session: Session,
        features: MatchFeatures,
        org_code: str,
        *,
        actor: str = SYSTEM,
        allowed: Callable[[str, str], bool] | None = None,
    ) -> LinkResult:
        """Link one source record (``features.unique_id`` is its record id) inside ``session``.

        ``allowed(record_id, person_id)``, when given, says whether the record
        may join that person at all (a rebuild keeps stewards' rejections and
        unmerges this way); candidates in persons it refuses are passed over.
        """
        keys = self._matcher.keys(features)
        self._lock(session, keys)
        existing = session.get(LinkedRecord, features.unique_id)
        if existing is not None:
            return self._relink_existing(session, existing, features, keys, actor)
        if features.nhs_number:
            same = next(
                (
                    r
                    for r in session.scalars(
                        select(LinkedRecord)
                        .where(LinkedRecord.nhs_number == features.nhs_number)
                        .order_by(LinkedRecord.record_id)
                        .limit(1 if allowed is None else None)
                    )
                    if allowed is None or allowed(features.unique_id, r.person_id)
                ),
                None,
            )
            if same is not None:
                self._insert(
                    session, features, org_code, same.person_id, "nhs-number", None, keys, actor
                )
                return LinkResult(features.unique_id, same.person_id, "nhs-number", None)
        best = self._best_candidate(session, features, keys, allowed)
        if best is not None:
            candidate, score = best
            decision = decide(
                features, candidate_features(candidate), score.probability, self._matcher.thresholds
            )
            auto = decision.outcome is Outcome.AUTO_LINK and has_non_name_evidence(
                features, candidate_features(candidate)
            )
            if auto:
                self._insert(
                    session,
                    features,
                    org_code,
                    candidate.person_id,
                    "model",
                    score.probability,
                    keys,
                    actor,
                )
                return LinkResult(
                    features.unique_id, candidate.person_id, "model", score.probability
                )
            if decision.outcome in (Outcome.AUTO_LINK, Outcome.REVIEW):
                person_id = self._new_person(
                    session, features, org_code, keys, actor, score.probability
                )
                reason = (
                    decision.reason
                    if decision.outcome is Outcome.REVIEW
                    else ("name-only evidence")
                )
                pair = self._propose(session, features, candidate, score, reason)
                return LinkResult(
                    features.unique_id,
                    person_id,
                    "new-person",
                    score.probability,
                    review_pair=pair,
                    created_person=True,
                )
        person_id = self._new_person(session, features, org_code, keys, actor, None)
        return LinkResult(features.unique_id, person_id, "new-person", None, created_person=True)

    def attach(
        self,
        session: Session,
        features: MatchFeatures,
        org_code: str,
        person_id: str,
        *,
        rule: str,
        actor: str,
    ) -> LinkResult:
        """Link a record to a given person without matching (a steward's decision)."""
        keys = self._matcher.keys(features)
        self._insert(session, features, org_code, person_id, rule, None, keys, actor)
        return LinkResult(features.unique_id, person_id, rule, None)

    def link_many(
        self,
        conn: Connection,
        items: Sequence[tuple[MatchFeatures, str]],
        *,
        actor: str = SYSTEM,
    ) -> list[LinkResult]:
        """Link a chunk of records, in order, on ``conn`` (inside the caller's transaction).

        Decides exactly as calling :meth:`link` for each ``(features, org_code)`` in
        turn (tested against it), but reads what the chunk needs in a few set
        queries, decides in memory, and writes with one statement per table:
        the batch loader's observer links tens of thousands of records a batch.
        """
        if not items:
            return []
        return _ChunkLinker(self._matcher, conn, actor).run(items)

    def link_one(
        self, features: MatchFeatures, org_code: str, *, actor: str = SYSTEM
    ) -> LinkResult:
        with self._db.session() as session:
            return self.link(session, features, org_code, actor=actor)

    def _lock(self, session: Session, keys: list[str]) -> None:
        if session.get_bind().dialect.name == "postgresql":
            for key in sorted(set(keys)) or ["<no-keys>"]:
                session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7))"), {"k": key}
                )
            return
        # SQLite: taking the write lock now makes the read-then-write below atomic.
        result = session.execute(
            update(LinkLock).where(LinkLock.id == 1).values(counter=LinkLock.counter + 1)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            session.add(LinkLock(id=1, counter=1))
            session.flush()

    def _best_candidate(
        self,
        session: Session,
        features: MatchFeatures,
        keys: list[str],
        allowed: Callable[[str, str], bool] | None = None,
    ) -> tuple[LinkedRecord, PairScore] | None:
        if not keys:
            return None
        ids = session.scalars(
            select(PersonKey.record_id)
            .where(PersonKey.key.in_(keys))
            .where(PersonKey.record_id != features.unique_id)
            .distinct()
            .order_by(PersonKey.record_id)
            .limit(MAX_CANDIDATES)
        ).all()
        if not ids:
            return None
        rejected = set(
            session.scalars(
                select(ReviewPair.evidence_hash).where(
                    ReviewPair.record_id == features.unique_id, ReviewPair.status == "rejected"
                )
            )
        )
        best: tuple[LinkedRecord, PairScore] | None = None
        for candidate in session.scalars(
            select(LinkedRecord)
            .where(LinkedRecord.record_id.in_(ids))
            .order_by(LinkedRecord.record_id)
        ):
            other = candidate_features(candidate)
            if _evidence_hash(features, other) in rejected:
                continue
            if allowed is not None and not allowed(features.unique_id, candidate.person_id):
                continue
            score = self._matcher.score(features, other)
            if best is None or score.weight > best[1].weight:
                best = (candidate, score)
        return best

    def _insert(
        self,
        session: Session,
        features: MatchFeatures,
        org_code: str,
        person_id: str,
        rule: str,
        probability: float | None,
        keys: list[str],
        actor: str,
    ) -> None:
        session.add(
            LinkedRecord(
                record_id=features.unique_id,
                person_id=person_id,
                org_code=org_code,
                nhs_number=features.nhs_number,
                features=features_to_json(features),
                rule=rule,
                probability=probability,
                linked_at=_now(),
                linked_by=actor,
            )
        )
        session.flush()
        session.add_all(PersonKey(key=k, record_id=features.unique_id) for k in keys)
        session.add(
            PersonEvent(
                person_id=person_id,
                record_id=features.unique_id,
                action="link",
                rule=rule,
                probability=probability,
                actor=actor,
                detail={},
            )
        )
        self._check_nhs_conflict(session, person_id)

    def _new_person(
        self,
        session: Session,
        features: MatchFeatures,
        org_code: str,
        keys: list[str],
        actor: str,
        probability: float | None,
    ) -> str:
        person_id = str(uuid.uuid4())
        session.add(Person(id=person_id, state="active", flagged=False))
        session.add(
            PersonEvent(
                person_id=person_id,
                record_id=features.unique_id,
                action="new-person",
                actor=actor,
                detail={},
            )
        )
        session.flush()
        self._insert(session, features, org_code, person_id, "new-person", probability, keys, actor)
        return person_id

    def _relink_existing(
        self,
        session: Session,
        existing: LinkedRecord,
        features: MatchFeatures,
        keys: list[str],
        actor: str,
    ) -> LinkResult:
        """A new version of a known record: refresh its features and keys, keep its person."""
        if features_to_json(features) != existing.features:
            existing.features = features_to_json(features)
            existing.nhs_number = features.nhs_number
            session.execute(delete(PersonKey).where(PersonKey.record_id == existing.record_id))
            session.add_all(PersonKey(key=k, record_id=existing.record_id) for k in keys)
            session.add(
                PersonEvent(
                    person_id=existing.person_id,
                    record_id=existing.record_id,
                    action="update",
                    actor=actor,
                    detail={},
                )
            )
            session.flush()
            self._check_nhs_conflict(session, existing.person_id)
        return LinkResult(
            existing.record_id, existing.person_id, existing.rule, existing.probability
        )

    def _check_nhs_conflict(self, session: Session, person_id: str) -> None:
        numbers = set(
            session.scalars(
                select(LinkedRecord.nhs_number).where(
                    LinkedRecord.person_id == person_id, LinkedRecord.nhs_number.is_not(None)
                )
            )
        )
        person = session.get(Person, person_id)
        assert person is not None
        if len(numbers) > 1 and not person.flagged:
            person.flagged = True
            person.flag_reason = "conflicting NHS numbers"
            session.add(
                PersonEvent(
                    person_id=person_id,
                    action="flag",
                    actor=SYSTEM,
                    detail={"reason": "conflicting NHS numbers", "count": len(numbers)},
                )
            )

    def _propose(
        self,
        session: Session,
        features: MatchFeatures,
        candidate: LinkedRecord,
        score: PairScore,
        reason: str,
    ) -> int:
        pair = ReviewPair(
            record_id=features.unique_id,
            candidate_record_id=candidate.record_id,
            probability=score.probability,
            weight=score.weight,
            reason=reason,
            evidence=list(score.evidence),
            evidence_hash=_evidence_hash(features, candidate_features(candidate)),
            status="open",
        )
        session.add(pair)
        session.flush()
        return pair.id

    # -- review ----------------------------------------------------------------
    def review_queue(self, *, status: str = "open", limit: int = 50) -> list[dict[str, Any]]:
        with self._db.session() as s:
            pairs = s.scalars(
                select(ReviewPair)
                .where(ReviewPair.status == status)
                .order_by(ReviewPair.probability.desc(), ReviewPair.id)
                .limit(limit)
            )
            return [self._pair_view(s, p) for p in pairs]

    def pair(self, pair_id: int) -> dict[str, Any]:
        with self._db.session() as s:
            p = s.get(ReviewPair, pair_id)
            if p is None:
                raise NotFound(f"no review pair {pair_id}")
            return self._pair_view(s, p)

    def _pair_view(self, s: Session, p: ReviewPair) -> dict[str, Any]:
        left = s.get(LinkedRecord, p.record_id)
        right = s.get(LinkedRecord, p.candidate_record_id)
        return {
            "id": p.id,
            "status": p.status,
            "reason": p.reason,
            "match_probability": p.probability,
            "match_weight": p.weight,
            "evidence": p.evidence,
            "left": _side(left),
            "right": _side(right),
            "decided_by": p.decided_by,
            "decided_at": p.decided_at.isoformat() if p.decided_at else None,
        }

    def accept(self, pair_id: int, *, by: str, reason: str = "steward accepted pair") -> int:
        """The pair is one person: merge the arriving record's person into the candidate's."""
        with self._db.session() as s:
            p = self._open_pair(s, pair_id)
            left = s.get(LinkedRecord, p.record_id)
            right = s.get(LinkedRecord, p.candidate_record_id)
            if left is None or right is None:
                raise Conflict(f"review pair {pair_id} refers to a record no longer in the index")
            p.status, p.decided_by, p.decided_at = "accepted", by, _now()
            if left.person_id == right.person_id:
                return 0
            return self._merge(s, right.person_id, left.person_id, by=by, reason=reason)

    def reject(self, pair_id: int, *, by: str) -> None:
        """Not the same person; the same evidence never proposes this pair again."""
        with self._db.session() as s:
            p = self._open_pair(s, pair_id)
            p.status, p.decided_by, p.decided_at = "rejected", by, _now()
            left = s.get(LinkedRecord, p.record_id)
            person = left.person_id if left else p.record_id
            s.add(
                PersonEvent(
                    person_id=person,
                    record_id=p.record_id,
                    action="review-rejected",
                    actor=by,
                    detail={"pair": p.id, "candidate": p.candidate_record_id},
                )
            )

    def _open_pair(self, s: Session, pair_id: int) -> ReviewPair:
        p = s.get(ReviewPair, pair_id)
        if p is None:
            raise NotFound(f"no review pair {pair_id}")
        if p.status != "open":
            raise Conflict(f"review pair {pair_id} is already {p.status}")
        return p

    # -- merge / unmerge -------------------------------------------------------
    def merge(self, survivor_id: str, merged_id: str, *, by: str, reason: str) -> int:
        problems = []
        if survivor_id == merged_id:
            problems.append(Problem("cannot merge a person with itself", "merged"))
        if not reason.strip():
            problems.append(Problem("a reason is required", "reason"))
        if problems:
            raise InvalidInput("invalid merge", problems)
        with self._db.session() as s:
            for pid in (survivor_id, merged_id):
                person = s.get(Person, pid)
                if person is None or person.state != "active":
                    raise NotFound(f"no active person {pid}")
            return self._merge(s, survivor_id, merged_id, by=by, reason=reason)

    def _merge(self, s: Session, survivor_id: str, merged_id: str, *, by: str, reason: str) -> int:
        moved = [
            {
                "record_id": r.record_id,
                "rule": r.rule,
                "probability": r.probability,
                "linked_by": r.linked_by,
                "linked_at": r.linked_at.isoformat(),
            }
            for r in s.scalars(
                select(LinkedRecord)
                .where(LinkedRecord.person_id == merged_id)
                .order_by(LinkedRecord.record_id)
            )
        ]
        kept = list(
            s.scalars(
                select(LinkedRecord.record_id)
                .where(LinkedRecord.person_id == survivor_id)
                .order_by(LinkedRecord.record_id)
            )
        )
        merged = s.get(Person, merged_id)
        survivor = s.get(Person, survivor_id)
        assert merged is not None
        assert survivor is not None
        flags = {
            "merged": [merged.flagged, merged.flag_reason],
            "survivor": [survivor.flagged, survivor.flag_reason],
        }
        s.execute(
            update(LinkedRecord)
            .where(LinkedRecord.person_id == merged_id)
            .values(person_id=survivor_id, rule="merge", linked_by=by, linked_at=_now())
        )
        merged.state, merged.merged_into = "merged", survivor_id
        record = Merge(
            survivor_id=survivor_id,
            merged_id=merged_id,
            moved=moved,
            merged_flag=flags,
            survivor_records=kept,
            by=by,
            reason=reason,
        )
        s.add(record)
        s.flush()
        for pid in (survivor_id, merged_id):
            s.add(
                PersonEvent(
                    person_id=pid,
                    action="merge",
                    actor=by,
                    detail={
                        "merge": record.id,
                        "survivor": survivor_id,
                        "merged": merged_id,
                        "records": len(moved),
                        "reason": reason,
                    },
                )
            )
        self._check_nhs_conflict(s, survivor_id)
        return record.id

    def unmerge(self, merge_id: int, *, by: str) -> None:
        """Undo a merge exactly: the moved records, their link details and both flags."""
        with self._db.session() as s:
            m = s.get(Merge, merge_id)
            if m is None:
                raise NotFound(f"no merge {merge_id}")
            if m.undone_at is not None:
                raise Conflict(f"merge {merge_id} was already undone")
            later = s.scalars(
                select(Merge).where(Merge.merged_id == m.survivor_id, Merge.undone_at.is_(None))
            ).first()
            if later is not None:
                raise Conflict(
                    f"person {m.survivor_id} was merged again (merge {later.id}): undo that first"
                )
            for item in m.moved:
                rec = s.get(LinkedRecord, item["record_id"])
                if rec is None or rec.person_id != m.survivor_id:
                    raise Conflict(f"record {item['record_id']} has moved since the merge")
                rec.person_id = m.merged_id
                rec.rule = item["rule"]
                rec.probability = item["probability"]
                rec.linked_by = item["linked_by"]
                rec.linked_at = datetime.fromisoformat(item["linked_at"])
            merged = s.get(Person, m.merged_id)
            survivor = s.get(Person, m.survivor_id)
            assert merged is not None
            assert survivor is not None
            merged.state, merged.merged_into = "active", None
            merged.flagged, merged.flag_reason = m.merged_flag["merged"]
            survivor.flagged, survivor.flag_reason = m.merged_flag["survivor"]
            m.undone_at, m.undone_by = _now(), by
            for pid in (m.survivor_id, m.merged_id):
                s.add(
                    PersonEvent(person_id=pid, action="unmerge", actor=by, detail={"merge": m.id})
                )

    # -- views -----------------------------------------------------------------
    def person(self, person_id: str) -> PersonView:
        with self._db.session() as s:
            p = s.get(Person, person_id)
            if p is None:
                raise NotFound(f"no person {person_id}")
            if p.state == "merged" and p.merged_into:
                return self.person(p.merged_into)
            view = PersonView(p.id, p.state, p.flagged)
            by_org: dict[str, list[str]] = defaultdict(list)
            for org, rid in s.execute(
                select(LinkedRecord.org_code, LinkedRecord.record_id)
                .where(LinkedRecord.person_id == p.id)
                .order_by(LinkedRecord.org_code, LinkedRecord.record_id)
            ):
                by_org[org].append(rid)
            view.records = dict(by_org)
            return view

    def person_of(self, record_id: str) -> str:
        with self._db.session() as s:
            rec = s.get(LinkedRecord, record_id)
            if rec is None:
                raise NotFound(f"record {record_id} is not in the person index")
            return rec.person_id

    def history(self, person_id: str) -> list[dict[str, Any]]:
        with self._db.session() as s:
            rows = s.scalars(
                select(PersonEvent)
                .where(PersonEvent.person_id == person_id)
                .order_by(PersonEvent.id)
            )
            return [
                {
                    "at": e.at.isoformat(),
                    "action": e.action,
                    "record_id": e.record_id,
                    "rule": e.rule,
                    "probability": e.probability,
                    "actor": e.actor,
                    "detail": e.detail,
                }
                for e in rows
            ]

    def counts(self) -> dict[str, int]:
        with self._db.session() as s:
            return {
                "persons": s.scalar(
                    select(func.count()).select_from(Person).where(Person.state == "active")
                )
                or 0,
                "records": s.scalar(select(func.count()).select_from(LinkedRecord)) or 0,
                "open_reviews": s.scalar(
                    select(func.count()).select_from(ReviewPair).where(ReviewPair.status == "open")
                )
                or 0,
                "flagged": s.scalar(
                    select(func.count()).select_from(Person).where(Person.flagged.is_(True))
                )
                or 0,
            }


def candidate_features(record: LinkedRecord) -> MatchFeatures:
    return features_from_json(record.features)


def _side(record: LinkedRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "record_id": record.record_id,
        "org_code": record.org_code,
        "person_id": record.person_id,
        "features": record.features,
    }


# -- the bulk path ---------------------------------------------------------------------
_records = cast(Table, LinkedRecord.__table__)
_keys = cast(Table, PersonKey.__table__)
_persons = cast(Table, Person.__table__)
_events = cast(Table, PersonEvent.__table__)
_pairs = cast(Table, ReviewPair.__table__)
_IN_CHUNK = 500
"""Values per ``IN (...)`` list: well under every backend's bound-parameter limit."""


@dataclass(slots=True)
class _Rec:
    """A person_records row as the chunk sees it (loaded, then changed in memory)."""

    person_id: str
    nhs: str | None
    features: dict[str, Any]
    rule: str
    probability: float | None
    new: bool = False
    changed: bool = False
    linked_at: datetime | None = None
    org_code: str = ""
    keys: list[str] | None = None
    """Set when this chunk (re)writes the record's blocking keys."""


_FEATURE_FIELDS = tuple(f.name for f in fields(MatchFeatures))


def _features_json(features: MatchFeatures) -> dict[str, Any]:
    """``features_to_json`` without ``asdict``'s deep copy: every field is a str or None."""
    return {name: getattr(features, name) for name in _FEATURE_FIELDS}


def _parts(values: Iterable[str]) -> Iterable[list[str]]:
    items = sorted(set(values))
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i : i + _IN_CHUNK]


class _ChunkLinker:
    """One chunk of :meth:`PersonIndex.link_many`.

    The in-memory mirror holds exactly the index state that :meth:`PersonIndex.link`
    would read for these records: the chunk's own records, every record with one
    of the chunk's NHS numbers, every (key, record) pair for the chunk's blocking
    keys, candidate records, and all records of every person a record joins (for
    the conflicting-NHS-number flag). Each is complete for what is looked up in
    it, and updated as each record is decided, so record *n* sees records
    1..*n*-1 just as the per-record path sees them flushed.
    """

    def __init__(self, matcher: Matcher, conn: Connection, actor: str) -> None:
        self.matcher = matcher
        self.conn = conn
        self.actor = actor
        self.rec: dict[str, _Rec] = {}
        self.by_nhs: dict[str, set[str]] = defaultdict(set)
        self.by_key: dict[str, set[str]] = {}
        self.rec_keys: dict[str, set[str]] = defaultdict(set)
        """Loaded (key, record) pairs by record, to drop a relinked record's old keys."""
        self.person_records: dict[str, set[str]] = {}
        """Every record of a person (persons fully loaded or created here)."""
        self.flagged: dict[str, bool] = {}
        self.rejected: dict[str, set[str]] = defaultdict(set)
        self.new_persons: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.flags: list[str] = []
        self.pairs: list[dict[str, Any]] = []
        self.pair_of: list[int] = []
        """Position in the results of each proposed pair, to fill in its id once written."""

    # -- reading ---------------------------------------------------------------------
    def _load_records(self, column: Any, values: Iterable[str]) -> list[tuple[str, str]]:
        """Load matching rows into the mirror (keeping newer mirror rows); (record, person) pairs."""
        found: list[tuple[str, str]] = []
        c = _records.c
        for part in _parts(values):
            rows = self.conn.execute(
                select(
                    c.record_id, c.person_id, c.nhs_number, c.features, c.rule, c.probability
                ).where(column.in_(part))
            )
            for rid, pid, nhs, features, rule, probability in rows:
                found.append((rid, pid))
                if rid in self.rec:  # the mirror is newer than the database
                    continue
                self.rec[rid] = _Rec(pid, nhs, features, rule, probability)
                if nhs is not None:
                    self.by_nhs[nhs].add(rid)
        return found

    def _ensure_records(self, ids: Iterable[str]) -> None:
        missing = [i for i in ids if i not in self.rec]
        if missing:
            self._load_records(_records.c.record_id, missing)

    def _ensure_persons(self, person_ids: Iterable[str]) -> None:
        missing = {p for p in person_ids if p not in self.person_records}
        if not missing:
            return
        for pid in missing:
            self.person_records[pid] = set()
        for rid, pid in self._load_records(_records.c.person_id, missing):
            self.person_records[pid].add(rid)
        c = _persons.c
        for part in _parts(missing):
            for pid, flagged in self.conn.execute(select(c.id, c.flagged).where(c.id.in_(part))):
                self.flagged[pid] = bool(flagged)

    def _prefetch(self, features: Sequence[MatchFeatures], keys: Sequence[list[str]]) -> None:
        ids = [f.unique_id for f in features]
        loaded = self._load_records(_records.c.record_id, ids)
        loaded += self._load_records(
            _records.c.nhs_number, [f.nhs_number for f in features if f.nhs_number]
        )
        universe = {k for ks in keys for k in ks}
        for k in universe:
            self.by_key[k] = set()
        c = _keys.c
        for part in _parts(universe):
            for key, rid in self.conn.execute(select(c.key, c.record_id).where(c.key.in_(part))):
                self.by_key[key].add(rid)
                self.rec_keys[rid].add(key)
        p = _pairs.c
        for part in _parts(ids):
            for rid, digest in self.conn.execute(
                select(p.record_id, p.evidence_hash).where(
                    p.record_id.in_(part), p.status == "rejected"
                )
            ):
                self.rejected[rid].add(digest)
        self._ensure_persons(pid for _, pid in loaded)

    def _lock(self, keys: Sequence[list[str]]) -> None:
        if self.conn.dialect.name == "postgresql":
            wanted = {k for ks in keys for k in ks}
            if any(not ks for ks in keys):
                wanted.add("<no-keys>")
            # One statement, taken in code-point order as the per-record path takes them.
            self.conn.execute(
                text(
                    "SELECT pg_advisory_xact_lock(hashtextextended(k, 7)) FROM "
                    '(SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k COLLATE "C") s'
                ),
                {"keys": sorted(wanted)},
            )
            return
        lock = cast(Table, LinkLock.__table__)
        done = self.conn.execute(
            update(lock).where(lock.c.id == 1).values(counter=lock.c.counter + 1)
        )
        if done.rowcount == 0:
            self.conn.execute(insert(lock).values(id=1, counter=1))

    # -- deciding, as PersonIndex.link does ------------------------------------------------
    def run(self, items: Sequence[tuple[MatchFeatures, str]]) -> list[LinkResult]:
        features = [f for f, _ in items]
        keys = [self.matcher.keys(f) for f in features]
        self._lock(keys)
        self._prefetch(features, keys)
        results: list[LinkResult] = []
        for (f, org), ks in zip(items, keys, strict=True):
            results.append(self._link(f, org, ks, len(results)))
        for pos, pair_id in self._write():
            results[pos] = replace(results[pos], review_pair=pair_id)
        return results

    def _link(self, features: MatchFeatures, org: str, keys: list[str], pos: int) -> LinkResult:
        uid = features.unique_id
        existing = self.rec.get(uid)
        if existing is not None:
            return self._relink(uid, existing, features, keys)
        if features.nhs_number:
            same = self.by_nhs.get(features.nhs_number)
            if same:
                pid = self.rec[min(same)].person_id
                self._insert(features, org, pid, "nhs-number", None, keys)
                return LinkResult(uid, pid, "nhs-number", None)
        best = self._best_candidate(features, keys)
        if best is not None:
            cid, score = best
            candidate = self.rec[cid]
            other = features_from_json(candidate.features)
            decision = decide(features, other, score.probability, self.matcher.thresholds)
            auto = decision.outcome is Outcome.AUTO_LINK and has_non_name_evidence(features, other)
            if auto:
                self._insert(features, org, candidate.person_id, "model", score.probability, keys)
                return LinkResult(uid, candidate.person_id, "model", score.probability)
            if decision.outcome in (Outcome.AUTO_LINK, Outcome.REVIEW):
                pid = self._new_person(features, org, keys, score.probability)
                reason = (
                    decision.reason if decision.outcome is Outcome.REVIEW else "name-only evidence"
                )
                self.pairs.append(
                    {
                        "record_id": uid,
                        "candidate_record_id": cid,
                        "probability": score.probability,
                        "weight": score.weight,
                        "reason": reason,
                        "evidence": list(score.evidence),
                        "evidence_hash": _evidence_hash(features, other),
                        "status": "open",
                        "created_at": _now(),
                    }
                )
                self.pair_of.append(pos)
                return LinkResult(uid, pid, "new-person", score.probability, created_person=True)
        pid = self._new_person(features, org, keys, None)
        return LinkResult(uid, pid, "new-person", None, created_person=True)

    def _best_candidate(
        self, features: MatchFeatures, keys: list[str]
    ) -> tuple[str, PairScore] | None:
        if not keys:
            return None
        found: set[str] = set()
        for k in keys:
            found |= self.by_key.get(k, set())
        found.discard(features.unique_id)
        if not found:
            return None
        ids = sorted(found)[:MAX_CANDIDATES]
        self._ensure_records(ids)
        rejected = self.rejected.get(features.unique_id)
        best: tuple[str, PairScore] | None = None
        for cid in ids:
            other = features_from_json(self.rec[cid].features)
            if rejected and _evidence_hash(features, other) in rejected:
                continue
            score = self.matcher.score(features, other)
            if best is None or score.weight > best[1].weight:
                best = (cid, score)
        return best

    def _set_keys(self, rid: str, keys: list[str]) -> None:
        for k in self.rec_keys.pop(rid, set()):
            self.by_key[k].discard(rid)
        for k in keys:
            if k in self.by_key:
                self.by_key[k].add(rid)
                self.rec_keys[rid].add(k)
        self.rec[rid].keys = keys

    def _event(self, person_id: str, record_id: str | None, action: str, **more: Any) -> None:
        self.events.append(
            {
                "at": _now(),
                "person_id": person_id,
                "record_id": record_id,
                "action": action,
                "rule": more.get("rule"),
                "probability": more.get("probability"),
                "actor": more.get("actor", self.actor),
                "detail": more.get("detail", {}),
            }
        )

    def _insert(
        self,
        features: MatchFeatures,
        org: str,
        person_id: str,
        rule: str,
        probability: float | None,
        keys: list[str],
    ) -> None:
        uid = features.unique_id
        self._ensure_persons([person_id])
        self.rec[uid] = _Rec(
            person_id,
            features.nhs_number,
            _features_json(features),
            rule,
            probability,
            new=True,
            linked_at=_now(),
            org_code=org,
        )
        if features.nhs_number:
            self.by_nhs[features.nhs_number].add(uid)
        self.person_records[person_id].add(uid)
        self._set_keys(uid, keys)
        self._event(person_id, uid, "link", rule=rule, probability=probability)
        self._check_nhs_conflict(person_id)

    def _new_person(
        self, features: MatchFeatures, org: str, keys: list[str], probability: float | None
    ) -> str:
        person_id = str(uuid.uuid4())
        self.new_persons.append(person_id)
        self.person_records[person_id] = set()
        self.flagged[person_id] = False
        self._event(person_id, features.unique_id, "new-person")
        self._insert(features, org, person_id, "new-person", probability, keys)
        return person_id

    def _relink(
        self, uid: str, existing: _Rec, features: MatchFeatures, keys: list[str]
    ) -> LinkResult:
        data = _features_json(features)
        if data != existing.features:
            if existing.nhs is not None:
                self.by_nhs[existing.nhs].discard(uid)
            existing.features, existing.nhs, existing.changed = data, features.nhs_number, True
            if features.nhs_number:
                self.by_nhs[features.nhs_number].add(uid)
            self._set_keys(uid, keys)
            self._event(existing.person_id, uid, "update")
            self._ensure_persons([existing.person_id])
            self._check_nhs_conflict(existing.person_id)
        return LinkResult(uid, existing.person_id, existing.rule, existing.probability)

    def _check_nhs_conflict(self, person_id: str) -> None:
        numbers = {n for r in self.person_records[person_id] if (n := self.rec[r].nhs) is not None}
        if len(numbers) > 1 and not self.flagged[person_id]:
            self.flagged[person_id] = True
            self.flags.append(person_id)
            self._event(
                person_id,
                None,
                "flag",
                actor=SYSTEM,
                detail={"reason": "conflicting NHS numbers", "count": len(numbers)},
            )

    # -- writing -----------------------------------------------------------------------
    def _write(self) -> list[tuple[int, int]]:
        """Write what the chunk decided; the (result position, id) of each review pair."""
        conn = self.conn
        if self.new_persons:
            conn.execute(
                insert(_persons),
                [
                    {"id": p, "created_at": _now(), "state": "active", "merged_into": None,
                     "flagged": False, "flag_reason": None}
                    for p in self.new_persons
                ],
            )  # fmt: skip
        new = [(rid, r) for rid, r in self.rec.items() if r.new]
        if new:
            conn.execute(
                insert(_records),
                [
                    {"record_id": rid, "person_id": r.person_id, "org_code": r.org_code,
                     "nhs_number": r.nhs, "features": r.features, "rule": r.rule,
                     "probability": r.probability, "linked_at": r.linked_at,
                     "linked_by": self.actor}
                    for rid, r in new
                ],
            )  # fmt: skip
        changed = [(rid, r) for rid, r in self.rec.items() if r.changed and not r.new]
        if changed:
            c = _records.c
            conn.execute(
                update(_records)
                .where(c.record_id == bindparam("k_id"))
                .values(features=bindparam("v_features"), nhs_number=bindparam("v_nhs")),
                [{"k_id": rid, "v_features": r.features, "v_nhs": r.nhs} for rid, r in changed],
            )
            for part in _parts(rid for rid, _ in changed):
                conn.execute(delete(_keys).where(_keys.c.record_id.in_(part)))
        rows = [
            {"key": k, "record_id": rid}
            for rid, r in self.rec.items()
            if r.keys is not None and (r.new or r.changed)
            for k in r.keys
        ]
        if rows:
            conn.execute(insert(_keys), rows)
        if self.events:
            conn.execute(insert(_events), self.events)
        if self.flags:
            c = _persons.c
            conn.execute(
                update(_persons)
                .where(c.id == bindparam("k_id"))
                .values(flagged=True, flag_reason="conflicting NHS numbers"),
                [{"k_id": p} for p in self.flags],
            )
        return [
            (pos, conn.execute(insert(_pairs).returning(_pairs.c.id), row).scalar_one())
            for row, pos in zip(self.pairs, self.pair_of, strict=True)
        ]
