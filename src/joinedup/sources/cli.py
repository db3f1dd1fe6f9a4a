"""CLI for feeds, batches and quarantine: ``joinedup ingest`` and ``joinedup feeds ...``.

The lead's ``joinedup`` command mounts these (see :data:`app`, whose commands
are ``ingest``, ``feeds``, ``quarantine`` and ``batches``). Exit codes:
0 every file committed (rejected rows are in quarantine, listed in the
report); 1 a batch was refused (all-or-nothing) or a file failed; 2 and up
the usual user-error codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from joinedup.errors import InvalidInput, UserError
from joinedup.sources.batches import BatchResult, BatchStatus
from joinedup.sources.feeds import Feed, FeedSpec, read_spec, spec_from_mapping

if TYPE_CHECKING:
    from joinedup.services import Services

app = typer.Typer(help="Feeds, batches and quarantine.", no_args_is_help=True)
feeds_app = typer.Typer(help="Register, list, show and validate feeds.", no_args_is_help=True)
quarantine_app = typer.Typer(
    help="Rows no batch could accept: list, reprocess.", no_args_is_help=True
)
batches_app = typer.Typer(help="Batches and their reports.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(batches_app, name="batches")

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]


@contextmanager
def _ingestion() -> Iterator[_AuditedIngestion]:
    """The configured ingestion service (with online person matching)."""
    from joinedup.config import load_settings
    from joinedup.services import build
    from joinedup.storage.migrate import ensure_migrated

    svc = build(load_settings())
    try:
        ensure_migrated(svc.db)
        yield _AuditedIngestion(svc)
    finally:
        svc.close()


class _AuditedIngestion:
    """The ingestion service, with every batch run from the command line audited."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self.feeds = svc.ingestion.feeds
        self.loader = svc.ingestion.loader
        self.quarantine = svc.ingestion.quarantine

    def ingest_file(self, feed_id: str, path: Path, **kwargs: Any) -> BatchResult:
        result = self._svc.ingestion.ingest_file(feed_id, path, **kwargs)
        self._record(result)
        return result

    def reprocess(self, feed_id: str, **kwargs: Any) -> BatchResult:
        result = self._svc.ingestion.reprocess(feed_id, **kwargs)
        self._record(result)
        return result

    def _record(self, result: BatchResult) -> None:
        from joinedup.audit.changes import batch_event, local_actor

        self._svc.audit.append([batch_event(result.event(), local_actor(result.org))])


def _json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


# -- ingest -----------------------------------------------------------------------------
@app.command()
def ingest(
    files: Annotated[
        list[Path], typer.Argument(help="Export files, loaded in order, one batch each")
    ],
    feed: Annotated[str, typer.Option("--feed", "-f", help="Feed id, e.g. wccasc-persons")],
    force: Annotated[bool, typer.Option(help="Load a file again even if already loaded")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load export files into the record store, one atomic batch per file."""
    results: list[tuple[Path, BatchResult | None, str]] = []
    with _ingestion() as ingestion:
        columns = (
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=None),
            TextColumn("{task.completed:,} units"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, transient=True, disable=as_json) as bar:
            for path in files:
                task = bar.add_task(escape(path.name), total=None)

                def advance(read: int, task: TaskID = task) -> None:
                    bar.update(task, completed=read)

                try:
                    result = ingestion.ingest_file(feed, path, force=force, progress=advance)
                except UserError as exc:
                    results.append((path, None, str(exc)))
                else:
                    results.append((path, result, ""))
                bar.remove_task(task)
    if as_json:
        _json(
            [
                {"file": str(p), "error": e} if r is None else {"file": str(p), **r.view()}
                for p, r, e in results
            ]
        )
    else:
        _summary(results)
    if any(
        r is None or r.status in (BatchStatus.REFUSED, BatchStatus.FAILED) for _, r, _ in results
    ):
        raise typer.Exit(1)


def _summary(results: list[tuple[Path, BatchResult | None, str]]) -> None:
    table = Table(
        "file", "batch", "status", "read", "accepted", "rejected", "warnings",
        "new", "changed", "same", "withdrawn", "s",
        title="Batches",
    )  # fmt: skip
    for path, r, _ in results:
        if r is None:
            table.add_row(escape(path.name), "", "[red]failed[/red]", *[""] * 9)
            continue
        c = r.counts
        colour = {"committed": "green", "duplicate": "yellow"}.get(r.status.value, "red")
        table.add_row(
            escape(path.name),
            r.batch_id,
            f"[{colour}]{r.status.value}[/{colour}]",
            *(f"{c[k]:,}" for k in ("read", "accepted", "rejected", "warnings")),
            *(f"{c[k]:,}" for k in ("created", "updated", "unchanged", "withdrawn")),
            str((r.report.get("timing") or {}).get("seconds", "")),
        )
    out.print(table)
    for path, r, error in results:
        if r is None:
            err.print(f"[red]{escape(path.name)}:[/red] {escape(error)}", highlight=False)
            continue
        for note in r.report.get("notes", []):
            out.print(f"[yellow]{escape(path.name)}:[/yellow] {escape(note)}", highlight=False)
        by_field = {**r.report.get("problems_by_field", {})}
        if by_field:
            problems = ", ".join(f"{escape(k)} ({v})" for k, v in sorted(by_field.items()))
            out.print(f"{escape(path.name)}: rejected by field: {problems}", highlight=False)


# -- feeds --------------------------------------------------------------------------------
def _spec_from(
    spec_file: Path | None,
    mapping: Path | None,
    refresh: str | None,
    missing: str | None,
    partial: str | None,
) -> FeedSpec:
    if (spec_file is None) == (mapping is None):
        raise InvalidInput("give a feed file, or --mapping MAPPING.yaml (not both)")
    if spec_file is not None:
        return read_spec(spec_file)
    assert mapping is not None
    return spec_from_mapping(
        mapping, refresh=refresh, missing_policy=missing, partial_policy=partial
    )


SpecArg = Annotated[
    Path | None, typer.Argument(help="A feed file (YAML): id, org, format, categories, mapping...")
]
MappingOpt = Annotated[
    Path | None, typer.Option(help="Or: a mapping file; the feed's id, org and format come from it")
]
RefreshOpt = Annotated[str | None, typer.Option(help="incremental | full")]
MissingOpt = Annotated[str | None, typer.Option("--missing", help="keep | mark-inactive")]
PartialOpt = Annotated[str | None, typer.Option("--partial", help="partial | all-or-nothing")]


@feeds_app.command("register")
def feeds_register(
    spec_file: SpecArg = None,
    mapping: MappingOpt = None,
    refresh: RefreshOpt = None,
    missing: MissingOpt = None,
    partial: PartialOpt = None,
    replace: Annotated[bool, typer.Option(help="Change an existing feed")] = False,
) -> None:
    """Register a feed (validating its mapping: every problem is listed)."""
    spec = _spec_from(spec_file, mapping, refresh, missing, partial)
    with _ingestion() as ingestion:
        feed = ingestion.feeds.register(spec, replace=replace)
    out.print(f"feed [bold]{feed.id}[/bold] of {feed.org} at revision {feed.revision}")


@feeds_app.command("validate")
def feeds_validate(
    spec_file: SpecArg = None,
    mapping: MappingOpt = None,
    refresh: RefreshOpt = None,
    missing: MissingOpt = None,
    partial: PartialOpt = None,
) -> None:
    """Check a feed and its mapping without registering it."""
    spec = _spec_from(spec_file, mapping, refresh, missing, partial)
    with _ingestion() as ingestion:
        problems = ingestion.feeds.validate(spec)
    if problems:
        raise InvalidInput(f"feed {spec.id!r} has {len(problems)} problem(s)", problems)
    out.print(f"feed [bold]{spec.id}[/bold] is valid")


@feeds_app.command("list")
def feeds_list(org: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False) -> None:
    """List feeds."""
    with _ingestion() as ingestion:
        feeds = ingestion.feeds.list(org)
    if as_json:
        _json([f.view() for f in feeds])
        return
    table = Table("feed", "org", "format", "categories", "refresh", "missing", "partial", "rev")
    for f in feeds:
        v = f.view()
        table.add_row(
            f.id, f.org, v["format"], ", ".join(v["categories"]), v["refresh"],
            v["missing_policy"], v["partial_policy"], str(f.revision),
        )  # fmt: skip
    out.print(table)


@feeds_app.command("show")
def feeds_show(feed: str, as_json: JsonOpt = False) -> None:
    """A feed with the data quality of what it holds and its recent batches."""
    with _ingestion() as ingestion:
        detail: Feed = ingestion.feeds.get(feed)
        quality = ingestion.loader.feed_quality(feed)
        batches = ingestion.loader.list(feed, limit=10)
        open_units = ingestion.quarantine.count(feed_id=feed)
    if as_json:
        _json({**detail.view(), "quality": quality, "open_quarantine": open_units})
        return
    v = detail.view()
    out.print(f"[bold]{detail.id}[/bold] ({detail.org}, {v['format']}, revision {detail.revision})")
    out.print(f"mapping: {v['mapping'] or '-'}")
    out.print(
        f"refresh {v['refresh']}, missing rows: {v['missing_policy']}, "
        f"rejections: {v['partial_policy']}; open in quarantine: {open_units}"
    )
    current = quality["current"]
    table = Table("measure", "count", "completeness", title="Data quality (current records)")
    for key in ("nhs_number", "nhs_number_valid", "birthdate", "postcode"):
        count = current[f"{key}_present" if key != "nhs_number_valid" else key]
        ratio = current["completeness"][key]
        table.add_row(key, str(count), "-" if ratio is None else f"{ratio:.1%}")
    table.add_row("patients", str(current["patients"]), "")
    table.add_row("future dates", str(current["future_dates"]), "")
    table.add_row("implausibly old dates", str(current["implausibly_old_dates"]), "")
    out.print(table)
    recent = Table(
        "batch", "kind", "status", "read", "accepted", "rejected", title="Recent batches"
    )
    for b in batches:
        c = b.counts
        recent.add_row(
            b.batch_id,
            b.kind,
            b.status.value,
            str(c["read"]),
            str(c["accepted"]),
            str(c["rejected"]),
        )
    out.print(recent)


# -- batches ------------------------------------------------------------------------------
@batches_app.command("show")
def batches_show(batch: str, as_json: JsonOpt = False) -> None:
    """A batch's report: counts, problems by field and unit, warnings, quality, timing."""
    with _ingestion() as ingestion:
        result = ingestion.loader.get(batch)
    if as_json:
        _json(result.view())
        return
    _summary([(Path((result.report.get("file") or {}).get("name") or result.feed_id), result, "")])
    problems = Table("unit", "where", "problem", title="Problems (first ones)")
    for p in result.report.get("problems", []):
        problems.add_row(str(p["unit"]), escape(p["location"]), escape(p["message"]))
    warnings = Table("unit", "where", "warning", title="Warnings (first ones)")
    for w in result.report.get("warnings", []):
        warnings.add_row(str(w["unit"]), escape(w["location"]), escape(w["message"]))
    out.print(problems, warnings)


@batches_app.command("list")
def batches_list(feed: str, limit: int = 20, as_json: JsonOpt = False) -> None:
    """A feed's batches, newest first."""
    with _ingestion() as ingestion:
        results = ingestion.loader.list(feed, limit=limit)
    if as_json:
        _json([r.view() for r in results])
        return
    _summary([(Path((r.report.get("file") or {}).get("name") or "-"), r, "") for r in results])


# -- quarantine ---------------------------------------------------------------------------
@quarantine_app.command("list")
def quarantine_list(
    feed: str,
    batch: Annotated[str | None, typer.Option()] = None,
    raw: Annotated[bool, typer.Option(help="Show each unit's text as read")] = False,
    limit: int = 100,
    as_json: JsonOpt = False,
) -> None:
    """Open quarantined units of a feed, with their problems."""
    with _ingestion() as ingestion:
        ingestion.feeds.get(feed)
        units = ingestion.quarantine.list(feed_id=feed, batch_id=batch, limit=limit)
    if as_json:
        _json([u.view(include_raw=raw) for u in units])
        return
    table = Table("id", "batch", "unit", "tries", "problems", *(["raw"] if raw else []))
    for u in units:
        problems = "\n".join(escape(str(p)) for p in u.problems)
        table.add_row(
            str(u.id), u.batch_id, str(u.unit), str(u.attempts), problems,
            *([escape(u.raw[:200])] if raw else []),
        )  # fmt: skip
    out.print(table)


@quarantine_app.command("reprocess")
def quarantine_reprocess(
    feed: str,
    batch: Annotated[str | None, typer.Option(help="Only units from this batch")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Map a feed's open quarantined units again (after fixing the mapping) and load them."""
    with _ingestion() as ingestion:
        result = ingestion.reprocess(feed, batch_id=batch)
    if as_json:
        _json(result.view())
    else:
        _summary([(Path("quarantine"), result, "")])
    if result.status is not BatchStatus.COMMITTED:
        raise typer.Exit(1)
