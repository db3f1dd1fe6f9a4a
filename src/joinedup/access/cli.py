"""``joinedup agreements``: validate agreement files, and diff two sets of them.

Works on files only (no database), so an IG lead can check a change before
it is applied. The lead mounts ``app`` under the main command.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from joinedup.access.agreements import Agreement, AgreementError
from joinedup.access.diff import diff as diff_agreements
from joinedup.access.diff import render_markdown
from joinedup.access.loader import load_agreement_files

app = typer.Typer(
    help="Data sharing agreements: validate files, and see what a change grants or revokes.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

OrgsOption = Annotated[
    Path | None,
    typer.Option("--orgs", help="File of known organisation codes, one per line "
                 "(default: the demo area's)."),
]


def _known_orgs(path: Path | None) -> set[str]:
    if path is None:
        from joinedup.demo.agreements import demo_organisations

        return set(demo_organisations())
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()}


def _expand(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    return files


def _load(paths: list[Path], orgs: Path | None, today: date | None) -> tuple[Agreement, ...]:
    try:
        return load_agreement_files(_expand(paths), known_orgs=_known_orgs(orgs), today=today)
    except AgreementError as exc:
        err.print(f"[red]{escape(exc.detail)}[/red] ({len(exc.problems)} problems)")
        for problem in exc.problems:
            err.print(f"  {escape(str(problem))}", soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:
        err.print(f"[red]cannot read {escape(str(exc.filename))}: {escape(exc.strerror or '')}[/red]")
        raise typer.Exit(2) from None


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Agreement YAML files or directories.")],
    orgs: OrgsOption = None,
    today: Annotated[str | None, typer.Option(help="Check expiry as of this date "
                                              "(YYYY-MM-DD; default today).")] = None,
) -> None:
    """Check agreement files, together; list every problem with its place."""
    as_of = date.fromisoformat(today) if today else date.today()
    loaded = _load(files, orgs, as_of)
    for a in sorted(loaded, key=lambda a: a.key):
        state = "in force" if a.in_force(as_of) else f"{a.status}, {a.start} to {a.end or '…'}"
        out.print(f"ok  {a.id} v{a.version}  ({state})")


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The current agreements (file or dir).")],
    new: Annotated[Path, typer.Argument(help="The proposed agreements (file or dir).")],
    orgs: OrgsOption = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Compare the agreements in "
                                              "force on this date only.")] = None,
    markdown: Annotated[bool, typer.Option(help="Print a Markdown table.")] = False,
) -> None:
    """Which (provider, requester, role, purpose, category) grants NEW adds or revokes."""
    day = date.fromisoformat(as_of) if as_of else None
    before = _load([old], orgs, None)
    after = _load([new], orgs, None)
    result = diff_agreements(before, after, day)
    if markdown:
        out.print(render_markdown(result), markup=False, end="")
        return
    if result.unchanged:
        out.print("No change: the new agreements grant exactly what the old ones did.")
        return
    table = Table("change", "provider", "requester", "role", "purpose", "category")
    for change, rows, style in (("added", result.added, "green"),
                                ("revoked", result.revoked, "red")):
        for g in rows:
            table.add_row(f"[{style}]{change}[/{style}]", g.provider, g.requester, g.role,
                          g.purpose, g.category)
    out.print(table)
    out.print(f"{len(result.added)} added, {len(result.revoked)} revoked.")
