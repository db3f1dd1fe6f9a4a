"""`joinedup audit ...` commands against a real database (both backends)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

from joinedup.audit import AuditAction, AuditKeyStore, AuditLog
from joinedup.audit.cli import VerificationFailed, app
from joinedup.errors import InvalidInput, NotFound
from joinedup.storage.engine import Database
from tests.unit.audit.factory import T0, read


@pytest.fixture
def env(db: Database, tmp_path: Path) -> dict[str, str]:
    return {
        "JOINEDUP_DATA_DIR": str(tmp_path),
        "JOINEDUP_DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def _seed(db: Database, tmp_path: Path) -> None:
    log = AuditLog(db, AuditKeyStore(tmp_path / "audit-keys"))
    for day in range(3):
        log.append([read(f"P-{i}", time=T0 + timedelta(days=day)) for i in range(5)])
    log.append([read("P-1", action=AuditAction.BREAK_GLASS, break_glass=True,
                     break_glass_reason="collapsed", org="RWM", practitioner="RWM-P1",
                     purpose="emergency", time=T0 + timedelta(days=2))])
    log.close()


def test_keys_init_then_verify_export_and_verify_against(
    env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    result = run(env, "keys", "init")
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    assert "exists" in run(env, "keys", "init").output
    _seed(db, tmp_path)
    result = run(env, "verify")
    assert result.exit_code == 0, result.output
    assert "audit log verified: 17 events" in result.output
    exported = tmp_path / "held.jsonl"
    assert run(env, "export-checkpoints", str(exported)).exit_code == 0
    result = run(env, "verify", "--against", str(exported), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert report["external_checkpoints"] >= 1
    jwks = json.loads(run(env, "keys", "export").output)
    assert jwks["keys"][0]["crv"] == "Ed25519"


def test_verify_fails_with_its_own_exit_code_naming_the_event(
    env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    run(env, "keys", "init")
    _seed(db, tmp_path)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 7"))
    result = run(env, "verify")
    assert isinstance(result.exception, VerificationFailed)
    assert result.exception.exit_code == 10
    assert "deleted: event 7 was deleted" in str(result.exception)


def test_reports_and_review(env: dict[str, str], db: Database, tmp_path: Path) -> None:
    run(env, "keys", "init")
    _seed(db, tmp_path)
    result = run(env, "report", "break-glass", "--from", "2026-03-01", "--to", "2026-03-03",
                 "--csv")
    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()
    assert header.startswith("seq,time,org")
    assert row.startswith("17,")  # seq 1 is the key change that `keys init` recorded
    assert ",collapsed,pending," in row
    result = run(env, "review", "17", "--outcome", "appropriate", "--by", "RWM-IG1")
    assert result.exit_code == 0, result.output
    report = json.loads(run(env, "report", "break-glass", "--from", "2026-03-01",
                            "--to", "2026-03-03").output)
    assert report["rows"][0]["review"] == "reviewed"
    assert isinstance(run(env, "review", "2", "--outcome", "appropriate", "--by", "X").exception,
                      NotFound)
    bad = run(env, "report", "denials", "--from", "March", "--to", "2026-03-03")
    assert isinstance(bad.exception, InvalidInput)
    access = json.loads(run(env, "access-report", "P-1").output)
    assert [e["action"] for e in access["entries"]] == [
        "break-glass", "record.read", "record.read", "record.read"]


def test_archive_and_verify_archive(env: dict[str, str], db: Database, tmp_path: Path) -> None:
    AuditKeyStore(tmp_path / "audit-keys").init()  # no key-change event dated today
    _seed(db, tmp_path)
    out = tmp_path / "2026-03.jsonl"
    result = run(env, "archive", "--before", "2026-03-02", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "archived events 1..5" in result.output
    assert run(env, "verify").exit_code == 0
    held = tmp_path / "held.jsonl"
    run(env, "export-checkpoints", str(held))
    result = run(env, "verify-archive", str(out), "--keys", str(held))
    assert result.exit_code == 0, result.output
    result = run(env, "archive", "--out", str(tmp_path / "again.jsonl"))
    assert isinstance(result.exception, InvalidInput)  # no cut-off and no retention set
