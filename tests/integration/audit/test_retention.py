"""Retention: archiving old events keeps what remains verifiable, and the archive verifies offline."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from joinedup.audit import Actor, AuditAction, AuditKeyStore, AuditLog, ProblemKind
from joinedup.audit.models import anchors_table, events_table
from joinedup.audit.retention import verify_archive
from joinedup.errors import Conflict
from joinedup.storage.engine import Database
from tests.unit.audit.factory import T0, FixedClock, read

OPERATOR = Actor(org=None, client_id="joinedup-cli")


def _seed(audit: AuditLog, clock: FixedClock) -> None:
    """Ten events a day for five days."""
    for day in range(5):
        for i in range(10):
            audit.append([read(f"P-{i}", time=T0 + timedelta(days=day, minutes=i))])
    clock.now = T0 + timedelta(days=10)


def _events(db: Database) -> list[int]:
    with db.engine.connect() as conn:
        return list(conn.execute(select(events_table.c.seq).order_by(events_table.c.seq)).scalars())


def test_archiving_keeps_the_rest_verifiable(
    audit: AuditLog, db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    _seed(audit, clock)
    out = tmp_path / "archive-1.jsonl"
    result = audit.archive(before=T0 + timedelta(days=2), out=out, actor=OPERATOR)
    assert result is not None
    assert (result.first_seq, result.last_seq, result.events) == (1, 20, 20)
    remaining = _events(db)
    assert remaining[0] == 21
    assert remaining[-1] == 51  # 50 events and the audit.archive event itself
    archived_event = audit.get(51)
    assert archived_event is not None
    assert archived_event.event.action == AuditAction.AUDIT_ARCHIVE
    assert archived_event.event.detail["last_hash"] == result.last_hash
    report = audit.verify()
    assert report.ok, report.problem
    assert (report.anchor_seq, report.first_seq, report.events) == (20, 21, 31)
    offline = verify_archive(out)
    assert offline.ok, offline.problem
    assert (offline.first_seq, offline.last_seq) == (1, 20)
    assert verify_archive(out, audit.keys.public_keys()).ok


def test_a_second_archive_continues_from_the_first(
    audit: AuditLog, db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    _seed(audit, clock)
    first = audit.archive(before=T0 + timedelta(days=1), out=tmp_path / "a1.jsonl", actor=OPERATOR)
    second = audit.archive(before=T0 + timedelta(days=3), out=tmp_path / "a2.jsonl", actor=OPERATOR)
    assert first is not None
    assert second is not None
    assert second.first_seq == first.last_seq + 1
    assert verify_archive(tmp_path / "a2.jsonl").ok
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(anchors_table)).scalar_one() == 2
    assert audit.verify().ok


def test_nothing_old_enough_means_no_archive(
    audit: AuditLog, clock: FixedClock, tmp_path: Path
) -> None:
    _seed(audit, clock)
    assert audit.archive(before=T0, out=tmp_path / "none.jsonl", actor=OPERATOR) is None
    assert not (tmp_path / "none.jsonl").exists()


def test_archive_refuses_to_overwrite(audit: AuditLog, clock: FixedClock, tmp_path: Path) -> None:
    _seed(audit, clock)
    out = tmp_path / "a.jsonl"
    out.write_text("precious")
    with pytest.raises(Conflict, match="already exists"):
        audit.archive(before=T0 + timedelta(days=1), out=out, actor=OPERATOR)


def test_archive_refuses_a_broken_chain(
    audit: AuditLog, db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    _seed(audit, clock)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET body = REPLACE(body, 'P-3', 'P-4') WHERE seq = 4"))
    with pytest.raises(Conflict, match="does not verify at seq 4"):
        audit.archive(before=T0 + timedelta(days=2), out=tmp_path / "a.jsonl", actor=OPERATOR)
    assert _events(db)[0] == 1


def test_a_tampered_archive_fails_offline(
    audit: AuditLog, clock: FixedClock, tmp_path: Path
) -> None:
    _seed(audit, clock)
    out = tmp_path / "a.jsonl"
    audit.archive(before=T0 + timedelta(days=2), out=out, actor=OPERATOR)
    lines = out.read_bytes().splitlines(keepends=True)
    event_line = next(i for i, line in enumerate(lines) if b'"type":"event"' in line)
    altered = list(lines)
    altered[event_line] = lines[event_line].replace(b"P-0", b"P-9")
    (tmp_path / "altered.jsonl").write_bytes(b"".join(altered))
    report = verify_archive(tmp_path / "altered.jsonl")
    assert report.problem is not None
    assert report.problem.kind is ProblemKind.ALTERED
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_bytes(b"".join(lines[:-1]))
    report = verify_archive(truncated)
    assert report.problem is not None
    assert report.problem.kind is ProblemKind.DELETED
    stranger = AuditKeyStore(tmp_path / "stranger")
    stranger.init()
    report = verify_archive(out, stranger.public_keys())
    assert report.problem is not None
    assert report.problem.kind is ProblemKind.UNKNOWN_KEY


def test_old_events_cannot_be_dropped_without_a_signed_anchor(
    audit: AuditLog, db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    _seed(audit, clock)
    audit.archive(before=T0 + timedelta(days=1), out=tmp_path / "a.jsonl", actor=OPERATOR)
    with db.engine.begin() as conn:  # an insider "archives" more by hand, with a forged anchor
        row = conn.execute(text("SELECT statement FROM audit_anchors")).scalar_one()
        statement = json.loads(row)
        statement["last_seq"] = 20
        conn.execute(text("UPDATE audit_anchors SET statement = :s"), {"s": json.dumps(statement)})
        conn.execute(text("DELETE FROM audit_events WHERE seq <= 20"))
    report = audit.verify()
    assert report.problem is not None
    assert report.problem.kind is ProblemKind.BAD_SIGNATURE


def test_an_export_holding_an_anchor_catches_its_removal(
    audit: AuditLog, db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    _seed(audit, clock)
    audit.archive(before=T0 + timedelta(days=1), out=tmp_path / "a.jsonl", actor=OPERATOR)
    held = tmp_path / "held.jsonl"
    with held.open("wb") as handle:
        audit.export_checkpoints(handle)
    assert audit.verify(against=held).ok
    with db.engine.begin() as conn:  # the insider hides that an archive ever happened
        conn.execute(text("DELETE FROM audit_anchors"))
    report = audit.verify(against=held)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (ProblemKind.DELETED, 10)
