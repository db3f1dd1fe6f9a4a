"""Estate-wide work on the person index: train the model on the estate's own records,
and rebuild every link with it after an initial load.

Training reads the features the index already holds (one row per source
Patient record), so it needs no access to the records themselves. A rebuild
is for initial loads and model changes before any steward work: it refuses
to run over review decisions or merges, which it would otherwise discard.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from joinedup.errors import Conflict, InvalidInput
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
    applied: bool


def _pairs(sizes: Counter[Any]) -> int:
    return sum(n * (n - 1) // 2 for n in sizes.values())


def rebuild(
    db: Database, matcher: Matcher, *, apply: bool = True, actor: str = "rebuild"
) -> RebuildReport:
    """Re-link every record from scratch with ``matcher``, in one transaction.

    With ``apply=False`` the work is done and measured, then rolled back: the
    report says what would change (pairs of records joined or split) and
    nothing is changed.
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


def _rebuild_in(s: Session, index: PersonIndex, actor: str, apply: bool) -> RebuildReport:
    decided = (
        s.scalar(select(func.count()).select_from(ReviewPair).where(ReviewPair.status != "open"))
        or 0
    )
    merges = s.scalar(select(func.count()).select_from(Merge)) or 0
    if decided or merges:
        raise Conflict(
            f"the index holds {decided} review decisions and {merges} merges by stewards; "
            "a rebuild would discard them (use relinking of new records instead)"
        )
    records = s.execute(
        select(
            PersonRecord.record_id,
            PersonRecord.person_id,
            PersonRecord.features,
            PersonRecord.org_code,
        ).order_by(PersonRecord.linked_at, PersonRecord.record_id)
    ).all()
    before = {rid: pid for rid, pid, _, _ in records}
    persons_before = s.scalar(select(func.count()).select_from(Person)) or 0
    for table in (PersonKey, ReviewPair, PersonRecord, PersonEvent, Person):
        s.execute(delete(table))
    if s.get(LinkLock, 1) is None:
        s.add(LinkLock(id=1, counter=0))
    s.flush()
    for _, _, features, org in records:
        index.link(s, features_from_json(features), org, actor=actor)
    s.flush()
    after = {
        rid: pid for rid, pid in s.execute(select(PersonRecord.record_id, PersonRecord.person_id))
    }
    kept = _pairs(Counter((before[r], after[r]) for r in before))
    persons_after = s.scalar(select(func.count()).select_from(Person)) or 0
    multi = (
        s.scalar(
            select(func.count()).select_from(
                select(PersonRecord.person_id)
                .group_by(PersonRecord.person_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
        or 0
    )
    reviews = (
        s.scalar(select(func.count()).select_from(ReviewPair).where(ReviewPair.status == "open"))
        or 0
    )
    return RebuildReport(
        records=len(records),
        persons_before=persons_before,
        persons_after=persons_after,
        multi_record_persons=multi,
        open_reviews=reviews,
        pairs_kept=kept,
        pairs_joined=_pairs(Counter(after.values())) - kept,
        pairs_split=_pairs(Counter(before.values())) - kept,
        applied=apply,
    )
