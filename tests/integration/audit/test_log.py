"""Appending: durable acknowledgement, group commit, one chain, failing closed (both backends)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from joinedup.audit import AuditConfig, AuditKeyStore, AuditLog, ProblemKind
from joinedup.audit.models import checkpoints_table, events_table
from joinedup.errors import Unavailable
from joinedup.storage.engine import Database
from tests.support import audit_store_refuses_writes
from tests.unit.audit.factory import FixedClock, read


def _count(db: Database, table: object = events_table) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_append_returns_seqs_once_committed(audit: AuditLog, db: Database) -> None:
    assert audit.append([read("P-1"), read("P-2")]) == [1, 2]
    assert audit.append([read("P-3")]) == [3]
    assert audit.append([]) == []
    # Committed: a fresh connection sees them, with their chain links.
    with db.engine.connect() as conn:
        rows = conn.execute(select(events_table.c.seq, events_table.c.prev_hash,
                                   events_table.c.hash).order_by(events_table.c.seq)).all()
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[1].prev_hash == rows[0].hash
    assert rows[2].prev_hash == rows[1].hash
    assert audit.verify().ok


def test_events_read_back_as_written(audit: AuditLog) -> None:
    event = read("P-7", reasons=("agreement", "self-declared-relationship"),
                 obligations={"withhold_fields": ["Patient.telecom"]}, detail={"batch": "b1"})
    [seq] = audit.append([event])
    logged = audit.get(seq)
    assert logged is not None
    assert logged.event == event


def test_concurrent_appends_from_many_threads_make_one_valid_chain(
    audit: AuditLog, db: Database
) -> None:
    threads, per_thread = 24, 15
    acked: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(per_thread):
                seqs = audit.append([read(f"P-{n}-{i}"), read(f"P-{n}-{i}b")])
                with lock:
                    acked.extend(seqs)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    total = threads * per_thread * 2
    assert sorted(acked) == list(range(1, total + 1))
    assert _count(db) == total
    assert audit.writer.batches < threads * per_thread  # some appends were committed together
    report = audit.verify()
    assert report.ok, report.problem
    assert report.events == total


def test_two_logs_on_one_database_share_one_chain(
    db: Database, audit_keys: AuditKeyStore
) -> None:
    """Two writers (as in two worker processes) take turns on the locked chain head."""
    first, second = AuditLog(db, audit_keys), AuditLog(db, audit_keys)
    try:
        seqs: list[int] = []

        def run(log: AuditLog, tag: str) -> None:
            for i in range(40):
                seqs.extend(log.append([read(f"{tag}-{i}")]))

        pool = [threading.Thread(target=run, args=(log, tag))
                for log, tag in ((first, "A"), (second, "B"))]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        assert sorted(seqs) == list(range(1, 81))
        assert first.verify().ok
    finally:
        first.close()
        second.close()


def test_append_async_for_coroutines(audit: AuditLog) -> None:
    async def main() -> list[list[int]]:
        return await asyncio.gather(*(audit.append_async([read(f"P-{i}")]) for i in range(30)))

    results = asyncio.run(main())
    assert sorted(s for r in results for s in r) == list(range(1, 31))
    assert audit.verify().ok


def test_checkpoints_every_n_events_and_on_close(
    db: Database, audit_keys: AuditKeyStore, clock: FixedClock
) -> None:
    log = AuditLog(db, audit_keys, AuditConfig(checkpoint_every_events=5), clock=clock)
    for i in range(12):
        log.append([read(f"P-{i}")])
    with db.engine.connect() as conn:
        seqs = list(conn.execute(select(checkpoints_table.c.seq).order_by(
            checkpoints_table.c.seq)).scalars())
    assert seqs[0] == 1  # a new log checkpoints its first batch
    assert all(b - a >= 5 for a, b in itertools.pairwise(seqs))
    log.close()
    assert _count(db, checkpoints_table) == len(seqs) + (0 if seqs[-1] == 12 else 1)
    report = AuditLog(db, audit_keys).verify()
    assert report.ok
    assert report.checkpoints == _count(db, checkpoints_table)


def test_checkpoints_after_time_passes(
    db: Database, audit_keys: AuditKeyStore, clock: FixedClock
) -> None:
    log = AuditLog(db, audit_keys, AuditConfig(checkpoint_every_events=1000,
                                               checkpoint_every_seconds=60), clock=clock)
    try:
        log.append([read()])
        log.append([read()])
        before = _count(db, checkpoints_table)
        clock.advance(seconds=61)
        log.append([read()])
        assert _count(db, checkpoints_table) == before + 1
    finally:
        log.close()


def test_an_explicit_checkpoint_only_when_the_head_moved(audit: AuditLog) -> None:
    assert audit.checkpoint() is None  # empty log
    audit.append([read(), read()])
    made = audit.checkpoint()
    assert made is None or made.seq == 2  # the batch may have checkpointed already
    assert audit.checkpoint() is None


def test_an_unwritable_store_fails_closed_and_recovers(audit: AuditLog, db: Database) -> None:
    audit.append([read()])
    with audit_store_refuses_writes(db):
        with pytest.raises(Unavailable, match="cannot be written"):
            audit.append([read("P-2")])

        async def attempt() -> None:
            await audit.append_async([read("P-3")])

        with pytest.raises(Unavailable):
            asyncio.run(attempt())
    assert audit.append([read("P-4")]) == [2]  # nothing half-written: the chain goes on
    assert audit.verify().ok


def test_an_unreachable_store_fails_closed(audit_keys: AuditKeyStore) -> None:
    gone = Database.from_url("postgresql://nobody@127.0.0.1:1/none")
    log = AuditLog(gone, audit_keys, AuditConfig(append_timeout_seconds=20))
    try:
        with pytest.raises(Unavailable, match="cannot be reached"):
            log.append([read()])
    finally:
        log.close(checkpoint=False)
        gone.dispose()


def test_a_commit_that_takes_too_long_fails_closed(db: Database, audit_keys: AuditKeyStore) -> None:
    log = AuditLog(db, audit_keys, AuditConfig(append_timeout_seconds=0.3))
    original = log.writer._write
    release = threading.Event()

    def stuck(batch: Any) -> None:
        release.wait(10)
        original(batch)

    log.writer._write = stuck  # type: ignore[method-assign]
    try:
        with pytest.raises(Unavailable, match=r"did not commit within 0\.3s"):
            log.append([read()])

        async def attempt() -> None:
            await log.append_async([read()])

        with pytest.raises(Unavailable, match=r"did not commit within 0\.3s"):
            asyncio.run(attempt())
    finally:
        release.set()
        log.close()


def test_a_closed_log_refuses_appends(audit: AuditLog) -> None:
    audit.close()
    with pytest.raises(Unavailable, match="closed"):
        audit.append([read()])


def test_verify_sees_what_another_connection_deleted(audit: AuditLog, db: Database) -> None:
    audit.append([read(f"P-{i}") for i in range(5)])
    with db.engine.begin() as conn:
        conn.execute(events_table.delete().where(events_table.c.seq == 5))
    problem = audit.verify().problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.DELETED, 5)
