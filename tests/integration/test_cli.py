"""The `joinedup` command as a user runs it: a real process, real exit codes, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from joinedup.storage.engine import Database


def run(
    *args: str, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", "from joinedup.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _env(db: Database, tmp_path: Path) -> dict[str, str]:
    return {
        "JOINEDUP_DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "JOINEDUP_DATA_DIR": str(tmp_path),
    }


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://root@localhost/x", "unsupported backend"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot connect to the database"),
    ],
)
def test_bad_database_url_is_one_line_naming_the_fix(tmp_path: Path, url: str, words: str) -> None:
    r = run("orgs", "list", env={"JOINEDUP_DATABASE_URL": url, "JOINEDUP_DATA_DIR": str(tmp_path)})
    assert r.returncode != 0
    assert words in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2


def test_unmigrated_database_names_the_fix(tmp_path: Path) -> None:
    r = run("orgs", "list", env={"JOINEDUP_DATA_DIR": str(tmp_path)})
    assert r.returncode == 78
    assert "run `joinedup db upgrade`" in r.stderr
    assert "Traceback" not in r.stderr


def test_register_and_mint_a_token(db: Database, tmp_path: Path) -> None:
    env = _env(db, tmp_path)
    run("db", "upgrade", env=env, check=True)
    run("keys", "init", env=env, check=True)
    run(
        "orgs",
        "add",
        "RWX",
        "--name",
        "Wessex Hospitals",
        "--kind",
        "acute-trust",
        env=env,
        check=True,
    )
    run("orgs", "add-team", "RWX", "RWX-ED", "--name", "ED", env=env, check=True)
    run(
        "orgs",
        "add-practitioner",
        "RWX",
        "RWX-P1",
        "--name",
        "Dr A",
        "--role",
        "clinician",
        "--team",
        "RWX-ED",
        env=env,
        check=True,
    )
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        '{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",'
        '"x":"wnmtUlD-MRrxn3QIfEZdSvi73UnivggopiLUnqp76dY",'
        '"y":"U7rtuV3E-n-AgDYmDMF-AlBHgikEGvQbBBBQ-gqEXm0"}]}'
    )
    run(
        "orgs",
        "add-system",
        "RWX",
        "rwx-epr",
        "--name",
        "EPR",
        "--jwks",
        str(jwks),
        env=env,
        check=True,
    )
    r = run(
        "token",
        "--org",
        "RWX",
        "--practitioner",
        "RWX-P1",
        "--purpose",
        "direct-care",
        env=env,
        check=True,
    )
    token = r.stdout.strip()
    assert token.count(".") == 2
    r = run("token", "--org", "RWX", "--practitioner", "RWX-P1", "--purpose", "emergency", env=env)
    assert r.returncode == 2
    assert "needs a reason" in r.stderr
    r = run("token", "--org", "NOPE", "--purpose", "direct-care", env=env)
    assert r.returncode == 3
    assert "no organisation with code 'NOPE'" in r.stderr
    shown = run("orgs", "show", "RWX", "--json", env=env, check=True).stdout
    assert "RWX-P1" in shown


def test_help_reads_well() -> None:
    r = run("--help", check=True)
    for command in ["serve", "db", "keys", "orgs", "token"]:
        assert command in r.stdout
