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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
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
        self, session: Session, features: MatchFeatures, org_code: str, *, actor: str = SYSTEM
    ) -> LinkResult:
        """Link one source record (``features.unique_id`` is its record id) inside ``session``."""
        keys = self._matcher.keys(features)
        self._lock(session, keys)
        existing = session.get(LinkedRecord, features.unique_id)
        if existing is not None:
            return self._relink_existing(session, existing, features, keys, actor)
        if features.nhs_number:
            same = session.scalars(
                select(LinkedRecord).where(LinkedRecord.nhs_number == features.nhs_number).limit(1)
            ).first()
            if same is not None:
                self._insert(
                    session, features, org_code, same.person_id, "nhs-number", None, keys, actor
                )
                return LinkResult(features.unique_id, same.person_id, "nhs-number", None)
        best = self._best_candidate(session, features, keys)
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
        self, session: Session, features: MatchFeatures, keys: list[str]
    ) -> tuple[LinkedRecord, PairScore] | None:
        if not keys:
            return None
        ids = session.scalars(
            select(PersonKey.record_id)
            .where(PersonKey.key.in_(keys))
            .where(PersonKey.record_id != features.unique_id)
            .distinct()
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
            select(LinkedRecord).where(LinkedRecord.record_id.in_(ids))
        ):
            other = candidate_features(candidate)
            if _evidence_hash(features, other) in rejected:
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
