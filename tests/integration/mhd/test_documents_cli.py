"""`joinedup documents publish|find|get|status|keys` against a real database and store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from joinedup.cli import app
from joinedup.errors import UserError
from tests.integration.mhd.world import World

LOINC = "http://loinc.org"


@pytest.fixture
def env(world: World) -> dict[str, str]:
    settings = world.svc.settings
    return {"JOINEDUP_DATABASE_URL": str(settings.database_url),
            "JOINEDUP_DATA_DIR": str(settings.data_dir), "JOINEDUP_LOG_LEVEL": "warning"}


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Exit code and output, a UserError shown as `joinedup` (main) shows it."""
    result = CliRunner().invoke(app, list(args), env=env)
    if isinstance(result.exception, UserError):
        return result.exception.exit_code, str(result.exception)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_publish_find_get_and_deprecate(env: dict[str, str], world: World,
                                        tmp_path: Path) -> None:
    pdf = tmp_path / "discharge.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 5000)
    code, text = _run(env, "documents", "publish", str(pdf), "--org", "J81001",
                      "--patient", world.patient, "--type", f"{LOINC}|18842-5",
                      "--class", f"{LOINC}|47039-3", "--practitioner", "J81001-P1")
    assert code == 0, text
    published = json.loads(text)
    assert published["content_type"] == "application/pdf"
    assert published["size"] == pdf.stat().st_size

    code, text = _run(env, "documents", "find", "--org", "RWC", "--practitioner", "RWC-P1",
                      "--nhs-number", world.nhs, "--json")
    assert code == 0, text
    found = json.loads(text)
    assert [d["id"] for d in found["documents"]] == [published["id"]]
    assert found["documents"][0]["title"] == "discharge.pdf"

    target = tmp_path / "copy.pdf"
    code, text = _run(env, "documents", "get", published["id"], "--out", str(target),
                      "--org", "RWC", "--practitioner", "RWC-P1")
    assert code == 0, text
    assert target.read_bytes() == pdf.read_bytes()
    assert json.loads(text)["sha1_verified"] is True

    # the hub is in no agreement: nothing found, and get is "not known"
    code, text = _run(env, "documents", "find", "--org", "JHUB", "--practitioner", "JHUB-P1",
                      "--patient", world.rwc_patient, "--json")
    assert json.loads(text)["total"] == 0
    code, text = _run(env, "documents", "get", published["id"], "--out",
                      str(tmp_path / "x.pdf"), "--org", "JHUB", "--practitioner", "JHUB-P1")
    assert code == 3, text
    assert "is not known" in text
    assert not (tmp_path / "x.pdf").exists()

    code, text = _run(env, "documents", "status", published["id"], "superseded",
                      "--reason", "replaced on paper", "--org", "J81001")
    assert code == 0, text
    assert json.loads(text)["version"] == 2
    code, text = _run(env, "documents", "find", "--org", "RWC", "--practitioner", "RWC-P1",
                      "--patient", world.rwc_patient, "--json")
    assert json.loads(text)["total"] == 0


def test_publish_refuses_a_bad_file_and_stores_nothing(env: dict[str, str], world: World,
                                                       tmp_path: Path) -> None:
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    code, text = _run(env, "documents", "publish", str(exe), "--org", "J81001",
                      "--patient", world.patient, "--type", "bad", "--class", f"{LOINC}|1",
                      "--content-type", "application/x-msdownload")
    assert code != 0
    assert "not accepted" in text
    assert world.svc.documents.counts() == {}


def test_keys_init_once(env: dict[str, str], world: World) -> None:
    code, text = _run(env, "documents", "keys", "init")
    assert code == 0
    assert "exists" in text  # the world made one
    code, text = _run(env, "documents", "keys", "rotate")
    assert code == 0, text
    assert "re-wrapped" in text


def test_tidy_reports_what_it_did(env: dict[str, str], world: World) -> None:
    code, text = _run(env, "documents", "tidy")
    assert code == 0, text
    assert json.loads(text) == {"publishes_finished": 0, "publishes_undone": 0,
                                "uploads_dropped": 0, "store_items_removed": 0}
