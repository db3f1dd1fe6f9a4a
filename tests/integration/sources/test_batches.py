"""Batches on SQLite and PostgreSQL: atomic, idempotent, versioned, with quarantine and reports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from joinedup.errors import InvalidInput
from joinedup.records.provenance import RECORD_STATE_SYSTEM, WITHDRAWN, SourceRef
from joinedup.records.store import RecordStore
from joinedup.records.tables import history, resources
from joinedup.sources.batches import BatchStatus, SourceFile
from joinedup.sources.contract import Outcome
from joinedup.sources.feeds import FeedRegistry, FeedSpec
from joinedup.sources.quarantine import Quarantine, canonical_reparse
from joinedup.sources.tables import quarantine_table, seen_table, spool_table
from joinedup.storage.engine import Database
from tests.integration.records.records_helpers import (
    accepted,
    condition,
    loader,
    nhs_number,
    patient,
    patients,
    rejected,
)

FILE_A = SourceFile("clients.csv", "a" * 64, 1000)


def _count(db: Database, table: object) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _mixed(n: int, bad_every: int) -> Iterator[Outcome]:
    for i in range(1, n + 1):
        if i % bad_every == 0:
            yield rejected(i)
        else:
            yield accepted(i, patient(f"p{i}", nhs=nhs_number(i)))


def test_read_is_accepted_plus_rejected_and_good_rows_are_kept(db: Database) -> None:
    result = loader(db, chunk_units=7).ingest("wccasc-clients", _mixed(50, 5), source=FILE_A)
    assert result.status is BatchStatus.COMMITTED
    assert result.counts["read"] == 50
    assert (result.counts["accepted"], result.counts["rejected"]) == (40, 10)
    assert result.counts["created"] == 40
    assert RecordStore(db).count("Patient") == 40
    assert _count(db, quarantine_table) == 10
    assert result.report["read_equals_accepted_plus_rejected"] is True
    assert [p["unit"] for p in result.report["problems"]] == list(range(5, 51, 5))
    assert result.report["problems_by_field"] == {"column dob": 10}
    # the work tables are empty once the batch is over
    assert _count(db, seen_table) == 0
    assert _count(db, spool_table) == 0


def test_a_failure_mid_batch_leaves_nothing(db: Database) -> None:
    load = loader(db, chunk_units=10)

    def exploding() -> Iterator[Outcome]:
        yield from _mixed(35, 4)  # several chunks are written before...
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        load.ingest("wccasc-clients", exploding(), source=FILE_A)
    assert _count(db, resources) == 0
    assert _count(db, history) == 0
    assert _count(db, quarantine_table) == 0
    assert _count(db, seen_table) == 0
    [batch] = load.list("wccasc-clients")
    assert batch.status is BatchStatus.FAILED
    assert batch.report["error"] == "internal error (OSError)"


def test_a_user_error_mid_batch_is_recorded_with_its_message(db: Database) -> None:
    load = loader(db, chunk_units=10)

    def truncated() -> Iterator[Outcome]:
        yield from _mixed(12, 100)
        raise InvalidInput("the file ends in the middle of a quoted field (line 13)")

    with pytest.raises(InvalidInput):
        load.ingest("wccasc-clients", truncated())
    [batch] = load.list()
    assert batch.status is BatchStatus.FAILED
    assert "quoted field" in batch.report["error"]
    assert _count(db, resources) == 0


def test_reingesting_the_same_content_changes_nothing(db: Database) -> None:
    load = loader(db, chunk_units=8)
    first = load.ingest("wccasc-clients", patients(30), source=FILE_A)
    again = load.ingest("wccasc-clients", patients(30), source=SourceFile("copy.csv", "b" * 64, 1))
    assert first.counts["created"] == 30
    assert (again.counts["created"], again.counts["updated"], again.counts["unchanged"]) == (
        0,
        0,
        30,
    )
    assert _count(db, resources) == 30
    assert _count(db, history) == 0  # history holds earlier versions only: there are none
    assert {r.version_id for r in RecordStore(db).iter_current("Patient")} == {1}


def test_the_same_file_is_recognised_and_not_read_again(db: Database) -> None:
    load = loader(db)
    first = load.ingest("wccasc-clients", patients(3), source=FILE_A)
    consumed = []

    def watched() -> Iterator[Outcome]:
        for o in patients(3):
            consumed.append(o.unit)
            yield o

    again = load.ingest("wccasc-clients", watched(), source=FILE_A)
    assert again.status is BatchStatus.DUPLICATE
    assert again.duplicate_of == first.batch_id
    assert consumed == []
    assert again.counts["read"] == 0
    forced = load.ingest("wccasc-clients", watched(), source=FILE_A, force=True)
    assert forced.status is BatchStatus.COMMITTED
    assert forced.counts["unchanged"] == 3


def test_a_changed_unit_makes_a_new_version_with_history(db: Database) -> None:
    load = loader(db)
    load.ingest("wccasc-clients", [accepted(1, patient("p1", family="Smith"))])
    second = load.ingest("wccasc-clients", [accepted(1, patient("p1", family="Smyth"))])
    assert second.counts["updated"] == 1
    store = RecordStore(db)
    current = store.read("Patient", "p1")
    assert current is not None
    assert current.version_id == 2
    assert current.resource["meta"]["versionId"] == "2"
    assert current.resource["name"][0]["family"] == "Smyth"
    source = SourceRef.parse(current.resource["meta"]["source"])
    assert (source.org, source.feed, source.batch, source.unit) == (
        "WCCASC",
        "wccasc-clients",
        second.batch_id,
        1,
    )
    versions = store.history("Patient", "p1")
    assert [v.version_id for v in versions] == [2, 1]
    assert versions[1].resource["name"][0]["family"] == "Smith"
    # the search index follows the current version only
    from joinedup.records.query import parse_query

    assert store.search(parse_query("Patient", {"family": ["smyth"]})).total == 1
    assert store.search(parse_query("Patient", {"family": ["smith"]})).total == 0


def test_the_same_resource_twice_in_one_chunk_keeps_both_versions(db: Database) -> None:
    load = loader(db)
    result = load.ingest(
        "wccasc-clients",
        [
            accepted(1, patient("p1", family="Smith"), source_id="M1"),
            accepted(2, patient("p1", family="Smyth"), source_id="M2"),
        ],
    )
    assert (result.counts["created"], result.counts["updated"]) == (1, 1)
    assert [v.version_id for v in RecordStore(db).history("Patient", "p1")] == [2, 1]


def test_duplicate_source_ids_reject_the_second_occurrence(db: Database) -> None:
    load = loader(db, chunk_units=3)
    outcomes = [
        accepted(1, patient("p1"), source_id="C1"),
        accepted(2, patient("p2"), source_id="C2"),
        accepted(3, patient("p3"), source_id="C3"),
        accepted(4, patient("p4"), source_id="C1"),  # next chunk: found in batch_seen
        accepted(5, patient("p5"), source_id="C5"),
        accepted(6, patient("p6"), source_id="C5"),  # same chunk
    ]
    result = load.ingest("wccasc-clients", outcomes)
    assert (result.counts["accepted"], result.counts["rejected"]) == (4, 2)
    messages = {p["unit"]: p["message"] for p in result.report["problems"]}
    assert "first read at unit 1" in messages[4]
    assert "first read at unit 5" in messages[6]
    assert result.report["quality"]["duplicate_source_ids"] == 2
    assert RecordStore(db).read("Patient", "p4") is None
    [q4, _] = Quarantine(db).list(feed_id="wccasc-clients")
    assert (q4.unit, q4.source_id, q4.is_canonical) == (4, "C1", True)


def test_all_or_nothing_refuses_the_whole_batch_but_keeps_rejections(db: Database) -> None:
    load = loader(db, chunk_units=4, partial_policy="all-or-nothing")
    result = load.ingest("wccasc-clients", _mixed(20, 9), source=FILE_A)
    assert result.status is BatchStatus.REFUSED
    assert (result.counts["read"], result.counts["accepted"], result.counts["rejected"]) == (
        20,
        18,
        2,
    )
    assert result.counts["created"] == 0
    assert _count(db, resources) == 0
    assert _count(db, spool_table) == 0
    assert [u.unit for u in Quarantine(db).list()] == [9, 18]
    assert any("refused" in n for n in result.report["notes"])


def test_all_or_nothing_writes_a_clean_file(db: Database) -> None:
    load = loader(db, chunk_units=4, partial_policy="all-or-nothing")
    result = load.ingest("wccasc-clients", patients(10))
    assert result.status is BatchStatus.COMMITTED
    assert result.counts["created"] == 10
    assert RecordStore(db).count("Patient") == 10
    assert _count(db, spool_table) == 0


def test_full_refresh_keep_leaves_missing_records_alone(db: Database) -> None:
    load = loader(db, refresh="full", missing_policy="keep")
    load.ingest("wccasc-clients", patients(5))
    result = load.ingest("wccasc-clients", patients(3))
    assert result.counts["withdrawn"] == 0
    assert all(r.active for r in RecordStore(db).iter_current("Patient"))


def test_full_refresh_mark_inactive_withdraws_missing_records(db: Database) -> None:
    load = loader(db, chunk_units=2, refresh="full", missing_policy="mark-inactive")
    load.ingest("wccasc-clients", patients(5))
    # p4 is sent again but rejected: present at the source, so not withdrawn
    second = load.ingest("wccasc-clients", [*patients(3), rejected(4, source_id="S4")])
    assert second.counts["withdrawn"] == 1
    store = RecordStore(db)
    p5 = store.read("Patient", "p5")
    assert p5 is not None
    assert (p5.active, p5.version_id) == (False, 2)
    assert p5.resource["active"] is False
    assert {"system": RECORD_STATE_SYSTEM, "code": WITHDRAWN} in p5.resource["meta"]["tag"]
    assert SourceRef.parse(p5.resource["meta"]["source"]).unit == 0
    assert store.read("Patient", "p4").active  # type: ignore[union-attr]
    # the record comes back: a new, active version
    third = load.ingest("wccasc-clients", patients(5))
    assert third.counts["updated"] == 1
    p5 = store.read("Patient", "p5")
    assert p5 is not None
    assert (p5.active, p5.version_id) == (True, 3)
    assert "tag" not in p5.resource["meta"]


def test_withdrawal_is_skipped_when_a_rejected_row_has_no_source_id(db: Database) -> None:
    load = loader(db, refresh="full", missing_policy="mark-inactive")
    load.ingest("wccasc-clients", patients(3))
    result = load.ingest("wccasc-clients", [*patients(1), rejected(2, source_id="")])
    assert result.counts["withdrawn"] == 0
    assert any("missing-record handling was skipped" in n for n in result.report["notes"])


def test_a_resource_must_carry_a_category_the_feed_provides(db: Database) -> None:
    load = loader(db, categories=("demographics",))
    result = load.ingest(
        "wccasc-clients",
        [accepted(1, patient("p1"), condition("c1", "p1")), accepted(2, patient("p2"))],
    )
    # the whole unit is refused, not just its Condition
    assert (result.counts["accepted"], result.counts["rejected"]) == (1, 1)
    assert RecordStore(db).read("Patient", "p1") is None
    [problem] = result.report["problems"]
    assert problem["location"] == "resources[1].meta.security"
    assert "'conditions'" in problem["message"]


def test_ids_owned_by_another_feed_are_refused(db: Database) -> None:
    load = loader(db)
    from tests.integration.records.records_helpers import make_feed

    make_feed(db, "wccasc-other")
    load.ingest("wccasc-clients", [accepted(1, patient("p1"))])
    result = load.ingest("wccasc-other", [accepted(1, patient("p1", family="Other"))])
    assert result.counts["rejected"] == 1
    assert "belongs to feed 'wccasc-clients'" in result.report["problems"][0]["message"]
    assert RecordStore(db).read("Patient", "p1").resource["name"][0]["family"] == "Smith"  # type: ignore[union-attr]


def test_missing_sensitivity_defaults_to_normal_and_is_written_in(db: Database) -> None:
    load = loader(db)
    resource = patient("p1")
    resource["meta"]["security"] = resource["meta"]["security"][:1]
    load.ingest("wccasc-clients", [accepted(1, resource)])
    stored = RecordStore(db).read("Patient", "p1")
    assert stored is not None
    assert stored.sensitivity == "N"
    assert {c["code"] for c in stored.resource["meta"]["security"]} == {"demographics", "N"}


def test_quarantine_reprocess_writes_fixed_units_and_keeps_the_rest(db: Database) -> None:
    load = loader(db)
    first = load.ingest("wccasc-clients", _mixed(6, 3))
    assert first.counts["rejected"] == 2
    quarantine = Quarantine(db)
    [u3, _] = quarantine.list(feed_id="wccasc-clients")
    assert (u3.raw, u3.problems[0].location) == ("bad,row", "column dob")

    def fixed_mapping(unit):  # type: ignore[no-untyped-def]
        if unit.unit == 3:
            return accepted(3, patient("p3"), source_id=unit.source_id)
        return rejected(unit.unit, unit.raw, source_id=unit.source_id, message="still bad")

    result = quarantine.reprocess(load, "wccasc-clients", fixed_mapping)
    assert result.kind == "reprocess"
    assert (result.counts["read"], result.counts["accepted"], result.counts["rejected"]) == (
        2,
        1,
        1,
    )
    p3 = RecordStore(db).read("Patient", "p3")
    assert p3 is not None
    # provenance names the file's batch and unit, not the reprocessing batch
    assert SourceRef.parse(p3.resource["meta"]["source"]).batch == first.batch_id
    assert p3.batch_id == result.batch_id
    [still] = quarantine.list(feed_id="wccasc-clients")
    assert (still.unit, still.attempts, still.problems[0].message) == (6, 1, "still bad")
    resolved = quarantine.get(u3.id)
    assert (resolved.status, resolved.resolved_batch_id) == ("resolved", result.batch_id)
    assert _count(db, quarantine_table) == 2  # nothing deleted: history of what was fixed


def test_reprocess_on_all_or_nothing_keeps_everything_open_until_all_pass(db: Database) -> None:
    load = loader(db, partial_policy="all-or-nothing")
    load.ingest("wccasc-clients", _mixed(4, 2))
    quarantine = Quarantine(db)
    half_fixed = quarantine.reprocess(
        load,
        "wccasc-clients",
        lambda u: (
            accepted(u.unit, patient(f"p{u.unit}"), source_id=u.source_id)
            if u.unit == 2
            else rejected(u.unit, u.raw, source_id=u.source_id)
        ),
    )
    assert half_fixed.status is BatchStatus.REFUSED
    assert _count(db, resources) == 0
    assert len(quarantine.list()) == 2
    all_fixed = quarantine.reprocess(
        load,
        "wccasc-clients",
        lambda u: accepted(u.unit, patient(f"p{u.unit}"), source_id=u.source_id),
    )
    assert all_fixed.status is BatchStatus.COMMITTED
    assert quarantine.list() == []


def test_canonical_units_can_be_reoffered(db: Database) -> None:
    load = loader(db, categories=("demographics",))
    load.ingest("wccasc-clients", [accepted(1, patient("p1"), condition("c1", "p1"))])
    # the feed now declares conditions too: the unit can be accepted as it was mapped
    spec = FeedSpec.model_validate(
        {
            "id": "wccasc-clients",
            "org": "WCCASC",
            "format": "fhir",
            "categories": ["demographics", "conditions"],
        }
    )
    FeedRegistry(db).register(spec, replace=True)
    result = Quarantine(db).reprocess(load, "wccasc-clients", canonical_reparse)
    assert result.counts["accepted"] == 1
    assert RecordStore(db).read("Condition", "c1") is not None


def test_warnings_and_quality_are_reported_without_personal_data(db: Database) -> None:
    load = loader(db)
    bad_nhs = "9434765918"  # fails Modulus 11
    outcomes = [
        accepted(1, patient("p1", nhs=nhs_number(1))),
        accepted(2, patient("p2", nhs=bad_nhs, postcode=None)),
        accepted(3, patient("p3", birth="2999-01-01")),
        accepted(4, patient("p4", birth="1850-06-01", nhs=nhs_number(4))),
        rejected(
            5, message="NHS number 943 476 5919 fails the check", location="row 5, column nhs"
        ),
    ]
    result = load.ingest("wccasc-clients", outcomes)
    q = result.report["quality"]
    assert (q["patients"], q["nhs_number_present"], q["nhs_number_valid"]) == (4, 3, 2)
    assert (q["postcode_present"], q["future_dates"], q["implausibly_old_dates"]) == (3, 1, 1)
    assert q["completeness"]["nhs_number"] == 0.75
    text = str(result.report)
    for secret in (bad_nhs, "943 476 5919", "2999-01-01", "1850-06-01"):
        assert secret not in text
    assert "999 999 9999" in text  # the shape of the offending number
    assert result.counts["warnings"] == 3
    assert result.report["problems_by_field"] == {"column nhs": 1}


def test_adapter_warnings_are_counted(db: Database) -> None:
    from joinedup.sources.contract import Warning_

    load = loader(db)
    result = load.ingest(
        "wccasc-clients",
        [accepted(1, patient("p1"), warnings=(Warning_("unmapped ethnicity code", "column eth"),))],
    )
    assert result.counts["warnings"] == 1
    assert result.report["warnings"][0] == {
        "unit": 1,
        "location": "column eth",
        "message": "unmapped ethnicity code",
    }


def test_the_loader_streams_in_chunks(db: Database) -> None:
    """The loader pulls units lazily: never more than a chunk ahead of what it has written."""
    load = loader(db, chunk_units=5)
    pulled = 0
    seen_at_flush: list[int] = []

    def lazy() -> Iterator[Outcome]:
        nonlocal pulled
        for o in patients(23):
            pulled += 1
            yield o

    def progress(read: int) -> None:
        seen_at_flush.append(pulled - read)

    result = load.ingest("wccasc-clients", lazy(), progress=progress)
    assert result.counts["read"] == 23
    assert len(seen_at_flush) == 5  # 5 + 5 + 5 + 5 + 3
    assert max(seen_at_flush) == 0  # nothing read ahead beyond the chunk being flushed


def test_chunk_observers_see_new_versions_inside_the_transaction(db: Database) -> None:
    from joinedup.sources.batches import BatchLoader

    seen: list[tuple[str, int, bool]] = []
    base = loader(db, chunk_units=2)
    load = BatchLoader(
        db,
        base._feeds,
        chunk_units=2,
        observers=[
            lambda conn, written: seen.extend((w.id, w.version_id, w.created) for w in written)
        ],
    )
    load.ingest("wccasc-clients", patients(3))
    load.ingest("wccasc-clients", patients(3))  # unchanged: nothing to tell
    assert sorted(seen) == [("p1", 1, True), ("p2", 1, True), ("p3", 1, True)]


def test_batch_report_can_be_read_back(db: Database) -> None:
    load = loader(db)
    result = load.ingest("wccasc-clients", _mixed(4, 2), source=FILE_A)
    again = load.get(result.batch_id)
    assert again.counts == result.counts
    assert again.report["problems"] == result.report["problems"]
    assert again.event()["batch"] == result.batch_id
    assert set(result.event()) >= {"action", "batch", "feed", "org", "read", "accepted", "rejected"}
