"""Reference docs generated from code stay in step with it (`make docs` regenerates them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_current(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "joinedup.cli",
            "utils",
            "docs",
            "--name",
            "joinedup",
            "--title",
            "joinedup command reference",
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    committed = (ROOT / "docs" / "reference" / "cli.md").read_text()
    assert out.read_text() == committed, "docs/reference/cli.md is stale: run `make docs`"
