"""Migration 0007_documents_lifecycle on a registry that already holds documents: each
gets version 1 in the history, its List entry and its search values from its JSON, and
the migration downgrades cleanly (SQLite; the schema itself is checked on both backends
by tests/integration/test_migrations.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from joinedup.documents.models import list_entries, search_tokens, versions
from joinedup.storage.engine import Database
from joinedup.storage.migrate import _config, upgrade

WHEN = datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_existing_documents_are_backfilled(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path}/old.db")
    try:
        upgrade(db, "0005_documents")
        body = {
            "resourceType": "DocumentReference", "id": "d1", "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5"}]},
            "author": [{"reference": "https://x.example/fhir/Organization/J81001"}],
            "context": {"event": [{"coding": [{"system": "s", "code": "e1"}]}],
                        "period": {"start": "2026-11-01", "end": "2026-11-19T17:00:00Z"}},
            "meta": {"lastUpdated": WHEN.isoformat()},
        }
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO document_submission_sets (id, subject_id, org_code, created_at, body)"
                " VALUES ('s1', 'p1', 'J81001', :t, '{}')"), {"t": WHEN})
            conn.execute(sa.text(
                "INSERT INTO document_references (id, master_identifier, status, availability,"
                " subject_id, org_code, category, sensitivity, type_system, type_code,"
                " class_system, class_code, date, content_id, content_type, size, sha1,"
                " submission_set_id, created_at, updated_at, body) VALUES ('d1', 'm1',"
                " 'current', 'available', 'p1', 'J81001', 'documents', 'N', 'l', 't', 'c', 'k',"
                " :t, :cid, 'application/pdf', 3, 'x', 's1', :t, :t, :body)"),
                {"t": WHEN, "cid": "a" * 32, "body": json.dumps(body)})
        upgrade(db)
        with db.engine.connect() as conn:
            [version] = conn.execute(sa.select(versions)).mappings().all()
            entries = conn.execute(sa.select(list_entries)).all()
            tokens = {(r.name, r.value) for r in conn.execute(sa.select(search_tokens))}
            row = conn.execute(sa.text(
                "SELECT version, period_start, body FROM document_references")).one()
        assert (version["document_id"], version["version"], version["status"]) == ("d1", 1,
                                                                                   "current")
        assert entries == [("s1", "d1")]
        assert {("type", "18842-5"), ("author", "Organization/J81001"), ("event", "e1"),
                ("code", "submissionset")} <= tokens
        assert row[0] == 1
        assert str(row[1]).startswith("2026-11-01")
        assert json.loads(row[2])["meta"]["versionId"] == "1"

        cfg = _config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0007_documents_lifecycle-1")
        inspector = sa.inspect(db.engine)
        assert "document_reference_versions" not in inspector.get_table_names()
        assert "version" not in {c["name"] for c in inspector.get_columns("document_references")}
    finally:
        db.dispose()
