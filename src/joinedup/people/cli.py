"""`joinedup people ...`: the person index for data stewards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from joinedup.config import load_settings
from joinedup.services import running

app = typer.Typer(
    help="The person index: review queue, merges, history, charts.", no_args_is_help=True
)
review_app = typer.Typer(help="Uncertain pairs awaiting a data steward.", no_args_is_help=True)
app.add_typer(review_app, name="review")
out = Console(soft_wrap=True)

By = Annotated[str, typer.Option("--by", help="Who is deciding (practitioner id), for the history")]


def _json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


@review_app.command("list")
def review_list(
    status: Annotated[str, typer.Option(help="open, accepted or rejected")] = "open",
    limit: int = 50,
) -> None:
    """List review pairs, most likely first."""
    with running() as svc:
        pairs = svc.people.review_queue(status=status, limit=limit)
    table = Table("pair", "p(match)", "weight", "reason", "left", "right")
    for p in pairs:
        left, right = p["left"] or {}, p["right"] or {}
        table.add_row(
            str(p["id"]),
            f"{p['match_probability']:.4f}",
            f"{p['match_weight']:.2f}",
            p["reason"],
            f"{left.get('org_code')} {left.get('record_id')}",
            f"{right.get('org_code')} {right.get('record_id')}",
        )
    out.print(table)


@review_app.command("show")
def review_show(pair: int) -> None:
    """One pair with the evidence side by side."""
    with running() as svc:
        view = svc.people.pair(pair)
    left, right = view["left"]["features"], view["right"]["features"]
    table = Table(
        "field",
        view["left"]["org_code"],
        view["right"]["org_code"],
        title=f"pair {pair}: p = {view['match_probability']:.4f} ({view['reason']})",
    )
    for name in left:
        if name != "unique_id":
            table.add_row(name, str(left[name] or ""), str(right.get(name) or ""))
    evidence = Table("comparison", "level", "weight", title="evidence")
    for e in view["evidence"]:
        evidence.add_row(e["comparison"], e["level"], f"{e['weight']:+.2f}")
    out.print(table, evidence)


@review_app.command("accept")
def review_accept(pair: int, by: By) -> None:
    """The pair is one person: merge them."""
    with running() as svc:
        merge = svc.people.accept(pair, by=by)
    out.print(f"pair {pair} accepted" + (f"; merge {merge}" if merge else ""))


@review_app.command("reject")
def review_reject(pair: int, by: By) -> None:
    """Different people: never proposed again on the same evidence."""
    with running() as svc:
        svc.people.reject(pair, by=by)
    out.print(f"pair {pair} rejected")


@app.command("show")
def show(person: str) -> None:
    """A person's linked records by organisation."""
    with running() as svc:
        view = svc.people.person(person)
    _json(
        {
            "id": view.person_id,
            "state": view.state,
            "flagged": view.flagged,
            "records": view.records,
        }
    )


@app.command("history")
def history(person: str) -> None:
    """Every link, merge and decision about a person: when, how, by whom."""
    with running() as svc:
        events = svc.people.history(person)
    table = Table("at", "action", "record", "rule", "p", "actor")
    for e in events:
        p = "" if e["probability"] is None else f"{e['probability']:.4f}"
        table.add_row(e["at"], e["action"], e["record_id"] or "", e["rule"] or "", p, e["actor"])
    out.print(table)


@app.command("merge")
def merge(
    survivor: str,
    merged: str,
    by: By,
    reason: Annotated[str, typer.Option(help="Why these are one person")],
) -> None:
    """Merge two persons (the second into the first)."""
    with running() as svc:
        merge_id = svc.people.merge(survivor, merged, by=by, reason=reason)
    out.print(f"merge {merge_id}: {merged} into {survivor}")


@app.command("unmerge")
def unmerge(merge_id: int, by: By) -> None:
    """Undo a merge exactly."""
    with running() as svc:
        svc.people.unmerge(merge_id, by=by)
    out.print(f"merge {merge_id} undone")


@app.command("stats")
def stats() -> None:
    """Persons, linked records, open reviews, flagged persons."""
    with running() as svc:
        _json(svc.people.counts())


@app.command("train")
def train_cmd(
    seed: Annotated[
        int, typer.Option(help="Seed: the same seed and data give the same model")
    ] = 20240401,
) -> None:
    """Train the matching model by EM on the estate's own records; saved as versioned JSON."""
    from joinedup.people.estate import save_model, train_model
    from joinedup.storage.engine import Database
    from joinedup.storage.migrate import ensure_migrated

    settings = load_settings()
    # The database only, not every service: building those loads the current
    # model file, and a file this version refuses ("retrain") must not stop
    # the retraining that replaces it.
    db = Database.from_url(settings.effective_database_url)
    try:
        ensure_migrated(db)
        model = train_model(db, seed=seed)
    finally:
        db.dispose()
    path = settings.effective_matching_model
    save_model(model, path)
    out.print(f"model trained on {model.summary.get('records')} records, saved to {path}")


@app.command("rebuild")
def rebuild_cmd(
    apply: Annotated[
        bool,
        typer.Option(
            "--apply/--dry-run", help="Change the index, or only report what would change"
        ),
    ] = False,
) -> None:
    """Re-link every record with the trained model, keeping stewards' decisions.

    Accepted pairs and merges stay together; rejected pairs and unmerges stay
    apart. By default a dry run: the report says how many record pairs would be
    joined or split, and nothing changes. `--apply` makes the change."""
    from joinedup.people.estate import rebuild
    from joinedup.people.matcher import matcher_from_file

    settings = load_settings()
    with running(settings) as svc:
        report = rebuild(svc.db, matcher_from_file(settings.effective_matching_model), apply=apply)
    _json(report.__dict__)


@app.command("chart")
def chart(
    kind: Annotated[str, typer.Argument(help="weights (distribution) or waterfall")],
    out_file: Annotated[Path, typer.Option("--out", help="File to write: .html or .png")],
    pair: Annotated[int | None, typer.Option(help="Review pair, for a waterfall")] = None,
) -> None:
    """Save a match-weight distribution or a pair's waterfall chart."""
    from joinedup.errors import InvalidInput
    from joinedup.people.charts import waterfall, weight_distribution

    with running() as svc:
        if kind == "weights":
            path = weight_distribution(svc.db, out_file)
        elif kind == "waterfall":
            if pair is None:
                raise InvalidInput("a waterfall chart needs --pair")
            path = waterfall(svc.people.pair(pair), out_file)
        else:
            raise InvalidInput(f"unknown chart {kind!r}: use weights or waterfall")
    out.print(f"saved {path}")
