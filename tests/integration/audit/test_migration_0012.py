"""Migration 0012_audit_indexes on a log written before it: same rows, still verifies."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from joinedup.audit import AuditConfig, AuditKeyStore, AuditLog
from joinedup.audit.check import verify_log
from joinedup.audit.transparency import access_report
from joinedup.storage.engine import Database
from joinedup.storage.migrate import upgrade
from tests.unit.audit.factory import read


def _persons(db: Database) -> list[tuple[int, str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, person_id FROM audit_event_persons ORDER BY seq"))
        return [(int(seq), str(person)) for seq, person in rows]


def test_a_log_from_before_0012_keeps_verifying_and_its_person_index(
    tmp_path: Path, audit_keys: AuditKeyStore
) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade(db, "0009_audit_perf")
        log = AuditLog(db, audit_keys, AuditConfig(checkpoint_every_events=3))
        log.append([read(f"P-{i % 3}") for i in range(10)])
        log.close()
        before = _persons(db)

        upgrade(db)

        with db.engine.connect() as conn:
            persons_sql = conn.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'audit_event_persons'"
            )).scalar_one()
            subject_sql = conn.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_audit_events_subject_seq'"
            )).scalar_one()
        assert "WITHOUT ROWID" in persons_sql
        assert "WHERE subject_seq IS NOT NULL" in subject_sql
        assert _persons(db) == before
        assert len(before) == 10
        assert verify_log(db, audit_keys.public_keys()).ok
        report = access_report(db, "P-1", show_staff_names=False)
        assert [e.seq for e in report.entries] == [8, 5, 2]
    finally:
        db.dispose()
