"""Typed queries from FHIR-style parameters."""

from __future__ import annotations

import pytest

from joinedup.errors import InvalidInput
from joinedup.records.dates import DatePrefix
from joinedup.records.query import (
    Criterion,
    DateValue,
    Include,
    Query,
    ReferenceValue,
    Sort,
    StringValue,
    TokenValue,
    include_params,
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


def test_includes_are_parsed_and_checked_with_every_other_problem() -> None:
    q = parse_query(
        "Condition",
        [("patient", "p1"), ("_include", "Condition:subject"), ("_include", "*:encounter"),
         ("_include", "Condition:*:Encounter")],
    )
    assert q.includes == (
        Include("subject"), Include("encounter"), Include("*", "Encounter")
    )
    assert [p.name for p in include_params("Condition", Include("*"))] == [
        "encounter", "patient", "subject"
    ]
    with pytest.raises(InvalidInput) as caught:
        parse_query(
            "Condition",
            [
                ("_include", "Condition:code"),  # not a reference parameter
                ("_include", "Encounter:patient"),  # another type's
                ("_include", "Condition"),
                ("_include:iterate", "Condition:encounter"),
                ("_include", "Condition:encounter:Spaceship"),
                ("_revinclude", "Encounter:patient"),
                ("_count", "-1"),
            ],
        )
    problems = caught.value.problems
    assert [p.location for p in problems] == [
        "_include", "_include", "_include", "_include:iterate", "_include", "_revinclude",
        "_count",
    ]
    assert "no reference parameter 'code'" in problems[0].message
    assert "only include Condition:" in problems[1].message
    assert "Spaceship" in problems[4].message
