"""Tampering with the log directly in the database, on SQLite and PostgreSQL: verify names it.

Each test writes a small log through the service, then plays an insider with
SQL access: alters, deletes, inserts or reorders rows, or forges checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from joinedup.audit import AuditKeyStore, AuditLog, ProblemKind, VerifyReport
from joinedup.audit.check import verify_log
from joinedup.audit.events import chain_hash
from joinedup.audit.statements import Checkpoint
from joinedup.storage.engine import Database
from tests.unit.audit.factory import T0, read

N = 10


def _log(audit: AuditLog) -> None:
    for i in range(N):
        audit.append([read(f"P-{i % 3}", practitioner=f"RWX-P{i}")])
    assert audit.verify().ok


def _sql(db: Database, *statements: str, **params: Any) -> None:
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def _named(report: VerifyReport) -> tuple[ProblemKind | None, int | None]:
    assert not report.ok
    assert report.problem is not None
    return report.problem.kind, report.problem.seq


def _row(db: Database, seq: int) -> Any:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT * FROM audit_events WHERE seq = :s"), {"s": seq}).one()


def test_altered_event_content(audit: AuditLog, db: Database) -> None:
    _log(audit)
    _sql(db, "UPDATE audit_events SET body = REPLACE(body, 'RWX-P4', 'RWX-P9') WHERE seq = 5")
    assert _named(audit.verify()) == (ProblemKind.ALTERED, 5)


def test_altered_filter_column_to_hide_who_looked(audit: AuditLog, db: Database) -> None:
    _log(audit)
    _sql(db, "UPDATE audit_events SET practitioner = 'RWX-P0' WHERE seq = 6")
    report = audit.verify()
    assert _named(report) == (ProblemKind.ALTERED, 6)
    assert report.problem is not None
    assert "practitioner" in report.problem.message


def test_altered_person_index_to_hide_a_read_from_the_person(
    audit: AuditLog, db: Database
) -> None:
    _log(audit)
    _sql(db, "DELETE FROM audit_event_persons WHERE seq = 4")
    assert _named(audit.verify()) == (ProblemKind.ALTERED, 4)


def test_deleted_event(audit: AuditLog, db: Database) -> None:
    _log(audit)
    _sql(db, "DELETE FROM audit_events WHERE seq = 5", "DELETE FROM audit_event_persons WHERE seq = 5")
    assert _named(audit.verify()) == (ProblemKind.DELETED, 5)


def test_deleted_events_at_the_end(audit: AuditLog, db: Database) -> None:
    _log(audit)
    _sql(db, "DELETE FROM audit_events WHERE seq > 7", "DELETE FROM audit_event_persons WHERE seq > 7")
    assert _named(audit.verify()) == (ProblemKind.DELETED, 8)


def test_deleted_event_with_later_events_renumbered(audit: AuditLog, db: Database) -> None:
    _log(audit)
    _sql(
        db,
        "DELETE FROM audit_events WHERE seq = 5",
        "DELETE FROM audit_event_persons WHERE seq = 5",
        "UPDATE audit_events SET seq = -(seq - 1) WHERE seq > 5",
        "UPDATE audit_events SET seq = -seq WHERE seq < 0",
        "UPDATE audit_event_persons SET seq = -(seq - 1) WHERE seq > 5",
        "UPDATE audit_event_persons SET seq = -seq WHERE seq < 0",
        "UPDATE audit_chain_head SET seq = seq - 1",
    )
    assert _named(audit.verify()) == (ProblemKind.DELETED, 5)


def test_inserted_event(audit: AuditLog, db: Database) -> None:
    """An insider shifts later events up and slips a forged, properly linked event in at 6."""
    _log(audit)
    fifth = _row(db, 5)
    forged = read("P-9", practitioner="RWX-P99")
    body = forged.canonical(6)
    _sql(
        db,
        "UPDATE audit_events SET seq = -(seq + 1) WHERE seq > 5",
        "UPDATE audit_events SET seq = -seq WHERE seq < 0",
        "UPDATE audit_event_persons SET seq = -(seq + 1) WHERE seq > 5",
        "UPDATE audit_event_persons SET seq = -seq WHERE seq < 0",
        "UPDATE audit_chain_head SET seq = seq + 1",
    )
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (seq, prev_hash, hash, body, time, action, outcome, org,"
                " client_id, practitioner, role, purpose, break_glass, subject_seq) VALUES "
                "(6, :prev, :hash, :body, :time, 'record.read', 'permit', 'RWX', 'rwx-epr',"
                " 'RWX-P99', 'clinician', 'direct-care', :bg, NULL)"
            ),
            {"prev": fifth.hash, "hash": chain_hash(fifth.hash, body), "body": body.decode(),
             "time": fifth.time, "bg": False},
        )
        conn.execute(text("INSERT INTO audit_event_persons (seq, person_id) VALUES (6, 'P-9')"))
    assert _named(audit.verify()) == (ProblemKind.INSERTED, 6)


def test_event_appended_behind_the_logs_back(audit: AuditLog, db: Database) -> None:
    _log(audit)
    last = _row(db, N)
    forged = read("P-9")
    body = forged.canonical(N + 1)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (seq, prev_hash, hash, body, time, action, outcome, org,"
                " client_id, practitioner, role, purpose, break_glass, subject_seq) VALUES "
                "(:seq, :prev, :hash, :body, :time, 'record.read', 'permit', 'RWX', 'rwx-epr',"
                " 'RWX-P1', 'clinician', 'direct-care', :bg, NULL)"
            ),
            {"seq": N + 1, "prev": last.hash, "hash": chain_hash(last.hash, body),
             "body": body.decode(), "time": last.time, "bg": False},
        )
    assert _named(audit.verify()) == (ProblemKind.INSERTED, N + 1)


def test_reordered_events(audit: AuditLog, db: Database) -> None:
    _log(audit)
    _sql(
        db,
        "UPDATE audit_events SET seq = -5 WHERE seq = 5",
        "UPDATE audit_events SET seq = 5 WHERE seq = 6",
        "UPDATE audit_events SET seq = 6 WHERE seq = -5",
    )
    report = audit.verify()
    assert _named(report) == (ProblemKind.REORDERED, 5)
    assert report.problem is not None
    assert "between seq 5 and 6" in report.problem.message


def test_consistent_rewrite_is_caught_by_a_checkpoint(audit: AuditLog, db: Database) -> None:
    """Alter event 6 and recompute every later hash (and the head): only checkpoints can tell."""
    _log(audit)
    with db.engine.begin() as conn:
        rows = conn.execute(text("SELECT seq, prev_hash, body FROM audit_events ORDER BY seq")).all()
        prev = None
        for seq, prev_hash, body in rows:
            if seq == 6:
                body = body.replace("RWX-P5", "RWX-P0")
            if seq >= 6:
                prev_hash = prev
                new_hash = chain_hash(prev_hash, body.encode())
                conn.execute(
                    text("UPDATE audit_events SET prev_hash = :p, hash = :h, body = :b, "
                         "practitioner = :pr WHERE seq = :s"),
                    {"p": prev_hash, "h": new_hash, "b": body, "s": seq,
                     "pr": "RWX-P0" if seq == 6 else f"RWX-P{seq - 1}"},
                )
                prev = new_hash
            else:
                prev = conn.execute(text("SELECT hash FROM audit_events WHERE seq = :s"),
                                    {"s": seq}).scalar_one()
        conn.execute(text("UPDATE audit_chain_head SET hash = :h"), {"h": prev})
    report = audit.verify()
    kind, seq = _named(report)
    assert kind is ProblemKind.CHECKPOINT_MISMATCH
    assert seq is not None
    assert seq >= 6


def test_checkpoint_with_a_bad_signature(audit: AuditLog, db: Database) -> None:
    _log(audit)
    with db.engine.connect() as conn:
        cps = conn.execute(text("SELECT seq, signature FROM audit_checkpoints ORDER BY seq")).all()
    assert len(cps) >= 2
    _sql(db, "UPDATE audit_checkpoints SET signature = :sig WHERE seq = :seq",
         sig=cps[0].signature, seq=cps[1].seq)
    assert _named(audit.verify()) == (ProblemKind.BAD_SIGNATURE, cps[1].seq)


def test_checkpoint_signed_by_an_unknown_key(audit: AuditLog, db: Database, tmp_path: Path) -> None:
    _log(audit)
    stranger, _ = AuditKeyStore(tmp_path / "stranger").init()
    with db.engine.connect() as conn:
        seq, statement = conn.execute(
            text("SELECT seq, statement FROM audit_checkpoints ORDER BY seq DESC")).first()
    original = Checkpoint.parse(statement, "x")
    forged = Checkpoint.make(log_id=original.log_id, seq=seq, hash=original.hash, time=T0,
                             key=stranger)
    _sql(db, "UPDATE audit_checkpoints SET statement = :st, signature = :sig, kid = :kid "
             "WHERE seq = :seq", st=forged.statement, sig=forged.signature, kid=stranger.kid,
         seq=seq)
    assert _named(audit.verify()) == (ProblemKind.UNKNOWN_KEY, seq)


def test_an_exported_checkpoint_exposes_a_rewrite_that_also_rewrote_checkpoints(
    audit: AuditLog, db: Database, tmp_path: Path
) -> None:
    """The insider rewrites the chain and deletes the stored checkpoints; the third party's
    copy still catches it."""
    _log(audit)
    export = tmp_path / "held-by-RWM.jsonl"
    with export.open("wb") as handle:
        assert audit.export_checkpoints(handle) >= 2
    with db.engine.begin() as conn:
        rows = conn.execute(text("SELECT seq, body FROM audit_events ORDER BY seq")).all()
        prev = "0" * 64
        for seq, body in rows:
            body = body.replace("RWX-P2", "RWX-P0")
            new_hash = chain_hash(prev, body.encode())
            conn.execute(text("UPDATE audit_events SET prev_hash = :p, hash = :h, body = :b, "
                              "practitioner = REPLACE(practitioner, 'RWX-P2', 'RWX-P0') "
                              "WHERE seq = :s"),
                         {"p": prev, "h": new_hash, "b": body, "s": seq})
            prev = new_hash
        conn.execute(text("UPDATE audit_chain_head SET hash = :h"), {"h": prev})
        conn.execute(text("DELETE FROM audit_checkpoints"))
    assert audit.verify().ok  # locally consistent: the stored evidence is gone
    kind, seq = _named(audit.verify(against=export))
    assert kind is ProblemKind.CHECKPOINT_MISMATCH
    assert seq is not None
    assert seq >= 3


@pytest.mark.slow  # starts worker processes
def test_a_parallel_verify_agrees_with_the_sequential_one(
    audit: AuditLog, db: Database
) -> None:
    """Segments walked by worker processes: a valid log passes without the sequential walk;
    any problem falls back to it and is named exactly as it would be."""
    for i in range(40):
        audit.append([read(f"P-{i % 3}", practitioner=f"RWX-P{i}")])
    keys = audit.keys.public_keys()
    fast = verify_log(db, keys, jobs=2, parallel_from=10)
    assert fast.ok
    assert (fast.segments, fast.events, fast.last_seq) == (2, 40, 40)
    _sql(db, "UPDATE audit_events SET practitioner = 'RWX-P0' WHERE seq = 31")
    report = verify_log(db, keys, jobs=2, parallel_from=10)
    assert report.segments == 1
    assert _named(report) == (ProblemKind.ALTERED, 31)
