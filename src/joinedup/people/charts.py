"""Charts a data steward wants: how match weights are spread, and why one pair scored as it did.

Both follow Splink's own charts (match weight histogram, waterfall) and are
built with Altair, saved as self-contained HTML or PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
from sqlalchemy import select

from joinedup.errors import InvalidInput, Problem
from joinedup.people.matching.decision import probability_to_weight
from joinedup.people.models import PersonRecord, ReviewPair
from joinedup.storage.engine import Database


def _save(chart: alt.TopLevelMixin, out: Path) -> Path:
    if out.suffix not in {".html", ".png"}:
        raise InvalidInput("unsupported chart file", [Problem("use .html or .png", str(out))])
    out.parent.mkdir(parents=True, exist_ok=True)
    chart.save(str(out))
    return out


def weight_distribution(db: Database, out: Path) -> Path:
    """Histogram of match weights: model links and the review queue, by outcome."""
    rows: list[dict[str, Any]] = []
    with db.session() as s:
        for p, rule in s.execute(
            select(PersonRecord.probability, PersonRecord.rule).where(
                PersonRecord.probability.is_not(None)
            )
        ):
            if p is not None and 0 < p < 1:
                rows.append(
                    {"match_weight": probability_to_weight(p), "outcome": f"linked ({rule})"}
                )
        for w, status in s.execute(select(ReviewPair.weight, ReviewPair.status)):
            rows.append({"match_weight": w, "outcome": f"review ({status})"})
    frame = pd.DataFrame(rows or [{"match_weight": 0.0, "outcome": "no scored pairs yet"}])
    chart = (
        alt.Chart(frame, title="Match weight distribution")
        .mark_bar()
        .encode(
            x=alt.X(
                "match_weight:Q", bin=alt.Bin(maxbins=60), title="match weight (log2 Bayes factor)"
            ),
            y=alt.Y("count():Q", title="pairs"),
            color=alt.Color("outcome:N"),
        )
        .properties(width=640, height=320)
    )
    return _save(chart, out)


def waterfall(pair: dict[str, Any], out: Path) -> Path:
    """How each comparison moved one review pair's match weight (Splink's waterfall)."""
    evidence = pair["evidence"]
    if not evidence:
        raise InvalidInput(f"review pair {pair['id']} has no evidence to chart")
    total = 0.0
    rows = []
    prior = pair["match_weight"] - sum(e["weight"] for e in evidence)
    for label, weight in [("prior", prior)] + [
        (f"{e['comparison']}: {e['level']}", e["weight"]) for e in evidence
    ]:
        rows.append({"step": label, "start": total, "end": total + weight, "weight": weight})
        total += weight
    rows.append({"step": "final match weight", "start": 0.0, "end": total, "weight": total})
    frame = pd.DataFrame(rows)
    frame["order"] = range(len(frame))
    chart = (
        alt.Chart(frame, title=f"Review pair {pair['id']}: p = {pair['match_probability']:.4f}")
        .mark_bar()
        .encode(
            x=alt.X("step:N", sort=alt.SortField("order"), title=None),
            y=alt.Y("start:Q", title="match weight"),
            y2="end:Q",
            color=alt.condition("datum.weight >= 0", alt.value("#2b8a3e"), alt.value("#c92a2a")),
            tooltip=["step", alt.Tooltip("weight:Q", format=".2f")],
        )
        .properties(width=640, height=320)
    )
    return _save(chart, out)
