"""The person index on both databases: tiers, review queue, merge/unmerge, concurrency.

The index logic is tested with a small transparent matcher (probability from
how many fields agree) so each case's expected outcome is evident; the trained
Splink model is exercised by tests/unit/people/matching and benchmarks/linkage.py.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from joinedup.errors import Conflict, InvalidInput
from joinedup.people.index import PersonIndex
from joinedup.people.matcher import PairScore
from joinedup.people.matching.decision import Thresholds
from joinedup.people.matching.normalise import MatchFeatures
from joinedup.storage.engine import Database

FIELDS = ("given_name", "family_name", "dob", "postcode")


class FieldMatcher:
    """Probability by agreeing fields: 4 -> 0.999, 3 -> 0.9 (review), fewer -> 0.1."""

    thresholds = Thresholds(auto_link=0.99, review=0.5)

    def keys(self, f: MatchFeatures) -> list[str]:
        keys = [
            f"dob:{f.dob}" if f.dob else None,
            f"fam:{f.family_name}" if f.family_name else None,
        ]
        return sorted(k for k in keys if k)

    def score(self, left: MatchFeatures, right: MatchFeatures) -> PairScore:
        agree = sum(
            1
            for n in FIELDS
            if getattr(left, n) is not None and getattr(left, n) == getattr(right, n)
        )
        p = {4: 0.999, 3: 0.9}.get(agree, 0.1)
        return PairScore(
            weight=float(agree),
            probability=p,
            evidence=tuple(
                {"comparison": n, "level": "exact", "weight": 1.0}
                for n in FIELDS
                if getattr(left, n) == getattr(right, n)
            ),
        )


def person(
    rid: str,
    *,
    given: str | None = "JOHN",
    family: str | None = "SMITH",
    dob: str | None = "1950-03-12",
    postcode: str | None = "WX1 2AB",
    nhs: str | None = None,
) -> MatchFeatures:
    return MatchFeatures(
        unique_id=rid,
        given_name=given,
        given_name_canon=given,
        given_name_phon=None,
        family_name=family,
        family_name_phon=None,
        dob=dob,
        dob_year=dob[:4] if dob else None,
        dob_month=None,
        dob_day=None,
        sex="M",
        postcode=postcode,
        postcode_sector=None,
        postcode_outward=None,
        address_number=None,
        address_street=None,
        nhs_number=nhs,
    )


@pytest.fixture
def index(db: Database) -> PersonIndex:
    return PersonIndex(db, FieldMatcher())


def test_same_nhs_number_links_deterministically(index: PersonIndex) -> None:
    a = index.link_one(person("A/1", nhs="9990000018"), "RWX")
    b = index.link_one(
        person("B/1", given="JON", family="SMYTH", postcode=None, nhs="9990000018"), "WCCASC"
    )
    assert b.person_id == a.person_id
    assert b.rule == "nhs-number"
    assert index.person(a.person_id).records == {"RWX": ["A/1"], "WCCASC": ["B/1"]}


def test_different_nhs_numbers_never_auto_link(index: PersonIndex) -> None:
    a = index.link_one(person("A/1", nhs="9990000018"), "RWX")
    b = index.link_one(person("B/1", nhs="9990000026"), "RWM")
    assert b.person_id != a.person_id
    assert b.review_pair is not None  # identical otherwise: a steward should look


def test_probabilistic_tiers(index: PersonIndex) -> None:
    a = index.link_one(person("A/1"), "RWX")
    same = index.link_one(person("B/1"), "WCCASC")
    assert (same.person_id, same.rule) == (a.person_id, "model")
    maybe = index.link_one(person("C/1", postcode="WX9 9ZZ"), "WCARERS")
    assert maybe.person_id != a.person_id
    assert maybe.review_pair is not None
    other = index.link_one(person("D/1", given="MARY", dob="1980-01-01"), "WCARERS")
    assert other.review_pair is None
    assert other.created_person


class OverconfidentMatcher(FieldMatcher):
    """Scores every pair as near-certain, as a model might for a rare name."""

    def score(self, left: MatchFeatures, right: MatchFeatures) -> PairScore:
        return replace(super().score(left, right), probability=0.9999)


def test_name_only_records_never_auto_link(db: Database) -> None:
    index = PersonIndex(db, OverconfidentMatcher())
    index.link_one(person("A/1", dob=None, postcode=None), "RWX")
    b = index.link_one(person("B/1", dob=None, postcode=None), "WHOMEHELP")
    assert b.created_person
    assert b.review_pair is not None


def test_review_accept_merges_and_reject_is_never_proposed_again(index: PersonIndex) -> None:
    a = index.link_one(person("A/1"), "RWX")
    c = index.link_one(person("C/1", postcode="WX9 9ZZ"), "WCARERS")
    queue = index.review_queue()
    assert [q["id"] for q in queue] == [c.review_pair]
    assert queue[0]["left"]["record_id"] == "C/1"
    assert queue[0]["right"]["record_id"] == "A/1"
    assert queue[0]["evidence"]
    index.reject(queue[0]["id"], by="JHUB-P002")
    with pytest.raises(Conflict):
        index.reject(queue[0]["id"], by="JHUB-P002")
    # The same record arriving again with the same evidence raises nothing new.
    again = index.link_one(person("C/1", postcode="WX9 9ZZ"), "WCARERS")
    assert again.person_id == c.person_id
    assert index.review_queue() == []

    d = index.link_one(person("D/1", postcode="WX7 7YY"), "WCCCS")
    pair = index.review_queue()[0]["id"]
    index.accept(pair, by="JHUB-P002")
    assert index.person_of("D/1") == a.person_id
    assert index.person(d.person_id).person_id == a.person_id  # merged person resolves


def test_unmerge_restores_exactly_the_previous_state(index: PersonIndex) -> None:
    a = index.link_one(person("A/1", nhs="9990000018"), "RWX")
    index.link_one(person("A/2", nhs="9990000018"), "J81001")
    b = index.link_one(person("B/1", given="MARY", family="JONES", nhs="9990000026"), "RWM")
    before_a, before_b = index.person(a.person_id), index.person(b.person_id)
    merge = index.merge(a.person_id, b.person_id, by="JHUB-P002", reason="steward: same person")
    merged = index.person(a.person_id)
    assert merged.flagged  # two different NHS numbers now on one person
    assert sorted(r for rs in merged.records.values() for r in rs) == ["A/1", "A/2", "B/1"]
    index.unmerge(merge, by="JHUB-P003")
    assert index.person(a.person_id) == before_a
    assert index.person(b.person_id) == before_b
    history = index.history(b.person_id)
    assert [h["action"] for h in history][-2:] == ["merge", "unmerge"]
    assert history[-1]["actor"] == "JHUB-P003"
    with pytest.raises(Conflict):
        index.unmerge(merge, by="JHUB-P003")


def test_merge_problems_are_listed(index: PersonIndex) -> None:
    a = index.link_one(person("A/1"), "RWX")
    with pytest.raises(InvalidInput) as err:
        index.merge(a.person_id, a.person_id, by="x", reason=" ")
    assert {p.location for p in err.value.problems} == {"merged", "reason"}


def test_new_version_of_a_record_keeps_its_person(index: PersonIndex) -> None:
    a = index.link_one(person("A/1", nhs="9990000018"), "RWX")
    again = index.link_one(person("A/1", postcode="WX5 5AA", nhs="9990000018"), "RWX")
    assert again.person_id == a.person_id
    assert [h["action"] for h in index.history(a.person_id)] == ["new-person", "link", "update"]


def test_concurrent_arrivals_of_one_new_person_make_one_person(index: PersonIndex) -> None:
    barrier = threading.Barrier(4)
    results = []
    errors = []

    def arrive(i: int) -> None:
        try:
            barrier.wait()
            results.append(index.link_one(replace(person(f"F{i}/1")), f"ORG{i}"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=arrive, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({r.person_id for r in results}) == 1
    assert index.counts()["persons"] == 1
