"""`joinedup agreements validate` and `diff` on files."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from joinedup.access.cli import app
from joinedup.demo.agreements import HERE, agreement_files

runner = CliRunner()


def test_validate_the_demo_agreements() -> None:
    # a fixed day, so this test does not start failing when the demo agreements end
    result = runner.invoke(app, ["validate", "--today", "2026-11-22", str(HERE)])
    assert result.exit_code == 0, result.output
    assert "ok  wessex-direct-care v1" in result.output


def test_validate_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    text = agreement_files()[0].read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("parties: [RWX,", "parties: [NOPE, RWX,")
                   .replace("dpia: DPIA", "dpia: ''\nx: DPIA"))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml:" in result.stderr
    assert "unknown organisation NOPE" in result.stderr
    assert "unknown field 'x'" in result.stderr


def test_validate_with_an_orgs_file(tmp_path: Path) -> None:
    orgs = tmp_path / "orgs.txt"
    orgs.write_text("RWX  # hospital\nWCCASC\n")
    discharge = HERE / "hospital-social-care-discharge.yaml"
    assert runner.invoke(app, ["validate", "--today", "2026-11-22", "--orgs", str(orgs),
                                str(discharge)]).exit_code == 0
    direct = HERE / "wessex-direct-care.yaml"
    assert runner.invoke(app, ["validate", "--orgs", str(orgs), str(direct)]).exit_code == 2


def test_diff(tmp_path: Path) -> None:
    old = HERE / "hospital-social-care-discharge.yaml"
    new = tmp_path / "new.yaml"
    new.write_text(old.read_text().replace("      - medications\n", ""))
    result = runner.invoke(app, ["diff", str(old), str(new), "--markdown"])
    assert result.exit_code == 0, result.output
    assert "| revoked | RWX | WCCASC | social-worker | care-coordination | medications |" \
        in result.output
    same = runner.invoke(app, ["diff", str(old), str(old)])
    assert "No change" in same.output
