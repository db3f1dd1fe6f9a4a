"""Reading the record store on SQLite and PostgreSQL: read, vread, history, search,
subjects, access filters and reindexing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from joinedup.errors import InvalidInput
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.records.query import parse_query
from joinedup.records.search import allowed_pairs
from joinedup.records.store import RecordStore
from joinedup.records.tables import string_index, token_index
from joinedup.sources.batches import BatchLoader
from joinedup.storage.engine import Database
from tests.integration.records.records_helpers import (
    accepted,
    add_org,
    condition,
    loader,
    make_feed,
    nhs_number,
    patient,
)


@pytest.fixture
def store(db: Database) -> RecordStore:
    """Two organisations' records: WCCASC demographics, RWX demographics and conditions."""
    load = loader(db)
    load.ingest(
        "wccasc-clients",
        [
            accepted(1, patient("w1", family="O'Brien", given=["Zoë"], nhs=nhs_number(1))),
            accepted(
                2, patient("w2", family="Smith-Jones", birth="1980-05-12", postcode="BH1 1AA")
            ),
        ],
    )
    add_org(db, "RWX")
    feeds = make_feed(db, "rwx-pas", "RWX")
    BatchLoader(db, feeds).ingest(
        "rwx-pas",
        [
            accepted(1, patient("r1", family="Smith", nhs=nhs_number(1)), condition("c1", "r1")),
            accepted(2, condition("c2", "w1", code="73211009")),
        ],
    )
    return RecordStore(db)


def test_read_returns_the_body_with_meta(store: RecordStore) -> None:
    stored = store.read("Patient", "w1")
    assert stored is not None
    assert (stored.org_code, stored.feed_id, stored.category, stored.sensitivity) == (
        "WCCASC",
        "wccasc-clients",
        "demographics",
        "N",
    )
    meta = stored.resource["meta"]
    assert meta["versionId"] == "1"
    assert meta["lastUpdated"].endswith("Z")
    assert meta["source"].startswith("urn:joinedup:source:WCCASC/wccasc-clients/")
    assert list(stored.resource)[:3] == ["resourceType", "id", "meta"]
    assert store.read("Patient", "nope") is None
    assert store.vread("Patient", "w1", 1) is not None
    assert store.vread("Patient", "w1", 2) is None


def test_search_by_each_kind_of_parameter(store: RecordStore) -> None:
    def ids(rtype: str, **params: str) -> list[str]:
        page = store.search(
            parse_query(rtype, {k.replace("_", "-"): [v] for k, v in params.items()})
        )
        assert page.total == len(page.items)
        return [r.id for r in page.items]

    assert ids("Patient", identifier=f"{NHS_NUMBER_SYSTEM}|{nhs_number(1)}") == ["r1", "w1"]
    assert ids("Patient", family="obri") == ["w1"]  # folded: O'Brien
    assert ids("Patient", given="zoe") == ["w1"]  # accents removed
    assert ids("Patient", family="jones") == ["w2"]  # word of a double-barrelled name
    assert ids("Patient", name="smith") == ["r1", "w2"]
    assert ids("Patient", birthdate="1980") == ["w2"]
    assert ids("Patient", birthdate="lt1960-01-01") == ["r1", "w1"]
    assert ids("Patient", address_postalcode="bh11") == ["w2"]
    assert ids("Condition", patient="Patient/w1") == ["c2"]
    assert ids("Condition", subject="r1") == ["c1"]
    assert ids("Condition", code="http://snomed.info/sct|73211009") == ["c2"]
    assert ids("Condition", category="problem-list-item") == ["c1", "c2"]
    assert ids("Condition", recorded_date="ge2024-01-01") == ["c1", "c2"]


def test_an_access_filter_applies_inside_the_query(store: RecordStore) -> None:
    only_council = allowed_pairs([("WCCASC", "demographics"), ("RWX", "conditions")])
    page = store.search(parse_query("Patient", {"name": ["smith"]}), where=only_council)
    assert (page.total, [r.id for r in page.items]) == (1, ["w2"])
    assert store.read("Patient", "r1", where=only_council) is None
    assert store.read("Condition", "c1", where=only_council) is not None
    assert store.history("Patient", "r1", where=only_council) == []
    assert store.vread("Patient", "r1", 1, where=only_council) is None
    nothing = allowed_pairs([])
    assert store.search(parse_query("Patient", {}), where=nothing).total == 0


def test_records_about_a_person(store: RecordStore) -> None:
    everything = store.by_subject(["w1", "r1"])
    assert [(r.resource_type, r.id) for r in everything] == [
        ("Condition", "c1"),
        ("Condition", "c2"),
        ("Patient", "r1"),
        ("Patient", "w1"),
    ]
    council_only = store.by_subject(["w1", "r1"], where=allowed_pairs([("WCCASC", "demographics")]))
    assert [r.id for r in council_only] == ["w1"]
    got = store.get_many([("Patient", "w1"), ("Condition", "c1"), ("Patient", "zz")])
    assert sorted(r.id for r in got) == ["c1", "w1"]


def test_a_shared_filter_keeps_its_own_statement(db: Database, store: RecordStore) -> None:
    """``shared_where`` reuses the statement built with each filter object, never
    another filter's, and answers what building it afresh answers."""
    council = allowed_pairs([("WCCASC", "demographics")])
    conditions = allowed_pairs([("RWX", "conditions")])
    nothing = allowed_pairs([])
    with db.engine.connect() as conn:
        for _ in range(2):
            for where, want in ((council, ["w1"]), (conditions, ["c1", "c2"]), (nothing, [])):
                got = store.by_subject_on(conn, ["w1", "r1"], where=where, shared_where=True)
                fresh = store.by_subject_on(conn, ["w1", "r1"], where=where)
                assert [r.id for r in got] == [r.id for r in fresh] == want
        typed = store.by_subject_on(conn, ["w1", "r1"], types=["Patient"], where=council,
                                    shared_where=True)
        assert [r.id for r in typed] == ["w1"]
        assert [r.id for r in store.by_subject_on(conn, ["w1", "r1"], limit=1)] == ["c1"]


def test_paging_and_sorting(store: RecordStore) -> None:
    q = parse_query("Patient", {"_count": ["2"], "_offset": ["1"]})
    page = store.search(q)
    assert (page.total, [r.id for r in page.items]) == (3, ["w1", "w2"])
    newest_first = store.search(parse_query("Patient", {"_sort": ["-_lastUpdated"]}))
    assert newest_first.items[0].id == "r1"  # loaded last


def test_bad_searches_report_every_problem(store: RecordStore) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_query(
            "Patient",
            [
                ("colour", "red"),
                ("birthdate", "ge12/03/1980"),
                ("family:contains", "x"),
                ("_count", "x"),
            ],
        )
    locations = [p.location for p in caught.value.problems]
    assert locations == ["colour", "birthdate", "family:contains", "_count"]
    assert "has no search parameter 'colour'" in caught.value.problems[0].message
    with pytest.raises(InvalidInput):
        parse_query("Spaceship", {})
    with pytest.raises(InvalidInput):
        parse_query("Patient", {"family": ["'"]})  # nothing left to search for


def test_reindex_rebuilds_the_same_rows(db: Database, store: RecordStore) -> None:
    def rows() -> tuple[int, int]:
        with db.engine.connect() as conn:
            return (
                conn.execute(select(func.count()).select_from(token_index)).scalar_one(),
                conn.execute(select(func.count()).select_from(string_index)).scalar_one(),
            )

    before = rows()
    assert store.reindex() == 5
    assert rows() == before
    assert store.search(parse_query("Patient", {"family": ["obri"]})).total == 1
