"""``joinedup demo generate``: write the Wessex demo care system's exports."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from joinedup.demo.area import build_area
from joinedup.demo.generate import GROUND_TRUTH, MANIFEST, STEPS
from joinedup.demo.generate import generate as generate_exports
from joinedup.demo.population import MIN_PEOPLE, build_population

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def demo() -> None:
    """The Wessex demo care system: a synthetic area, its people and its organisations' exports."""


@app.command()
def generate(
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the exports into.", show_default=False)
    ],
    people: Annotated[int, typer.Option("--people", help="How many people live in Wessex.")] = 10000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed and size, same bytes.")] = 20261122,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write into a non-empty directory, replacing an earlier run."),
    ] = False,
    validate: Annotated[
        bool,
        typer.Option("--validate", help="Check every FHIR resource against the FHIR models (slow)."),
    ] = False,
) -> None:
    """Write every organisation's export files, ground_truth.csv and manifest.json."""
    if people < MIN_PEOPLE:
        raise typer.BadParameter(f"must be at least {MIN_PEOPLE}, not {people}", param_hint="--people")
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is a file, not a directory", param_hint="--out")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise typer.BadParameter(
                f"{out} is not empty; choose an empty directory or add --force", param_hint="--out"
            )
        _remove_previous_run(out)

    console = Console(stderr=True)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:
        task = progress.add_task("population", total=len(STEPS) + 1)
        area = build_area(seed)
        population = build_population(seed, people)
        progress.advance(task)

        def on_step(name: str) -> None:
            progress.update(task, description=name)
            progress.advance(task)

        result = generate_exports(area, population, out, on_step=on_step)
    elapsed = time.perf_counter() - started

    table = Table(title=f"Wessex demo care system: {people:,} people, seed {seed}")
    table.add_column("org")
    table.add_column("person records", justify="right")
    table.add_column("files", justify="right")
    table.add_column("rows / resources / messages", justify="right")
    for org in area.organisations:
        files = [f for f in result.files if f.org_code == org.code]
        if not files:
            continue
        table.add_row(
            org.code, f"{result.records_per_org.get(org.code, 0):,}",
            str(len(files)), f"{sum(f.count for f in files):,}",
        )
    console.print(table)
    console.print(
        f"{len(result.files)} files, {result.ground_truth_rows:,} ground-truth rows, "
        f"{result.bad_rows} deliberate bad rows (see {MANIFEST}) in {elapsed:.1f} s -> {out}"
    )
    if validate:
        _validate(result.files, out, console)


def _remove_previous_run(out: Path) -> None:
    """Delete only what an earlier run's manifest says it wrote; never anything else."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return
    try:
        listed = [f["path"] for f in json.loads(manifest.read_text("utf-8"))["files"]]
    except (ValueError, KeyError, TypeError):
        return
    for rel in [*listed, GROUND_TRUTH, MANIFEST]:
        path = (out / rel).resolve()
        if out.resolve() in path.parents and path.is_file():
            path.unlink()


def _validate(files: object, out: Path, console: Console) -> None:
    from joinedup.demo.validate import FHIR_MODELS, fhir_problems

    problems: list[str] = []
    bundles = [f for f in files if f.format == "fhir-r4-bundle"]  # type: ignore[attr-defined]
    for f in bundles:
        problems.extend(fhir_problems(out / f.path))
    if problems:
        for line in problems[:50]:
            console.print(line)
        console.print(f"{len(problems)} FHIR validation problems ({FHIR_MODELS})")
        raise typer.Exit(1)
    console.print(f"all {len(bundles)} FHIR bundles valid against {FHIR_MODELS}")
