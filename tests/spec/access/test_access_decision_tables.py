"""Run every row of the access decision tables against both the compiled
decision point and the reference model, and keep the generated doc current."""

from __future__ import annotations

import pytest

from joinedup.access.consent import PersonConsents
from joinedup.access.decisions import ReasonCode, Request
from joinedup.access.engine import DecisionPoint
from joinedup.access.reference import reference_decide
from joinedup.access.relationships import Relationships
from joinedup.demo.agreements import demo_organisations
from tests.spec.access.access_decision_tables import (
    DOC,
    PERSON,
    TABLES,
    TODAY,
    Row,
    directives,
    relationships,
    render,
    spec_agreements,
    summary,
)

AGREEMENTS = spec_agreements()
ORGANISATIONS = demo_organisations()
POINT = DecisionPoint(AGREEMENTS, ORGANISATIONS, TODAY)
ROWS = [(title, row) for title, (_, rows) in TABLES.items() for row in rows]


def _request(row: Row) -> Request:
    return Request(
        org=row.org, practitioner="pr-1", role=row.role, purpose=row.purpose, person=PERSON,
        owning_org=row.owner, category=row.category, sensitivity=row.sensitivity,
        break_glass_reason=row.reason,
    )


@pytest.mark.parametrize(("title", "row"), ROWS, ids=[f"{t}: {r.case}" for t, r in ROWS])
def test_row(title: str, row: Row) -> None:
    request = _request(row)
    consents = directives(row)
    rels = relationships(row)
    got = POINT.decide(request, PersonConsents.of(PERSON, consents, TODAY),
                       Relationships.of(rels))
    assert got.effect.value == row.expect
    assert tuple(r.value for r in got.reasons) == row.reasons
    assert (got.agreement.id if got.agreement else None) == row.agreement
    assert summary(got) == row.obligations
    assert got == reference_decide(
        request, agreements=AGREEMENTS, organisations=ORGANISATIONS, today=TODAY,
        directives=consents, relationships=rels,
    )


def test_every_reason_code_has_a_row() -> None:
    shown = {reason for _, row in ROWS for reason in row.reasons}
    assert shown == {code.value for code in ReasonCode}


def test_generated_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/reference/access-decisions.md is stale: run "
        ".venv/bin/python tests/spec/access/access_decision_tables.py"
    )
