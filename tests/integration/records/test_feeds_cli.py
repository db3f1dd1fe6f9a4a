"""The feeds / ingest / quarantine / batches commands against a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from joinedup.audit.keys import AuditKeyStore
from joinedup.sources.cli import app
from joinedup.sources.mapping import bundled_mappings
from joinedup.storage.engine import Database
from tests.integration.records.records_helpers import add_org, nhs_number

PERSONS = bundled_mappings()["WCCASC/wccasc-persons"]
HEADER = "PERSON_ID,NHS_NO,FORENAME,SURNAME,DOB,GENDER,POSTCODE\r\n"


@pytest.fixture
def env(db: Database, tmp_path: Path) -> dict[str, str]:
    add_org(db)
    AuditKeyStore(tmp_path / "audit-keys").init()  # as every deployment has
    return {
        "JOINEDUP_DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "JOINEDUP_DATA_DIR": str(tmp_path),
    }


def _run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_register_ingest_show_and_reprocess(env: dict[str, str], tmp_path: Path) -> None:
    code, text = _run(env, "feeds", "validate", "--mapping", str(PERSONS))
    assert code == 0, text
    code, text = _run(
        env,
        "feeds",
        "register",
        "--mapping",
        str(PERSONS),
        "--refresh",
        "full",
        "--missing",
        "mark-inactive",
    )
    assert code == 0, text
    assert "wccasc-persons" in text
    code, text = _run(env, "feeds", "list", "--json")
    [feed] = json.loads(text)
    assert (feed["refresh"], feed["missing_policy"]) == ("full", "mark-inactive")

    export = tmp_path / "persons.csv"
    export.write_text(
        HEADER
        + f"P1,{nhs_number(1)},Anne,Smith,14/03/1950,F,SO23 1AA\r\n"
        + f"P2,{nhs_number(2)},Bob,Jones,31/02/1948,M,SO23 1AB\r\n",
        encoding="utf-8",
    )
    code, text = _run(env, "ingest", "--feed", "wccasc-persons", str(export), "--json")
    assert code == 0, text
    [batch] = json.loads(text)
    assert (batch["counts"]["accepted"], batch["counts"]["rejected"]) == (1, 1)
    code, text = _run(env, "ingest", "--feed", "wccasc-persons", str(export))
    assert code == 0
    assert "already loaded" in text

    code, text = _run(env, "batches", "show", batch["id"])
    assert code == 0
    assert "Problems" in text
    code, text = _run(env, "quarantine", "list", "wccasc-persons", "--json")
    [unit] = json.loads(text)
    assert unit["unit"] == 2
    assert "raw" not in unit
    code, text = _run(env, "quarantine", "reprocess", "wccasc-persons", "--json")
    assert code == 0
    assert json.loads(text)["counts"]["rejected"] == 1
    code, text = _run(env, "feeds", "show", "wccasc-persons")
    assert code == 0
    assert "Data quality" in text


def test_a_refused_file_exits_non_zero(env: dict[str, str], tmp_path: Path) -> None:
    _run(env, "feeds", "register", "--mapping", str(PERSONS))
    bad = tmp_path / "bad.csv"
    bad.write_text("PERSON_ID,SURNAME\r\nP1,Smith\r\n", encoding="utf-8")
    code, text = _run(env, "ingest", "--feed", "wccasc-persons", str(bad))
    assert code == 1
    assert "required column 'DOB' is missing" in text


def test_validate_lists_every_problem(env: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "feed.yaml"
    spec.write_text(
        "id: wccasc-persons\norg: RWX\nformat: csv\ncategories: [demographics]\n"
        f"mapping: {PERSONS}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["feeds", "validate", str(spec)], env=env)
    problems = result.exception.problems  # type: ignore[union-attr]
    locations = {p.location for p in problems}
    assert {"org", "mapping: organisation", "mapping: categories"} <= locations
