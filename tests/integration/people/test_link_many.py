"""The bulk linking path decides exactly as linking record by record, on both databases.

A seeded population of people arrives as source records in chunks: new
records, the same record re-sent unchanged or changed, a record twice in one
chunk, shared and conflicting NHS numbers, near-duplicates that go to review,
over an index already holding records (with a rejected review pair). Each
scenario runs once through :meth:`PersonIndex.link` per record and once
through :meth:`PersonIndex.link_many` per chunk, each inside a transaction
that is then rolled back; the resulting index states, with person ids
replaced by a name derived from their records, must be identical.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from joinedup.nhs_number import check_digit
from joinedup.people import index as index_module
from joinedup.people.index import LinkResult, PersonIndex
from joinedup.people.matcher import PairScore
from joinedup.people.matching.decision import Thresholds
from joinedup.people.matching.normalise import MatchFeatures
from joinedup.people.models import Person, PersonEvent, PersonKey, PersonRecord, ReviewPair
from joinedup.storage.engine import Database
from tests.integration.people.test_person_index import person

FIELDS = ("given_name", "family_name", "dob", "postcode")
GIVEN = ["JOHN", "JON", "MARY", "ANN", "ALI"]
FAMILY = ["SMITH", "SMYTH", "KHAN", "JONES"]
DOBS = ["1950-03-12", "1950-12-03", "1980-01-01", "2001-07-30"]
POSTCODES = ["WX1 2AB", "WX9 9ZZ", "SO23 8UJ", None]
ORGS = ["RWX", "WCCASC", "J81001"]


class FieldMatcher:
    """Probability by agreeing fields; weight breaks ties between candidates."""

    thresholds = Thresholds(auto_link=0.99, review=0.5)

    def keys(self, f: MatchFeatures) -> list[str]:
        keys = {
            f"dob:{f.dob}" if f.dob else None,
            f"fam:{f.family_name}" if f.family_name else None,
        }
        return sorted(k for k in keys if k)

    def score(self, left: MatchFeatures, right: MatchFeatures) -> PairScore:
        agree = [
            n
            for n in FIELDS
            if getattr(left, n) is not None and getattr(left, n) == getattr(right, n)
        ]
        p = {4: 0.999, 3: 0.9}.get(len(agree), 0.1)
        return PairScore(
            float(len(agree)),
            p,
            tuple({"comparison": n, "level": "exact", "weight": 1.0} for n in agree),
        )


def _nhs(n: int) -> str:
    nine = f"{900_000_000 + n * 7:09d}"
    while check_digit(nine) is None:
        nine = f"{int(nine) + 1:09d}"
    return nine + str(check_digit(nine))


def features(rid: str, rng: random.Random, base: dict[str, Any]) -> MatchFeatures:
    def maybe(name: str, pool: Sequence[str | None]) -> str | None:
        return rng.choice(pool) if rng.random() < 0.2 else base[name]

    dob = maybe("dob", DOBS)
    nhs = (
        base["nhs"]
        if rng.random() < 0.5
        else (None if rng.random() < 0.7 else _nhs(rng.randrange(500)))
    )
    given, family, postcode = (
        maybe("given", GIVEN),
        maybe("family", FAMILY),
        maybe("postcode", POSTCODES),
    )
    return person(rid, given=given, family=family, dob=dob, postcode=postcode, nhs=nhs)


def scenario(
    seed: int,
) -> tuple[list[tuple[MatchFeatures, str]], list[list[tuple[MatchFeatures, str]]]]:
    """(records linked before, chunks of arrivals)."""
    rng = random.Random(seed)
    people = [
        {
            "given": rng.choice(GIVEN),
            "family": rng.choice(FAMILY),
            "dob": rng.choice(DOBS),
            "postcode": rng.choice(POSTCODES),
            "nhs": _nhs(i) if rng.random() < 0.7 else None,
        }
        for i in range(25)
    ]
    made: list[tuple[MatchFeatures, str]] = []

    def arrival() -> tuple[MatchFeatures, str]:
        if made and rng.random() < 0.25:  # a record sent again, as it was or changed
            f, org = rng.choice(made)
            if rng.random() < 0.5:
                return f, org
            return features(f.unique_id, rng, rng.choice(people)), org
        org = rng.choice(ORGS)
        item = (features(f"{org}/{len(made)}", rng, rng.choice(people)), org)
        made.append(item)
        return item

    before = [arrival() for _ in range(20)]
    chunks = []
    for _ in range(6):
        chunk = [arrival() for _ in range(rng.randrange(1, 30))]
        if len(chunk) > 2 and rng.random() < 0.5:
            chunk.append(chunk[0])  # the same record twice in one chunk
        chunks.append(chunk)
    return before, chunks


@contextmanager
def rolled_back(db: Database) -> Iterator[Connection]:
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":  # as the batch loader does: else a SAVEPOINT would commit
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
        try:
            yield conn
        finally:
            conn.rollback()


def per_record(
    index: PersonIndex, conn: Connection, chunk: list[tuple[MatchFeatures, str]]
) -> list[LinkResult]:
    session = Session(bind=conn, join_transaction_mode="create_savepoint")
    try:
        out = [index.link(session, f, org) for f, org in chunk]
        session.flush()
        session.commit()
        return out
    finally:
        session.close()


def state(conn: Connection, results: list[LinkResult]) -> dict[str, Any]:
    """The index as data, person ids named by their smallest record id, pair ids by rank."""
    owner: dict[str, str] = {}
    for rid, pid in conn.execute(select(PersonRecord.record_id, PersonRecord.person_id)):
        owner[pid] = min(owner.get(pid, rid), rid)

    def name(pid: str | None) -> str | None:
        return owner.get(pid, "?") if pid is not None else None

    pair_rank = {
        pid: n
        for n, (pid,) in enumerate(conn.execute(select(ReviewPair.id).order_by(ReviewPair.id)))
    }
    r, e, p = PersonRecord, PersonEvent, ReviewPair
    return {
        "results": [
            (x.record_id, name(x.person_id), x.rule, x.probability, x.created_person,
             pair_rank.get(x.review_pair) if x.review_pair is not None else None)
            for x in results
        ],
        "records": sorted(
            (row.record_id, name(row.person_id), row.org_code, row.nhs_number, sorted(row.features.items()),
             row.rule, row.probability, row.linked_by)
            for row in conn.execute(select(r))
        ),
        "keys": sorted(tuple(row) for row in conn.execute(select(PersonKey.key, PersonKey.record_id))),
        "persons": sorted(
            (name(row.id), row.state, row.flagged, row.flag_reason) for row in conn.execute(select(Person))
        ),
        "events": [
            (name(row.person_id), row.record_id, row.action, row.rule, row.probability, row.actor, row.detail)
            for row in conn.execute(select(e).order_by(e.id))
        ],
        "pairs": [
            (row.record_id, row.candidate_record_id, row.probability, row.weight, row.reason,
             row.evidence, row.evidence_hash, row.status)
            for row in conn.execute(select(p).order_by(p.id))
        ],
    }  # fmt: skip


def test_link_many_decides_as_link_does_record_by_record(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "MAX_CANDIDATES", 3)  # so the candidate cut-off matters
    index = PersonIndex(db, FieldMatcher())
    rules: set[str] = set()
    pairs = 0
    for seed in range(6):
        before, chunks = scenario(seed)
        with rolled_back(db) as conn:  # the same starting index for both paths
            seeded = per_record(index, conn, before)
            pair = next((r.review_pair for r in seeded if r.review_pair is not None), None)
            outcomes = []
            for bulk in (False, True):
                conn.exec_driver_sql("SAVEPOINT scenario")
                if pair is not None:  # a steward said no: that evidence is not proposed again
                    conn.execute(
                        update(ReviewPair).where(ReviewPair.id == pair).values(status="rejected")
                    )
                results: list[LinkResult] = []
                for chunk in chunks:
                    results += (
                        index.link_many(conn, chunk) if bulk else per_record(index, conn, chunk)
                    )
                outcomes.append(state(conn, results))
                conn.exec_driver_sql("ROLLBACK TO SAVEPOINT scenario")
        by_record, by_chunk = outcomes
        for part in by_record:
            assert by_chunk[part] == by_record[part], (seed, part)
        rules |= {x[2] for x in by_record["results"]}
        pairs += sum(x[5] is not None for x in by_record["results"])
    assert rules >= {"nhs-number", "model", "new-person"}, "the scenarios reach every rule"
    assert pairs, "and propose review pairs"


def test_link_many_of_nothing_writes_nothing(db: Database) -> None:
    with rolled_back(db) as conn:
        assert PersonIndex(db, FieldMatcher()).link_many(conn, []) == []
        assert conn.execute(select(PersonEvent)).first() is None
