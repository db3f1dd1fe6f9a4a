"""Parsing ITI-67 / ITI-66 search parameters: pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from joinedup.documents.query import (
    BadSearch,
    TokenMatch,
    parse_date,
    parse_document_search,
    parse_list_search,
    parse_token,
)


@pytest.mark.parametrize(
    ("text", "prefix", "low", "high"),
    [
        ("2026", "eq", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("ge2026-12", "ge", datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("lt2026-11-20", "lt", datetime(2026, 11, 20, tzinfo=UTC),
         datetime(2026, 11, 21, tzinfo=UTC)),
        ("2026-11-20T10:00:00+01:00", "eq", datetime(2026, 11, 20, 9, tzinfo=UTC),
         datetime(2026, 11, 20, 9, 0, 1, tzinfo=UTC)),
    ],
)
def test_a_date_is_the_interval_of_its_precision(
    text: str, prefix: str, low: datetime, high: datetime
) -> None:
    match = parse_date(text)
    assert match is not None
    assert (match.prefix, match.low, match.high) == (prefix, low, high)


@pytest.mark.parametrize("text", ["", "20", "yesterday", "xx2026", "2026-13", "2026-11-20 10"])
def test_a_malformed_date_is_refused(text: str) -> None:
    assert parse_date(text) is None


def test_tokens_and_references() -> None:
    assert parse_token("s|c") == TokenMatch("s", "c")
    assert parse_token("|c") == TokenMatch("", "c")
    assert parse_token("s|") == TokenMatch("s", None)
    assert parse_token("c") == TokenMatch(None, "c")
    assert parse_token("|") is None
    assert parse_token("http://x/fhir/Organization/A1", reference=True) == TokenMatch(
        "", "Organization/A1")
    assert parse_token("A1", reference=True) == TokenMatch("", "A1", reference=True)


def test_every_problem_is_reported_together() -> None:
    with pytest.raises(BadSearch) as caught:
        parse_document_search([("date", "x"), ("colour", "red"), ("_count", "-1"),
                               ("status", "gone")])
    assert {p.location for p in caught.value.problems} == {
        "date", "colour", "_count", "status", "patient"}


def test_defaults_and_limits() -> None:
    search = parse_document_search([("patient", "Patient/p1"), ("_count", "5000")])
    assert search.patient.value == "p1"
    assert search.statuses == ("current",)
    assert search.count == 1000
    lists = parse_list_search([("patient.identifier", "s|v"), ("sourceId", "urn:oid:1")])
    assert lists.source_ids == (("urn:oid:1",),)
    with pytest.raises(BadSearch):
        parse_list_search([("patient", "a"), ("patient", "b")])
