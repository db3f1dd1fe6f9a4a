from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from joinedup.demo.cli import app

runner = CliRunner()


def test_generate_writes_the_exports_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["generate", "--people", "40", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["people"] == 40
    assert manifest["seed"] == 3
    assert "ground-truth rows" in result.output


def test_too_few_people_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--people", "5", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "at least 10" in result.output
    assert not (tmp_path / "o").exists()


def test_a_non_empty_directory_needs_force(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["generate", "--people", "20", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--force" in result.output
    assert not (tmp_path / "manifest.json").exists()


def test_force_replaces_an_earlier_run_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    first = runner.invoke(app, ["generate", "--people", "60", "--out", str(tmp_path), "--force"])
    assert first.exit_code == 0, first.output
    stale = tmp_path / "RWX" / "hl7" / "adt-1999-01.hl7"
    stale.write_text("not ours")
    second = runner.invoke(
        app, ["generate", "--people", "20", "--seed", "9", "--out", str(tmp_path), "--force"]
    )
    assert second.exit_code == 0, second.output
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert stale.exists()
    manifest = json.loads((tmp_path / "manifest.json").read_text("utf-8"))
    listed = {f["path"] for f in manifest["files"]}
    written = {
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()
    } - {"manifest.json", "ground_truth.csv", "keep.txt", str(stale.relative_to(tmp_path))}
    assert written == listed
