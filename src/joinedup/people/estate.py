"""Estate-wide work on the person index: train the model on the estate's own records,
and rebuild every link with it (after an initial load or a new model).

Training reads the features the index already holds (one row per source
Patient record), so it needs no access to the records themselves. A rebuild
keeps what data stewards decided (``decisions``): accepted pairs and merges
stay together, rejected pairs and unmerges stay apart.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from joinedup.errors import InvalidInput
from joinedup.people.decisions import Kind, Placement, StewardDecision, effective
from joinedup.people.index import PersonIndex
from joinedup.people.matcher import Matcher, features_from_json
from joinedup.people.matching.model import MatchingModel
from joinedup.people.matching.normalise import FEATURE_COLUMNS
from joinedup.people.matching.training import TrainingOptions, train
from joinedup.people.models import (
    LinkLock,
    Merge,
    Person,
    PersonEvent,
    PersonKey,
    PersonRecord,
    ReviewPair,
)
from joinedup.storage.engine import Database

MIN_TRAINING_RECORDS = 1000


def training_frame(db: Database) -> pd.DataFrame:
    with db.session() as s:
        rows = [
            r for (r,) in s.execute(select(PersonRecord.features).order_by(PersonRecord.record_id))
        ]
    return pd.DataFrame(rows, columns=list(FEATURE_COLUMNS))


def train_model(db: Database, *, seed: int = 20240401) -> MatchingModel:
    frame = training_frame(db)
    if len(frame) < MIN_TRAINING_RECORDS:
        raise InvalidInput(
            f"the person index holds {len(frame)} records; training needs at least "
            f"{MIN_TRAINING_RECORDS} (ingest the estate's feeds first)"
        )
    return train([frame], TrainingOptions(seed=seed))


def save_model(model: MatchingModel, path: Path) -> None:
    """Write atomically, so a running service never reads half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".model-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(model.to_json())
    os.replace(tmp, path)


@dataclass(frozen=True)
class RebuildReport:
    records: int
    persons_before: int
    persons_after: int
    multi_record_persons: int
    open_reviews: int
    pairs_kept: int
    """Record pairs in one person before and after."""
    pairs_joined: int
    """Record pairs that would become (or became) one person."""
    pairs_split: int
    """Record pairs that would stop (or stopped) being one person."""
    steward_decisions: int
    """Stewards' decisions in force (accepted and rejected pairs, merges, unmerges)."""
    steward_decisions_overruled: int
    """Decisions dropped because a later decision contradicts them."""
    records_placed_by_stewards: int
    """Records that went where a steward's decision put them, not where the model would."""
    steward_conflicts: int
    """Record pairs kept apart by one decision and joined by others (joined wins)."""
    persons_retired: int
    """Persons left without records (their ids are not reused)."""
    applied: bool


def _pairs(sizes: Counter[Any]) -> int:
    return sum(n * (n - 1) // 2 for n in sizes.values())


def rebuild(
    db: Database, matcher: Matcher, *, apply: bool = True, actor: str = "rebuild"
) -> RebuildReport:
    """Re-link every record with ``matcher``, keeping stewards' decisions, in one transaction.

    Accepted pairs and merges stay together, rejected pairs and unmerged
    records stay apart; everything else is re-linked from scratch. Persons
    keep their ids where they keep most of their records, and the history is
    kept (the re-links are added to it). With ``apply=False`` the work is done
    and measured, then rolled back: the report says what would change (pairs
    of records joined or split) and nothing is changed.
    """
    index = PersonIndex(db, matcher)
    session = db.sessions()
    try:
        report = _rebuild_in(session, index, actor, apply)
        if apply:
            session.commit()
        else:
            session.rollback()
        return report
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def steward_decisions(s: Session) -> list[StewardDecision]:
    """Every decision stewards have made, as constraints on records."""
    out = []
    for p in s.scalars(
        select(ReviewPair).where(ReviewPair.status.in_(("accepted", "rejected")))
    ):
        out.append(
            StewardDecision(
                at=p.decided_at or p.created_at,
                kind=Kind.TOGETHER if p.status == "accepted" else Kind.APART,
                left=frozenset((p.record_id,)),
                right=frozenset((p.candidate_record_id,)),
                source=f"review pair {p.id}",
            )
        )
    for m in s.scalars(select(Merge).order_by(Merge.id)):
        moved = frozenset(item["record_id"] for item in m.moved)
        if m.survivor_records is not None:
            kept = frozenset(m.survivor_records)
        else:  # a merge from before revision 0010: the survivor's records now
            kept = frozenset(
                s.scalars(
                    select(PersonRecord.record_id).where(
                        PersonRecord.person_id == _active(s, m.survivor_id)
                    )
                )
            ) - moved
        if not moved or not kept:
            continue
        out.append(StewardDecision(m.at, Kind.TOGETHER, moved, kept, f"merge {m.id}"))
        if m.undone_at is not None:
            out.append(StewardDecision(m.undone_at, Kind.APART, moved, kept, f"unmerge {m.id}"))
    return out


def _active(s: Session, person_id: str) -> str:
    """Follow ``merged_into`` to the person that now holds the records."""
    seen = set()
    while person_id not in seen:
        seen.add(person_id)
        person = s.get(Person, person_id)
        if person is None or person.state != "merged" or not person.merged_into:
            return person_id
        person_id = person.merged_into
    return person_id


def _rebuild_in(s: Session, index: PersonIndex, actor: str, apply: bool) -> RebuildReport:
    records = s.execute(
        select(
            PersonRecord.record_id,
            PersonRecord.person_id,
            PersonRecord.features,
            PersonRecord.org_code,
        ).order_by(PersonRecord.linked_at, PersonRecord.record_id)
    ).all()
    before = {rid: pid for rid, pid, _, _ in records}
    active_before = set(
        s.scalars(select(Person.id).where(Person.state == "active"))
    )
    all_decisions = steward_decisions(s)
    in_force = effective(all_decisions)
    placement = Placement(in_force)
    last_event = s.scalar(select(func.max(PersonEvent.id))) or 0
    # Keep persons, history, merges and decided pairs; open pairs are re-proposed.
    for stmt in (
        delete(PersonKey),
        delete(ReviewPair).where(ReviewPair.status == "open"),
        delete(PersonRecord),
    ):
        s.execute(stmt)
    if s.get(LinkLock, 1) is None:
        s.add(LinkLock(id=1, counter=0))
    s.flush()
    by_stewards = 0
    for rid, _, features, org in records:
        f = features_from_json(features)
        target = placement.person_for(rid)
        if target is not None:
            index.attach(s, f, org, target, rule="steward", actor=actor)
            by_stewards += 1
        else:
            target = index.link(s, f, org, actor=actor, allowed=placement.allowed).person_id
        placement.place(rid, target)
    s.flush()
    retired = _keep_person_ids(s, before, active_before, last_event, actor)
    after = {
        rid: pid for rid, pid in s.execute(select(PersonRecord.record_id, PersonRecord.person_id))
    }
    kept = _pairs(Counter((before[r], after[r]) for r in before))
    persons_after = len(set(after.values()))
    multi = sum(1 for n in Counter(after.values()).values() if n > 1)
    reviews = (
        s.scalar(select(func.count()).select_from(ReviewPair).where(ReviewPair.status == "open"))
        or 0
    )
    return RebuildReport(
        records=len(records),
        persons_before=len(set(before.values())),
        persons_after=persons_after,
        multi_record_persons=multi,
        open_reviews=reviews,
        pairs_kept=kept,
        pairs_joined=_pairs(Counter(after.values())) - kept,
        pairs_split=_pairs(Counter(before.values())) - kept,
        steward_decisions=len(in_force),
        steward_decisions_overruled=len(all_decisions) - len(in_force),
        records_placed_by_stewards=by_stewards,
        steward_conflicts=placement.conflicts,
        persons_retired=retired,
        applied=apply,
    )


def _keep_person_ids(
    s: Session,
    before: dict[str, str],
    active_before: set[str],
    last_event: int,
    actor: str,
) -> int:
    """Give each re-linked person the id of the old person it shares most records with.

    Greedy by shared records (ties by ids, so the result is deterministic);
    persons the re-link created for that are folded back into the old id, with
    their history. Old persons left with no records are retired. Returns how many.
    """
    new_of = dict(s.execute(select(PersonRecord.record_id, PersonRecord.person_id)).all())
    created = set(new_of.values()) - active_before
    overlap = Counter(
        (new_of[rid], old) for rid, old in before.items() if new_of.get(rid) in created
    )
    taken_new: set[str] = set()
    taken_old = set(new_of.values()) & active_before  # old persons that kept their id
    for (new, old), _ in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
        if new in taken_new or old in taken_old:
            continue
        taken_new.add(new)
        taken_old.add(old)
        fresh = s.get(Person, new)
        person = s.get(Person, old)
        assert fresh is not None
        assert person is not None
        s.execute(
            update(PersonRecord).where(PersonRecord.person_id == new).values(person_id=old)
        )
        s.execute(
            delete(PersonEvent).where(
                PersonEvent.person_id == new,
                PersonEvent.id > last_event,
                PersonEvent.action == "new-person",
            )
        )
        s.execute(
            update(PersonEvent)
            .where(PersonEvent.person_id == new, PersonEvent.id > last_event)
            .values(person_id=old)
        )
        person.flagged, person.flag_reason = fresh.flagged, fresh.flag_reason
        s.delete(fresh)
    s.flush()
    holding = set(s.scalars(select(PersonRecord.person_id).distinct()))
    retired = 0
    for old in sorted(active_before - holding):
        person = s.get(Person, old)
        assert person is not None
        person.state = "retired"
        s.add(PersonEvent(person_id=old, action="retire", actor=actor, detail={"by": "rebuild"}))
        retired += 1
    s.flush()
    return retired
