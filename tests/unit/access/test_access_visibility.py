"""The SQL condition of the rows a requester may see: plain codes written into the
statement, anything else bound, and the same rows either way."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from joinedup.access.service import Visibility
from joinedup.records.tables import resources

ROWS = [  # (org, category, sensitivity)
    ("RWX", "conditions", "N"), ("RWX", "conditions", "V"), ("RWX", "medications", "N"),
    ("O'X", "conditions", "N"), ("J81001", "housing", "R"),
]


def _visible(rows: dict[str, dict[frozenset[str], set[str]]]) -> list[tuple[str, str, str]]:
    engine = create_engine("sqlite://")
    resources.create(engine)
    with engine.begin() as conn:
        conn.execute(insert(resources), [
            {"resource_type": "Condition", "id": str(i), "version_id": 1,
             "last_updated": datetime(2026, 1, 1, tzinfo=UTC), "org_code": o, "feed_id": "f", "batch_id": "b",
             "source_id": "s", "content_hash": "h", "category": c, "sensitivity": s,
             "active": True, "subject_id": "p", "body": "{}"}
            for i, (o, c, s) in enumerate(ROWS)
        ])
        c = resources.c
        found = conn.execute(
            select(c.org_code, c.category, c.sensitivity)
            .where(Visibility(rows).condition(resources)).order_by(c.id)
        ).all()
    return [tuple(r) for r in found]


def test_plain_codes_are_written_into_the_statement() -> None:
    condition = Visibility({"RWX": {frozenset({"N", "R"}): {"conditions", "medications"}}})
    compiled = condition.condition(resources).compile(dialect=postgresql.dialect())
    assert compiled.params == {}
    assert "'RWX'" in str(compiled)
    assert "'medications'" in str(compiled)


def test_a_code_with_a_quote_is_bound_not_written() -> None:
    condition = Visibility({"O'X": {frozenset({"N"}): {"conditions"}}})
    compiled = condition.condition(resources).compile(dialect=sqlite.dialect())
    assert ["O'X"] in compiled.params.values()
    assert "O'X" not in str(compiled)


def test_the_condition_lets_through_exactly_the_visible_rows() -> None:
    assert _visible({"RWX": {frozenset({"N"}): {"conditions", "medications"}},
                     "O'X": {frozenset({"N"}): {"conditions"}}}) == [
        ("RWX", "conditions", "N"), ("RWX", "medications", "N"), ("O'X", "conditions", "N"),
    ]
    assert _visible({"J81001": {frozenset({"N", "R"}): {"housing"}}}) == [
        ("J81001", "housing", "R"),
    ]
