"""Typed queries from FHIR-style parameters."""

from __future__ import annotations

import pytest

from joinedup.errors import InvalidInput
from joinedup.records.dates import DatePrefix
from joinedup.records.query import (
    Criterion,
    DateValue,
    Query,
    ReferenceValue,
    Sort,
    StringValue,
    TokenValue,
    parse_query,
)


def test_tokens() -> None:
    assert TokenValue.parse("x") == TokenValue("x", None)
    assert TokenValue.parse("sys|x") == TokenValue("x", "sys")
    assert TokenValue.parse("|x") == TokenValue("x", "")
    assert TokenValue.parse("sys|") == TokenValue(None, "sys")
    with pytest.raises(ValueError):
        TokenValue.parse("|")


def test_references() -> None:
    assert ReferenceValue.parse("p1") == ReferenceValue("p1", None)
    assert ReferenceValue.parse("Patient/p1") == ReferenceValue("p1", "Patient")
    assert ReferenceValue.parse("https://x.example/fhir/Patient/p1") == ReferenceValue(
        "p1", "Patient"
    )


def test_parse_a_query() -> None:
    q = parse_query(
        "Patient",
        [
            ("name", "smi,jon"),
            ("birthdate", "ge1950"),
            ("birthdate", "lt1960-01-01"),
            ("family:exact", "Smith"),
            ("_sort", "-_lastUpdated"),
            ("_count", "10"),
        ],
    )
    assert q.criteria == (
        Criterion("name", (StringValue("smi"), StringValue("jon"))),
        Criterion("birthdate", (DateValue(DatePrefix.GE, "1950"),)),
        Criterion("birthdate", (DateValue(DatePrefix.LT, "1960-01-01"),)),
        Criterion("family", (StringValue("Smith", exact=True),)),
    )
    assert (q.sort, q.count) == (Sort.LAST_UPDATED_DESC, 10)


def test_values_must_fit_their_parameter() -> None:
    with pytest.raises(InvalidInput) as caught:
        Query(
            "Patient",
            (Criterion("birthdate", (StringValue("x"),)), Criterion("eyes", ())),
            count=5000,
        )
    assert [p.location for p in caught.value.problems] == ["birthdate", "eyes", "_count"]
