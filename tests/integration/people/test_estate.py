"""Estate-wide re-linking: a dry run reports what would change and changes nothing."""

from __future__ import annotations

import pytest

from joinedup.errors import Conflict
from joinedup.people.estate import rebuild
from joinedup.people.index import PersonIndex
from joinedup.people.matcher import NhsNumberOnlyMatcher
from joinedup.storage.engine import Database
from tests.integration.people.test_person_index import FieldMatcher, person


def _load(db: Database) -> PersonIndex:
    """Four records of two people; without a model only the NHS numbers link."""
    index = PersonIndex(db, NhsNumberOnlyMatcher())
    index.link_one(person("A/1", nhs="9990000018"), "RWX")
    index.link_one(person("A/2", nhs="9990000018"), "J81001")
    index.link_one(person("A/3"), "WCARERS")  # same person, no NHS number
    index.link_one(person("B/1", given="MARY", dob="1980-01-01"), "WCCASC")
    return index


def _partition(index: PersonIndex, ids: list[str]) -> dict[str, str]:
    return {rid: index.person_of(rid) for rid in ids}


IDS = ["A/1", "A/2", "A/3", "B/1"]


def test_dry_run_reports_and_changes_nothing_then_apply_changes(db: Database) -> None:
    index = _load(db)
    before = _partition(index, IDS)
    assert index.counts()["persons"] == 3

    dry = rebuild(db, FieldMatcher(), apply=False)
    assert not dry.applied
    assert (dry.pairs_kept, dry.pairs_joined, dry.pairs_split) == (1, 2, 0)
    assert (dry.persons_before, dry.persons_after) == (3, 2)
    assert _partition(index, IDS) == before
    assert index.counts()["persons"] == 3

    done = rebuild(db, FieldMatcher(), apply=True)
    assert done.applied
    assert (done.pairs_joined, done.persons_after) == (2, 2)
    after = _partition(index, IDS)
    assert after["A/1"] == after["A/2"] == after["A/3"] != after["B/1"]


def test_rebuild_refuses_to_discard_steward_work(db: Database) -> None:
    index = _load(db)
    index.merge(index.person_of("A/1"), index.person_of("A/3"), by="JHUB-P002", reason="same")
    with pytest.raises(Conflict, match="discard"):
        rebuild(db, FieldMatcher(), apply=False)
