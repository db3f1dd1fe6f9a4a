"""Estate-wide re-linking: a dry run reports what would change and changes nothing."""

from __future__ import annotations

from dataclasses import replace

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


def test_accepted_merges_stay_merged(db: Database) -> None:
    index = _load(db)
    # B/1 differs from A/1 on given name and dob: the model would never join them.
    survivor = index.person_of("A/1")
    index.merge(survivor, index.person_of("B/1"), by="JHUB-P002", reason="same, checked")
    dry = rebuild(db, FieldMatcher(), apply=False)
    assert dry.records_placed_by_stewards >= 1
    assert dry.pairs_split == 0  # nothing the steward joined comes apart
    assert dry.pairs_joined == 3  # A/3 joins A/1, A/2 and B/1
    done = rebuild(db, FieldMatcher(), apply=True)
    after = _partition(index, IDS)
    assert len(set(after.values())) == 1
    assert after["A/1"] == survivor  # the person keeps its id
    assert (done.steward_decisions, done.steward_conflicts) == (1, 0)


def test_rejected_pairs_stay_apart(db: Database) -> None:
    index = PersonIndex(db, FieldMatcher())
    index.link_one(person("C/1"), "RWX")
    index.link_one(person("C/2", postcode="WX9 9ZZ"), "WCCASC")  # 3 of 4 agree: review
    [pair] = index.review_queue()
    index.reject(pair["id"], by="JHUB-P002")
    # A model that would auto-link them (every field but the postcode counts).
    eager = FieldMatcher()
    eager.score = lambda left, right: replace(  # type: ignore[method-assign]
        FieldMatcher.score(eager, left, right), probability=0.999
    )
    done = rebuild(db, eager, apply=True)
    assert index.person_of("C/1") != index.person_of("C/2")
    assert done.pairs_joined == 0
    assert index.review_queue() == []  # the rejected pair is not proposed again
    assert [p["status"] for p in index.review_queue(status="rejected")] == ["rejected"]


def test_unmerges_stay_split_and_history_is_kept(db: Database) -> None:
    index = _load(db)
    a1, a3 = index.person_of("A/1"), index.person_of("A/3")
    merge_id = index.merge(a1, a3, by="JHUB-P002", reason="looked alike")
    index.unmerge(merge_id, by="JHUB-P003")
    history_before = index.history(a1)

    done = rebuild(db, FieldMatcher(), apply=True)
    # Without the unmerge the model joins A/3 to A/1 (first test); the steward said no.
    assert done.pairs_joined == 0
    assert (index.person_of("A/1"), index.person_of("A/3")) == (a1, a3)
    history = index.history(a1)
    assert history[: len(history_before)] == history_before
    assert {e["action"] for e in history[len(history_before) :]} == {"link"}
    assert all(e["actor"] == "rebuild" for e in history[len(history_before) :])


def test_a_later_decision_overrules_an_earlier_one(db: Database) -> None:
    index = PersonIndex(db, FieldMatcher())
    index.link_one(person("C/1"), "RWX")
    index.link_one(person("C/2", postcode="WX9 9ZZ"), "WCCASC")
    [pair] = index.review_queue()
    index.reject(pair["id"], by="JHUB-P002")
    index.merge(
        index.person_of("C/1"), index.person_of("C/2"), by="JHUB-P003", reason="same after all"
    )
    done = rebuild(db, FieldMatcher(), apply=True)
    assert index.person_of("C/1") == index.person_of("C/2")
    assert (done.steward_decisions, done.steward_decisions_overruled) == (1, 1)
